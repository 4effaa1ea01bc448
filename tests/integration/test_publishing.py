"""Dead letters and stage transitions go out as record batches: checked on the real broker."""

from __future__ import annotations

import asyncio

import faust
from kafka import KafkaConsumer

from streams.kafka.admin import ensure_topics
from streams.kafka.producer import kafka_publisher
from streams.pipeline.batches import Record
from tests.conftest import settings_from


def test_records_land_where_faust_would_send_them_in_order_whole(
    kafka_bootstrap: str, topic_names: dict[str, str]
) -> None:
    settings = settings_from({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, **topic_names})
    topic = settings.topic_lifecycle
    ensure_topics(settings, [topic])
    app = faust.App(f"{settings.app_id}-publish", broker=f"kafka://{settings.bootstrap_servers}")
    # more than one batch's worth per partition, and one record larger than a batch, without a key
    keyed: list[Record] = [(f"c-{n % 7}".encode(), str(n).encode().ljust(300), []) for n in range(600)]
    large: Record = (None, b"x" * 40_000, [("lifecycle.errors.class", b"too_large")])
    placed: dict[bytes, int] = {}

    async def scenario() -> None:
        await app.producer.start()
        try:
            await kafka_publisher(app, topic)([*keyed, large])
            placed.update({key: app.producer.key_partition(topic, key).partition for key, _, _ in keyed if key})
        finally:
            await app.producer.stop()

    asyncio.run(scenario())
    consumer = KafkaConsumer(
        topic, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    try:
        received = []
        for record in consumer:
            received.append(record)
            if len(received) == len(keyed) + 1:
                break
    finally:
        consumer.close()

    assert len(received) == len(keyed) + 1
    by_key: dict[bytes, list[int]] = {}
    for record in received:
        if record.key is None:
            assert record.value == large[1] and record.headers == large[2]
            continue
        assert record.partition == placed[record.key]
        by_key.setdefault(record.key, []).append(int(record.value))
    assert by_key == {key: [n for n in range(600) if f"c-{n % 7}".encode() == key] for key in placed}
