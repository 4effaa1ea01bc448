"""The ingest agent: the three source topics in, batches out to the :class:`BatchHandler`."""

from __future__ import annotations

from typing import Any, Protocol

import faust


class HandlesBatches(Protocol):
    async def handle(self, events: Any) -> Any: ...


def register_ingest(
    app: faust.App,
    source: faust.TopicT,
    handler: HandlesBatches,
    *,
    batch_max: int,
    batch_within: float,
) -> Any:
    # concurrency=1 on purpose: with more, Faust may commit past a batch still in flight.
    @app.agent(source, name="lifecycle-ingest", concurrency=1)
    async def ingest(stream: faust.StreamT[bytes]) -> Any:
        """Batches, not events: one database transaction per batch is what makes the pipeline fast."""
        async for events in stream.take_events(batch_max, within=batch_within):  # type: ignore[attr-defined]
            yield await handler.handle(events)

    return ingest
