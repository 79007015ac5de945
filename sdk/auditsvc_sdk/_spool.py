"""The durable spool: recorded events on local disk until the service acknowledges them.

Layout of ``spool_dir`` (created 0700; every file 0600: the events are PHI)::

    lock                 held with an exclusive flock by the one live client
    ack                  the acknowledgement watermark: "<segment> <offset>\\n"
    0000000000000001.seg append-only segments of framed records
    dead-letter.jsonl    events the service refused as invalid, with its reason

A record is ``b"A" | length (u32, big-endian) | CRC-32 of the payload (u32) |
payload``, the payload being the event's JSON. ``record()`` returns after
the frame was written with one ``write()``; the sender reads frames back
from the watermark and, once the service answered for a batch, moves the
watermark past it (``ack`` is replaced atomically with ``rename``).
Segments wholly behind the watermark are deleted.

Crash safety:

* Each client starts a new segment, so a segment is only ever appended by
  one process, once. On open, every segment after the watermark is scanned:
  a frame cut short or failing its CRC (a write torn by power loss) ends that
  segment's readable part, and is never sent; a warning with the byte count
  is logged.
* The watermark is moved only after the service answered for every event
  before it. Losing the newest ``ack`` file (a crash between an answer and
  the rename) means re-sending some events: the service answers
  ``duplicate`` and stores nothing. Nothing is lost, nothing is doubled.

fsync policy (``fsync=``):

* ``"interval"`` (default): a background thread ``fdatasync``s the segment
  every ``fsync_interval`` seconds (50 ms) when it was written to. An event
  is safe from a crash of the host *process* (SIGKILL, OOM kill, segfault)
  as soon as ``record()`` returns: it is in the kernel's page cache. It is
  safe from a crash of the *machine* (power loss, kernel panic) at most
  ``fsync_interval`` later. Cost: a few microseconds per ``record()``.
* ``"always"``: ``fdatasync`` before ``record()`` returns; survives power
  loss at once. Cost: one disk flush per event (~0.05-0.2 ms on NVMe, 1-10
  ms on network or spinning disks), paid by the caller's thread.
* ``"never"``: the kernel writes back when it likes (typically within 30 s).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ._exceptions import SpoolLocked, SpoolUnsupported

__all__ = ["FsyncPolicy", "Spool"]

log = logging.getLogger("auditsvc_sdk.spool")

FsyncPolicy = Literal["always", "interval", "never"]
_HEADER = struct.Struct(">cII")
_MAGIC = b"A"
_SUFFIX = ".seg"
# A frame holds one validated event; even the largest the schema allows is
# far below this, so a bigger length can only be a torn or damaged header.
_MAX_FRAME = 4 * 1024 * 1024


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


def _parse(buf: bytes, start: int = 0) -> tuple[list[bytes], int, bool]:
    """Whole, intact frames in ``buf`` from ``start``: (payloads, offset after
    the last good one, whether parsing stopped at a bad frame rather than at
    the end or a frame continuing past ``buf``)."""
    payloads: list[bytes] = []
    pos, end = start, len(buf)
    while pos + _HEADER.size <= end:
        magic, length, crc = _HEADER.unpack_from(buf, pos)
        if magic != _MAGIC or length > _MAX_FRAME:
            return payloads, pos, True
        stop = pos + _HEADER.size + length
        if stop > end:
            break
        payload = buf[pos + _HEADER.size : stop]
        if zlib.crc32(payload) != crc:
            return payloads, pos, True
        payloads.append(payload)
        pos = stop
    return payloads, pos, False


def _open_file(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _flock() -> Callable[[int], None]:
    """The lock that keeps a spool to one live client: ``flock(fd,
    LOCK_EX | LOCK_NB)``. ``fcntl`` is imported here, not with the module,
    so that the SDK (and ``auditsvc-verify``) imports where it does not exist."""
    try:
        import fcntl
    except ImportError:
        raise SpoolUnsupported(
            "a durable spool locks its directory with fcntl.flock, which this platform does not have; "
            "create the client without spool_dir (events then wait in memory)"
        ) from None

    def flock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    return flock


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A bounded on-disk FIFO of events for one client (see the module docstring)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 1024**3,
        segment_bytes: int = 16 * 1024**2,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 0.05,
    ) -> None:
        if fsync not in ("always", "interval", "never"):
            raise ValueError("fsync must be 'always', 'interval' or 'never'")
        flock = _flock()
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # not ours to change: leave it, the files are 0600 anyway
            os.chmod(self.directory, 0o700)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._interval = fsync_interval
        self._lock_fd = _open_file(self.directory / "lock", os.O_RDWR | os.O_CREAT)
        try:
            flock(self._lock_fd)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolLocked(
                f"spool directory {self.directory} is in use by another live client; use one spool_dir per process"
            ) from None
        self._io = threading.Lock()  # the writer's fd, head and retired fds
        self._closed = False
        self._ends: dict[int, int] = {}  # finished segments: number -> end of readable frames
        self._depth = 0
        self._pending_bytes = 0
        self._recover()
        last = max(self._ends, default=0)
        self._head = (last + 1, 0)  # (writer segment, bytes written): read as one tuple by the sender
        self._wfd = _open_file(self._segment_path(last + 1), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        _fsync_dir(self.directory)
        self._dirty = False
        self._retired: list[int] = []
        self._rfd: tuple[int, int] | None = None  # (segment, fd) the sender reads
        self._taken: list[tuple[int, int, int]] = []  # per taken event: segment, end offset, frame size
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        if fsync == "interval":
            self._start_flusher()

    # ------------------------------------------------------------ recovery

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{number:016d}{_SUFFIX}"

    def _read_watermark(self) -> tuple[int, int]:
        try:
            seg, off = (self.directory / "ack").read_text().split()
            return int(seg), int(off)
        except (OSError, ValueError):
            # Missing or torn: start from the oldest segment; resends are deduplicated.
            return 0, 0

    def _recover(self) -> None:
        numbers = sorted(
            int(p.name[: -len(_SUFFIX)]) for p in self.directory.glob(f"*{_SUFFIX}") if p.name[:-4].isdigit()
        )
        wm_seg, wm_off = self._read_watermark()
        for number in numbers:
            if number < wm_seg:
                self._segment_path(number).unlink(missing_ok=True)
                continue
            start = wm_off if number == wm_seg else 0
            data = self._segment_path(number).read_bytes()
            payloads, end, bad = _parse(data, start)
            if bad or end < len(data):
                log.warning(
                    "spool segment %d: %d bytes after the last intact record are skipped (a write torn by a crash)",
                    number,
                    len(data) - end,
                )
            self._ends[number] = end
            self._depth += len(payloads)
            self._pending_bytes += end - start
        remaining = [n for n in self._ends]
        if remaining and remaining[0] != wm_seg:
            wm_seg, wm_off = remaining[0], 0
        self._watermark = (wm_seg, wm_off) if remaining else (0, 0)
        if self._depth:
            log.info("spool holds %d unacknowledged events from an earlier run; they will be sent", self._depth)

    # ------------------------------------------------------------- writing

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def has_room(self, size: int) -> bool:
        return self._pending_bytes + _HEADER.size + size <= self._max_bytes

    def put(self, payload: bytes) -> None:
        frame = _frame(payload)
        with self._io:
            if self._closed:
                raise ValueError("spool is closed")
            seg, pos = self._head
            os.write(self._wfd, frame)  # O_APPEND: one syscall, whole frame
            if self._fsync == "always":
                os.fdatasync(self._wfd)
            else:
                self._dirty = True
            pos += len(frame)
            self._head = (seg, pos)
            self._depth += 1
            self._pending_bytes += len(frame)
            if pos >= self._segment_bytes:
                self._rotate(seg, pos)

    def _rotate(self, seg: int, pos: int) -> None:
        # The order matters to the sender reading without the lock: the old
        # segment's end is known before the head moves on.
        self._ends[seg] = pos
        new_fd = _open_file(self._segment_path(seg + 1), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        old_fd, self._wfd = self._wfd, new_fd
        self._head = (seg + 1, 0)
        if self._fsync == "interval":
            self._retired.append(old_fd)  # the flusher syncs and closes it
        else:
            if self._fsync == "always":
                os.fdatasync(old_fd)
            os.close(old_fd)
        with contextlib.suppress(OSError):
            _fsync_dir(self.directory)

    def _start_flusher(self) -> None:
        self._flusher = threading.Thread(target=self._flush_loop, name="auditsvc-spool-fsync", daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sync()

    def sync(self) -> None:
        """fdatasync what was written since the last sync."""
        with self._io:
            if self._closed:
                return
            fd, dirty, retired = self._wfd, self._dirty, self._retired
            self._dirty, self._retired = False, []
            if dirty:
                # Syncing outside the lock would keep record() from waiting on
                # the disk, but the fd could then be retired and closed under us.
                try:
                    os.fdatasync(fd)
                except OSError as exc:
                    log.error("spool fdatasync failed: %s", type(exc).__name__)
        for old in retired:
            try:
                os.fdatasync(old)
            finally:
                os.close(old)

    # ------------------------------------------------------------- reading

    def _reader(self, seg: int) -> int:
        if self._rfd is not None and self._rfd[0] == seg:
            return self._rfd[1]
        if self._rfd is not None:
            os.close(self._rfd[1])
        fd = os.open(self._segment_path(seg), os.O_RDONLY | os.O_CLOEXEC)
        self._rfd = (seg, fd)
        return fd

    def take(self, max_events: int, max_bytes: int) -> list[bytes]:
        """Frames from the watermark on; called by the one sender thread."""
        seg, off = self._watermark
        payloads: list[bytes] = []
        self._taken = []
        budget = max_bytes
        while len(payloads) < max_events:
            head_seg, head_pos = self._head
            if seg == 0:
                seg, off = min(self._ends, default=head_seg), 0
            end = head_pos if seg == head_seg else self._ends.get(seg)
            if end is None:  # a segment being written when we looked: it has since been finished
                end = self._ends.get(seg, 0)
            if off >= end:
                if seg >= head_seg:
                    break
                seg, off = seg + 1, 0
                continue
            want = min(end - off, budget)
            if want <= _HEADER.size:
                if payloads:
                    break
                want = min(end - off, _MAX_FRAME + _HEADER.size)
            buf = os.pread(self._reader(seg), want, off)
            found, _, bad = _parse(buf)
            if not found:
                if bad or want >= end - off:
                    log.error("spool segment %d is damaged at offset %d; the rest of it is skipped", seg, off)
                    self._ends[seg] = off
                    continue
                if payloads:
                    break
                # The first frame alone is larger than the budget: read just it.
                (length,) = struct.unpack_from(">I", buf, 1)
                buf = os.pread(self._reader(seg), _HEADER.size + length, off)
                found, _, bad = _parse(buf)
                if not found:
                    log.error("spool segment %d is damaged at offset %d; the rest of it is skipped", seg, off)
                    self._ends[seg] = off
                    continue
            for payload in found[: max_events - len(payloads)]:
                size = _HEADER.size + len(payload)
                off += size
                budget -= size
                payloads.append(payload)
                self._taken.append((seg, off, size))
            if budget <= _HEADER.size:
                break
        return payloads

    def ack(self, count: int) -> None:
        if count <= 0:
            return
        seg, off, _ = self._taken[count - 1]
        freed = sum(size for _, _, size in self._taken[:count])
        del self._taken[:count]
        if seg in self._ends and off >= self._ends[seg] and seg != self._head[0]:
            seg, off = seg + 1, 0  # that segment is done
        old_seg = self._watermark[0]
        self._watermark = (seg, off)
        tmp = self.directory / "ack.tmp"
        fd = _open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, f"{seg} {off}\n".encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / "ack")
        with self._io:
            self._depth -= count
            self._pending_bytes -= freed
        for number in range(old_seg, seg):
            if number in self._ends:
                if self._rfd is not None and self._rfd[0] == number:
                    os.close(self._rfd[1])
                    self._rfd = None
                self._segment_path(number).unlink(missing_ok=True)
                del self._ends[number]

    # ------------------------------------------------------------- closing

    def close(self) -> None:
        """Sync (unless ``fsync="never"``), close every file and release the lock."""
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5)
        if self._fsync != "never":
            self.sync()
        with self._io:
            if self._closed:
                return
            self._closed = True
            for fd in (self._wfd, *self._retired):
                os.close(fd)
            self._retired = []
        if self._rfd is not None:
            os.close(self._rfd[1])
            self._rfd = None
        os.close(self._lock_fd)  # releases the flock

    def forget_after_fork(self) -> None:
        """In a forked child: close this process's copies of the files without
        touching the spool (the parent still owns it, and its lock)."""
        self._closed = True
        for fd in (self._wfd, *self._retired, self._lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._rfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._rfd[1])
