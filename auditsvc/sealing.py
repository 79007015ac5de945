"""Patient identifiers encrypted at rest (AES-256-GCM), behind a key provider.

An identifier value is stored only sealed::

    aes256gcm:<key id>:<base64url(12-byte nonce || ciphertext || 16-byte tag)>

with the identifier's system (and a purpose tag) as associated data, so a
sealed value cannot be moved under another system unnoticed. Lookup goes
through the keyed hash (``ServerKeys.identifier_hmac``), never through the
ciphertext; the chain hashes the sealed record, so verification needs no
key (docs/chain-format.md, record format 2).

Keys come from an ``IdentifierKeyProvider``: the current key seals new
writes and every key it still holds opens old ones. Two ship here: a keyring
file (``FileKeyProvider``, rotated by ``auditsvc keys rotate``) and the
environment (``EnvKeyProvider``, ``AUDITSVC_IDENTIFIER_KEYS``); a KMS plugs
in by implementing the two methods.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .settings import Settings

SEAL_PREFIX = "aes256gcm:"
KEYRING_FORMAT = "auditsvc-identifier-keys/v1"
_AAD_TAG = b"auditsvc/identifier/v1\x00"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NONCE = 12
SEAL_CACHE = 65_536


class SealError(RuntimeError):
    """A sealed identifier cannot be opened, or no key is configured. The
    message never carries the identifier."""


class IdentifierKeyProvider(Protocol):
    """Where identifier encryption keys come from (a file, the environment, a KMS)."""

    def current(self) -> tuple[str, bytes]:
        """The key id and 32-byte key that seal new writes."""
        ...

    def key(self, key_id: str) -> bytes:
        """The key with this id; ``SealError`` if there is none."""
        ...


def _check_key(key_id: str, key: bytes, where: str) -> None:
    if not _KEY_ID.match(key_id):
        raise SealError(f"{where}: key id {key_id!r} must be 1-32 of A-Z a-z 0-9 _ -")
    if len(key) != 32:
        raise SealError(f"{where}: key {key_id!r} must be 32 bytes (AES-256), got {len(key)}")


def _b64decode(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise SealError(f"{where}: a key is not valid base64") from None


class StaticKeyProvider:
    """Keys held in memory: ``keys`` by id, ``current_id`` sealing."""

    def __init__(self, keys: dict[str, bytes], current_id: str, where: str = "identifier keys") -> None:
        if current_id not in keys:
            raise SealError(f"{where}: the current key {current_id!r} is not among the keys")
        for key_id, key in keys.items():
            _check_key(key_id, key, where)
        self._keys, self._current = dict(keys), current_id

    def current(self) -> tuple[str, bytes]:
        return self._current, self._keys[self._current]

    def key(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except KeyError:
            raise SealError(f"identifier key {key_id!r} is not configured; it sealed this value") from None

    def key_ids(self) -> list[str]:
        return sorted(self._keys)


class EnvKeyProvider(StaticKeyProvider):
    """``AUDITSVC_IDENTIFIER_KEYS="k2:<base64>,k1:<base64>"``: the first seals."""

    def __init__(self, spec: str) -> None:
        where = "AUDITSVC_IDENTIFIER_KEYS"
        keys: dict[str, bytes] = {}
        order = []
        for item in (part.strip() for part in spec.split(",")):
            key_id, sep, material = item.partition(":")
            if not sep:
                raise SealError(f"{where}: each entry is <key id>:<base64 key>, comma-separated")
            keys[key_id] = _b64decode(material, where)
            order.append(key_id)
        if not order:
            raise SealError(f"{where} is empty")
        super().__init__(keys, order[0], where)


class FileKeyProvider:
    """A keyring file (JSON, mode 0600)::

        {"format": "auditsvc-identifier-keys/v1", "current": "k2",
         "keys": {"k1": "<base64>", "k2": "<base64>"}}

    Re-read when the file changes (checked at most once a second), so a
    rotation reaches running workers without a restart."""

    def __init__(self, path: Path, *, create: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock  # seconds; when the file is looked at again (tests move it)
        if create and not path.exists():
            _write_keyring(path, {"k1": os.urandom(32)}, "k1", exclusive=True)
        self._lock = threading.Lock()
        self._checked = 0.0
        self._stamp = self._file_stamp()
        self._keys = self._read()

    def _file_stamp(self) -> tuple[int, int]:
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise SealError(f"identifier keyring {self.path} cannot be read: {exc.strerror}") from None
        return stat.st_mtime_ns, stat.st_ino

    def _read(self) -> StaticKeyProvider:
        keys, current = read_keyring(self.path)
        return StaticKeyProvider(keys, current, str(self.path))

    def _reload(self) -> None:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._keys, self._stamp = self._read(), stamp

    def _fresh(self) -> StaticKeyProvider:
        now = self.clock()
        if now - self._checked >= 1.0:
            with self._lock:
                self._checked = now
                self._reload()
        return self._keys

    def current(self) -> tuple[str, bytes]:
        return self._fresh().current()

    def key(self, key_id: str) -> bytes:
        keys = self._fresh()
        try:
            return keys.key(key_id)
        except SealError:
            with self._lock:  # a key rotated in under a second ago
                self._reload()
            return self._keys.key(key_id)

    def key_ids(self) -> list[str]:
        return self._fresh().key_ids()


def read_keyring(path: Path) -> tuple[dict[str, bytes], str]:
    where = str(path)
    try:
        data: Any = json.loads(path.read_text())
    except OSError as exc:
        raise SealError(f"identifier keyring {where} cannot be read: {exc.strerror}") from None
    except ValueError:
        raise SealError(f"identifier keyring {where} is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != KEYRING_FORMAT:
        raise SealError(f"identifier keyring {where} is not in format {KEYRING_FORMAT}")
    raw = data.get("keys")
    current = data.get("current")
    if not isinstance(raw, dict) or not raw or not isinstance(current, str):
        raise SealError(f"identifier keyring {where} needs 'keys' (id: base64) and 'current'")
    keys = {str(k): _b64decode(str(v), where) for k, v in raw.items()}
    return keys, current


def _write_keyring(path: Path, keys: dict[str, bytes], current: str, *, exclusive: bool = False) -> None:
    body = json.dumps(
        {
            "format": KEYRING_FORMAT,
            "current": current,
            "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()},
        },
        indent=2,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(body + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    if exclusive:
        try:
            os.link(temp, path)  # fails if another process made it first
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    else:
        os.replace(temp, path)


def rotate_keyring(path: Path) -> tuple[str, list[str]]:
    """Add a new key to the keyring file and make it current; old keys stay
    (they open what they sealed). Returns the new id and all ids."""
    keys, _ = read_keyring(path)
    number = 1 + max((int(k[1:]) for k in keys if re.fullmatch(r"k\d+", k)), default=0)
    new_id = f"k{number}"
    keys[new_id] = os.urandom(32)
    _write_keyring(path, keys, new_id)
    return new_id, sorted(keys)


def keyring_path(settings: Settings) -> Path:
    return settings.identifier_keys_file or settings.data_dir / "identifier-keys.json"


def key_provider(settings: Settings) -> IdentifierKeyProvider:
    """The environment's keys when ``AUDITSVC_IDENTIFIER_KEYS`` is set, else the
    keyring file (created on first use in development; production never
    generates one)."""
    if settings.identifier_keys is not None:
        return EnvKeyProvider(settings.identifier_keys.get_secret_value())
    path = keyring_path(settings)
    if not path.exists() and settings.env == "production":
        raise SealError(
            f"no identifier encryption key: set AUDITSVC_IDENTIFIER_KEYS or create the keyring {path} "
            "(AUDITSVC_IDENTIFIER_KEYS_FILE)"
        )
    return FileKeyProvider(path, create=True)


class IdentifierSealer:
    """Seals and opens identifier values with a provider's keys."""

    def __init__(self, provider: IdentifierKeyProvider) -> None:
        self.provider = provider
        self._ciphers: dict[bytes, AESGCM] = {}
        # A value sealed once is reused while its key is current: identifiers
        # recur all day, and the same ciphertext twice says no more than the
        # lookup hash already does. Memory only, never logged.
        self._cached: Callable[[str, bytes, str, str], str] = lru_cache(maxsize=SEAL_CACHE)(self._seal)

    def _cipher(self, key: bytes) -> AESGCM:
        cipher = self._ciphers.get(key)
        if cipher is None:
            cipher = self._ciphers[key] = AESGCM(key)
        return cipher

    def seal(self, system: str, value: str) -> str:
        key_id, key = self.provider.current()
        return self._cached(key_id, key, system, value)

    def seal_uncached(self, system: str, value: str) -> str:
        """``seal`` past the cache: for large values sealed once (a quarantined message)."""
        key_id, key = self.provider.current()
        return self._seal(key_id, key, system, value)

    def _seal(self, key_id: str, key: bytes, system: str, value: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._cipher(key).encrypt(nonce, value.encode("utf-8"), _AAD_TAG + system.encode("utf-8"))
        return f"{SEAL_PREFIX}{key_id}:{base64.urlsafe_b64encode(nonce + sealed).rstrip(b'=').decode('ascii')}"

    def open(self, system: str, sealed: str) -> str:
        if not sealed.startswith(SEAL_PREFIX):
            raise SealError("not a sealed identifier (expected 'aes256gcm:<key id>:<data>')")
        key_id, sep, data = sealed[len(SEAL_PREFIX) :].partition(":")
        if not sep:
            raise SealError("not a sealed identifier (expected 'aes256gcm:<key id>:<data>')")
        try:
            blob = base64.b64decode(data + "=" * (-len(data) % 4), altchars=b"-_", validate=True)
        except ValueError:
            raise SealError("a sealed identifier is not valid base64url") from None
        if len(blob) < _NONCE + 16:
            raise SealError("a sealed identifier is too short")
        try:
            plain = self._cipher(self.provider.key(key_id)).decrypt(
                blob[:_NONCE], blob[_NONCE:], _AAD_TAG + system.encode("utf-8")
            )
        except InvalidTag:
            raise SealError(
                f"a sealed identifier does not open with key {key_id!r}: altered, or moved under another system"
            ) from None
        return plain.decode("utf-8")

    def reveal(self, identifier: dict[str, Any]) -> dict[str, str]:
        """``{"system", "value"}`` of a stored record's identifier (format 2
        sealed, format 1 in clear)."""
        if "value_enc" in identifier:
            return {"system": identifier["system"], "value": self.open(identifier["system"], identifier["value_enc"])}
        return {"system": identifier["system"], "value": identifier["value"]}

    def reveal_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of a stored record with its identifiers opened, for readers
        entitled to PHI (reports)."""
        patient = record.get("patient")
        if not isinstance(patient, dict) or not patient.get("identifiers"):
            return record
        opened = {**record, "patient": {**patient, "identifiers": [self.reveal(i) for i in patient["identifiers"]]}}
        return opened
