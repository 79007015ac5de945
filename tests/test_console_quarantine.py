"""The console's quarantine page (admins): the syslog messages that could
not become events, listed without their content, replayed after a fix or
discarded; other roles are refused and every POST needs the CSRF token."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest

from auditsvc.domain.quarantine import quarantine_frame
from auditsvc.domain.tokens import Role
from auditsvc.runtime import open_audit_log
from auditsvc.store.engine import runtime_url
from auditsvc.syslog.convert import Rejected
from auditsvc.syslog.header import parse_syslog
from auditsvc.syslog.identity import anonymous

from .conftest import Service, query
from .console_support import csrf_of, module_service, sign_in, token
from .syslog_messages import audit_message, syslog_frame

pytestmark = pytest.mark.db

MAPPABLE = syslog_frame(audit_message("MRN-SYN-CQ01", source="ris-02"))
GARBAGE = b"<13>1 - - - - - - not an audit message for MRN-SYN-CQ02"


@pytest.fixture(scope="module")
def service(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with module_service(server_url, template_db, tmp_path_factory.mktemp("console") / "data") as running:
        yield running


def quarantine(service: Service) -> None:
    async def fill() -> None:
        settings = service.settings
        async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
            # As if an older mapping had refused it: it maps now.
            for frame, rejected in (
                (MAPPABLE, Rejected("unknown_schema", "older mapping", parse_syslog(MAPPABLE))),
                (GARBAGE, Rejected("xml_malformed", "no XML")),
            ):
                await quarantine_frame(audit, frame, rejected, transport="tcp", peer=None, sender=anonymous("tcp"))

    asyncio.run(fill())


def entry_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'name="entry_id" value="(\d+)"', html)]


def test_an_admin_sees_replays_and_discards_quarantined_messages(service: Service) -> None:
    admin, _ = sign_in(service, token(service, Role.ADMIN))
    empty = admin.get("/quarantine")
    assert empty.status_code == 200 and "Nothing in quarantine" in empty.text
    quarantine(service)

    page = admin.get("/quarantine")
    assert page.status_code == 200
    assert "unknown_schema" in page.text and "xml_malformed" in page.text
    assert "MRN-SYN" not in page.text  # the messages are never shown
    assert 'href="/quarantine"' in page.text  # in the navigation
    mappable, garbage = sorted(set(entry_ids(page.text)))
    only = admin.get("/quarantine", params={"reason": "xml_malformed"})
    assert set(entry_ids(only.text)) == {garbage}

    url = str(service.settings.database_url)
    before = query(url, "SELECT count(*) AS n FROM events")[0]["n"]
    replayed = admin.post(
        "/quarantine/replay", data={"csrf_token": csrf_of(page), "entry_id": str(mappable)}, follow_redirects=True
    )
    assert replayed.status_code == 200 and f"Entry {mappable} replayed" in replayed.text
    assert query(url, "SELECT count(*) AS n FROM events")[0]["n"] == before + 2  # its event and the change
    still = admin.post(
        "/quarantine/replay", data={"csrf_token": csrf_of(page), "entry_id": str(garbage)}, follow_redirects=True
    )
    assert f"Entry {garbage} still cannot be mapped" in still.text and "xml_malformed" in still.text

    done = admin.get("/quarantine", params={"status": "replayed"})
    assert set(entry_ids(done.text)) == set() and f">{mappable}<" in done.text  # no actions on replayed ones
    discarded = admin.post(
        "/quarantine/discard", data={"csrf_token": csrf_of(page), "entry_id": str(garbage)}, follow_redirects=True
    )
    assert f"Entry {garbage} discarded" in discarded.text
    changes = query(
        url,
        "SELECT f.actor_id, e.record::jsonb -> 'attributes' ->> 'change' AS change FROM event_facts f "
        "JOIN events e USING (log_id, seq) WHERE f.event_type = 'syslog-quarantine-change' ORDER BY f.seq",
    )
    assert [r["change"] for r in changes] == ["replayed", "discarded"]  # both recorded as the admin's
    assert "Nothing in quarantine" in admin.get("/quarantine").text
    assert f">{garbage}<" in admin.get("/quarantine", params={"status": "discarded"}).text


def test_other_roles_bad_parameters_and_posts_without_csrf_are_refused(service: Service) -> None:
    officer, _ = sign_in(service, token(service, Role.PRIVACY_OFFICER))
    refused = officer.get("/quarantine")
    assert refused.status_code == 403 and "needs the role admin" in refused.text
    admin, _ = sign_in(service, token(service, Role.ADMIN))
    assert admin.post("/quarantine/discard", data={"entry_id": "1"}).status_code == 403
    for params in ({"status": "lost"}, {"reason": "<script>"}, {"cursor": "-1"}):
        bad = admin.get("/quarantine", params=params)
        assert bad.status_code == 422 and "<script>" not in bad.text
    missing = admin.post("/quarantine/replay", data={"csrf_token": csrf_of(admin.get("/")), "entry_id": "999999"})
    assert missing.status_code == 404 and "no quarantine entry" in missing.text
