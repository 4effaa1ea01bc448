"""A source topic that accepts larger messages than the dead-letter topic: the too-large message is
dead-lettered cut to fit (size and SHA-256 of the original in headers), not retried forever."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from streams.cli.processes import WorkerProcess, running_worker
from streams.contract.dead_letters import record_size
from streams.db.models import Customer
from streams.kafka.admin import DEAD_LETTER_TOPIC_HEADROOM, admin_client, ensure_topics
from streams.kafka.dead_letters import read_dead_letters
from streams.settings import Settings
from tests.conftest import settings_from
from tests.integration.test_end_to_end import run_cli
from tests.integration.test_faults import count_messages
from tests.support import event, row_count, wait_for

MIB = 1024 * 1024


def create_source_topic(settings: Settings, name: str, max_message_bytes: int) -> None:
    admin = admin_client(settings)
    try:
        admin.create_topics(
            [NewTopic(name, settings.topic_partitions, 1, topic_configs={"max.message.bytes": str(max_message_bytes)})]
        )
    finally:
        admin.close()


def topic_config(settings: Settings, topic: str, name: str) -> str | None:
    """A topic's own setting (None until the broker has the topic's configuration: just created, it may not)."""
    admin = admin_client(settings)
    try:
        described: Any = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {name: None})])
    finally:
        admin.close()
    entry = described.get("topic", {}).get(topic, {}).get(name)
    return str(entry["value"]) if entry else None


def within_deadline(worker: WorkerProcess, condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """wait_for, failing with the worker's log (where a refused publish and its retries show)."""
    try:
        return wait_for(condition, timeout=timeout, what=what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n--- worker log (end) ---\n{worker.log()[-3000:]}") from None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_message_too_large_for_the_dead_letter_topic_is_cut_to_fit_and_the_worker_goes_on(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    settings = settings_from(worker_env)
    create_source_topic(settings, settings.topic_leads, 2 * MIB)
    ensure_topics(settings)  # the others, the dead-letter topic included, as the worker creates them
    dlq_max = wait_for(
        lambda: topic_config(settings, settings.topic_dlq, "max.message.bytes"),
        timeout=30,
        what="the dead-letter topic's max.message.bytes",
    )
    assert dlq_max == str(settings.dead_letter_max_bytes + DEAD_LETTER_TOPIC_HEADROOM)
    assert settings.dead_letter_max_bytes + DEAD_LETTER_TOPIC_HEADROOM < 3 * MIB // 2  # too large for it whole

    document = event("lead.created", customer_id="c-big")
    large = orjson.dumps({**document, "notes": "n" * (3 * MIB // 2 - len(orjson.dumps(document)) - 11)})
    assert len(large) == 3 * MIB // 2
    valid = orjson.dumps(event("lead.created", customer_id="c-ok"))

    with running_worker(worker_env, tmp_path / "worker.log") as worker:
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", max_request_size=4 * MIB)
        producer.send(settings.topic_leads, key=b"c-big", value=large, headers=[("trace", b"t-1")])
        producer.flush()
        letters = within_deadline(
            worker,
            lambda: list(read_dead_letters(settings)),
            timeout=90,
            what="the too-large message on the dead-letter topic",
        )
        # and a valid event after it: processed, its transition published (after the dead letter's batch)
        producer.send(settings.topic_leads, key=b"c-ok", value=valid)
        producer.flush()
        producer.close()
        within_deadline(
            worker,
            lambda: count_messages(settings, settings.topic_lifecycle) >= 1,
            timeout=90,
            what="the valid event's transition on the lifecycle topic",
        )
        assert row_count(settings.sqlalchemy_url, Customer) == 1
        assert worker.process is not None and worker.process.poll() is None

        [letter] = letters
        assert letter.error_class == "too_large" and letter.source_topic == settings.topic_leads
        assert letter.truncated and letter.original_size == len(large)
        assert letter.original_sha256 == hashlib.sha256(large).hexdigest()
        assert letter.value is not None and large.startswith(letter.value) and len(letter.value) < len(large)
        assert letter.key == b"c-big" and letter.original_headers == [("trace", b"t-1")]
        # cut to what fits beside the headers (a few kB at most), not to nothing
        ours = 4096
        assert settings.dead_letter_max_bytes - ours < record_size(letter.key, letter.value, letter.original_headers)
        assert record_size(letter.key, letter.value, letter.original_headers) < settings.dead_letter_max_bytes

        # listed with what it was; never replayed as if the cut value were the original
        listed = run_cli(worker_env, "dlq")
        assert b'"truncated": true' in listed.stdout and f'"original_size": {len(large)}'.encode() in listed.stdout
        replayed = run_cli(worker_env, "dlq", "replay", "--error-class", "too_large")
        assert replayed.returncode == 0, replayed.stderr
        assert b"replayed 0 messages" in replayed.stdout
        assert b"skipped 1 dead letters: truncated ones" in replayed.stderr
