"""Settings, bound to environment variables (prefix ``LIFECYCLE_``) and frozen once read.

Everything that talks to Kafka reads :attr:`Settings.kafka_bootstrap_servers`
(``KAFKA_BOOTSTRAP_SERVERS``). Secrets are :class:`~pydantic.SecretStr` so they never appear in
``repr()`` or logs; they can also come from files (``LIFECYCLE_SECRETS_DIR``, one file per field).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.domain.periods import PeriodUnit

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LIFECYCLE_",
        frozen=True,
        extra="ignore",
        secrets_dir=os.environ.get("LIFECYCLE_SECRETS_DIR") or None,
    )

    data_dir: Path = Field(Path("data"), description="Local state: SQLite file, local broker's log dirs.")

    # --- Kafka ---------------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS"),
        description="host:port[,host:port]. Unset: the local broker (`lifecycle broker`) on 127.0.0.1:9092.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client of the product connects (docs/security.md)."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism, with SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret: never logged).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' certificates.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate, for brokers that ask for one.")
    kafka_ssl_keyfile: Path | None = Field(None, description="Private key of the client certificate.")

    topic_leads: str = Field("leads", description="Source topic of lead.* events.")
    topic_deals: str = Field("deals", description="Source topic of deal.* events.")
    topic_tickets: str = Field("tickets", description="Source topic of ticket.* and csat.* events.")
    topic_lifecycle: str = Field("lifecycle", description="Where stage transitions are published.")
    topic_dlq: str = Field("lifecycle-dlq", description="Dead-letter topic: refused messages with the reason.")
    topic_partitions: int = Field(4, ge=1, description="Partitions of the topics the worker creates.")
    app_id: str = Field("customer-lifecycle", description="Faust app id = Kafka consumer group.")
    kafka_fetch_max_wait_ms: int = Field(
        50, ge=0, le=1500, description="Longest a fetch waits for min bytes (Faust fixes 1500): latency when light."
    )
    kafka_fetch_min_bytes: int = Field(
        16384, ge=1, description="Bytes a fetch waits for (up to the max wait): fewer, larger fetches under load."
    )
    kafka_session_timeout: float = Field(
        10.0, gt=0, description="Seconds before a silent (crashed) worker's partitions move to the others."
    )

    # --- Processing ----------------------------------------------------------------------------
    batch_max: int = Field(2000, ge=1, description="Events per database transaction, at most.")
    batch_within: float = Field(
        0.01, gt=0, description="Seconds the agent collects before handing over (the writer merges what waits)."
    )
    at_risk_csat_threshold: float = Field(3.0, description="Mean of the last 3 CSAT scores below it: at_risk.")
    max_message_bytes: int = Field(65536, ge=1024, description="Larger messages are dead-lettered.")
    dead_letter_max_bytes: int = Field(
        1_000_000,
        ge=4096,
        description="Largest dead-letter record (key, value, headers, framing): a larger one has its value cut, "
        "with its original size and SHA-256 in headers. Must not exceed the dead-letter topic's "
        "`max.message.bytes` (the worker creates the topic with this plus headroom).",
    )
    state_cache_customers: int = Field(
        20_000,
        ge=0,
        description="Customers (and as many deals and tickets) whose committed state the pipeline "
        "keeps between batches; forgotten at a rebalance. 0: every batch reads all it touches from the database.",
    )
    pipeline_process: bool = Field(
        True, description="Run batches in a process of their own (a second core); false: in a worker thread."
    )

    # --- Storage -------------------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL. Unset: the SQLite file lifecycle.db in the data dir."
    )
    db_retry_max_seconds: float = Field(30.0, gt=0, description="Cap of the back-off while the database is down.")
    dedup_retention_days: float = Field(
        30.0,
        ge=0,
        description="Days an event's dedup record is kept past the later of its `occurred_at` and its processing, "
        "then pruned in the background; a redelivery after that is applied again. 0: kept forever.",
    )

    # --- Metrics and HTTP ----------------------------------------------------------------------
    web_host: str = Field("127.0.0.1", description="Bind address of /metrics and the customer API.")
    web_port: int = Field(6066, ge=0, le=65535, description="Port of /metrics and the customer API.")
    max_owner_labels: int = Field(100, ge=1, description="Distinct `owner` label values before 'other'.")
    quota_file: Path | None = Field(None, description="JSON file with sales quotas per owner and period.")
    quota_timezone: str = Field(
        "UTC",
        description="IANA time zone (e.g. `Europe/Paris`) whose midnights start and end the quota and retention "
        "periods.",
    )
    retention_period: PeriodUnit = Field(
        "month",
        description="The period (`month`, `quarter`, `year`) of the logo churn and revenue retention gauges: "
        "the current one against its start and the one before.",
    )
    retention_refresh_seconds: float = Field(
        60.0,
        ge=0,
        description="How long the retention gauges are reused between scrapes: they read every won deal "
        "before the period.",
    )

    # --- Webhook gateway (`lifecycle gateway`) ---------------------------------------------------
    gateway_host: str = Field("127.0.0.1", description="Bind address of the gateway.")
    gateway_port: int = Field(6068, ge=0, le=65535, description="Port of the gateway.")
    gateway_max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body the gateway reads; a larger one is a 413."
    )
    gateway_kafka_timeout_seconds: float = Field(
        10.0, gt=0, description="How long a request waits for Kafka's acknowledgement before a 503."
    )
    gateway_stripe_secret: SecretStr | None = Field(
        None, description="Stripe's endpoint signing secret (`whsec_…`); unset: `/webhooks/stripe` is off (404)."
    )
    gateway_zendesk_secret: SecretStr | None = Field(
        None,
        description="Zendesk's webhook signing secrets, comma-separated: one per webhook (events, triggers; "
        "docs/gateway/zendesk.md); unset: `/webhooks/zendesk` is off (404).",
    )
    gateway_pipedrive_username: SecretStr | None = Field(
        None, description="HTTP Basic user name of Pipedrive's webhooks; unset: `/webhooks/pipedrive` is off (404)."
    )
    gateway_pipedrive_password: SecretStr | None = Field(
        None, description="HTTP Basic password of Pipedrive's webhooks."
    )
    gateway_token: SecretStr | None = Field(
        None, description="Bearer token of `POST /events` (native and CloudEvents); unset: it is off (404)."
    )
    gateway_pipedrive_customer: Literal["organization", "person"] = Field(
        "organization", description="Which Pipedrive object is the customer (its id the `customer_id`)."
    )
    gateway_zendesk_customer: Literal["organization", "requester"] = Field(
        "organization", description="Which Zendesk object is the customer: the ticket's organization or requester."
    )

    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="The worker's log level.")

    @field_validator("quota_timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        """An unknown zone stops the start-up here, not at the first scrape."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a directory, e.g. "America"
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. UTC, Europe/Paris)") from exc
        return value

    @cached_property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or DEFAULT_BOOTSTRAP

    @cached_property
    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'lifecycle.db').resolve()}"

    @property
    def source_topics(self) -> dict[str, str]:
        """Contract topic name -> configured topic name."""
        return {"leads": self.topic_leads, "deals": self.topic_deals, "tickets": self.topic_tickets}

    def secret_values(self) -> list[str]:
        """What must never be logged: passwords and the gateway's secrets, and the database URL's password."""
        from sqlalchemy.engine import make_url

        secrets = (
            self.kafka_sasl_password,
            self.gateway_stripe_secret,
            self.gateway_zendesk_secret,
            self.gateway_pipedrive_password,
            self.gateway_token,
        )
        values = [secret.get_secret_value() for secret in secrets if secret is not None]
        if self.database_url is not None:
            password = make_url(self.database_url.get_secret_value()).password
            values += [str(password)] if password else []
        return values


def reference() -> str:
    """docs/configuration.md, made from the fields themselves: the page cannot drift from the code."""
    lines = [
        "# Configuration",
        "",
        "Every setting of the worker and the tools, read from environment variables once at start.",
        "Generated from `streams/settings.py` by `lifecycle settings --markdown`; do not edit by hand.",
        "Secrets can also come from files: `LIFECYCLE_SECRETS_DIR`, one file per field, named as the field.",
        "",
        "| Variable | Default | Description |",
        "| --- | --- | --- |",
    ]
    prefix = Settings.model_config.get("env_prefix", "")
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [f"{prefix}{name}".upper()]
        variables = " or ".join(f"`{choice}`" for choice in names)
        default = "unset" if field.default is None else f"`{field.default}`"
        lines.append(f"| {variables} | {default} | {field.description or ''} |")
    return "\n".join(lines) + "\n"
