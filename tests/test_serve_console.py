"""What ``auditsvc serve`` (``make serve``) prints on the embedded PostgreSQL:
its own URL first, none of the embedded server's chatter unless it fails,
and a clean stop on SIGTERM and SIGINT. The real command, in its own process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from .conftest import free_port

# What pgserver logs on every start and stop: its logger's name, the commands it runs.
CHATTER = ("pgserver", "initdb", "pg_ctl", "postmaster")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(f"/tmp/asvc-con-{os.getpid()}")  # short: the socket lives in it
    shutil.rmtree(path, ignore_errors=True)
    yield path
    if (path / "pg" / "postmaster.pid").exists():  # a server left running: stop it
        import pgserver

        pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
        subprocess.run([str(pg_ctl), "-D", str(path / "pg"), "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def serve(data_dir: Path, stop: signal.Signals | None, timeout: float = 90) -> tuple[int, int, list[str]]:
    """Run ``auditsvc serve`` on ``data_dir`` until it answers /readyz, then
    send it ``stop``; or, with no ``stop``, until it exits on its own.
    Returns its port, exit status and output (stdout and stderr, in order)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSVC_")}
    env.update(AUDITSVC_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "auditsvc", "serve", "--port", str(port)],
            env=env,
            cwd=data_dir.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            if stop is not None:
                deadline = time.monotonic() + timeout
                while not _ready(port):
                    assert process.poll() is None, _text(output)
                    assert time.monotonic() < deadline, "auditsvc serve did not become ready"
                    time.sleep(0.1)
                process.send_signal(stop)
            code = process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return port, code, _text(output).splitlines()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _text(output: IO[bytes]) -> str:
    output.seek(0)
    return output.read().decode(errors="replace")


def test_serve_shows_its_url_first_keeps_the_embedded_servers_log_out_and_stops_cleanly(data_dir: Path) -> None:
    # A fresh clone (initdb runs), then a second start on the same data; one
    # stopped as an orchestrator does (SIGTERM), the other with Ctrl-C (SIGINT).
    for stop in (signal.SIGTERM, signal.SIGINT):
        port, code, lines = serve(data_dir, stop)
        shown = "\n".join(lines)
        assert lines[0].startswith(f"auditsvc on http://127.0.0.1:{port} (embedded PostgreSQL in {data_dir})"), shown
        assert [line for line in lines if any(word in line for word in CHATTER)] == [], shown
        assert code == 0, shown
        assert lines[-1] == "auditsvc stopped", shown
        assert not (data_dir / "pg" / "postmaster.pid").exists()  # the embedded server was stopped too


def test_an_embedded_server_that_does_not_start_shows_what_it_logged(data_dir: Path) -> None:
    (data_dir / "pg").mkdir(parents=True, mode=0o700)
    (data_dir / "pg" / "PG_VERSION").write_text("1\n")  # a data directory PostgreSQL cannot run
    _, code, lines = serve(data_dir, stop=None)
    shown = "\n".join(lines)
    assert code == 2, shown
    assert "INFO pgserver: Running commandline:" in lines, shown  # the held-back INFO lines, now shown
    assert "pg_ctl: could not start server" in lines, shown
    assert "could not access the server configuration file" in shown  # the server's own log
    assert " ".join(shown.split()).endswith(
        f"error: cannot start the database: the embedded PostgreSQL in {data_dir}/pg "
        "did not start: pg_ctl exited with status 1"
    ), shown
