"""The chain format, as a public surface (docs/chain-format.md §1-§8).

What a verifier, the service and an evidence package all compute the same
way: the record's canonical bytes (RFC 8785), the leaf hash (RFC 6962), the
chain hash with its domain tag and genesis, the record format versions a
verifier accepts, and the one timestamp form that is hashed.
"""

from __future__ import annotations

from ._chain import (
    CHAIN_TAG,
    FORMAT_VERSION,
    GENESIS_TAG,
    SEALED_RECORD_VERSION,
    SUPPORTED_VERSIONS,
    RecordTemplate,
    UnsupportedFormatVersion,
    canonical_json,
    canonical_record,
    chain_hash,
    check_format_version,
    genesis_hash,
    leaf_hash,
    make_record,
)
from ._event import format_timestamp

__all__ = [
    "CHAIN_TAG",
    "FORMAT_VERSION",
    "GENESIS_TAG",
    "SEALED_RECORD_VERSION",
    "SUPPORTED_VERSIONS",
    "RecordTemplate",
    "UnsupportedFormatVersion",
    "canonical_json",
    "canonical_record",
    "chain_hash",
    "check_format_version",
    "format_timestamp",
    "genesis_hash",
    "leaf_hash",
    "make_record",
]
