"""Topic creation with kafka-python's admin client.

The worker creates its topics itself (same partition count for the three source topics) because
Faust's co-partitioned assignment needs them equal: a customer's lead, deal and ticket events then
land on the same worker.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.kafka.security import KafkaSecurity
from streams.settings import Settings

log = logging.getLogger(__name__)


def admin_client(settings: Settings, timeout: float = 60.0) -> KafkaAdminClient:
    """Retries until the cluster answers: the broker may still be starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=settings.bootstrap_servers,
                client_id=f"{settings.app_id}-admin",
                **KafkaSecurity.from_settings(settings).kafka_python(),
            )
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# what the dead-letter topic accepts beyond the worker's own bound (LIFECYCLE_DEAD_LETTER_MAX_BYTES):
# the bound counts key, value, headers and a framing allowance; the broker counts the whole record batch
DEAD_LETTER_TOPIC_HEADROOM = 64 * 1024


def topic_configs(settings: Settings, name: str) -> dict[str, str]:
    """Per-topic configuration of the topics the worker creates: the dead-letter topic accepts the
    largest dead letter the worker writes; the others take the broker's defaults."""
    if name == settings.topic_dlq:
        return {"max.message.bytes": str(settings.dead_letter_max_bytes + DEAD_LETTER_TOPIC_HEADROOM)}
    return {}


def all_topics(settings: Settings) -> list[str]:
    return [*settings.source_topics.values(), settings.topic_lifecycle, settings.topic_dlq]


def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> list[str]:
    """Create the pipeline's topics that do not exist yet; returns those created."""
    wanted = list(names) if names is not None else all_topics(settings)
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                admin.create_topics(
                    [
                        NewTopic(name, settings.topic_partitions, 1, topic_configs=topic_configs(settings, name))
                        for name in missing
                    ]
                )
            log.info("created topics %s", missing)
        return missing
    finally:
        admin.close()
