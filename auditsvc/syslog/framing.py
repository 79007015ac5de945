"""Syslog frames out of a TCP (or TLS) byte stream, RFC 6587; sans-I/O.

Senders use two framings, and the first byte of a connection tells which
(RFC 6587 §3.4: a message starts with ``<``, a count with a digit):

* **octet counting** (§3.4.1, the only one RFC 5425 allows over TLS):
  ``MSG-LEN SP SYSLOG-MSG``, the length in ASCII decimal without leading zero;
* **non-transparent framing** (§3.4.2): each message ended by a trailer;
  in practice LF, NUL or CRLF (the CR is dropped).

A connection keeps the framing its first frame used. Anything else is
garbage: the decoder raises ``FramingError`` with a stable reason and the
listener closes that connection (nothing of the bad frame is kept; frames
before it were delivered). A frame longer than ``max_frame`` is refused
before it is buffered whole, so a sender cannot make the listener hold more
than ``max_frame`` bytes per connection.
"""

from __future__ import annotations

from typing import Literal

Framing = Literal["octet-counting", "non-transparent"]

# A count longer than this many digits is already beyond any max_frame we take.
_MAX_COUNT_DIGITS = 10
_TRAILERS = b"\n\x00"


class FramingError(Exception):
    """The stream cannot be framed; ``reason`` is a stable code for metrics:
    ``garbage`` (neither framing), ``oversize`` (longer than allowed) or
    ``truncated`` (the stream ended inside a counted frame)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class FrameDecoder:
    """Feed bytes as they arrive; get back each whole frame (without its count
    or trailer). One decoder per connection."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self.framing: Framing | None = None
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The frames ``data`` completes, in order; ``FramingError`` on garbage."""
        self._buffer += data
        frames: list[bytes] = []
        while self._buffer:
            if self.framing is None:
                skip = len(self._buffer) - len(self._buffer.lstrip(b"\r\n\x00"))  # stray trailers first
                del self._buffer[:skip]
                if not self._buffer:
                    break
                self.framing = self._detect(self._buffer[0])
            frame = self._counted() if self.framing == "octet-counting" else self._terminated()
            if frame is None:
                break
            if frame:  # an empty line (or the LF after a NUL) is no message
                frames.append(frame)
        return frames

    def finish(self) -> list[bytes]:
        """The stream ended: a last unterminated message is a frame (``logger``
        and others may omit the final trailer); a partial counted frame is
        ``truncated``."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        if not rest.strip(b"\r\n\x00 "):
            return []
        if self.framing == "octet-counting":
            raise FramingError("truncated", "the connection ended inside an octet-counted frame")
        return [rest.rstrip(b"\r")]

    @staticmethod
    def _detect(first: int) -> Framing:
        if 0x31 <= first <= 0x39:  # NONZERO-DIGIT
            return "octet-counting"
        if first == 0x3C:  # "<" of the PRI
            return "non-transparent"
        raise FramingError("garbage", "the stream starts with neither an octet count nor a syslog PRI ('<')")

    def _counted(self) -> bytes | None:
        space = self._buffer.find(b" ", 0, _MAX_COUNT_DIGITS + 1)
        if space < 0:
            if len(self._buffer) > _MAX_COUNT_DIGITS or not self._buffer.isdigit():
                raise FramingError("garbage", "an octet-counted frame does not start with MSG-LEN and a space")
            return None
        digits = bytes(self._buffer[:space])
        if not digits.isdigit() or digits.startswith(b"0"):
            raise FramingError("garbage", "an octet-counted frame's MSG-LEN is not a decimal number")
        length = int(digits)
        if length > self.max_frame:
            raise FramingError("oversize", f"a frame of {length} octets is over the limit of {self.max_frame}")
        end = space + 1 + length
        if len(self._buffer) < end:
            return None
        frame = bytes(self._buffer[space + 1 : end])
        del self._buffer[:end]
        return frame

    def _terminated(self) -> bytes | None:
        buffer = self._buffer
        ends = [i for i in (buffer.find(t) for t in _TRAILERS) if i >= 0]
        if not ends:
            if len(buffer) > self.max_frame:
                raise FramingError("oversize", f"a frame without a trailer is over the limit of {self.max_frame}")
            return None
        end = min(ends)
        if end > self.max_frame:
            raise FramingError("oversize", f"a frame is over the limit of {self.max_frame} octets")
        frame = bytes(buffer[:end])
        del buffer[: end + 1]
        return frame.removesuffix(b"\r")  # CRLF
