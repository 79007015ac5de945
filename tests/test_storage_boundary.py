"""One storage boundary: SQL lives in ``auditsvc/store/``, nowhere else.

Outside ``auditsvc/store/`` no module of the service may

* import asyncpg or SQLAlchemy's ``text`` (connections and database errors
  are named through ``auditsvc.store.session``),
* call a query method (``execute``, ``fetch``, ``fetchrow``, ``fetchval``,
  ``executemany``, ``cursor``, ``copy_*``) with a SQL string,
* hold a SQL statement in a string literal,

and the service imports no private SDK module (``auditsvc_sdk._x``).
The checks read the source (AST), so they hold for code no test runs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "auditsvc"
STORE = PACKAGE / "store"

# Modules allowed to break a rule, and why. Paths relative to auditsvc/.
ASYNCPG_IMPORT_ALLOWED = {
    # Instruments the driver for tracing; no SQL.
    "telemetry/tracing.py": "OpenTelemetry's asyncpg instrumentation",
}
# Modules still being moved behind the store (none now: the verify and
# evidence paths went behind store/verify.py and store/evidence.py).
PENDING_VERIFY_SPLIT: set[str] = set()

QUERY_METHODS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "cursor", "prepare"}
SQL = re.compile(
    r"^\s*(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|WITH\s+(RECURSIVE\s+)?\w+\s+AS|BEGIN\b|SET\s+TRANSACTION"
    r"|CREATE\s|ALTER\s|DROP\s|TRUNCATE\s|COPY\s|LOCK\s+TABLE)"
    r"|\bpg_(try_)?advisory_\w*lock\b|\bFROM\s+(events|logs|checkpoints|merkle_nodes|api_tokens|event_identifiers"
    r"|patient_identifiers|identifier_links|verifier_keys|checkpoint_cosignatures|event_facts|patient_events)\b",
)
# SQL in this code base is written in capitals; prose ("select a date") is not.


def _service_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if STORE not in p.parents)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (module, class, function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _text(node: ast.AST) -> str | None:
    """The literal text of a str constant or f-string (placeholders left out)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return None


def violations(path: Path, root: Path = PACKAGE) -> list[str]:
    """What ``path`` (a module under ``root``) does that only ``auditsvc/store/`` may do."""
    rel = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = _docstrings(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "asyncpg" and rel not in ASYNCPG_IMPORT_ALLOWED:
                    found.append(f"{rel}:{line}: imports asyncpg (use auditsvc.store.session)")
                if alias.name.startswith("auditsvc_sdk._"):
                    found.append(f"{rel}:{line}: imports the private SDK module {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] == "asyncpg" and rel not in ASYNCPG_IMPORT_ALLOWED:
                found.append(f"{rel}:{line}: imports from asyncpg (use auditsvc.store.session)")
            if node.module.startswith("sqlalchemy") and any(a.name == "text" for a in node.names):
                found.append(f"{rel}:{line}: imports sqlalchemy's text() (SQL belongs in auditsvc/store/)")
            if node.module.startswith("auditsvc_sdk._") or (
                node.module == "auditsvc_sdk" and any(a.name.startswith("_") for a in node.names)
            ):
                found.append(f"{rel}:{line}: imports a private SDK module ({node.module})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if (name in QUERY_METHODS or name.startswith("copy_")) and node.args:
                text = _text(node.args[0])
                if text is not None and SQL.search(text):
                    found.append(f"{rel}:{line}: .{name}() with a SQL string")
        elif isinstance(node, ast.Constant | ast.JoinedStr) and id(node) not in docstrings:
            text = _text(node)
            if text is not None and SQL.search(text):
                found.append(f"{rel}:{line}: a SQL statement in a string literal")
    return found


def test_no_sql_outside_the_store() -> None:
    found = [v for p in _service_modules() for v in violations(p) if v.split(":")[0] not in PENDING_VERIFY_SPLIT]
    assert not found, "SQL or a driver outside auditsvc/store/:\n" + "\n".join(found)


def test_the_pending_allow_list_names_existing_modules() -> None:
    # An entry for a module that is gone or clean is stale: remove it.
    for rel in PENDING_VERIFY_SPLIT:
        path = PACKAGE / rel
        if path.exists() and not violations(path):
            pytest.fail(f"{rel} keeps to the storage boundary now: remove it from PENDING_VERIFY_SPLIT")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import asyncpg\n", "imports asyncpg"),
        ("from asyncpg import Connection\n", "imports from asyncpg"),
        ("from sqlalchemy import text\n", "text()"),
        ("async def f(c):\n    await c.fetchval('SELECT 1 FROM events WHERE log_id = $1', 1)\n", ".fetchval()"),
        ("async def f(c, t):\n    await c.execute(f'SELECT pg_advisory_xact_lock({t})')\n", ".execute()"),
        ("Q = '''\n    WITH x AS (SELECT 1) SELECT * FROM x\n'''\n", "string literal"),
        ("Q = 'DELETE FROM merkle_nodes'\n", "string literal"),
        ("from auditsvc_sdk._merkle import root\n", "private SDK module"),
        ("import auditsvc_sdk._wire\n", "private SDK module"),
    ],
)
def test_the_check_catches(tmp_path: Path, source: str, expected: str) -> None:
    module = tmp_path / "domain" / "leak.py"
    module.parent.mkdir()
    module.write_text(source)
    found = violations(module, tmp_path)
    assert any(expected in v for v in found), found


def test_the_check_passes_prose_and_finds_the_store_s_sql(tmp_path: Path) -> None:
    module = tmp_path / "domain" / "prose.py"
    module.parent.mkdir()
    module.write_text(
        '"""SELECT the events of one patient; a report reads them FROM events in the store."""\n'
        "def f(text: str) -> str:\n"
        '    """Update the set of logs."""\n'
        "    return text.read_text() + 'select a date from the calendar'\n"
    )
    assert violations(module, tmp_path) == []
    # The store is where SQL belongs, and the same rules find it there.
    assert any(violations(p) for p in STORE.glob("*.py"))
