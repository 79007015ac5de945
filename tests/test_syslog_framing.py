"""Syslog framing (RFC 6587) and headers (RFC 5424, RFC 3164-style): pure, no network."""

from __future__ import annotations

import pytest

from auditsvc.syslog.framing import FrameDecoder, FramingError
from auditsvc.syslog.header import HeaderError, parse_syslog

XML = b'<?xml version="1.0"?><AuditMessage><EventIdentification/></AuditMessage>'
MSG = b"<85>1 2026-12-06T04:00:00.000Z pacs-01 ATNA 4242 IHE+RFC-3881 - " + XML


def counted(*messages: bytes) -> bytes:
    return b"".join(b"%d %s" % (len(m), m) for m in messages)


def decode_in_pieces(stream: bytes, size: int, max_frame: int = 4096) -> list[bytes]:
    decoder = FrameDecoder(max_frame)
    frames: list[bytes] = []
    for at in range(0, len(stream), size):
        frames += decoder.feed(stream[at : at + size])
    return frames + decoder.finish()


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
def test_octet_counted_frames_come_out_whole_however_the_stream_is_split(size: int) -> None:
    other = b"<14>1 - - - - - - hello\nworld"  # a LF inside a counted frame is content
    assert decode_in_pieces(counted(MSG, other, MSG), size) == [MSG, other, MSG]


@pytest.mark.parametrize("trailer", [b"\n", b"\x00", b"\r\n"])
@pytest.mark.parametrize("size", [1, 5, 10_000])
def test_each_trailer_ends_a_message(trailer: bytes, size: int) -> None:
    stream = MSG + trailer + MSG + trailer
    decoder = FrameDecoder(4096)
    frames = decode_in_pieces(stream, size)
    assert frames == [MSG, MSG]
    assert decoder.framing is None  # a fresh decoder has not guessed yet


def test_framing_is_decided_by_the_first_byte_of_the_connection() -> None:
    octet, plain = FrameDecoder(4096), FrameDecoder(4096)
    octet.feed(b"12")
    plain.feed(b"<1")
    assert (octet.framing, plain.framing) == ("octet-counting", "non-transparent")


def test_a_last_message_without_trailer_is_taken_at_the_end_of_the_stream() -> None:
    decoder = FrameDecoder(4096)
    assert decoder.feed(MSG + b"\n" + MSG) == [MSG]
    assert decoder.finish() == [MSG]


def test_blank_lines_and_nul_lf_pairs_are_not_messages() -> None:
    assert decode_in_pieces(b"\n" + MSG + b"\x00\n\r\n" + MSG + b"\n\n", 3) == [MSG, MSG]


@pytest.mark.parametrize(
    "stream",
    [b"hello world\n", b"0 x", b"12x <1>", b"12345678901234 <1>", b"\x16\x03\x01\x02\x00", b" 5 <1>ab"],
    ids=["text", "zero-length", "no-space", "huge-count", "tls-on-plain-port", "leading-space"],
)
def test_garbage_is_refused_with_a_reason(stream: bytes) -> None:
    with pytest.raises(FramingError) as caught:
        FrameDecoder(4096).feed(stream)
    assert caught.value.reason in ("garbage", "oversize")


def test_frames_before_garbage_were_delivered() -> None:
    decoder = FrameDecoder(4096)
    assert decoder.feed(counted(MSG)) == [MSG]
    with pytest.raises(FramingError, match="MSG-LEN"):
        decoder.feed(b"x1 <1>")


def test_an_oversize_counted_frame_is_refused_before_it_is_read() -> None:
    decoder = FrameDecoder(1000)
    with pytest.raises(FramingError) as caught:
        decoder.feed(b"1001 <1>")  # the count alone says it
    assert caught.value.reason == "oversize"


def test_an_oversize_unterminated_frame_is_refused_once_it_passes_the_limit() -> None:
    decoder = FrameDecoder(1000)
    assert decoder.feed(b"<1>" + b"a" * 900) == []
    with pytest.raises(FramingError) as caught:
        decoder.feed(b"a" * 200)
    assert caught.value.reason == "oversize"


def test_a_counted_frame_cut_off_by_the_end_of_the_stream_is_truncated() -> None:
    decoder = FrameDecoder(4096)
    decoder.feed(counted(MSG)[:-5])
    with pytest.raises(FramingError) as caught:
        decoder.finish()
    assert caught.value.reason == "truncated"


def test_a_64_kib_message_fits_the_default_limit() -> None:
    big = b"<85>1 - h a - IHE+RFC-3881 - " + b"<AuditMessage>" + b"x" * 65536 + b"</AuditMessage>"
    assert decode_in_pieces(counted(big), 4096, max_frame=256 * 1024) == [big]


# Headers -------------------------------------------------------------------


def test_rfc5424_fields_and_msg() -> None:
    m = parse_syslog(MSG)
    assert (m.pri, m.facility, m.severity, m.version) == (85, 10, 5, 1)
    assert (m.timestamp, m.hostname, m.app_name, m.procid, m.msgid) == (
        "2026-12-06T04:00:00.000Z",
        "pacs-01",
        "ATNA",
        "4242",
        "IHE+RFC-3881",
    )
    assert m.msg == XML


@pytest.mark.parametrize("msgid", ["IHE+RFC-3881", "DICOM+RFC3881", "ATNALOG", "-"])
@pytest.mark.parametrize("pri", [0, 13, 85, 110, 191])
def test_any_pri_and_msgid(pri: int, msgid: str) -> None:
    m = parse_syslog(b"<%d>1 - - - - %s - " % (pri, msgid.encode()) + XML)
    assert m.pri == pri and m.msg == XML
    assert m.msgid == (None if msgid == "-" else msgid)


def test_structured_data_with_escapes_and_brackets_is_skipped() -> None:
    sd = b'[origin ip="10.0.0.1" note="a \\"quoted\\" \\] bracket"][meta sequenceId="7"]'
    m = parse_syslog(b"<110>1 2026-12-06T04:00:00Z host app - DICOM+RFC3881 " + sd + b" " + XML)
    assert m.msgid == "DICOM+RFC3881" and m.msg == XML


def test_a_bom_before_the_xml_is_dropped() -> None:
    assert parse_syslog(b"<85>1 - - - - IHE+RFC-3881 - \xef\xbb\xbf" + XML).msg == XML


@pytest.mark.parametrize(
    "frame",
    [
        b"<85>Dec  6 04:00:00 pacs-01 ATNA[42]: " + XML,
        b"<85>" + XML,
        b"<85>Dec  6 04:00:00 pacs-01 ATNA: \xef\xbb\xbf" + XML,
        b"<13>1 not-enough-fields " + XML,
    ],
    ids=["bsd-header", "bare-pri", "bsd-with-bom", "broken-5424"],
)
def test_rfc3164_style_headers_are_tolerated(frame: bytes) -> None:
    m = parse_syslog(frame)
    assert m.msg == XML and m.msgid is None


@pytest.mark.parametrize("frame", [b"no pri " + XML, b"<192>1 - - - - - - x", b"<>1 x", b""])
def test_a_frame_without_a_pri_is_refused(frame: bytes) -> None:
    with pytest.raises(HeaderError, match="PRI"):
        parse_syslog(frame)
