"""How one valid event changes a customer's state, and what it tells the metrics.

State objects mirror the read-model rows; :class:`Journeys` applies events to a working set of them
that the storage adapter loaded. Every rule is written so that the outcome does not depend on the
order the events arrive in (minimums, maximums by ``(occurred_at, event_id)``, set-like flags), and
so that a repeated fact (a second ``deal.won`` for a deal, a second CSAT for a ticket) is a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from streams.domain.errors import ConflictingEvent
from streams.domain.events import Event
from streams.domain.stages import RECENT_CSAT_WINDOW, Stage, decide_stage

UNKNOWN = "unknown"


class Outcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


class Observation(NamedTuple):
    """A fact for the metrics: ``name`` says which, ``labels`` in the metric's label order.

    Crosses back from the pipeline process as a plain tuple (``streams.pipeline.runner``)."""

    name: str
    labels: tuple[str, ...] = ()
    value: float = 1.0


# no __slots__ on what crosses the process boundary: a slotted dataclass pickles through fields(), slowly
@dataclass(frozen=True)
class Transition:
    customer_id: str
    from_stage: Stage | None
    to_stage: Stage
    occurred_at: datetime
    event_id: str


@dataclass(slots=True)
class CustomerState:
    customer_id: str
    stage: Stage | None = None
    first_seen_at: datetime | None = None
    stage_changed_at: datetime | None = None
    converted_at: datetime | None = None
    first_lead_at: datetime | None = None
    qualification: str | None = None
    qualification_at: datetime | None = None
    qualification_event_id: str | None = None
    # up to RECENT_CSAT_WINDOW (occurred_at ISO, event_id, score), newest first
    recent_csat: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass(slots=True)
class DealState:
    deal_id: str
    customer_id: str
    status: str = "pending"
    pipeline_stage: str | None = None
    pipeline_stage_at: datetime | None = None
    amount: float | None = None
    currency: str | None = None
    owner: str | None = None
    opened_at: datetime | None = None
    won_at: datetime | None = None
    lost_at: datetime | None = None
    closed_at: datetime | None = None

    def refresh_status(self) -> None:
        # won beats lost beats open, whichever arrived first
        if self.won_at is not None:
            self.status, self.closed_at = "won", self.won_at
        elif self.lost_at is not None:
            self.status, self.closed_at = "lost", self.lost_at
        elif self.opened_at is not None:
            self.status, self.closed_at = "open", None


@dataclass(slots=True)
class TicketState:
    ticket_id: str
    customer_id: str
    status: str = UNKNOWN
    status_at: datetime | None = None
    status_event_id: str | None = None
    channel: str | None = None
    priority: str | None = None
    opened_at: datetime | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    handling_seconds: float | None = None
    contacts: int | None = None
    csat_score: int | None = None
    csat_at: datetime | None = None

    def set_status(self, status: str, event: Event) -> None:
        """The latest status event by (occurred_at, event_id) decides: arrival order does not."""
        if self.status_at is None or (event.occurred_at, event.event_id) > (
            self.status_at,
            self.status_event_id or "",
        ):
            self.status, self.status_at, self.status_event_id = status, event.occurred_at, event.event_id


@dataclass(slots=True)
class Applied:
    outcome: Outcome
    observations: list[Observation] = field(default_factory=list)
    transition: Transition | None = None


class Journeys:
    """A working set of customers, deals and tickets, loaded by the caller, changed by events."""

    def __init__(
        self,
        customers: dict[str, CustomerState],
        deals: dict[str, DealState],
        tickets: dict[str, TicketState],
        *,
        at_risk_threshold: float = 3.0,
    ) -> None:
        self.customers = customers
        self.deals = deals
        self.tickets = tickets
        self.at_risk_threshold = at_risk_threshold
        self.deals_by_customer: dict[str, list[DealState]] = {}
        for deal in deals.values():
            self.deals_by_customer.setdefault(deal.customer_id, []).append(deal)
        self.changed_customers: set[str] = set()
        self.changed_deals: set[str] = set()
        self.changed_tickets: set[str] = set()
        self._handlers: dict[str, Callable[[Event, CustomerState, list[Observation]], bool]] = {
            "lead.created": self._lead_created,
            "lead.qualified": self._lead_decided,
            "lead.disqualified": self._lead_decided,
            "deal.opened": self._deal_opened,
            "deal.stage_changed": self._deal_stage_changed,
            "deal.won": self._deal_won,
            "deal.lost": self._deal_lost,
            "ticket.opened": self._ticket_opened,
            "ticket.responded": self._ticket_responded,
            "ticket.resolved": self._ticket_resolved,
            "ticket.reopened": self._ticket_reopened,
            "csat.submitted": self._csat_submitted,
        }

    # --- entry point ---------------------------------------------------------------------------
    def apply(self, event: Event) -> Applied:
        """Apply one valid, not-yet-seen event. Raises :class:`ConflictingEvent` before changing anything;
        any other error leaves the working set half changed: the caller rolls the batch back."""
        self._check_ownership(event)
        customer = self.customers.get(event.customer_id)
        if customer is None:
            customer = self.customers[event.customer_id] = CustomerState(event.customer_id)
        observations: list[Observation] = []
        if not self._handlers[event.type](event, customer, observations):
            return Applied(Outcome.DUPLICATE)
        if customer.first_seen_at is None or event.occurred_at < customer.first_seen_at:
            customer.first_seen_at = event.occurred_at
        self.changed_customers.add(customer.customer_id)
        return Applied(Outcome.PROCESSED, observations, self._restage(customer, event, observations))

    def stage_of(self, customer: CustomerState) -> Stage:
        deals = self.deals_by_customer.get(customer.customer_id, ())
        return decide_stage(
            has_won_deal=any(d.status == "won" for d in deals),
            has_open_deal=any(d.status == "open" for d in deals),
            has_lost_deal=any(d.status == "lost" for d in deals),
            latest_qualification=customer.qualification,
            recent_csat_scores=[score for _, _, score in customer.recent_csat],
            at_risk_threshold=self.at_risk_threshold,
        )

    def _restage(self, customer: CustomerState, event: Event, observations: list[Observation]) -> Transition | None:
        stage = self.stage_of(customer)
        if stage == customer.stage:
            return None
        previous = customer.stage
        customer.stage, customer.stage_changed_at = stage, event.occurred_at
        observations.append(Observation("stage_transition", (previous.value if previous else "none", stage.value)))
        return Transition(customer.customer_id, previous, stage, event.occurred_at, event.event_id)

    def _check_ownership(self, event: Event) -> None:
        deal, ticket = event.deal_id, event.ticket_id
        if deal is not None and (owned := self.deals.get(deal)) is not None and owned.customer_id != event.customer_id:
            raise ConflictingEvent(f"deal_id {deal!r} belongs to another customer")
        if (
            ticket is not None
            and (held := self.tickets.get(ticket)) is not None
            and held.customer_id != event.customer_id
        ):
            raise ConflictingEvent(f"ticket_id {ticket!r} belongs to another customer")

    # --- leads ---------------------------------------------------------------------------------
    def _lead_created(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        if customer.first_lead_at is None or event.occurred_at < customer.first_lead_at:
            customer.first_lead_at = event.occurred_at
        obs.append(Observation("lead_created", (event.data["channel"],)))
        return True

    def _lead_decided(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        decision = "qualified" if event.type == "lead.qualified" else "disqualified"
        if customer.qualification_at is None or (event.occurred_at, event.event_id) > (
            customer.qualification_at,
            customer.qualification_event_id or "",
        ):
            customer.qualification = decision
            customer.qualification_at = event.occurred_at
            customer.qualification_event_id = event.event_id
        obs.append(Observation(f"lead_{decision}"))
        return True

    # --- deals ---------------------------------------------------------------------------------
    def _deal(self, event: Event) -> DealState:
        deal_id = event.deal_id
        assert deal_id is not None, event.type  # the contract puts it on every deal.* event
        deal = self.deals.get(deal_id)
        if deal is None:
            deal = self.deals[deal_id] = DealState(deal_id, event.customer_id)
            self.deals_by_customer.setdefault(event.customer_id, []).append(deal)
        self.changed_deals.add(deal_id)
        return deal

    def _deal_opened(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        deal = self._deal(event)
        if deal.opened_at is not None:
            return False
        deal.opened_at = event.occurred_at
        if deal.won_at is None:  # a won event's terms are final
            _take_terms(deal, event)
        deal.refresh_status()
        obs.append(Observation("deal_opened"))
        return True

    def _deal_stage_changed(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        deal = self._deal(event)
        if deal.pipeline_stage_at is None or event.occurred_at >= deal.pipeline_stage_at:
            deal.pipeline_stage, deal.pipeline_stage_at = event.data["stage"], event.occurred_at
        return True

    def _deal_won(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        deal = self._deal(event)
        if deal.won_at is not None:
            return False
        deal.won_at = event.occurred_at
        amount, currency, owner = _take_terms(deal, event)
        deal.refresh_status()
        obs.append(Observation("deal_won", (owner,)))
        obs.append(Observation("revenue_won", (currency, owner), amount))
        if customer.converted_at is None:
            obs.append(Observation("conversion"))
            if customer.first_lead_at is not None and event.occurred_at >= customer.first_lead_at:
                obs.append(Observation("sales_cycle", (), (event.occurred_at - customer.first_lead_at).total_seconds()))
        if customer.converted_at is None or event.occurred_at < customer.converted_at:
            customer.converted_at = event.occurred_at
        return True

    def _deal_lost(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        deal = self._deal(event)
        if deal.lost_at is not None:
            return False
        deal.lost_at = event.occurred_at
        deal.refresh_status()
        obs.append(Observation("deal_lost"))
        return True

    # --- tickets -------------------------------------------------------------------------------
    def _ticket(self, event: Event) -> TicketState:
        ticket_id = event.ticket_id
        assert ticket_id is not None, event.type  # the contract puts it on every ticket.* and csat.* event
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            ticket = self.tickets[ticket_id] = TicketState(ticket_id, event.customer_id)
        self.changed_tickets.add(ticket_id)
        return ticket

    def _ticket_opened(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        ticket = self._ticket(event)
        if ticket.opened_at is not None:
            return False
        ticket.opened_at = event.occurred_at
        ticket.channel, ticket.priority = event.data["channel"], event.data["priority"]
        ticket.set_status("open", event)
        obs.append(Observation("ticket_opened", (ticket.channel, ticket.priority)))
        if ticket.resolved_at is not None:  # the resolution arrived first
            obs.append(self._resolution(ticket, ticket.resolved_at))
        if ticket.first_response_at is not None:
            obs.append(self._first_response(ticket, ticket.first_response_at))
        return True

    def _ticket_responded(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        ticket = self._ticket(event)
        first = ticket.first_response_at is None
        if first or event.occurred_at < ticket.first_response_at:  # type: ignore[operator]
            ticket.first_response_at = event.occurred_at
        if first and ticket.opened_at is not None:
            obs.append(self._first_response(ticket, event.occurred_at))
        return True

    def _ticket_resolved(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        ticket = self._ticket(event)
        handling_seconds = float(event.data["handling_seconds"])
        if ticket.resolved_at is None or event.occurred_at >= ticket.resolved_at:
            ticket.resolved_at = event.occurred_at
            ticket.handling_seconds = handling_seconds
            ticket.contacts = int(event.data["contacts"])  # JSON Schema's integer takes 2.0 too
        ticket.set_status("resolved", event)
        channel = ticket.channel or UNKNOWN
        obs.append(Observation("ticket_resolved", (channel,)))
        obs.append(Observation("ticket_handling", (channel,), handling_seconds))
        if event.data["contacts"] == 1:
            obs.append(Observation("ticket_first_contact_resolved", (channel,)))
        if ticket.opened_at is not None:
            obs.append(self._resolution(ticket, event.occurred_at))
        return True

    def _ticket_reopened(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        ticket = self._ticket(event)
        ticket.set_status("open", event)
        obs.append(Observation("ticket_reopened", (ticket.channel or UNKNOWN,)))
        return True

    def _csat_submitted(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        ticket = self._ticket(event)
        if ticket.csat_score is not None:
            return False
        score = int(event.data["score"])  # 4.0 is an integer to JSON Schema: stored and labelled as 4
        ticket.csat_score, ticket.csat_at = score, event.occurred_at
        entry = (event.occurred_at.isoformat(timespec="microseconds"), event.event_id, score)
        customer.recent_csat = sorted([*customer.recent_csat, entry], reverse=True)[:RECENT_CSAT_WINDOW]
        obs.append(Observation("csat", (str(score), ticket.channel or UNKNOWN)))
        return True

    @staticmethod
    def _resolution(ticket: TicketState, resolved_at: datetime) -> Observation:
        seconds = max(0.0, (resolved_at - ticket.opened_at).total_seconds()) if ticket.opened_at else 0.0
        return Observation("ticket_resolution", (ticket.channel or UNKNOWN, ticket.priority or UNKNOWN), seconds)

    @staticmethod
    def _first_response(ticket: TicketState, responded_at: datetime) -> Observation:
        seconds = max(0.0, (responded_at - ticket.opened_at).total_seconds()) if ticket.opened_at else 0.0
        return Observation("ticket_first_response", (ticket.channel or UNKNOWN,), seconds)


def _take_terms(deal: DealState, event: Event) -> tuple[float, str, str]:
    """The deal's amount, currency and owner from ``event``, also returned. JSON's 1000 and 1000.0 become
    one float: PostgreSQL gets a batch's amounts as one typed array, which mixed ints and floats cannot be."""
    terms = float(event.data["amount"]), event.data["currency"], event.data["owner"]
    deal.amount, deal.currency, deal.owner = terms
    return terms
