"""C2SP signed notes, tlog checkpoints and tlog cosignatures, with Ed25519.

Pure: text in, text out; keys come from the caller. The formats, byte-exact:

Signed note (c2sp.org/signed-note)
----------------------------------
::

    <text, UTF-8, ending in "\\n">
    "\\n"
    "— " <key name> " " base64(key ID (4 bytes, big-endian) || signature) "\\n"   (one or more)

* The whole note is UTF-8 with no control characters other than newline.
  The text may contain empty lines; the signatures start after the *last*
  empty line.
* Key names are non-empty and contain no white space and no ``+``.
* Key ID = the first 4 bytes, big-endian, of
  ``SHA-256(key name || 0x0A || signature type || public key)``. Type
  ``0x01`` is Ed25519 over the text (``NoteSigner``/``NoteVerifier``);
  ``0x04`` is the timestamped cosignature below.
* Verifier key (*vkey*): ``<name>+<8 hex digits of the key ID>+base64(type || public key)``.
  Signer key (*skey*, Go's ``golang.org/x/mod/sumdb/note``):
  ``PRIVATE+KEY+<name>+<key ID hex>+base64(0x01 || 32-byte Ed25519 seed)``.
* ``open_note`` ignores signatures from unknown keys (a known key is the
  pair name and key ID), verifies every signature from a known key, rejects
  the note if any of them fails, and requires at least one to be there.

Checkpoint (c2sp.org/tlog-checkpoint)
-------------------------------------
The note text of a log's signed tree head::

    <origin> "\\n" <tree size, decimal, no leading zeros> "\\n" base64(32-byte root hash) "\\n"
    [<extension line> "\\n"]...

Cosignature (c2sp.org/tlog-cosignature, cosignature/v1, Ed25519)
----------------------------------------------------------------
A witness's note signature (type ``0x04`` in its key ID) over a checkpoint::

    signature = key ID (4) || timestamp (8, big-endian, POSIX seconds < 2**63) || Ed25519 signature (64)
    message   = "cosignature/v1\\n" "time " <timestamp, decimal> "\\n" <checkpoint note text>
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ._merkle import HASH_SIZE, MAX_TREE_SIZE

__all__ = [
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "SIG_TYPE_COSIGNATURE_V1",
    "SIG_TYPE_ED25519",
    "Checkpoint",
    "CheckpointError",
    "CosignatureSigner",
    "CosignatureVerifier",
    "InvalidSignatureError",
    "KeyFormatError",
    "MalformedNoteError",
    "Note",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "Signer",
    "UnverifiedNoteError",
    "Verifier",
    "cosign",
    "cosignature_message",
    "note_key_id",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "verifier_from_vkey",
    "verify_cosignature",
]

SIG_TYPE_ED25519 = 0x01
SIG_TYPE_COSIGNATURE_V1 = 0x04
# The spec asks verifiers to accept at least 16 signatures; Go's note package
# stops at 100. The size bound keeps a hostile note from costing much.
MAX_SIGNATURES = 100
MAX_NOTE_SIZE = 1 << 20
MAX_TIMESTAMP = (1 << 63) - 1

_EM_DASH = "\u2014"
_SIG_PREFIX = _EM_DASH + " "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


# --- errors ---------------------------------------------------------------------


class NoteError(ValueError):
    """A note, checkpoint, cosignature or key is unusable.

    NoteError
    ├── MalformedNoteError      not a well-formed signed note (or signature line)
    ├── UnverifiedNoteError     well formed, but no signature from a known key
    ├── InvalidSignatureError   a signature from a known key does not verify
    ├── CheckpointError         the note text is not a valid checkpoint
    └── KeyFormatError          a vkey, skey or key is malformed or inconsistent
    """


class MalformedNoteError(NoteError):
    """The note (or signature line) does not follow the signed-note format."""


class UnverifiedNoteError(NoteError):
    """The note is well formed but carries no signature from a known key."""

    def __init__(self, unverified: tuple[NoteSignature, ...]) -> None:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unverified) or "none"
        super().__init__(f"note has no verifiable signatures (signed by: {names})")
        self.unverified = unverified


class InvalidSignatureError(NoteError):
    """A signature from a known key does not verify."""

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")
        self.name = name
        self.key_id = key_id


class CheckpointError(NoteError):
    """The note text is not a valid tlog checkpoint."""


class KeyFormatError(NoteError):
    """A verifier key, signer key or key name is malformed or inconsistent."""


# --- small helpers ------------------------------------------------------------------


def _b64decode(text: str) -> bytes:
    """Strict standard base64: padded, no white space, canonical trailing bits."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("invalid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _is_valid_name(name: str) -> bool:
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(c.isspace() for c in name)
        and _CONTROL.search(name) is None
        and _is_utf8(name)
    )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def _check_name(name: str) -> None:
    if not _is_valid_name(name):
        raise KeyFormatError(f"invalid key name {name!r}: it must be non-empty, with no white space and no '+'")


def note_key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || sig_type || public_key)[:4] as a big-endian uint32."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes((sig_type,)) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


# --- keys -------------------------------------------------------------------------


class Signer(Protocol):
    """Signs note texts under one key (name and key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, message: bytes) -> bytes:
        """The signature bytes that follow the key ID in a signature line."""
        ...


class Verifier(Protocol):
    """Verifies note signatures from one key (name and key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the key ID) signs ``message``."""
        ...


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class _Ed25519Verifier:
    """An Ed25519 public key with a name, for one signature type."""

    SIG_TYPE: ClassVar[int]
    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, key_id: int, public_key: Ed25519PublicKey | bytes) -> None:
        _check_name(name)
        if isinstance(public_key, bytes):
            if len(public_key) != 32:
                raise KeyFormatError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
            try:
                key = Ed25519PublicKey.from_public_bytes(public_key)
            except ValueError as exc:
                raise KeyFormatError(f"invalid Ed25519 public key: {exc}") from None
            raw = public_key
        else:
            raw, key = _public_bytes(public_key), public_key
        want = note_key_id(name, self.SIG_TYPE, raw)
        if key_id != want:
            raise KeyFormatError(f"key ID {key_id:08x} does not match name {name!r} and this key ({want:08x})")
        self.name: str = name
        self.key_id: int = key_id
        self.public_key: bytes = raw
        self._key = key

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey | bytes) -> Self:
        """The verifier for ``public_key`` under ``name``, with the key ID computed."""
        raw = public_key if isinstance(public_key, bytes) else _public_bytes(public_key)
        return cls(name, note_key_id(name, cls.SIG_TYPE, raw), public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        """Parse ``<name>+<hex key ID>+base64(type || 32-byte public key)``; the type must be this class's."""
        name, kid, sig_type, public_key = _parse_vkey(vkey)
        if sig_type != cls.SIG_TYPE:
            raise KeyFormatError(f"verifier key type {sig_type:#04x} is not {cls.SIG_TYPE:#04x} ({cls.__name__})")
        return cls(name, kid, public_key)

    @property
    def vkey(self) -> str:
        """``<name>+<hex key ID>+base64(type || public key)``."""
        return f"{self.name}+{self.key_id:08x}+{_b64encode(bytes((self.SIG_TYPE,)) + self.public_key)}"

    def _verify_ed25519(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, _Ed25519Verifier)
            and (other.name, other.key_id, other.public_key) == (self.name, self.key_id, self.public_key)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.name, self.key_id, self.public_key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"


def _parse_vkey(vkey: str) -> tuple[str, int, int, bytes]:
    parts = vkey.split("+", 2) if isinstance(vkey, str) else []
    if len(parts) != 3 or not _is_valid_name(parts[0]) or not _HEX8.fullmatch(parts[1]):
        raise KeyFormatError("malformed verifier key: want <name>+<8 hex digits>+<base64 key>")
    name, hex_id, b64 = parts
    try:
        raw = _b64decode(b64)
    except ValueError as exc:
        raise KeyFormatError(f"malformed verifier key: {exc}") from None
    if len(raw) != 33 or raw[0] not in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1):
        raise KeyFormatError("verifier key is not an Ed25519 (0x01) or cosignature/v1 (0x04) key")
    if int(hex_id, 16) != note_key_id(name, raw[0], raw[1:]):
        raise KeyFormatError("verifier key ID does not match its name and key")
    return name, int(hex_id, 16), raw[0], raw[1:]


class NoteVerifier(_Ed25519Verifier):
    """Verifies Ed25519 (type 0x01) note signatures, e.g. a log's checkpoint signatures."""

    SIG_TYPE = SIG_TYPE_ED25519
    __slots__ = ()

    def verify(self, message: bytes, signature: bytes) -> bool:
        return self._verify_ed25519(message, signature)


def _cosignature_header(timestamp: int) -> bytes:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"cosignature timestamp must be an int in [0, 2**63), got {timestamp!r}")
    return b"cosignature/v1\ntime %d\n" % timestamp


def cosignature_message(checkpoint_body: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature/v1 signs: header, time line, then the checkpoint text."""
    return _cosignature_header(timestamp) + checkpoint_body.encode("utf-8")


class CosignatureVerifier(_Ed25519Verifier):
    """Verifies Ed25519 cosignature/v1 signatures (type 0x04), e.g. a witness's."""

    SIG_TYPE = SIG_TYPE_COSIGNATURE_V1
    __slots__ = ()

    @staticmethod
    def timestamp(signature: bytes) -> int:
        """The timestamp in a cosignature's signature bytes (after the key ID)."""
        if len(signature) != 72:
            raise MalformedNoteError(f"a cosignature/v1 signature is 72 bytes, got {len(signature)}")
        return int.from_bytes(signature[:8], "big")

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 72:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            return False
        return self._verify_ed25519(_cosignature_header(timestamp) + message, signature[8:])


def verifier_from_vkey(vkey: str) -> NoteVerifier | CosignatureVerifier:
    """A verifier of the type the vkey declares (0x01 note or 0x04 cosignature)."""
    name, kid, sig_type, public_key = _parse_vkey(vkey)
    if sig_type == SIG_TYPE_COSIGNATURE_V1:
        return CosignatureVerifier(name, kid, public_key)
    return NoteVerifier(name, kid, public_key)


class _Ed25519Signer:
    SIG_TYPE: ClassVar[int]
    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey | bytes) -> None:
        """``private_key`` is a key object or its 32-byte seed."""
        _check_name(name)
        if isinstance(private_key, bytes):
            if len(private_key) != 32:
                raise KeyFormatError(f"an Ed25519 private key seed is 32 bytes, got {len(private_key)}")
            private_key = Ed25519PrivateKey.from_private_bytes(private_key)
        self._key = private_key
        self.name: str = name
        self.public_key: bytes = _public_bytes(private_key.public_key())
        self.key_id: int = note_key_id(name, self.SIG_TYPE, self.public_key)

    @property
    def vkey(self) -> str:
        """The matching verifier key, to give to verifiers."""
        return f"{self.name}+{self.key_id:08x}+{_b64encode(bytes((self.SIG_TYPE,)) + self.public_key)}"

    def private_key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (keep it secret)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @classmethod
    def generate(cls, name: str) -> Self:
        """A new random key under ``name``."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, name: str, pem: bytes | str, password: bytes | None = None) -> Self:
        """Load a PKCS#8 PEM Ed25519 private key (see ``private_key_pem``) under ``name``."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError(f"cannot load the private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFormatError(f"the private key is {type(key).__name__}, not Ed25519")
        return cls(name, key)

    def _seed(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def __repr__(self) -> str:  # never the private key
        return f"{type(self).__name__}({self.vkey!r})"


class NoteSigner(_Ed25519Signer):
    """Signs notes with Ed25519 (type 0x01), e.g. a log signing its checkpoints."""

    SIG_TYPE = SIG_TYPE_ED25519
    __slots__ = ()

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse Go's ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || 32-byte seed)``."""
        parts = skey.split("+", 4) if isinstance(skey, str) else []
        if (
            len(parts) != 5
            or parts[:2] != ["PRIVATE", "KEY"]
            or not _is_valid_name(parts[2])
            or not _HEX8.fullmatch(parts[3])
        ):
            raise KeyFormatError("malformed signer key: want PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
        try:
            raw = _b64decode(parts[4])
        except ValueError as exc:
            raise KeyFormatError(f"malformed signer key: {exc}") from None
        if len(raw) != 33 or raw[0] != SIG_TYPE_ED25519:
            raise KeyFormatError("signer key is not an Ed25519 (0x01) key")
        signer = cls(parts[2], raw[1:])
        if signer.key_id != int(parts[3], 16):
            raise KeyFormatError("signer key ID does not match its name and key")
        return signer

    @property
    def skey(self) -> str:
        """Go's ``PRIVATE+KEY+...`` signer key form (keep it secret)."""
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{_b64encode(bytes((self.SIG_TYPE,)) + self._seed())}"

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_id, self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class CosignatureSigner(_Ed25519Signer):
    """Makes Ed25519 cosignature/v1 signatures (type 0x04), e.g. a witness.

    ``sign`` (used by ``sign_note``) stamps the time from ``clock``;
    ``cosign`` takes the timestamp explicitly.
    """

    SIG_TYPE = SIG_TYPE_COSIGNATURE_V1
    __slots__ = ("clock",)

    def __init__(
        self, name: str, private_key: Ed25519PrivateKey | bytes, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(name, private_key)
        self.clock = clock

    @property
    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.key_id, self.public_key)

    def sign_at(self, message: bytes, timestamp: int) -> bytes:
        """timestamp (8 bytes, big-endian) || Ed25519 signature of the cosignature message."""
        header = _cosignature_header(timestamp)
        return timestamp.to_bytes(8, "big") + self._key.sign(header + message)

    def sign(self, message: bytes) -> bytes:
        return self.sign_at(message, int(self.clock()))


# --- notes --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, key ID and the signature bytes after the key ID."""

    name: str
    key_id: int
    signature: bytes

    @property
    def line(self) -> str:
        """The signature line, ``— <name> base64(key ID || signature)`` and a newline."""
        return f"{_SIG_PREFIX}{self.name} {_b64encode(self.key_id.to_bytes(4, 'big') + self.signature)}\n"

    @classmethod
    def parse(cls, line: str) -> NoteSignature:
        """Parse one signature line (with or without its final newline)."""
        body = line[:-1] if line.endswith("\n") else line
        if not body.startswith(_SIG_PREFIX):
            raise MalformedNoteError("a signature line starts with an em dash and a space")
        name, sep, b64 = body[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _is_valid_name(name):
            raise MalformedNoteError("malformed signature line: bad key name")
        try:
            raw = _b64decode(b64)
        except ValueError as exc:
            raise MalformedNoteError(f"malformed signature line for {name}: {exc}") from None
        if len(raw) < 5:
            raise MalformedNoteError(f"malformed signature line for {name}: too short")
        return cls(name, int.from_bytes(raw[:4], "big"), raw[4:])


@dataclass(frozen=True, slots=True)
class Note:
    """An opened note: its text, the signatures verified and those from unknown keys."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...] = ()


def _check_text(text: str, what: str) -> None:
    if not isinstance(text, str):
        raise MalformedNoteError(f"{what} must be a str")
    if _CONTROL.search(text) is not None:
        raise MalformedNoteError(f"{what} contains a control character other than newline")
    if not _is_utf8(text):
        raise MalformedNoteError(f"{what} is not valid Unicode (lone surrogate)")


def sign_note(text: str, signers: Signer | Iterable[Signer]) -> str:
    """The signed note: ``text``, a blank line and one signature line per signer."""
    _check_text(text, "note text")
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end with a newline")
    signer_list = list(signers) if isinstance(signers, Iterable) else [signers]
    if not signer_list:
        raise ValueError("a signed note needs at least one signer")
    if len(signer_list) > MAX_SIGNATURES:
        raise ValueError(f"at most {MAX_SIGNATURES} signatures")
    seen: set[tuple[str, int]] = set()
    message = text.encode("utf-8")
    lines = []
    for signer in signer_list:
        _check_name(signer.name)
        if (signer.name, signer.key_id) in seen:
            raise ValueError(f"signer {signer.name}+{signer.key_id:08x} given twice")
        seen.add((signer.name, signer.key_id))
        lines.append(NoteSignature(signer.name, signer.key_id, signer.sign(message)).line)
    note = text + "\n" + "".join(lines)
    if len(note.encode("utf-8")) > MAX_NOTE_SIZE:
        raise ValueError(f"signed note is larger than {MAX_NOTE_SIZE} bytes")
    return note


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse ``note`` and verify its signatures from the known ``verifiers``.

    Raises ``MalformedNoteError``, ``InvalidSignatureError`` (a known key's
    signature fails: the whole note is rejected) or ``UnverifiedNoteError``
    (no signature from a known key).
    """
    known: dict[tuple[str, int], Verifier] = {}
    for v in verifiers:
        previous = known.setdefault((v.name, v.key_id), v)
        if previous is not v and previous != v:
            raise NoteError(f"ambiguous key {v.name}+{v.key_id:08x}: two different verifiers")
    # 1. Size, encoding and characters.
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_SIZE:
            raise MalformedNoteError(f"note is larger than {MAX_NOTE_SIZE} bytes")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNoteError("note is not valid UTF-8") from None
    elif not isinstance(note, str):
        raise MalformedNoteError("note must be str or bytes")
    _check_text(note, "note")
    if len(note.encode("utf-8")) > MAX_NOTE_SIZE:
        raise MalformedNoteError(f"note is larger than {MAX_NOTE_SIZE} bytes")
    # 2. The text ends at the last blank line; signature lines follow it.
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        raise MalformedNoteError("note must end with a newline-terminated signature line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has more than {MAX_SIGNATURES} signatures")
    # 3. Parse every line before verifying any.
    parsed = [NoteSignature.parse(line) for line in lines]
    # 4. Verify every signature from a known key; set the others aside.
    message = text.encode("utf-8")
    verified: dict[tuple[str, int], NoteSignature] = {}
    unverified: dict[NoteSignature, None] = {}
    for sig in parsed:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unverified.setdefault(sig, None)
            continue
        if not verifier.verify(message, sig.signature):
            raise InvalidSignatureError(sig.name, sig.key_id)
        verified.setdefault((sig.name, sig.key_id), sig)
    # 5. At least one known key must have signed.
    if not verified:
        raise UnverifiedNoteError(tuple(unverified))
    return Note(text, tuple(verified.values()), tuple(unverified))


# --- checkpoints ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog checkpoint: the log's origin, tree size and root hash."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise CheckpointError("checkpoint origin must be a non-empty line")
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size must be an int in [0, 2**64), got {self.size!r}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash must be {HASH_SIZE} bytes")
        if isinstance(self.extensions, str | bytes):
            raise CheckpointError("checkpoint extensions must be a sequence of lines")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            if not isinstance(line, str) or not line or "\n" in line:
                raise CheckpointError("checkpoint extension lines must be non-empty lines")
            _check_line(line, "extension line")

    def body(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each ending in a newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly (c2sp.org/tlog-checkpoint)."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint text has fewer than three lines")
        origin, size, root, *extensions = lines
        if not _DECIMAL.fullmatch(size) or int(size) > MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {size!r} is not a decimal uint64 without leading zeros")
        try:
            root_hash = _b64decode(root)
        except ValueError as exc:
            raise CheckpointError(f"checkpoint root hash: {exc}") from None
        return cls(origin, int(size), root_hash, tuple(extensions))


def _check_line(line: str, what: str) -> None:
    if _CONTROL.search(line) is not None or not _is_utf8(line):
        raise CheckpointError(f"checkpoint {what} contains a control character or invalid Unicode")


def sign_checkpoint(checkpoint: Checkpoint, signers: Signer | Iterable[Signer]) -> str:
    """The checkpoint as a signed note."""
    return sign_note(checkpoint.body(), signers)


def open_checkpoint(
    note: str | bytes, verifiers: Iterable[Verifier], *, origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint (see ``open_note``) and parse its text.

    With ``origin``, also require the checkpoint to be that log's.
    """
    opened = open_note(note, verifiers)
    checkpoint = Checkpoint.parse(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint, opened


# --- cosignatures -----------------------------------------------------------------


def cosign(checkpoint_body: str, signer: CosignatureSigner, timestamp: int) -> str:
    """A cosignature/v1 signature line over a checkpoint text, made at ``timestamp``."""
    _check_text(checkpoint_body, "checkpoint text")
    Checkpoint.parse(checkpoint_body)
    return NoteSignature(signer.name, signer.key_id, signer.sign_at(checkpoint_body.encode(), timestamp)).line


def verify_cosignature(checkpoint_body: str, line: str, verifier: CosignatureVerifier) -> int:
    """Verify one cosignature line over a checkpoint text; return its timestamp.

    Raises ``MalformedNoteError`` for a malformed line, ``NoteError`` when
    the line is not from ``verifier``'s key, ``InvalidSignatureError`` when
    it does not verify.
    """
    sig = NoteSignature.parse(line)
    if (sig.name, sig.key_id) != (verifier.name, verifier.key_id):
        raise NoteError(f"cosignature is from {sig.name}+{sig.key_id:08x}, not {verifier.name}+{verifier.key_id:08x}")
    timestamp = CosignatureVerifier.timestamp(sig.signature)
    if not verifier.verify(checkpoint_body.encode("utf-8"), sig.signature):
        raise InvalidSignatureError(sig.name, sig.key_id)
    return timestamp
