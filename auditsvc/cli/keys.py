"""``auditsvc keys``: the patient identifier encryption keys."""

from __future__ import annotations

import typer

from ..sealing import EnvKeyProvider, FileKeyProvider, SealError, key_provider, keyring_path, rotate_keyring
from ._common import console, fail, settings

app = typer.Typer(help="Patient identifier encryption keys (AES-256-GCM).", no_args_is_help=True)


@app.command()
def rotate() -> None:
    """Start a new identifier key: new writes are sealed with it; every old key
    stays in the keyring and still opens what it sealed. Running services pick
    it up within a second."""
    s = settings()
    if s.identifier_keys is not None:
        fail(
            "the identifier keys come from AUDITSVC_IDENTIFIER_KEYS: put a new '<key id>:<base64 key>' first "
            "in that list (keep the old ones after it) and restart the service"
        )
    path = keyring_path(s)
    try:
        if not path.exists():
            key_provider(s)  # development: creates the keyring with its first key; production: explains
        new_id, ids = rotate_keyring(path)
    except SealError as exc:
        fail(str(exc))
    console.print(f"identifier key {new_id} now seals new writes; keys in {path}: {', '.join(ids)}", highlight=False)


@app.command("list")
def list_keys() -> None:
    """The identifier key ids and which one seals new writes (never the keys)."""
    s = settings()
    try:
        provider = key_provider(s)
        current, _ = provider.current()
    except SealError as exc:
        fail(str(exc))
    ids = provider.key_ids() if isinstance(provider, FileKeyProvider | EnvKeyProvider) else [current]
    source = "AUDITSVC_IDENTIFIER_KEYS" if s.identifier_keys is not None else str(keyring_path(s))
    for key_id in ids:
        console.print(f"{key_id}{'  (current)' if key_id == current else ''}", highlight=False)
    console.print(f"from {source}", highlight=False, style="dim")
