"""Where checkpoints go once signed, so that they leave the database.

* ``DirectorySink``: ``<dir>/<tree size>.note`` written once (never
  replaced) and ``<dir>/latest.note``; point it at a WORM / object-lock mount.
* ``WebhookSink``: POST the note (``text/plain``) to an HTTPS endpoint.
* ``WitnessSink``: C2SP ``tlog-witness``: POST ``/add-checkpoint`` with the
  size the witness last saw and a consistency proof from it; the witness
  answers with its cosignature, which is verified and stored.

A sink that fails is retried at the next round (the checkpointer calls
``publish`` for checkpoints a sink has not taken yet); failures are logged
without the note's content and counted.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import httpx
from auditsvc_sdk.note import CosignatureVerifier, NoteError, NoteSignature, verify_cosignature

from ..store import tree as store
from ..store.session import Connection
from .tree import consistency_proof

log = logging.getLogger("auditsvc.checkpoints")

USER_AGENT = "auditsvc-checkpoints/1"


class SinkError(RuntimeError):
    pass


class CheckpointSink(Protocol):
    name: str

    async def publish(self, conn: Connection, log_id: int, tree_size: int, note: str) -> None:
        """Publish the checkpoint of ``tree_size``; raise ``SinkError`` to be retried."""


def _body_of(note: str) -> str:
    return note[: note.rfind("\n\n") + 1]


class DirectorySink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = f"directory:{directory}"

    def has(self, tree_size: int) -> bool:
        return (self.directory / f"{tree_size}.note").exists()

    async def publish(self, conn: Connection, log_id: int, tree_size: int, note: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{tree_size}.note"
            if not path.exists():
                _write_atomically(path, note.encode())
            _write_atomically(self.directory / "latest.note", note.encode())
        except OSError as exc:
            raise SinkError(f"cannot write to {self.directory}: {exc.strerror}") from None


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class WebhookSink:
    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.name = f"webhook:{httpx.URL(url).host}"
        self._client = client

    async def publish(self, conn: Connection, log_id: int, tree_size: int, note: str) -> None:
        try:
            response = await self._client.post(
                self.url,
                content=note.encode(),
                headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": USER_AGENT},
            )
        except httpx.HTTPError as exc:
            raise SinkError(f"webhook unreachable: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise SinkError(f"webhook answered HTTP {response.status_code}")


class WitnessSink:
    """A C2SP tlog-witness client for one witness."""

    def __init__(self, url: str, vkey: str, client: httpx.AsyncClient) -> None:
        self.url = url.rstrip("/") + "/add-checkpoint"
        self.verifier = CosignatureVerifier.from_vkey(vkey)
        self.name = f"witness:{self.verifier.name}"
        self._client = client

    async def publish(self, conn: Connection, log_id: int, tree_size: int, note: str) -> None:
        if await store.has_cosignature(conn, log_id, tree_size, self.verifier.name):
            return
        old = await store.last_cosigned_size(conn, log_id, self.verifier.name) or 0
        for _ in range(2):  # once more when the witness knows a different size
            if old > tree_size:
                return  # the witness has a newer checkpoint of ours already
            proof = await consistency_proof(conn, log_id, old, tree_size)
            body = f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n" + note
            try:
                response = await self._client.post(self.url, content=body.encode(), headers={"User-Agent": USER_AGENT})
            except httpx.HTTPError as exc:
                raise SinkError(f"{self.name} unreachable: {type(exc).__name__}") from None
            if response.status_code == 409 and response.headers.get("content-type", "").startswith("text/x.tlog.size"):
                text = response.text.strip()
                if not text.isdigit():
                    raise SinkError(f"{self.name} answered 409 without a tree size")
                old = int(text)
                continue
            if response.status_code != 200:
                raise SinkError(f"{self.name} refused the checkpoint: HTTP {response.status_code}")
            await self._store(conn, log_id, tree_size, note, response.text)
            return
        raise SinkError(f"{self.name} keeps disagreeing about the last size it saw")

    async def _store(self, conn: Connection, log_id: int, tree_size: int, note: str, answer: str) -> None:
        body = _body_of(note)
        for line in answer.splitlines():
            if not line.strip():
                continue
            try:
                sig = NoteSignature.parse(line)
                if (sig.name, sig.key_id) != (self.verifier.name, self.verifier.key_id):
                    continue
                verify_cosignature(body, line, self.verifier)
            except NoteError as exc:
                raise SinkError(f"{self.name} returned a bad cosignature: {exc}") from None
            await store.insert_cosignature(conn, log_id, tree_size, self.verifier.name, line.rstrip("\n") + "\n")
            return
        raise SinkError(f"{self.name} answered without its cosignature")


async def publish_all(
    sinks: list[CheckpointSink],
    conn: Connection,
    log_id: int,
    tree_size: int,
    note: str,
    on_failure: Callable[[str, str], Awaitable[None] | None] | None = None,
) -> list[str]:
    """Publish to every sink; returns the names of those that failed."""
    failed = []
    for sink in sinks:
        try:
            await sink.publish(conn, log_id, tree_size, note)
        except SinkError as exc:
            failed.append(sink.name)
            log.warning("checkpoint %d not published to %s: %s (retried later)", tree_size, sink.name, exc)
            if on_failure is not None:
                result = on_failure(sink.name, str(exc))
                if result is not None:
                    await result
    return failed
