"""The ingest agent: the three source topics in, collected events out to the :class:`BatchWriter`."""

from __future__ import annotations

from typing import Any

import faust

from streams.pipeline.batches import BatchHandler, BatchWriter


def register_ingest(
    app: faust.App,
    source: faust.TopicT,
    handler: BatchHandler,
    *,
    batch_max: int,
    batch_within: float,
) -> Any:
    @app.agent(source, name="lifecycle-ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        """Acks are manual (``noack_take``): an event is acked once its batch is in the database."""
        async with BatchWriter(handler, ack=stream.ack, batch_max=batch_max) as writer:

            async def on_revoked(_app: Any, /, *revoked: Any, signal: Any, **_: Any) -> None:
                await writer.on_partitions_revoked(revoked[0])

            app.on_partitions_revoked.connect(on_revoked)
            try:
                # noack_take is on faust.Stream, missing from the StreamT interface
                async for events in stream.noack_take(batch_max, within=batch_within):  # type: ignore[attr-defined]
                    await writer.put(events)
            finally:
                app.on_partitions_revoked.disconnect(on_revoked)

    return ingest
