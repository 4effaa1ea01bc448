"""The states this process committed last, kept for the batches that follow.

Every batch reads rows that the previous batches wrote: a customer's events arrive over minutes, and a
batch is a fraction of a second. Selecting those customers, deals and tickets again costs 13 % of the
pipeline process's CPU at the latency run's batch size; kept here, a batch selects only what it has
not seen yet, and its dedup records.

Kept states are only right while nothing else writes their rows. Two rules make that hold:
the worker forgets everything at a rebalance (partitions, hence customers, may move to another worker
and back: ``BatchWriter.on_partitions_revoked``), and a failed transaction forgets everything, since
the domain changes the states in place before the commit. Tools that write the read model
(`lifecycle rebuild`) run with the workers stopped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TypeVar

from streams.domain.journey import CustomerState, DealState, TicketState

V = TypeVar("V")


def _look_up(kept: OrderedDict[str, V], ids: Iterable[str]) -> tuple[dict[str, V], list[str]]:
    """The kept values among ``ids``, each now the most recently used, and the ids not kept."""
    found: dict[str, V] = {}
    missed: list[str] = []
    for key in ids:
        value = kept.get(key)
        if value is None:
            missed.append(key)
        else:
            kept.move_to_end(key)
            found[key] = value
    return found, missed


def _keep(kept: OrderedDict[str, V], entries: Iterable[tuple[str, V]], limit: int) -> None:
    """Keeps ``entries`` as the most recently used; the least recently used go beyond ``limit``."""
    for key, value in entries:
        kept[key] = value
        kept.move_to_end(key)
    while len(kept) > limit:
        kept.popitem(last=False)


class StateCache:
    """Customers, deals and tickets, as committed; least recently used first out beyond ``max_customers``
    of each kind."""

    def __init__(self, max_customers: int) -> None:
        self.max_customers = max_customers
        self._customers: OrderedDict[str, CustomerState] = OrderedDict()
        self._deals: OrderedDict[str, DealState] = OrderedDict()
        self._tickets: OrderedDict[str, TicketState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._customers)

    def customers(self, ids: Iterable[str]) -> tuple[dict[str, CustomerState], list[str]]:
        """The kept customers among ``ids``, and the ids not kept."""
        return _look_up(self._customers, ids)

    def deals(self, ids: Iterable[str]) -> tuple[dict[str, DealState], list[str]]:
        return _look_up(self._deals, ids)

    def tickets(self, ids: Iterable[str]) -> tuple[dict[str, TicketState], list[str]]:
        return _look_up(self._tickets, ids)

    def remember(
        self, customers: Iterable[CustomerState], deals: Iterable[DealState], tickets: Iterable[TicketState]
    ) -> None:
        """States as committed."""
        if self.max_customers <= 0:
            return
        _keep(self._customers, ((c.customer_id, c) for c in customers), self.max_customers)
        _keep(self._deals, ((d.deal_id, d) for d in deals), self.max_customers)
        _keep(self._tickets, ((t.ticket_id, t) for t in tickets), self.max_customers)

    def forget(self) -> None:
        self._customers.clear()
        self._deals.clear()
        self._tickets.clear()
