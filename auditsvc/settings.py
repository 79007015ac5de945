"""Configuration: one ``Settings``, read from ``AUDITSVC_*`` environment
variables (and a ``.env`` file when present), built once per process.

Every variable, its default and meaning is listed in README.md.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class WitnessConfig(BaseModel):
    url: str = Field(pattern=r"^https?://")
    vkey: str = Field(min_length=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDITSVC_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    """``production`` refuses generated secrets and the embedded database."""

    database_url: str | None = None
    """Owner DSN (migrations, token administration, verify). Unset: embedded PostgreSQL."""

    runtime_database_url: str | None = None
    """DSN the API serves with, as the least-privileged runtime role. Unset:
    the owner DSN with its user swapped for ``runtime_role`` (trust or peer
    authentication, as in the embedded server)."""

    runtime_role: str = Field(default="auditsvc_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    data_dir: Path = Path(".auditsvc")
    migrations_dir: Path = REPO_ROOT / "migrations"
    migrate_on_start: bool = True
    """``serve`` applies migrations before serving (off when a deploy job does it)."""

    secret_key: SecretStr | None = None
    """Base64 of 32 random bytes; identifier and token HMAC keys derive from
    it. Unset in development: generated once into ``data_dir/secret.key``."""

    identifier_keys: SecretStr | None = None
    """Patient identifier encryption keys (AES-256-GCM) as
    ``<key id>:<base64 of 32 bytes>``, comma-separated, the first sealing new
    writes. Unset: the keyring file ``identifier_keys_file``."""
    identifier_keys_file: Path | None = None
    """The identifier keyring file (JSON; ``auditsvc keys rotate`` adds a key).
    Unset: ``data_dir/identifier-keys.json``, created on first use in
    development; production requires it or ``identifier_keys``."""

    log_name: str = Field(default="auditsvc.local/log", min_length=1, max_length=200)
    """The log's origin; it is bound into the chain's genesis value."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1

    max_body_bytes: int = 4 * 1024 * 1024
    max_batch_events: int = 1000
    group_commit_max_events: int = 5000
    keepalive_max_requests: int = 8
    """Ask a client to reconnect after this many requests on one connection,
    so load spreads over worker processes (0: never)."""
    db_pool_size: int = 10
    db_statement_timeout_ms: int = 30_000

    checkpoint_key_file: Path | None = None
    """The Ed25519 checkpoint signing key (PKCS#8 PEM, or Go's
    ``PRIVATE+KEY+...`` form). Unset: ``data_dir/signing.key``, created on
    first start in development. Replacing the file rotates the key: new
    checkpoints are signed with the new one, old ones stay verifiable."""
    checkpoint_every_events: int = Field(default=10_000, ge=1)
    """Sign a checkpoint once this many events arrived since the last one..."""
    checkpoint_interval_seconds: float = Field(default=60.0, gt=0)
    """...or when this many seconds passed and the log grew at all."""
    checkpoint_dir: Path | None = None
    """Directory sink: every checkpoint is written there as ``<size>.note``
    (for a WORM / object-lock mount). Unset: none."""
    checkpoint_webhook_url: str | None = None
    """HTTPS webhook sink: every checkpoint is POSTed there (text/plain)."""
    witnesses: list[WitnessConfig] = []
    """C2SP tlog-witness witnesses that cosign each checkpoint, as JSON:
    ``[{"url": "https://witness.example/", "vkey": "<cosignature vkey>"}]``."""

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.env == "production":
            missing = [
                name
                for name, value in (
                    ("AUDITSVC_DATABASE_URL", self.database_url),
                    ("AUDITSVC_SECRET_KEY", self.secret_key),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"AUDITSVC_ENV=production requires {', '.join(missing)}")
        return self

    @property
    def embedded(self) -> bool:
        return self.database_url is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
