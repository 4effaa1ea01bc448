"""How every Kafka client of the product authenticates: read from the settings once, here.

kafka-python (publisher, admin, dead letters, rebuild), Faust's aiokafka (the worker) and the
gateway's aiokafka producer (which takes kafka-python's keyword arguments) get the same TLS context and
SASL identity, so a listener that accepts one client accepts them all.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import faust

from streams.settings import Settings


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str
    ssl_context: ssl.SSLContext | None
    sasl_mechanism: str | None
    username: str
    password: str

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        context = None
        if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
            cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
            context = ssl.create_default_context(cafile=cafile)
            if settings.kafka_ssl_certfile:
                keyfile = str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None
                context.load_cert_chain(str(settings.kafka_ssl_certfile), keyfile)
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        return cls(
            settings.kafka_security_protocol,
            context,
            settings.kafka_sasl_mechanism,
            settings.kafka_sasl_username or "",
            password,
        )

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's clients, and of aiokafka's, which has the same names."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.sasl_mechanism:
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return options

    def faust(self) -> Any:
        """Faust's ``broker_credentials``: None for PLAINTEXT."""
        if self.sasl_mechanism:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context,
            )
        return faust.SSLCredentials(self.ssl_context) if self.ssl_context is not None else None
