"""Server secrets: one master key, from which purpose-bound keys derive, and
the identifier encryption keys (``sealing.py``), which do not derive from it.

The identifier index key (HMAC of patient identifiers) and the token key
(HMAC of API token secrets) are derived with HKDF-SHA256 from
``AUDITSVC_SECRET_KEY``; in development the master key is generated once
into ``data_dir/secret.key`` (mode 0600).
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from auditsvc_sdk.note import NoteError, NoteSigner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .sealing import IdentifierSealer, key_provider
from .settings import Settings


class SecretKeyError(RuntimeError):
    """The configured secret key is missing or malformed."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"auditsvc/" + purpose).derive(master)


# Identifiers recur all day (every message about an admitted patient carries
# the same MRNs), so each process keeps the most recent keyed hashes. The
# cache lives only in this process's memory, like the request that brought
# the identifier; it is never written, logged or exported.
IDENTIFIER_HMAC_CACHE = 65_536


@dataclass(frozen=True)
class ServerKeys:
    identifier_key: bytes
    token_key: bytes
    sealer: IdentifierSealer | None = None
    """Encrypts identifier values at rest (``None``: keys that cannot store events)."""
    _cached_hmac: Callable[[str, str], bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cached_hmac", lru_cache(maxsize=IDENTIFIER_HMAC_CACHE)(self._identifier_hmac))

    def identifier_hmac(self, system: str, value: str) -> bytes:
        """The keyed hash that indexes one patient identifier:
        HMAC-SHA256(key, UTF-8 system || 0x00 || UTF-8 value). Events cannot
        carry NUL, so the separator keeps ``("a", "bc")`` and ``("ab", "c")`` apart."""
        return self._cached_hmac(system, value)

    def _identifier_hmac(self, system: str, value: str) -> bytes:
        return hmac.digest(self.identifier_key, system.encode() + b"\x00" + value.encode(), "sha256")

    def token_hmac(self, secret: str) -> bytes:
        return hmac.digest(self.token_key, secret.encode("utf-8"), "sha256")


def load_master_key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        raw = settings.secret_key.get_secret_value()
    else:
        path = settings.data_dir / "secret.key"
        if not path.exists():
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.b64encode(os.urandom(32)).decode() + "\n")
        raw = path.read_text().strip()
    try:
        master = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise SecretKeyError("AUDITSVC_SECRET_KEY is not valid base64") from exc
    if len(master) < 32:
        raise SecretKeyError("AUDITSVC_SECRET_KEY must decode to at least 32 bytes")
    return master


def load_keys(settings: Settings, *, sealing: bool = True) -> ServerKeys:
    """The server's keys; with ``sealing``, also the identifier encryption keys
    (``SealError`` when none are configured in production)."""
    master = load_master_key(settings)
    return ServerKeys(
        identifier_key=_derive(master, b"identifier-index"),
        token_key=_derive(master, b"api-token"),
        sealer=IdentifierSealer(key_provider(settings)) if sealing else None,
    )


def signing_key_path(settings: Settings) -> Path:
    return settings.checkpoint_key_file or settings.data_dir / "signing.key"


def ensure_signing_key(settings: Settings) -> Path:
    """The Ed25519 checkpoint signing key's file, created on first start in
    development (PKCS#8 PEM, mode 0600). Production never generates one."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    path = signing_key_path(settings)
    if not path.exists():
        if settings.env == "production":
            raise SecretKeyError(f"the checkpoint signing key {path} does not exist (AUDITSVC_CHECKPOINT_KEY_FILE)")
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path  # another process made it first
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    return path


class CheckpointSigner:
    """The log's checkpoint signer, read from its key file and read again
    when the file changes (key rotation needs no restart). The key name is
    the log's origin, as C2SP tlog-checkpoint expects."""

    def __init__(self, path: Path, name: str) -> None:
        self._path = path
        self._name = name
        self._stamp: tuple[int, int] | None = None
        self._signer: NoteSigner | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckpointSigner:
        """The configured key file (``signing_key_path``), named after the log."""
        return cls(signing_key_path(settings), settings.log_name)

    def current(self) -> NoteSigner:
        st = self._path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        if self._signer is None or stamp != self._stamp:
            self._signer = load_note_signer(self._path.read_bytes(), self._name)
            self._stamp = stamp
        return self._signer


def load_note_signer(data: bytes, name: str) -> NoteSigner:
    text = data.decode("ascii", errors="replace").strip()
    try:
        if text.startswith("PRIVATE+KEY+"):
            signer = NoteSigner.from_skey(text)
            if signer.name != name:
                return NoteSigner(name, signer._seed())
            return signer
        return NoteSigner.from_pem(name, data)
    except NoteError as exc:
        raise SecretKeyError(f"the checkpoint signing key cannot be loaded: {exc}") from None


def rotate_signing_key(settings: Settings) -> tuple[Path, Path | None]:
    """Write a new signing key in place of the current one; the old file is
    kept beside it as ``<name>.retired-<key id>`` (its checkpoints stay
    verifiable from the verifier keys the log stored). Returns (new, retired)."""
    path = signing_key_path(settings)
    retired: Path | None = None
    if path.exists():
        data = path.read_bytes()
        old = load_note_signer(data, settings.log_name)
        retired = path.with_name(f"{path.name}.retired-{old.key_id:08x}")
        fd = os.open(retired, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    # The key file is replaced in one rename: a process reading it sees the old key or the new.
    fresh = NoteSigner.generate(settings.log_name)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(fresh.private_key_pem())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path, retired
