"""Which log a verification or an export works on."""

from __future__ import annotations

from dataclasses import dataclass

from auditsvc_sdk import genesis_hash


@dataclass(frozen=True)
class LogRef:
    """A log: its id in this database, its name (the origin its checkpoints
    name) and the genesis chain hash its first record follows from."""

    log_id: int
    name: str
    genesis: bytes

    @classmethod
    def named(cls, log_id: int, name: str) -> LogRef:
        """The log ``name`` stored under ``log_id``, with its genesis hash."""
        return cls(log_id, name, genesis_hash(name))
