"""The states this process committed last, kept for the batches that follow.

Every batch reads rows that the previous batches wrote: a customer's events arrive over minutes, and a
batch is a fraction of a second. The SELECTs of customers, deals and tickets were 13 % of the pipeline
process's CPU at 146 events a batch (the latency run's batch size); kept here, a batch selects only
what it has not seen yet, and its dedup records.

Kept states are only right while nothing else writes their rows. Two rules make that hold:
the worker forgets everything at a rebalance (partitions, hence customers, may move to another worker
and back: ``BatchWriter.on_partitions_revoked``), and a failed transaction forgets everything, since
the domain changes the states in place before the commit. Tools that write the read model
(`lifecycle rebuild`) run with the workers stopped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from streams.domain.journey import CustomerState, DealState, TicketState


class StateCache:
    """Customers, each with every deal it has (the stage rule needs them all), and tickets, as
    committed; least recently used first out beyond ``max_customers`` customers (and as many tickets)."""

    def __init__(self, max_customers: int) -> None:
        self.max_customers = max_customers
        self._customers: OrderedDict[str, tuple[CustomerState, list[DealState]]] = OrderedDict()
        self._tickets: OrderedDict[str, TicketState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._customers)

    def customers(self, ids: Iterable[str]) -> tuple[dict[str, CustomerState], dict[str, DealState], list[str]]:
        """The kept customers among ``ids`` with all their deals, and the ids not kept."""
        customers: dict[str, CustomerState] = {}
        deals: dict[str, DealState] = {}
        missed: list[str] = []
        kept = self._customers
        for customer_id in ids:
            entry = kept.get(customer_id)
            if entry is None:
                missed.append(customer_id)
                continue
            kept.move_to_end(customer_id)
            customers[customer_id] = entry[0]
            for deal in entry[1]:
                deals[deal.deal_id] = deal
        return customers, deals, missed

    def tickets(self, ids: Iterable[str]) -> tuple[dict[str, TicketState], list[str]]:
        """The kept tickets among ``ids``, and the ids not kept."""
        tickets: dict[str, TicketState] = {}
        missed: list[str] = []
        kept = self._tickets
        for ticket_id in ids:
            ticket = kept.get(ticket_id)
            if ticket is None:
                missed.append(ticket_id)
            else:
                kept.move_to_end(ticket_id)
                tickets[ticket_id] = ticket
        return tickets, missed

    def remember(
        self,
        customers: Iterable[CustomerState],
        deals_by_customer: dict[str, list[DealState]],
        tickets: Iterable[TicketState],
    ) -> None:
        """States as committed: each customer with every deal it has in the database."""
        if self.max_customers <= 0:
            return
        kept = self._customers
        for customer in customers:
            kept[customer.customer_id] = (customer, deals_by_customer.get(customer.customer_id, []))
            kept.move_to_end(customer.customer_id)
        while len(kept) > self.max_customers:
            kept.popitem(last=False)
        kept_tickets = self._tickets
        for ticket in tickets:
            kept_tickets[ticket.ticket_id] = ticket
            kept_tickets.move_to_end(ticket.ticket_id)
        while len(kept_tickets) > self.max_customers:
            kept_tickets.popitem(last=False)

    def forget(self) -> None:
        self._customers.clear()
        self._tickets.clear()
