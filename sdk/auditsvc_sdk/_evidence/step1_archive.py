"""1. The archive: gzip and tar decode, every member a regular file under the
package directory that the layout names, no member twice, sizes bounded."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO

from .errors import EvidenceError, EvidenceRejected, EvidenceUnreadable, show
from .layout import (
    CHUNK,
    DIRECTORIES,
    LAYOUT,
    PACKAGE_DIR,
    RECORDS,
    SAFE_PATH,
    EvidenceLimits,
)


class _BoundedStream:
    """The decompressed tar, refusing to go past ``limit`` bytes or to read more
    than ``max_read`` at once (tarfile reads pax and long-name headers whole)."""

    def __init__(self, inner: gzip.GzipFile, limit: int, max_read: int) -> None:
        self._inner = inner
        self._limit = limit
        self._max_read = max_read

    def _too_large(self) -> EvidenceUnreadable:
        return EvidenceUnreadable("too_large", f"the package unpacks to more than {self._limit} bytes")

    def read(self, size: int = -1, /) -> bytes:
        if size < 0 or size > self._max_read:
            raise EvidenceUnreadable("too_large", f"a tar header or read of more than {self._max_read} bytes")
        pos = self._inner.tell()
        data = self._inner.read(min(size, self._limit - pos + 1))
        if pos + len(data) > self._limit:
            raise self._too_large()
        return data

    def seek(self, pos: int, whence: int = io.SEEK_SET, /) -> int:
        if whence == io.SEEK_SET and pos > self._limit:
            raise self._too_large()
        return self._inner.seek(pos, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def write(self, data: bytes, /) -> int:
        raise io.UnsupportedOperation("read only")

    def close(self) -> None:
        self._inner.close()


@contextmanager
def archive_errors() -> Iterator[None]:
    """Decoding failures of the gzip or tar layer become ``corrupt_archive``."""
    try:
        yield
    except EvidenceError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        # ValueError: tarfile on a few malformed headers; a truncated gzip is EOFError.
        raise EvidenceUnreadable("corrupt_archive", f"the gzip'd tar does not decode: {exc}") from None


@dataclass(slots=True)
class Archive:
    tar: tarfile.TarFile
    digests: dict[str, str]  # relative path -> sha256 hex, every file
    contents: dict[str, bytes]  # every file but records.jsonl
    records: tarfile.TarInfo | None


def _relative_path(member: tarfile.TarInfo) -> str | None:
    """The member's path inside the package; None for a directory entry."""
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or not SAFE_PATH.fullmatch(name) or any(p in ("", ".", "..") for p in parts):
        raise EvidenceRejected("unsafe_member", f"member {show(name)} has an absolute, traversing or unsafe path")
    if parts[0] != PACKAGE_DIR:
        raise EvidenceRejected("unexpected_member", f"member {show(name)} is outside {PACKAGE_DIR}/")
    rel = "/".join(parts[1:])
    if member.isdir():
        if rel in DIRECTORIES:
            return None
        raise EvidenceRejected("unexpected_member", f"directory {show(name)} is not part of the package layout")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        raise EvidenceRejected("unsafe_member", f"member {show(name)} is a link, device or other special file")
    if not LAYOUT.fullmatch(rel):
        raise EvidenceRejected("unexpected_member", f"member {show(name)} is not part of the package layout")
    return rel


def open_archive(source: str | os.PathLike[str] | bytes, stack: ExitStack, limits: EvidenceLimits) -> tarfile.TarFile:
    raw: IO[bytes]
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            raw = io.BytesIO(bytes(source))
        else:
            raw = stack.enter_context(open(source, "rb"))  # noqa: SIM115 - closed by the stack
        magic = raw.read(2)
        raw.seek(0)
    except OSError as exc:
        raise EvidenceUnreadable("unreadable_file", f"cannot read {show(os.fsdecode(source))}: {exc}") from None
    if magic != b"\x1f\x8b":
        raise EvidenceUnreadable("not_a_package", "not a gzip file (an evidence package is a .tar.gz)")
    max_read = max(limits.max_member_bytes, CHUNK)
    stream = _BoundedStream(gzip.GzipFile(fileobj=raw, mode="rb"), limits.max_unpacked_bytes, max_read)
    with archive_errors():
        tar = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 - closed by the stack
    stack.callback(tar.close)
    return tar


def read_archive(tar: tarfile.TarFile, limits: EvidenceLimits) -> Archive:
    """1. Walk every member once: check its path and type, hash it, keep the small ones."""
    archive = Archive(tar, {}, {}, None)
    count = total = 0
    with archive_errors():
        for member in tar:
            count += 1
            if count > limits.max_members:
                raise EvidenceUnreadable("too_large", f"the package has more than {limits.max_members} members")
            rel = _relative_path(member)
            if rel is None:
                continue
            if rel in archive.digests:
                raise EvidenceRejected("duplicate_member", f"{rel} appears twice in the package", member=rel)
            if member.size < 0:  # base-256 size fields can say so
                raise EvidenceUnreadable("corrupt_archive", f"{rel} has a negative size", member=rel)
            total += member.size
            if total > limits.max_unpacked_bytes or (rel != RECORDS and member.size > limits.max_member_bytes):
                raise EvidenceUnreadable(
                    "too_large", f"{rel} ({member.size} bytes) is past the size limits", member=rel
                )
            data = tar.extractfile(member)
            if data is None:  # pragma: no cover - regular files always have data
                raise EvidenceRejected("unsafe_member", f"{rel} has no data", member=rel)
            digest, chunks = hashlib.sha256(), []
            while chunk := data.read(CHUNK):
                digest.update(chunk)
                if rel != RECORDS:
                    chunks.append(chunk)
            archive.digests[rel] = digest.hexdigest()
            if rel == RECORDS:
                archive.records = member
            else:
                archive.contents[rel] = b"".join(chunks)
        # Read the gzip stream to its end, so its CRC and length are checked too.
        # Past the tar's end-of-archive block only zero padding may follow:
        # anything else is a damaged header (tarfile stops there silently) or
        # members hidden from this reader but not from others.
        stream = tar.fileobj
        assert stream is not None
        while chunk := stream.read(CHUNK):
            if chunk.count(0) != len(chunk):
                raise EvidenceUnreadable("corrupt_archive", "data after the end of the tar archive (a damaged header?)")
    return archive
