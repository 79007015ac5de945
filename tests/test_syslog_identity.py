"""Which events a syslog sender may report: those its system is a party to."""

from __future__ import annotations

from auditsvc.syslog.identity import anonymous, certified


def test_a_certified_sender_reports_as_source_or_destination() -> None:
    ris = certified("ris-02", {"ris-02": ["lab-lis"]})
    assert ris.emitter == "syslog-tls:ris-02"
    assert ris.may_report("ris-02", "pacs-01")  # what it sent
    assert ris.may_report("pacs-01", "ris-02")  # what it received, or its own query's results
    assert ris.may_report("lab-lis", "viewer-01")  # the map widens it
    assert not ris.may_report("pacs-01", "viewer-01")  # no party of it
    assert not ris.may_report("auditsvc", "ris-02")  # a reserved source, whoever reports it
    assert not certified("pacs-01", {}).may_report("ris-02", "lab-lis")


def test_an_uncertified_sender_takes_the_message_except_a_reserved_source() -> None:
    udp = anonymous("udp")
    assert udp.may_report("pacs-01", "viewer-01")
    assert not udp.may_report("auditsvc", "viewer-01")
