"""A message that passes the contract and still makes the batch's write fail, for the cost of bisection.

``Pipeline.process`` splits a batch whose transaction fails on a message's data (any exception
``streams.db.faults.is_infrastructure_fault`` does not call the infrastructure's) into halves, each in a
transaction of its own, down to the message at fault, which it dead-letters as ``rejected``. The
product has no such input left: every one found so far (a NUL character, a time outside years 1-9999,
a currency that is not ISO 4217) is now refused by the contract at decoding, cheaply and without a
split. So the benchmark makes one: on ``PYTHONPATH``, every Python process started with it gets a
``Journeys.apply`` that raises ``TypeError`` for an event carrying the extra field
``"bench_poison": true`` (the contract lets extra fields through) and applies any other event as
before, at the cost of one dict lookup:

    PYTHONPATH=bench/poison_pipeline .venv/bin/python -m bench.pipeline_cpu --batch 2000 \\
        --poison-per-thousand 1 --poison-kind write

(``bench.run --poison-kind write`` puts it on its workers' ``PYTHONPATH`` itself.) The exception is
raised before the event changes anything, from inside the batch's transaction, as a bug in the domain
or a value the database refuses would be. ``bench.pipeline_cpu`` checks for ``POISONED`` and refuses
``--poison-kind write`` without it. Nothing of the product imports this file: it only exists on that
``PYTHONPATH``.
"""

from __future__ import annotations

from typing import Any

from streams.domain import journey

POISON_FIELD = "bench_poison"
_apply = journey.Journeys.apply


def _poisoned_apply(self: journey.Journeys, event: Any) -> journey.Applied:
    if event.data.get(POISON_FIELD) is True:
        raise TypeError(f"bench poison: event {event.event_id} carries {POISON_FIELD!r}")
    return _apply(self, event)


journey.Journeys.apply = _poisoned_apply  # type: ignore[method-assign]
POISONED = True
