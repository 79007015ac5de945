"""The SDK has one version: the installed package's metadata, ``__version__``
and the User-Agent the client sends all say the same thing."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import auditsvc_sdk
import httpx
from auditsvc_sdk import AuditClient

from .conftest import event

REPO = Path(__file__).resolve().parent.parent


def test_installed_metadata_and_dunder_version_agree() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", auditsvc_sdk.__version__)
    assert importlib.metadata.version("auditsvc-sdk") == auditsvc_sdk.__version__


def test_user_agent_names_the_same_version() -> None:
    agents: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        agents.append(request.headers["User-Agent"])
        return httpx.Response(200, json={"results": [{"status": "accepted", "seq": 0}], "head": {}})

    client = AuditClient("http://audit.test", "tok", transport=httpx.MockTransport(answer))
    try:
        client.record(event())
        assert client.flush(timeout=5)
    finally:
        client.close(timeout=1)
    assert agents == [f"auditsvc-sdk/{auditsvc_sdk.__version__}"]


def test_the_version_is_written_in_one_place() -> None:
    """pyproject.toml reads it from ``_version.py``; no other SDK file spells it."""
    pyproject = tomllib.loads((REPO / "sdk" / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "auditsvc_sdk._version.__version__"}
    spelled = [
        path.name
        for path in (REPO / "sdk" / "auditsvc_sdk").glob("*.py")
        if auditsvc_sdk.__version__ in path.read_text(encoding="utf-8")
    ]
    assert spelled == ["_version.py"]
