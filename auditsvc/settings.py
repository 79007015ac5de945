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

# Asymmetric JWS algorithms only: "none" and HS* (an HMAC keyed with the
# public key) are not even expressible in the settings.
OidcAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
HumanRole = Literal["privacy_officer", "auditor", "admin"]


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
    owner_role: str = Field(default="auditsvc_owner", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """The NOLOGIN role that owns the schema (migration 0005); the owner DSN's
    login is granted it and migrations run under ``SET ROLE`` to it."""
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

    # TLS on the API listener itself (auditsvc/api/tls.py; `serve --tls-*`).
    tls_cert_file: Path | None = None
    """Server certificate chain (PEM). With ``tls_key_file``: serve HTTPS only."""
    tls_key_file: Path | None = None
    """The server certificate's private key (PEM, unencrypted)."""
    tls_client_ca_file: Path | None = None
    """CA bundle (PEM) that client certificates must chain to (mTLS)."""
    tls_client_auth: Literal["none", "optional", "emitters", "required"] | None = None
    """Client certificates: ``none`` not asked for; ``optional`` asked for and
    verified when sent; ``emitters`` (the default with a client CA) as
    optional, and ``POST /v1/events`` refused without one; ``required`` no
    handshake without one. A certificate from another CA always fails the handshake."""

    # ATNA audit messages over syslog (auditsvc/syslog/, docs/atna.md); each listener off unless its port is set.
    syslog_host: str = "127.0.0.1"
    """Bind address of the syslog listeners (``0.0.0.0`` to take senders from the network)."""
    syslog_tls_port: int | None = Field(default=None, ge=0, le=65535)
    """RFC 5425 syslog over TLS (octet counting); IANA's port is 6514."""
    syslog_tcp_port: int | None = Field(default=None, ge=0, le=65535)
    """RFC 6587 plain TCP (octet counting or LF / NUL / CRLF trailers), for trusted networks."""
    syslog_udp_port: int | None = Field(default=None, ge=0, le=65535)
    """RFC 5426 UDP; one message per datagram; drops are counted."""
    syslog_tls_cert_file: Path | None = None
    """The TLS listener's certificate chain (PEM). Unset: ``tls_cert_file``."""
    syslog_tls_key_file: Path | None = None
    """Its private key (PEM). Unset: ``tls_key_file``."""
    syslog_tls_client_ca_file: Path | None = None
    """CA bundle that senders' client certificates must chain to. Unset: ``tls_client_ca_file``."""
    syslog_tls_client_auth: Literal["required", "optional"] = "required"
    """``required``: no handshake without a client certificate from the client CA;
    ``optional``: a sender without one is treated as on plain TCP (source from the message)."""
    syslog_cn_map: dict[str, list[str]] = {}
    """Client certificate subject CN -> further source systems it may write as, as JSON
    (``{"pacs-01": ["pacs", "ris"]}``); the CN itself is always allowed."""
    syslog_max_message_bytes: int = Field(default=256 * 1024, ge=64 * 1024, le=16 * 1024 * 1024)
    """Longest syslog message taken (frame or datagram); a longer TCP frame closes its connection."""
    syslog_queue_messages: int = Field(default=2000, ge=1)
    """Messages received and not yet appended; when full, TCP/TLS connections stop being read."""
    syslog_batch_messages: int = Field(default=200, ge=1, le=5000)
    """Messages appended together in one batch."""
    syslog_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """With Prometheus metrics on, the listener process serves its own at
    ``GET /metrics`` on this port (bound to ``syslog_host``); OTLP needs no port."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_batch_events: int = 1000
    # Structure of JSON bodies, checked before parsing (auditsvc/api/limits.py).
    max_json_depth: int = Field(default=32, ge=2, le=60)
    max_json_array_items: int = Field(default=1000, ge=1)
    """Longest array in a body (never less than ``max_batch_events``)."""
    max_json_object_keys: int = Field(default=64, ge=1)
    group_commit_max_events: int = 5000
    partition_rows: int = Field(default=10_000_000, ge=100, le=10**12)
    """Rows per partition of ``events`` (partitioned by ``seq`` range), for
    the partitions the service creates from now on; it keeps one
    partition's worth of room ahead of the head."""
    keepalive_max_requests: int = 8
    """Ask a client to reconnect after this many requests on one connection,
    so load spreads over worker processes (0: never)."""
    db_pool_size: int = 10
    db_statement_timeout_ms: int = 30_000

    break_glass_review_days: int = Field(default=7, ge=0, le=36500)
    """A break-glass access unreviewed for longer is overdue (domain/reviews.py)."""

    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line, with trace and span ids."""
    prometheus_metrics: bool = False
    """Serve the service's metrics at ``GET /metrics`` on the API port
    (Prometheus text format); needs one worker process per pod."""

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

    # OIDC/JWT bearer tokens for human users (auditsvc/domain/oidc.py, docs/roles.md).
    oidc_issuer: str | None = None
    """The ``iss`` every accepted JWT carries. Set (with ``oidc_audience`` and
    one of ``oidc_jwks_url`` / ``oidc_jwks_file``) to accept the identity
    provider's tokens for privacy officers, auditors and admins. Unset: off."""
    oidc_audience: str | None = None
    """The ``aud`` an accepted JWT must name (this service's client id)."""
    oidc_jwks_url: str | None = Field(default=None, pattern=r"^https?://")
    """The identity provider's JWKS; cached, fetched again when stale or when
    a token names an unknown ``kid`` (at most every ``oidc_jwks_min_refresh_seconds``)."""
    oidc_jwks_file: Path | None = None
    """A JWKS file instead of a URL (read again when stale or on an unknown ``kid``)."""
    oidc_algorithms: list[OidcAlgorithm] = ["RS256", "ES256", "EdDSA"]
    """Accepted JWS algorithms: asymmetric only; ``none`` and HS* are refused."""
    oidc_roles_claim: str = Field(default="roles", min_length=1)
    """The claim holding the user's roles (a list or one string); a dotted path
    such as ``realm_access.roles`` reaches into nested objects."""
    oidc_role_map: dict[str, HumanRole] = {
        "privacy_officer": "privacy_officer",
        "auditor": "auditor",
        "admin": "admin",
    }
    """Roles-claim value -> auditsvc role, as JSON. Never ``emitter``: emitters
    are systems bound to source systems, and use API tokens."""
    oidc_actor_claim: str = Field(default="preferred_username", min_length=1)
    """The claim naming the user in the audit of their reads (``sub`` when absent)."""
    oidc_discovery_url: str | None = Field(default=None, pattern=r"^https?://")
    """The provider's OpenID configuration, for the console's "Sign in with your
    organisation" (authorization code + PKCE). Unset: ``<issuer>/.well-known/openid-configuration``."""
    oidc_client_secret: SecretStr | None = None
    """The console's client secret at the provider, when it is a confidential
    client (client id: ``oidc_audience``). Unset: a public client (PKCE only)."""
    oidc_leeway_seconds: int = Field(default=60, ge=0, le=300)
    """Clock skew allowed when checking ``exp``, ``nbf`` and ``iat``."""
    oidc_jwks_cache_seconds: float = Field(default=600.0, gt=0)
    oidc_jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)

    # Per-credential token buckets, per process (auditsvc/api/ratelimit.py); 0 turns one off.
    rate_limit_emitter_per_second: float = Field(default=500.0, ge=0)
    """Requests (not events) per second one emitter token may make, sustained."""
    rate_limit_emitter_burst: int = Field(default=1000, ge=1)
    rate_limit_human_per_second: float = Field(default=50.0, ge=0)
    """Requests per second one privacy officer / auditor / admin credential may make."""
    rate_limit_human_burst: int = Field(default=200, ge=1)

    coverage_silent_after: str = Field(default="24h", pattern=r"^[1-9][0-9]{0,5}[smhd]?$")
    """The coverage report flags a system or emitter silent after this long without an event
    (``90m``, ``24h``, ``7d``; a bare number is seconds); ``?silent_after=`` overrides it."""

    # The web console (auditsvc/api/console, docs/console/README.md).
    console_idle_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    """A console session unused this long is signed out (HIPAA 164.312(a)(2)(iii) automatic logoff)."""
    console_session_hours: float = Field(default=12.0, gt=0, le=7 * 24)
    """A console session ends this long after sign-in, however active."""

    fhir_patient_system: str | None = Field(default=None, min_length=1, max_length=256)
    """The patient identifier system whose values are FHIR Patient ids: the FHIR
    search's ``patient=Patient/<id>`` finds identifier (this system, id); unset, it is refused."""

    # Alerts on the flow of PHI (domain/alerts.py).
    alert_webhook_url: str | None = None
    """POST each alert here (JSON, no PHI), signed with ``alert_webhook_secret``; unset: alerts are kept, not sent."""
    alert_webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key of the ``X-Auditsvc-Signature`` header; required with a webhook URL."""
    alert_interval_seconds: float = Field(default=60.0, ge=0)
    """How often the service looks for new alerts and delivers them; 0 turns the background pass off."""
    alert_baa_expiring_days: int = Field(default=30, ge=0, le=3650)
    """A BAA expiring within this many days raises a ``baa_expiring`` alert."""

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        configured = (self.oidc_issuer, self.oidc_audience, self.oidc_jwks_url, self.oidc_jwks_file)
        if all(value is None for value in configured):
            return self
        if not self.oidc_issuer or not self.oidc_audience:
            raise ValueError("OIDC needs both AUDITSVC_OIDC_ISSUER and AUDITSVC_OIDC_AUDIENCE")
        if (self.oidc_jwks_url is None) == (self.oidc_jwks_file is None):
            raise ValueError("OIDC needs exactly one of AUDITSVC_OIDC_JWKS_URL and AUDITSVC_OIDC_JWKS_FILE")
        if self.env == "production" and self.oidc_jwks_url and not self.oidc_jwks_url.startswith("https://"):
            raise ValueError("AUDITSVC_ENV=production requires an https:// AUDITSVC_OIDC_JWKS_URL")
        if self.env == "production" and self.oidc_discovery_url and not self.oidc_discovery_url.startswith("https://"):
            raise ValueError("AUDITSVC_ENV=production requires an https:// AUDITSVC_OIDC_DISCOVERY_URL")
        if not self.oidc_algorithms:
            raise ValueError("AUDITSVC_OIDC_ALGORITHMS must name at least one algorithm")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None

    @model_validator(mode="after")
    def _alert_webhook_signed(self) -> Settings:
        if self.alert_webhook_url is None:
            return self
        if self.alert_webhook_secret is None:
            raise ValueError("AUDITSVC_ALERT_WEBHOOK_URL needs AUDITSVC_ALERT_WEBHOOK_SECRET: alerts are sent signed")
        if not self.alert_webhook_url.startswith(("https://", "http://")):
            raise ValueError("AUDITSVC_ALERT_WEBHOOK_URL must be an http(s):// URL")
        if self.env == "production" and not self.alert_webhook_url.startswith("https://"):
            raise ValueError("AUDITSVC_ENV=production requires an https:// AUDITSVC_ALERT_WEBHOOK_URL")
        return self

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
