"""What both benchmarks share: the database server, a fresh database, realistic
synthetic events, CPU accounting, percentiles and result output.

The benchmarks compare auditsvc with raw PostgreSQL *in the same run on the
same server*, so absolute numbers from different machines or servers are not
comparable but the ratios are meant to be.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import random
import secrets
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from auditsvc_sdk import FORMAT_VERSION, genesis_hash
from sqlalchemy.engine import make_url

from auditsvc.domain.append_types import PendingBatch
from auditsvc.domain.ingest import parse_batch, prepare
from auditsvc.keys import load_keys
from auditsvc.settings import Settings
from auditsvc.store.append import append_group
from auditsvc.store.engine import asyncpg_dsn, redact
from auditsvc.store.logs import ensure_log
from auditsvc.store.migrate import upgrade_head

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"

GROUP_EVENTS = 5000  # events per append transaction while filling (the service's group-commit bound)
BATCH_EVENTS = 500  # events per PendingBatch inside a group, as clients send them
FILL_EMITTER = "tok_bench_emitter"

DEFAULT_EVENTS = 200_000
QUICK_EVENTS = 20_000

# A fixed, obviously fake master key: the benchmarks must be reproducible and
# never touch a real secret. 32 bytes, as auditsvc.keys requires.
BENCH_SECRET_KEY = base64.b64encode(b"auditsvc-bench-key-not-a-secret!").decode()
BENCH_LOG_NAME = "bench.auditsvc.local/log"


# --------------------------------------------------------------------------- CLI


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every benchmark takes: size, smoke mode and which server."""
    parser.add_argument(
        "--events", type=int, default=None, help=f"events to write and measure (default {DEFAULT_EVENTS:,})"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"small smoke run ({QUICK_EVENTS:,} events unless --events is given)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="owner (superuser) DSN of an existing PostgreSQL server; a fresh bench_<random> database is "
        "created and dropped on it (env BENCH_DATABASE_URL). Default: an embedded pgserver in a temp dir.",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the synthetic events")


def event_count(args: argparse.Namespace) -> int:
    if args.events is not None:
        if args.events <= 0:
            raise SystemExit("--events must be positive")
        return int(args.events)
    return QUICK_EVENTS if args.quick else DEFAULT_EVENTS


# ------------------------------------------------------------------ the server


@dataclass(frozen=True)
class DatabaseServer:
    """An owner DSN on the server under test, and what kind of server it is."""

    url: str
    label: str  # "embedded" | "external"


@contextmanager
def database_server(url: str | None, pgdata: Path | None = None) -> Iterator[DatabaseServer]:
    """The configured server, or an embedded pgserver that lives for the run
    (in ``pgdata``, kept and stopped afterwards, when given)."""
    if url:
        yield DatabaseServer(url, "external")
        return
    if pgdata is not None:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(pgdata.parent))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            kept = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        try:
            yield DatabaseServer(f"postgresql://postgres@/postgres?host={pgdata}", "embedded")
        finally:
            kept.cleanup()
        return
    # A short path: PostgreSQL's Unix socket lives in the data directory and
    # socket paths are limited to ~100 bytes. pgserver creates ``pg`` itself
    # (as root it runs PostgreSQL as a separate user that must own it).
    base = Path(tempfile.mkdtemp(prefix="asvc-bench-", dir="/tmp"))
    pgdata = base / "pg"
    # pgserver keeps an inter-process lock in the user's runtime dir; keep it
    # out of the data directory, which initdb needs empty.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(base))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(pgdata, cleanup_mode="delete")  # type: ignore[attr-defined]
    try:
        yield DatabaseServer(f"postgresql://postgres@/postgres?host={pgdata}", "embedded")
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def service_env(url: str, data_dir: Path) -> dict[str, str]:
    """The environment ``auditsvc`` runs with: this database, the bench key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSVC_")}
    env.update(
        AUDITSVC_DATABASE_URL=url,
        AUDITSVC_SECRET_KEY=BENCH_SECRET_KEY,
        AUDITSVC_DATA_DIR=str(data_dir),
        AUDITSVC_LOG_NAME=BENCH_LOG_NAME,
        # Benchmarks measure the service, not the per-credential rate limiter.
        AUDITSVC_RATE_LIMIT_EMITTER_PER_SECOND="0",
        AUDITSVC_RATE_LIMIT_HUMAN_PER_SECOND="0",
        # Nor background alert passes, which append to the log they count.
        AUDITSVC_ALERT_INTERVAL_SECONDS="0",
    )
    return env


def bench_settings(url: str, data_dir: Path) -> Settings:
    """Settings for ``url`` with the bench's fixed secret key and log name."""
    return Settings(database_url=url, secret_key=BENCH_SECRET_KEY, data_dir=data_dir, log_name=BENCH_LOG_NAME)


@contextmanager
def fresh_database(server: DatabaseServer) -> Iterator[str]:
    """A new ``bench_<random>`` database migrated to head; dropped afterwards."""
    name = f"bench_{secrets.token_hex(5)}"
    asyncio.run(_admin(server.url, f"CREATE DATABASE {name}"))
    try:
        url = with_database(server.url, name)
        with tempfile.TemporaryDirectory(prefix="asvc-bench-mig-") as tmp:
            upgrade_head(bench_settings(url, Path(tmp)), url)
        yield url
    finally:
        asyncio.run(_admin(server.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def server_facts(conn: asyncpg.Connection) -> dict[str, Any]:
    """Server settings that decide write and read speed, recorded with the results
    so that two result files can be told apart."""
    facts: dict[str, Any] = {"version": await conn.fetchval("SHOW server_version")}
    for name in ("fsync", "synchronous_commit", "wal_level", "shared_buffers", "max_wal_size", "full_page_writes"):
        facts[name] = await conn.fetchval(f"SHOW {name}")
    return facts


def machine_facts() -> dict[str, Any]:
    """The machine, and its load average: other work on the same cores (a test
    run, another benchmark) skews both sides of a ratio, but not equally."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def code_facts() -> dict[str, Any]:
    """The service code measured: commit, and uncommitted changes outside
    bench/ (a digest of the diff), since the code may change between runs."""
    import hashlib
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else ""

    paths = ["--", "auditsvc", "sdk", "migrations"]
    diff = git("diff", "HEAD", *paths)
    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "uncommitted_files": git("diff", "--name-only", "HEAD", *paths).splitlines(),
        "uncommitted_diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None,
    }


async def postmaster_pid(conn: asyncpg.Connection) -> int | None:
    """The postmaster's pid when the server runs on this machine (parent of our
    backend), else None; used only for CPU accounting."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with pgserver
        return None
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    try:
        proc = psutil.Process(int(backend))
        if "postgres" not in proc.name() and "postgres" not in " ".join(proc.cmdline()[:1]):
            return None
        return int(proc.ppid())
    except (psutil.Error, OSError):
        return None  # a remote server, or another PID namespace


# ---------------------------------------------------------------- CPU accounting


@dataclass
class CpuSnapshot:
    """CPU seconds (user + system) per live process of a tree, plus what its
    members have already reaped from dead children."""

    per_process: dict[int, float] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.per_process.values())


def cpu_snapshot(root: int | None) -> CpuSnapshot:
    """Snapshot ``root`` and its descendants. A child that exits between two
    snapshots is counted through its parent's ``children_*`` times, so the
    difference of two totals is the tree's CPU use in between."""
    snap = CpuSnapshot()
    if root is None:
        return snap
    try:
        import psutil

        top = psutil.Process(root)
        procs = [top, *top.children(recursive=True)]
    except Exception:  # psutil missing or the process is gone
        return snap
    for proc in procs:
        try:
            t = proc.cpu_times()
            snap.per_process[proc.pid] = t.user + t.system + t.children_user + t.children_system
            snap.names[proc.pid] = proc.name()
        except Exception:  # noqa: S112 - exited between listing and reading: its parent reaps it
            continue
    return snap


def cpu_delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, Any]:
    """Seconds of CPU the tree used between the snapshots, total and per process."""
    per = {
        f"{after.names.get(pid, '?')}[{pid}]": round(after.per_process[pid] - before.per_process.get(pid, 0.0), 2)
        for pid in after.per_process
    }
    return {"total_s": round(after.total - before.total, 2), "per_process_s": per}


# ------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# --------------------------------------------------------------------- output


def print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    """A two-column table on stdout (rich when available, plain otherwise)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a service dependency
        print(title)
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"  {key.ljust(width)}  {value}")
        return
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    for key, value in rows:
        table.add_row(key, value)
    # Wide enough for the labels and figures even when stdout is not a terminal
    # (rich would otherwise wrap at 80 columns).
    Console(width=max(Console().width, 110)).print(table)


def results_name(benchmark: str, server: str, args: argparse.Namespace, *variants: str) -> str:
    """``<benchmark>-<server>`` for a default full run; smoke, resized or
    otherwise varied runs get a suffix, so they never overwrite its figures."""
    parts = [benchmark, server]
    if args.quick:
        parts.append("quick")
    elif args.events is not None and args.events != DEFAULT_EVENTS:
        parts.append(f"{args.events}ev")
    parts.extend(v for v in variants if v)
    return "-".join(parts)


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (gitignored) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return path


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


# ----------------------------------------------------------- synthetic events

# Source systems of a mid-size hospital's integration engine. The emitter
# token must be bound to every one of them.
SYSTEMS: tuple[tuple[str, str], ...] = (
    ("epic-adt", "Epic ADT"),
    ("lab-lis", "Sunquest LIS"),
    ("rad-ris", "Radiology RIS"),
    ("pharm-rx", "Pharmacy"),
    ("hie-gateway", "Regional HIE gateway"),
    ("billing-pb", "Professional billing"),
)
SOURCE_SYSTEM_IDS: tuple[str, ...] = tuple(s for s, _ in SYSTEMS)

_HL7_ELEMENTS = (
    "PID", "PID-3", "PID-5", "PID-7", "PID-11", "PV1", "PV1-3", "PV1-7", "OBR", "OBR-4",
    "OBX", "OBX-3", "OBX-5", "ORC", "RXE", "RXA", "DG1", "IN1", "AL1", "NK1",
)  # fmt: skip
_FHIR_ELEMENTS = (
    "Patient", "Patient.name", "Patient.birthDate", "Patient.address", "Observation",
    "Observation.value[x]", "Encounter", "MedicationRequest", "DiagnosticReport", "Condition",
    "AllergyIntolerance", "Coverage", "Immunization", "Procedure",
)  # fmt: skip
_EVENT_TYPES = ("hl7v2-message",) * 5 + ("fhir-rest",) * 3 + ("query", "export", "disclosure")
_PURPOSES = ("TREAT",) * 6 + ("HOPERAT", "HPAYMT", "PUBHLTH", "ETREAT")
_ACTIONS = ("R",) * 6 + ("C", "U", "E")
_CHANNELS = ("ADT_IN", "ADT_OUT", "ORU_LAB", "ORM_RAD", "RDE_RX", "DFT_BILL", "FHIR_SYNC")
_OFFSETS = (timezone(timedelta(hours=-5)), timezone(timedelta(hours=-5)), timezone(timedelta(hours=-6)), UTC)

# Assigning authorities: hospital MRN, lab MRN, enterprise MPI and payer member id.
_ID_SYSTEMS = (
    "urn:oid:2.16.840.1.113883.3.1234.1.1",
    "urn:oid:2.16.840.1.113883.3.1234.7.2",
    "urn:oid:2.16.840.1.113883.3.1234.99",
    "urn:oid:2.16.840.1.113883.3.5678.2",
)


def synthetic_patient(n: int) -> tuple[dict[str, str], ...]:
    """Patient number ``n``'s four identifiers, derived from ``n`` alone (no
    list held in memory: a 10M-event log has about a million patients). The
    hospital MRN is ``MRN<n, 8 digits>``, as in ``synthetic_patients``."""
    digest = hashlib.blake2b(n.to_bytes(8, "big"), digest_size=16, person=b"bench-patient").digest()
    return (
        {"system": _ID_SYSTEMS[0], "value": f"MRN{n:08d}"},
        {"system": _ID_SYSTEMS[1], "value": f"L{int.from_bytes(digest[:5], 'big') % 10**9:09d}"},
        {"system": _ID_SYSTEMS[2], "value": f"E{digest[5:11].hex()}"},
        {"system": _ID_SYSTEMS[3], "value": f"M{int.from_bytes(digest[11:16], 'big') % 10**10:010d}"},
    )


def synthetic_patients(count: int, seed: int = 20261124) -> list[tuple[dict[str, str], ...]]:
    """``count`` synthetic patients, each with four identifiers; the same list in
    every process for the same arguments, so client processes share patients."""
    rng = random.Random(seed)
    patients: list[tuple[dict[str, str], ...]] = []
    for n in range(count):
        patients.append(
            (
                {"system": _ID_SYSTEMS[0], "value": f"MRN{n:08d}"},
                {"system": _ID_SYSTEMS[1], "value": f"L{rng.randrange(10**9):09d}"},
                {"system": _ID_SYSTEMS[2], "value": f"E{rng.getrandbits(48):012x}"},
                {"system": _ID_SYSTEMS[3], "value": f"M{rng.randrange(10**10):010d}"},
            )
        )
    return patients


class EventFactory:
    """Realistic PHI access events in the API's JSON shape.

    Each event carries 2-3 identifiers of one of ``patients`` synthetic
    patients (as different systems know different subsets), 3-6 data
    elements, a source and destination among a handful of systems, and the
    optional fields integration engines fill in most of the time.
    """

    def __init__(self, seed: int, patients: int = 3000) -> None:
        from auditsvc_sdk import new_event_id

        self._new_id = new_event_id
        self._rng = random.Random(seed)
        self._patients = synthetic_patients(patients)
        self._clock = datetime(2026, 11, 24, 11, 0, 0, tzinfo=UTC) + timedelta(seconds=seed % 3600)
        self._n = 0

    def event(self, patient: Sequence[dict[str, str]] | None = None) -> dict[str, Any]:
        """One event, of a random one of the factory's patients, or of
        ``patient`` (whose first identifier it then always carries)."""
        rng = self._rng
        self._n += 1
        self._clock += timedelta(microseconds=rng.randrange(1, 40_000))
        if patient is None:
            identifiers = rng.sample(rng.choice(self._patients), rng.choice((2, 2, 3)))
        else:
            identifiers = [patient[0], *rng.sample(patient[1:], rng.choice((1, 1, 2)))]
        source, destination = rng.sample(SYSTEMS, 2)
        event_type = rng.choice(_EVENT_TYPES)
        pool = _FHIR_ELEMENTS if event_type == "fhir-rest" else _HL7_ELEMENTS
        if rng.random() < 0.75:
            actor: dict[str, Any] = {"id": f"mirth/{rng.choice(_CHANNELS)}", "type": "system"}
        else:
            actor = {"id": f"u{rng.randrange(100000):05d}", "type": "user", "role": rng.choice(("RN", "MD", "CLERK"))}
        event: dict[str, Any] = {
            "event_id": str(self._new_id()),
            "occurred_at": self._clock.astimezone(rng.choice(_OFFSETS)).isoformat(timespec="microseconds"),
            "action": rng.choice(_ACTIONS),
            "event_type": event_type,
            "patient": {"identifiers": identifiers},
            "data_elements": rng.sample(pool, rng.randint(3, 6)),
            "source": {"system_id": source[0], "name": source[1]},
            "destination": {"system_id": destination[0]},
            "actor": actor,
            "purpose_of_use": rng.choice(_PURPOSES),
            "outcome": 0 if rng.random() < 0.97 else rng.choice((4, 8, 12)),
            "message_id": f"MSG{self._n:010d}",
            "attributes": {"channel": rng.choice(_CHANNELS), "retry": rng.random() < 0.02},
        }
        if rng.random() < 0.5:
            event["trace_id"] = f"{rng.getrandbits(128):032x}"
            event["span_id"] = f"{rng.getrandbits(64):016x}"
        return event

    def events(self, count: int) -> list[dict[str, Any]]:
        return [self.event() for _ in range(count)]


def describe_url(url: str) -> str:
    """The DSN for printing: password masked."""
    return redact(url)


# ------------------------------------------------------------ filling a log


class EventSource(Protocol):
    def events(self, count: int) -> list[dict[str, Any]]: ...


def print_fill_progress(done: int, total: int, seconds: float) -> None:
    """A progress line on stderr every so often: long fills (1M+ events) take minutes."""
    per_s = rate(done, seconds)
    left = (total - done) / per_s if per_s else 0.0
    print(f"  filled {done:,}/{total:,} events, {per_s:,.0f}/s, about {left:,.0f} s left", file=sys.stderr)


async def fill(
    url: str,
    events: int,
    seed: int,
    data_dir: Path,
    factory: EventSource | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    vacuum: Sequence[str] = ("events", "event_identifiers"),
) -> dict[str, Any]:
    """Append ``events`` events (from ``factory``, default ``EventFactory(seed)``)
    with the service's append transaction, then ``VACUUM ANALYZE`` ``vacuum``
    (every table when empty).

    Each 500-event batch goes through the service's request parsing and
    preparation (``parse_batch``, ``prepare``: validation, identifier HMACs)
    as a POST body would, outside the timed part; ``append_seconds`` is the
    append transactions alone."""
    keys = load_keys(bench_settings(url, data_dir))
    genesis = genesis_hash(BENCH_LOG_NAME)
    source = factory if factory is not None else EventFactory(seed)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    started = time.perf_counter()
    append_seconds = 0.0
    reported = 0
    try:
        log_id = await ensure_log(conn, BENCH_LOG_NAME, FORMAT_VERSION)
        for start in range(0, events, GROUP_EVENTS):
            batches = []
            for chunk in range(start, min(start + GROUP_EVENTS, events), BATCH_EVENTS):
                # Through the service's own request parsing, as a POST body would go.
                body = json.dumps({"events": source.events(min(BATCH_EVENTS, events - chunk))}).encode()
                batches.append(PendingBatch(prepare(parse_batch(body, BATCH_EVENTS), keys, FILL_EMITTER)))
            t0 = time.perf_counter()
            _, head = await append_group(conn, log_id, genesis, batches)
            append_seconds += time.perf_counter() - t0
            if progress is not None and head.tree_size - reported >= 100_000:
                reported = head.tree_size
                progress(head.tree_size, events, time.perf_counter() - started)
        # Settle hint bits and the visibility map, as autovacuum would, so that no
        # read pass pays for them.
        await conn.execute(f"VACUUM ANALYZE {', '.join(vacuum)}")
        # Over its partitions (migration 0010; a plain table is its own tree).
        size = await conn.fetchval("SELECT sum(pg_total_relation_size(relid))::bigint FROM pg_partition_tree('events')")
    finally:
        await conn.close()
    if head.tree_size != events:
        raise RuntimeError(f"filled {head.tree_size} events, expected {events}")
    return {
        "log_id": log_id,
        "seconds": round(time.perf_counter() - started, 2),
        "append_seconds": round(append_seconds, 2),
        "append_events_per_s": round(rate(events, append_seconds), 1),
        "events_table_bytes": size,
    }
