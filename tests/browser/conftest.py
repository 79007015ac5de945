"""The console in a real browser: Debian's Chromium driven by Playwright.

Fixtures (for every browser test, the console's pages and the others'):

* ``console`` (package scope): the service on a loopback port against a
  fresh test database, seeded once with synthetic data (``SEED``: a patient
  known by two linked identifiers, accessed by several systems over a week,
  one break-glass access, one failed access; a second patient), and a token
  for every role (``console.tokens[Role.X]``).
  ``console.access_log`` holds the server's access log lines, for tests
  that check no PHI reaches a log.
* ``browser`` (package scope): one Chromium for all of tests/browser (torn down
  after it: Playwright's sync API keeps an event loop running in this thread).
* ``page``: a fresh browser context (no cookies) and page for one test. It
  records console errors, uncaught page errors and Content Security Policy
  violations and fails the test if any occurred; and every URL the page
  requested (``page.visited``), for tests that check no PHI reaches a URL.
* ``sign_in(page, role)``: goes through the sign-in form as that role.
* ``shot(page, name)``: a full-page screenshot under ``test-artifacts/console/``.

Without /usr/bin/chromium (``apt-get install chromium``; .ci/run does it)
or the playwright package, every browser test is skipped, saying so.
Playwright's own browser download (``playwright install``) is never used.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from auditsvc_sdk._note import NoteSigner

from auditsvc.domain.tokens import Role
from auditsvc.settings import WitnessConfig

from ..conftest import REPO, Service, event
from ..console_support import LOG_NAME, module_service, token
from ..witness import start_witness

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
T = TypeVar("T")
ARTIFACTS = Path(os.environ.get("AUDITSVC_TEST_ARTIFACTS", REPO / "test-artifacts")) / "console"

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    sync_playwright = None

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            if sync_playwright is None:
                item.add_marker(pytest.mark.skip(reason="playwright is not installed (pip install -e '.[dev]')"))
            elif not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
                item.add_marker(pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}: apt-get install chromium"))


# The synthetic patient: an MRN at the hospital and the enterprise (EMPI) id,
# linked by the ADT feed's events that carry both.
MRN = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-SYN-000451")
EMPI = ("urn:oid:2.16.840.1.113883.3.9999.0", "E-SYN-7731")
OTHER = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-SYN-000999")
WITNESS_NAME = "witness.example/synthetic-w1"
SOURCES = ["epic-adt", "lab-lis", "radiology-ris", "fhir-gateway"]


def _seed_events() -> list[dict[str, Any]]:
    both, mrn, empi = [MRN, EMPI], [MRN], [EMPI]
    day = "2026-11-{:02d}T{:02d}:{:02d}:00.000000-05:00"
    events = []
    # A week of ADT and lab traffic, a few messages a day.
    for d in range(20, 27):
        events.append(event(both, source="epic-adt", destination="lab-lis", occurred_at=day.format(d, 8, 15)))
        events.append(
            event(
                mrn,
                source="lab-lis",
                destination="epic-adt",
                occurred_at=day.format(d, 14, 40),
                action="C",
                event_type="hl7v2-message",
                data_elements=["OBR", "OBX"],
            )
        )
        if d % 2 == 0:
            events.append(
                event(
                    empi,
                    source="fhir-gateway",
                    destination="patient-portal",
                    occurred_at=day.format(d, 19, 5),
                    event_type="fhir-rest",
                    data_elements=["Observation", "Patient.name"],
                    actor={"id": "portal-app", "type": "system"},
                    purpose_of_use="TREAT",
                )
            )
    events.append(
        event(
            mrn,
            source="radiology-ris",
            destination="pacs-archive",
            occurred_at=day.format(23, 11, 0),
            data_elements=["ORC", "OBR"],
            actor={"id": "u-rad-0007", "type": "user", "role": "radiologist", "name": "Dr Synthetic Radiologist"},
        )
    )
    # The emergency access a privacy officer must review.
    events.append(
        event(
            empi,
            source="epic-adt",
            destination="ed-tracker",
            occurred_at=day.format(24, 2, 37),
            event_type="break-glass",
            purpose_of_use="ETREAT",
            data_elements=["Patient", "AllergyIntolerance"],
            actor={"id": "u-ed-0042", "type": "user", "role": "physician", "name": "Dr Synthetic Emergency"},
        )
    )
    # A refused access (outcome 4: minor failure).
    events.append(
        event(
            mrn,
            source="fhir-gateway",
            destination="billing-app",
            occurred_at=day.format(25, 16, 20),
            event_type="fhir-rest",
            outcome=4,
            purpose_of_use="HPAYMT",
            data_elements=["Coverage"],
            actor={"id": "billing-batch", "type": "system"},
        )
    )
    # Somebody else, who must never show in the patient's report.
    events.append(event([OTHER], source="epic-adt", destination="lab-lis", occurred_at=day.format(22, 9, 0)))
    return events


SEED = _seed_events()


@dataclass
class Console:
    service: Service
    tokens: dict[Role, str] = field(default_factory=dict)
    access_log: list[str] = field(default_factory=list)
    """The server's access log lines (method, path and query of every request)."""

    @property
    def url(self) -> str:
        return self.service.url


@pytest.fixture(scope="package")
def console(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    # The log's key made here so a witness (tests/witness.py) can know it:
    # every checkpoint the service signs is cosigned, as the auditor page shows.
    data_dir = tmp_path_factory.mktemp("browser") / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_key = NoteSigner.generate(LOG_NAME)
    (data_dir / "signing.key").write_bytes(log_key.private_key_pem())
    with (
        start_witness(log_key.vkey, name=WITNESS_NAME) as witness,
        module_service(
            server_url, template_db, data_dir, witnesses=[WitnessConfig(url=witness.url, vkey=witness.vkey)]
        ) as service,
    ):
        running = Console(service)
        running.tokens = {
            Role.PRIVACY_OFFICER: token(service, Role.PRIVACY_OFFICER, name="Pat Privacy (synthetic officer)"),
            Role.AUDITOR: token(service, Role.AUDITOR, name="Alex Auditor (synthetic)"),
            Role.ADMIN: token(service, Role.ADMIN, name="Ada Admin (synthetic)"),
            Role.EMITTER: token(service, Role.EMITTER, systems=SOURCES),
        }
        answer = httpx.post(
            f"{service.url}/v1/events",
            json={"events": SEED},
            headers={"Authorization": f"Bearer {running.tokens[Role.EMITTER]}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        with _access_log_into(running.access_log):
            yield running


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


_capturing: dict[int, _ListHandler] = {}


def capture_access_log(lines: list[str]) -> None:
    """(Again) attach the handler that copies uvicorn's access log (INFO, off
    at the tests' log level) into ``lines``: another test's server starting
    in this process re-applies uvicorn's logging configuration, which drops
    handlers and sets the level back, so each browser test calls this."""
    logger = logging.getLogger("uvicorn.access")
    handler = _capturing.setdefault(id(lines), _ListHandler(lines))
    logger.setLevel(logging.INFO)
    if handler not in logger.handlers:
        logger.addHandler(handler)


@contextmanager
def _access_log_into(lines: list[str]) -> Iterator[None]:
    """uvicorn's access log captured into ``lines`` for the block."""
    logger = logging.getLogger("uvicorn.access")
    level = logger.level
    capture_access_log(lines)
    try:
        yield
    finally:
        logger.removeHandler(_capturing.pop(id(lines)))
        logger.setLevel(level)


@pytest.fixture(scope="package")
def browser(console: Console) -> Iterator[Browser]:
    # After ``console``: Playwright's sync API runs an event loop in this
    # thread, and the database set-up (asyncio.run) must come before it and
    # its teardown after it is gone. In a test, call the database through
    # ``off_loop``.
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


# Runs in every document before its own scripts (Playwright injects it; the
# page's CSP does not apply to it): report each CSP violation at once.
_CSP_WATCH = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__reportCsp(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    capture_access_log(console.access_log)
    context = browser.new_context(
        base_url=console.url, accept_downloads=True, locale="en-US", timezone_id="America/Chicago"
    )
    problems: list[str] = []
    visited: list[str] = []
    context.expose_function("__reportCsp", lambda text: problems.append(f"CSP violation: {text}"))
    context.add_init_script(_CSP_WATCH)
    tab = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on("request", lambda request: visited.append(request.url))
    tab.visited = visited  # type: ignore[attr-defined]
    tab.problems = problems  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        context.close()
    assert not problems, "the console reported problems:\n" + "\n".join(problems)


def off_loop(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in another thread: for helpers that run their own
    event loop (``conftest.query``, ``make_token``) while Playwright's runs here."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def sign_in(page: Page, console: Console, role: Role) -> None:
    """Through the sign-in form, as a person would; lands on the home page."""
    page.goto("/signin")
    page.get_by_label("Token").fill(console.tokens[role])
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{console.url}/")


DOC_SHOTS = frozenset({"patient-report", "accounting", "break-glass-queue", "auditor"})
"""Screenshots also kept in docs/console/ when AUDITSVC_CONSOLE_DOCS=1 (how they are refreshed)."""


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot kept as a test artifact (and in docs/console/, see ``DOC_SHOTS``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("AUDITSVC_CONSOLE_DOCS") == "1" and name in DOC_SHOTS:
        shutil.copyfile(path, REPO / "docs" / "console" / f"{name}.png")
    return path
