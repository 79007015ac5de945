"""Synthetic ATNA audit messages (DICOM PS3.15 A.5 naming) and syslog frames
for the listener tests and bench/syslog.py. Patients are synthetic."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

PATIENT_OID = "1.2.840.113619.6.197.9999"


def audit_message(
    *patients: str,
    source: str = "pacs-01",
    destination: str = "viewer-01",
    user: str = "dr.synthetic",
    when: str = "2026-12-06T04:00:00.000Z",
    action: str = "R",
    event_id: tuple[str, str] = ("110110", "Patient Record"),
    purpose: str | None = None,
) -> bytes:
    """A DICOM audit message: a user reads ``patients`` (CX ids, or bare ids
    turned into ``id^^^&OID&ISO^PI``) moving from ``source`` to ``destination``."""
    objects = "".join(
        f"<ParticipantObjectIdentification ParticipantObjectID={quoteattr(cx(p))} "
        'ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">'
        '<ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/>'
        "</ParticipantObjectIdentification>"
        for p in (patients or ("MRN-SYN-0001",))
    )
    purpose_xml = (
        f'<PurposeOfUse csd-code="{purpose}" codeSystemName="v3-ActReason" originalText="{purpose}"/>'
        if purpose
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<AuditMessage>"
        f'<EventIdentification EventActionCode="{action}" EventDateTime="{when}" EventOutcomeIndicator="0">'
        f'<EventID csd-code="{event_id[0]}" codeSystemName="DCM" originalText="{event_id[1]}"/>'
        f"{purpose_xml}"
        "</EventIdentification>"
        f'<ActiveParticipant UserID="{user}" UserIsRequestor="true"/>'
        f'<ActiveParticipant UserID="{source}" UserIsRequestor="false" NetworkAccessPointID="10.0.0.5" '
        'NetworkAccessPointTypeCode="2">'
        '<RoleIDCode csd-code="110153" codeSystemName="DCM" originalText="Source Role ID"/>'
        "</ActiveParticipant>"
        f'<ActiveParticipant UserID="{destination}" UserIsRequestor="false" NetworkAccessPointID="10.0.0.9" '
        'NetworkAccessPointTypeCode="2">'
        '<RoleIDCode csd-code="110152" codeSystemName="DCM" originalText="Destination Role ID"/>'
        "</ActiveParticipant>"
        f'<AuditSourceIdentification AuditSourceID="{source}"/>'
        f"{objects}"
        "</AuditMessage>"
    ).encode()


def cx(patient: str) -> str:
    return patient if "^" in patient else f"{patient}^^^&{PATIENT_OID}&ISO^PI"


def syslog_frame(
    msg: bytes, *, msgid: str = "IHE+RFC-3881", pri: int = 85, host: str = "pacs-01", padding: int = 0
) -> bytes:
    """An RFC 5424 syslog message around ``msg`` (``padding`` octets of structured data before it)."""
    sd = f'[pad@32473 x="{"p" * padding}"]' if padding else "-"
    return f"<{pri}>1 2026-12-06T04:00:00.000Z {host} ATNA 4242 {msgid} {sd} ".encode() + b"\xef\xbb\xbf" + msg


def octet_counted(*frames: bytes) -> bytes:
    return b"".join(b"%d %s" % (len(f), f) for f in frames)


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<AuditMessage>&lol3;</AuditMessage>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<AuditMessage><EventIdentification>&xxe;</EventIdentification></AuditMessage>"
)
