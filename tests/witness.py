"""A minimal C2SP tlog-witness for tests: ``POST <prefix>/add-checkpoint``.

It implements the add-checkpoint call of c2sp.org/tlog-witness with the SDK's
pure functions and the standard library's HTTP server, in a thread:

    with start_witness(log.vkey) as (url, witness_vkey, stop):
        httpx.post(url + "/add-checkpoint", content=add_checkpoint_body(0, [], signed_note))

Request body::

    "old " <previous size> "\\n"
    base64(hash) "\\n"            (0 to 63 consistency proof lines)
    "\\n"
    <signed checkpoint note>

Answers, checked in the spec's order:

=====  ===========================================================================
400    malformed body, proof, note or checkpoint; old size above the checkpoint's
404    the checkpoint's origin is not a log this witness knows
403    no signature from the log's key verifies (or one from it fails)
409    old size is not the size last cosigned for the origin (body ``<size>\\n``,
       ``Content-Type: text/x.tlog.size``), or same size with another root
422    the consistency proof does not verify
200    the new checkpoint is recorded; body: the cosignature line(s)
=====  ===========================================================================
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from auditsvc_sdk._merkle import EMPTY_ROOT, ProofError, verify_consistency
from auditsvc_sdk._note import (
    Checkpoint,
    CheckpointError,
    CosignatureSigner,
    MalformedNoteError,
    NoteError,
    NoteVerifier,
    cosign,
    open_note,
)

MAX_PROOF_LINES = 63
MAX_BODY = 64 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], signed_note: str) -> bytes:
    """The request body of add-checkpoint."""
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n", signed_note]
    return "".join(lines).encode("utf-8")


class Answer(NamedTuple):
    status: int
    content_type: str
    body: bytes


def _text(status: int, message: str) -> Answer:
    return Answer(status, "text/plain; charset=utf-8", (message + "\n").encode())


@dataclass
class Witness:
    """The witness's state and logic, without HTTP: one latest checkpoint per origin."""

    signer: CosignatureSigner
    logs: dict[str, list[NoteVerifier]]  # origin -> the log's keys
    clock: Callable[[], float] = time.time
    state: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # origin -> (size, root)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (status, reason), for tests to read
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_checkpoint(self, body: bytes) -> Answer:
        answer = self._add_checkpoint(body)
        if answer.status != 200:
            self.refused.append((answer.status, answer.body.decode("utf-8", "replace").strip()))
        return answer

    def _add_checkpoint(self, body: bytes) -> Answer:
        # 1. Parse: old size line, proof lines, blank line, then the note.
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _text(400, "body is not UTF-8")
        head, sep, note = text.partition("\n\n")
        if not sep:
            return _text(400, "no blank line after the proof")
        old_line, *proof_lines = head.split("\n")
        old_digits = old_line.removeprefix("old ")
        if old_digits == old_line or not old_digits.isascii() or not old_digits.isdigit():
            return _text(400, "bad old size line")
        if (old_digits != "0" and old_digits.startswith("0")) or len(old_digits) > 20:
            return _text(400, "bad old size line")
        old_size = int(old_digits)
        if len(proof_lines) > MAX_PROOF_LINES:
            return _text(400, "too many proof lines")
        proof = []
        for line in proof_lines:
            try:
                h = base64.b64decode(line, validate=True)
            except ValueError:
                return _text(400, "bad proof line")
            if len(h) != 32 or base64.b64encode(h).decode() != line:
                return _text(400, "bad proof line")
            proof.append(h)

        # 2. The origin must be a known log; 3. its key must have signed.
        origin = note.partition("\n")[0]
        verifiers = self.logs.get(origin)
        if verifiers is None:
            return _text(404, "unknown log")
        try:
            opened = open_note(note, verifiers)
        except MalformedNoteError as exc:
            return _text(400, f"malformed note: {exc}")
        except NoteError as exc:  # unverified, or a known key's signature fails
            return _text(403, str(exc))
        try:
            checkpoint = Checkpoint.parse(opened.text)
        except CheckpointError as exc:
            return _text(400, str(exc))

        # 4. The old size cannot be above the new one.
        if old_size > checkpoint.size:
            return _text(400, "old size is above the checkpoint size")

        # 5-7. Atomically: old size matches, roots agree, proof verifies, record.
        with self._lock:
            latest_size, latest_root = self.state.get(origin, (0, EMPTY_ROOT))
            if old_size != latest_size:
                return Answer(409, SIZE_CONTENT_TYPE, f"{latest_size}\n".encode())
            if old_size == checkpoint.size and checkpoint.root_hash != latest_root:
                return _text(409, "same size, different root")
            try:
                verify_consistency(old_size, checkpoint.size, proof, latest_root, checkpoint.root_hash)
            except ProofError as exc:
                return _text(422, f"consistency proof: {exc}")
            self.state[origin] = (checkpoint.size, checkpoint.root_hash)
        line = cosign(opened.text, self.signer, int(self.clock()))
        return Answer(200, "text/plain; charset=utf-8", line.encode())


class _Handler(BaseHTTPRequestHandler):
    witness: Witness
    protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends

    def do_POST(self) -> None:
        if self.path != "/add-checkpoint":
            self._send(_text(404, "not found"))
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(_text(411, "Content-Length required"))
            return
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send(_text(413, "body too large"))
            return
        self._send(self.witness.add_checkpoint(self.rfile.read(length)))

    def do_GET(self) -> None:
        self._send(_text(405, "use POST"))

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass


class RunningWitness(NamedTuple):
    """A witness serving in a thread: ``url`` (the submission prefix), its
    cosignature verifier key ``vkey``, ``stop()``, and the ``witness`` itself."""

    url: str
    vkey: str
    stop: Callable[[], None]
    witness: Witness

    def __enter__(self) -> RunningWitness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_witness(
    log_vkeys: str | Iterable[str],
    *,
    name: str = "witness.example/w1",
    signer: CosignatureSigner | None = None,
    clock: Callable[[], float] = time.time,
) -> RunningWitness:
    """Serve a witness for the logs with these verifier keys (origin = key name) on 127.0.0.1."""
    logs: dict[str, list[NoteVerifier]] = {}
    for vkey in [log_vkeys] if isinstance(log_vkeys, str) else log_vkeys:
        verifier = NoteVerifier.from_vkey(vkey)
        logs.setdefault(verifier.name, []).append(verifier)
    witness = Witness(signer or CosignatureSigner.generate(name), logs, clock)
    handler = type("WitnessHandler", (_Handler,), {"witness": witness})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="tlog-witness", daemon=True)
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    host, port = server.server_address[:2]
    return RunningWitness(f"http://{host!s}:{port}", witness.signer.vkey, stop, witness)
