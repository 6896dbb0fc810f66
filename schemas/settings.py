"""The shape of tmpmail's configuration: one pydantic-settings class, read from ``TMPMAIL_*``.

Every process (ingest, streams, api, the launcher) builds one ``Settings`` at start-up
with :func:`load_settings`, which turns a validation error into a message that says
which variable to fix. Nothing reads the environment anywhere else.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.keys import normalise_domain

#: The checkout this package was installed from (editable install), or the working dir.
_CHECKOUT = Path(__file__).resolve().parent.parent

DEFAULT_DOMAINS = ("tmpmail.test", "quickbox.test", "burner.test")

MIB = 1024 * 1024
#: Room over the largest mail in one Kafka record, for our ``Received:`` line and the
#: envelope header. Producers, topics and the broker all allow ``max_record_bytes``.
RECORD_OVERHEAD = MIB


class Settings(BaseSettings):
    """All of tmpmail's settings. Environment variables are ``TMPMAIL_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TMPMAIL_", extra="ignore")

    # --- state -------------------------------------------------------------------------
    state_dir: Path = Field(
        default=_CHECKOUT / ".tmpmail",
        description="Data, logs and pid files of every local process live under this directory.",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- edges -------------------------------------------------------------------------
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    hostname: str = Field(default="mx.tmpmail.test", description="Our name in SMTP banners.")
    domains: Annotated[list[str], NoDecode] = Field(
        default=list(DEFAULT_DOMAINS),
        description="Mail domains we accept, comma-separated in the environment.",
    )
    max_message_bytes: int = Field(default=10 * MIB, ge=1024, le=64 * MIB)

    # --- smtp limits (ingest) ------------------------------------------------------------
    smtp_tls_cert: Path | None = Field(
        default=None, description="PEM certificate chain: STARTTLS is offered when set."
    )
    smtp_tls_key: Path | None = Field(default=None, description="PEM private key of the cert.")
    ingest_processes: int = Field(
        default=1, ge=1, le=64, description="Ingest processes sharing the SMTP port."
    )
    smtp_max_connections: int = Field(
        default=1000, ge=1, le=100_000, description="Open SMTP connections per process."
    )
    ingest_busy_linger_ms: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Linger of the second producer an ingest process publishes through while "
        "it has ingest_busy_in_flight mails awaiting their ack (batches under load); 0: one "
        "producer, no linger ever.",
    )
    ingest_busy_in_flight: int = Field(
        default=4,
        ge=1,
        le=100_000,
        description="Mails awaiting their ack in one ingest process from which the next one "
        "goes through the lingering producer.",
    )
    smtp_max_connections_per_client: int = Field(
        default=20, ge=1, le=100_000, description="Open connections from one client address."
    )
    smtp_max_recipients: int = Field(default=100, ge=1, le=10_000)
    smtp_recipient_budget_bytes: int = Field(
        default=200 * MIB,
        ge=1024,
        description="A mail's size times its recipients may not exceed this.",
    )
    smtp_max_command_bytes: int = Field(
        default=2048, ge=512, le=65536, description="Longest command line, CRLF included."
    )
    smtp_max_bad_commands: int = Field(
        default=10, ge=1, le=1000, description="Bad commands before a session is closed."
    )
    smtp_idle_timeout_s: float = Field(
        default=300.0, gt=0, description="How long a client may stay silent (RFC 5321: 5 min)."
    )
    smtp_data_timeout_s: float = Field(
        default=600.0, gt=0, description="How long one DATA may take in all, start to end."
    )

    # --- kafka -------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: int = Field(
        default=9093, ge=1, le=65535, description="KRaft controller port of the local broker."
    )
    topic_partitions: int = Field(default=6, ge=1, le=1024)
    raw_mail_retention_days: float = Field(
        default=8.0, gt=0, description="How long raw mail stays on Kafka for replay."
    )
    produce_timeout_s: float = Field(default=10.0, gt=0, le=120)
    streams_processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Streams workers `up` runs, one consumer group: the raw-mail partitions "
        "are split between them (at most TMPMAIL_TOPIC_PARTITIONS; a worker beyond that would "
        "have none).",
    )
    streams_session_timeout_s: float = Field(
        default=30.0,
        ge=6,
        le=300,
        description="How long the broker waits for a silent streams worker before its "
        "partitions move to another (Kafka's group.min.session.timeout.ms is 6 s).",
    )

    # --- storage -----------------------------------------------------------------------
    store: Literal["sqlite", "mongodb"] = "sqlite"
    sqlite_path: Path | None = Field(
        default=None, description="SQLite file; defaults to <state_dir>/data/tmpmail.sqlite3."
    )
    mongo_url: SecretStr = SecretStr("mongodb://127.0.0.1:27017/")
    mongo_database: str = "tmpmail"

    # --- lifetimes ---------------------------------------------------------------------
    message_ttl_days: float = Field(default=7.0, gt=0)
    mailbox_ttl_days: float = Field(default=15.0, gt=0)
    mailbox_cooldown_days: float = Field(default=30.0, ge=0)
    purge_interval_s: float = Field(default=300.0, gt=0)

    # --- api ---------------------------------------------------------------------------
    cookie_secure: bool = Field(
        default=False, description="Mark the token cookie Secure (set true behind HTTPS)."
    )
    sse_queue_size: int = Field(default=64, ge=1, le=10_000)
    sse_max_per_mailbox: int = Field(
        default=8, ge=1, le=1000, description="Open live streams of one mailbox (429 past it)."
    )
    sse_max_connections: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Open live streams per API process."
    )
    sse_send_timeout_s: float = Field(
        default=15.0, gt=0, le=300, description="A live client that takes longer is dropped."
    )
    url_secret: SecretStr | None = Field(
        default=None,
        description="Key of the short-lived signed URLs of message HTML; when unset, each "
        "API process makes one at start (set it when several API replicas serve one site).",
    )

    # --- mailbox contract (api) -----------------------------------------------------------
    extend_min_messages: int = Field(
        default=3, ge=0, description="Messages a mailbox must hold before it may be extended."
    )
    extend_min_age_days: float = Field(
        default=2.0,
        ge=0,
        description="Or: a mailbox this old, visited in the last day, may be extended.",
    )
    mailbox_max_lifetime_days: float = Field(
        default=60.0, gt=0, description="No extension takes a mailbox past this age."
    )
    create_rate_per_minute: int = Field(
        default=10, ge=1, le=100_000, description="Mailboxes one client address may create."
    )
    token_failures_per_minute: int = Field(
        default=30, ge=1, le=100_000, description="Unknown tokens one client address may try."
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins besides http_url's that may send state-changing requests "
        "(comma-separated, e.g. https://mail.example.org).",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Peer IPs whose X-Forwarded-Proto/-For are believed (comma-separated).",
    )

    @field_validator("domains", mode="before")
    @classmethod
    def _split_domains(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        return value

    @field_validator("allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _normalise_origins(cls, value: list[str]) -> list[str]:
        origins = []
        for origin in value:
            parts = urlsplit(origin.strip())
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
                raise ValueError(f"{origin!r} is not an origin like https://host[:port]")
            origins.append(f"{parts.scheme}://{parts.netloc}".lower())
        return origins

    @field_validator("domains")
    @classmethod
    def _normalise_domains(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one mail domain is required")
        seen: list[str] = []
        for domain in value:
            normalised = normalise_domain(domain)
            if "." not in normalised:
                raise ValueError(f"{domain!r} is not a fully qualified domain")
            if normalised not in seen:
                seen.append(normalised)
        return seen

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value

    @field_validator("mongo_url")
    @classmethod
    def _check_mongo_url(cls, value: SecretStr) -> SecretStr:
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in ("mongodb", "mongodb+srv"):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        self.state_dir = self.state_dir.expanduser().resolve()
        if self.sqlite_path is None:
            self.sqlite_path = self.state_dir / "data" / "tmpmail.sqlite3"
        if self.smtp_port == self.http_port and self.smtp_host == self.http_host:
            raise ValueError("TMPMAIL_SMTP_PORT and TMPMAIL_HTTP_PORT must differ")
        if (self.smtp_tls_cert is None) != (self.smtp_tls_key is None):
            raise ValueError("set both TMPMAIL_SMTP_TLS_CERT and TMPMAIL_SMTP_TLS_KEY, or neither")
        if self.message_ttl_days > self.mailbox_ttl_days + self.mailbox_cooldown_days:
            raise ValueError(
                "TMPMAIL_MESSAGE_TTL_DAYS must not exceed TMPMAIL_MAILBOX_TTL_DAYS + "
                "TMPMAIL_MAILBOX_COOLDOWN_DAYS: mail would outlive the hold on its address, "
                "into the next owner's mailbox"
            )
        too_many = too_many_streams_processes(self.streams_processes, self.topic_partitions)
        if too_many:
            raise ValueError(too_many)
        if self.mailbox_max_lifetime_days < self.mailbox_ttl_days:
            raise ValueError(
                "TMPMAIL_MAILBOX_MAX_LIFETIME_DAYS must be at least TMPMAIL_MAILBOX_TTL_DAYS"
            )
        return self

    # --- derived values -----------------------------------------------------------------
    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.split(",")[0].rpartition(":")[2])

    @property
    def mongo_port(self) -> int:
        return urlsplit(self.mongo_url.get_secret_value()).port or 27017

    @property
    def message_ttl(self) -> timedelta:
        return timedelta(days=self.message_ttl_days)

    @property
    def mailbox_ttl(self) -> timedelta:
        return timedelta(days=self.mailbox_ttl_days)

    @property
    def mailbox_cooldown(self) -> timedelta:
        return timedelta(days=self.mailbox_cooldown_days)

    @property
    def mailbox_max_lifetime(self) -> timedelta:
        return timedelta(days=self.mailbox_max_lifetime_days)

    @property
    def extend_min_age(self) -> timedelta:
        return timedelta(days=self.extend_min_age_days)

    @property
    def origins(self) -> frozenset[str]:
        """The origins that may send state-changing requests: ours and the allowed ones."""
        return frozenset({self.http_url.lower(), *self.allowed_origins})

    @property
    def raw_mail_retention_ms(self) -> int:
        return int(self.raw_mail_retention_days * 86_400_000)

    @property
    def max_record_bytes(self) -> int:
        """The largest Kafka record: the largest mail plus :data:`RECORD_OVERHEAD`."""
        return self.max_message_bytes + RECORD_OVERHEAD

    def streams_ready_file(self, index: int) -> Path:
        """Written by streams worker ``index`` once it has its partitions and its table
        (see deploy.health), removed while it has none."""
        return self.run_dir / f"streams-{index}.ready"

    def ingest_ready_file(self, index: int) -> Path:
        """Written by ingest process ``index`` once it listens, removed when it stops."""
        return self.run_dir / f"ingest-{index}.ready"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def http_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"


def too_many_streams_processes(processes: int, partitions: int) -> str | None:
    """Why ``processes`` streams workers cannot share ``partitions`` raw-mail partitions,
    or None if they can."""
    if processes <= partitions:
        return None
    return (
        f"{processes} streams workers is more than TMPMAIL_TOPIC_PARTITIONS ({partitions}): "
        "a worker without a raw-mail partition has nothing to do and is never ready. "
        f"Run at most {partitions}."
    )


class SettingsError(SystemExit):
    """Raised by :func:`load_settings` with a message that names what to fix."""


def load_settings(**overrides: object) -> Settings:
    """Build the settings, or exit with one line per bad ``TMPMAIL_*`` variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = ["tmpmail: invalid configuration:"]
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            env = f"TMPMAIL_{field.upper()}" if error["loc"] else "TMPMAIL_*"
            lines.append(f"  {env}: {error['msg']}")
        lines.append("Fix the variable(s) above (see README.md, 'Configuration') and retry.")
        raise SettingsError("\n".join(lines)) from None
