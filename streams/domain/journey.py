"""How one valid event changes a customer's state, and what it tells the metrics.

State objects mirror the read-model rows; :class:`Journeys` applies events to a working set of them
that the storage adapter loaded. Every rule is written so that the outcome does not depend on the
order the events arrive in (minimums, maximums by ``(occurred_at, event_id)``, counts, set-like flags,
the time-ordered list of a customer's commercial facts), and so that a repeated one-time fact (a second
``deal.won`` for a deal) is a duplicate.

The observations are order-free too, *net*: a figure that a later-arriving event changes (a sales
cycle that an earlier lead shortens, a loss that a win overrides, a rating that a newer one replaces,
a first response that an earlier one undercuts, a won deal's kind that an earlier win or a late
``deal.opened`` changes, the CSAT band of a customer's churns that a rating changes) is taken back by a
``*_retracted`` observation of the value counted before, and the new value is observed. Observations
minus retractions are a function of the final state, whatever the order. A ticket's channel comes with
``ticket.opened``: what a ticket's other events tell the channel-labelled metrics is held in the ticket
until its opening is known.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from streams.domain.errors import ConflictingEvent
from streams.domain.events import Event
from streams.domain.figures import nps_category
from streams.domain.stages import RECENT_CSAT_WINDOW, CsatBand, Stage, csat_band, decide_stage

UNKNOWN = "unknown"
# ticket facts held while the ticket's channel is unknown; beyond this, counted under ``unknown`` at once
HELD_RESOLUTIONS = 100
# a customer's latest commercial facts held in time order (what win-backs are counted from); an older
# fact arriving when the list is full changes neither the stage nor the win-backs
HELD_FACTS = 100
RETRACTED = "_retracted"
WON, CHURNED = "won", "churned"  # the kinds of commercial fact


class DealKind(StrEnum):
    """What a won deal is to its customer; absent from the events, the customer's first won deal (by won
    time, then deal_id) is new business and every later one expansion."""

    NEW_BUSINESS = "new_business"
    RENEWAL = "renewal"
    EXPANSION = "expansion"


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
    # when the stage left was entered, and how long the customer was in it (None for a new customer; 0
    # when the events that entered and left it arrived against their time order)
    previous_stage_entered_at: datetime | None = None
    seconds_in_previous_stage: float | None = None


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
    # up to RECENT_CSAT_WINDOW (occurred_at ISO, event_id, score), newest first: each ticket's current rating
    recent_csat: list[tuple[str, str, int]] = field(default_factory=list)
    # the customer's deals by status: the stage rule reads these, not every deal of the customer
    won_deals: int = 0
    open_deals: int = 0
    lost_deals: int = 0
    first_won_deal_id: str | None = None  # the earliest won deal by (won_at, deal_id): new business by default
    # up to HELD_FACTS (occurred_at ISO, event_id, WON | CHURNED), oldest first; the ones dropped to keep it
    # at that size leave their win-backs and the kind of the latest of them
    commercial_facts: list[tuple[str, str, str]] = field(default_factory=list)
    earlier_win_backs: int = 0
    earlier_fact: str | None = None
    churned_at: datetime | None = None  # the latest churn by (occurred_at, event_id)
    churn_event_id: str | None = None
    churns: int = 0
    churn_band: str | None = None  # the band its churns are counted under
    csat_band: str = CsatBand.NONE.value  # of recent_csat, whole
    referred_by: str | None = None  # from the earliest lead.created that names a referrer
    referral_at: datetime | None = None
    referral_event_id: str | None = None
    won_revenue: dict[str, float] = field(default_factory=dict)  # by currency: what a late referral brings
    nps_score: int | None = None  # the latest answer by (occurred_at, event_id)
    nps_at: datetime | None = None
    nps_event_id: str | None = None

    @property
    def churned(self) -> bool:
        return bool(self.commercial_facts) and self.commercial_facts[-1][2] == CHURNED

    def win_backs(self) -> int:
        """Won deals that directly follow a churn in time, over every fact the customer had."""
        count, previous = self.earlier_win_backs, self.earlier_fact
        for _, _, kind in self.commercial_facts:
            count += kind == WON and previous == CHURNED
            previous = kind
        return count

    def sales_cycle(self) -> float | None:
        """First lead to first won deal, in seconds; None until both are known, or if the lead came later."""
        if self.first_lead_at is None or self.converted_at is None or self.converted_at < self.first_lead_at:
            return None
        return (self.converted_at - self.first_lead_at).total_seconds()


@dataclass(slots=True)
class DealState:
    deal_id: str
    customer_id: str
    status: str = "pending"
    pipeline_stage: str | None = None
    pipeline_stage_at: datetime | None = None
    pipeline_stage_event_id: str | None = None
    amount: float | None = None
    currency: str | None = None
    owner: str | None = None
    opened_at: datetime | None = None
    won_at: datetime | None = None
    lost_at: datetime | None = None
    closed_at: datetime | None = None
    kind: str | None = None  # as the events declare it: deal.won's, else deal.opened's

    def refresh_status(self) -> str:
        """Won beats lost beats open, whichever arrived first; returns the status it had before."""
        before = self.status
        if self.won_at is not None:
            self.status, self.closed_at = "won", self.won_at
        elif self.lost_at is not None:
            self.status, self.closed_at = "lost", self.lost_at
        elif self.opened_at is not None:
            self.status, self.closed_at = "open", None
        return before


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
    resolved_event_id: str | None = None
    handling_seconds: float | None = None  # of the latest resolution
    contacts: int | None = None  # of the latest resolution
    resolutions: int = 0
    first_contact_resolutions: int = 0
    csat_score: int | None = None  # the latest rating by (occurred_at, event_id)
    csat_at: datetime | None = None
    csat_event_id: str | None = None
    # what the channel-labelled metrics are told once ticket.opened is known: resolutions
    # (occurred_at ISO, handling_seconds, contacts) and reopenings that came first
    early_resolutions: list[tuple[str, float, int]] = field(default_factory=list)
    early_reopens: int = 0

    def set_status(self, status: str, event: Event) -> None:
        """The latest status event by (occurred_at, event_id) decides: arrival order does not."""
        if _later(event, self.status_at, self.status_event_id):
            self.status, self.status_at, self.status_event_id = status, event.occurred_at, event.event_id

    def since_opened(self, at: datetime) -> float:
        assert self.opened_at is not None
        return max(0.0, (at - self.opened_at).total_seconds())


def _later(event: Event, at: datetime | None, event_id: str | None) -> bool:
    """``event`` comes after the fact recorded at (``at``, ``event_id``): arrival order never decides."""
    return at is None or (event.occurred_at, event.event_id) > (at, event_id or "")


def _earlier(event: Event, at: datetime | None, event_id: str | None) -> bool:
    """``event`` comes before the fact recorded at (``at``, ``event_id``): the earliest one stays."""
    return at is None or (event.occurred_at, event.event_id) < (at, event_id or "")


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
        self.changed_customers: set[str] = set()
        self.changed_deals: set[str] = set()
        self.changed_tickets: set[str] = set()
        self.churns: list[tuple[str, str, datetime, str | None]] = []  # (event_id, customer_id, occurred_at, reason)
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
            "customer.churned": self._customer_churned,
            "nps.submitted": self._nps_submitted,
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
        return decide_stage(
            has_won_deal=customer.won_deals > 0,
            churned=customer.churned,
            has_open_deal=customer.open_deals > 0,
            has_lost_deal=customer.lost_deals > 0,
            latest_qualification=customer.qualification,
            recent_csat_scores=[score for _, _, score in customer.recent_csat],
            at_risk_threshold=self.at_risk_threshold,
        )

    def _restage(self, customer: CustomerState, event: Event, observations: list[Observation]) -> Transition | None:
        stage = self.stage_of(customer)
        if stage == customer.stage:
            return None
        previous, entered = customer.stage, customer.stage_changed_at
        customer.stage, customer.stage_changed_at = stage, event.occurred_at
        observations.append(Observation("stage_transition", (previous.value if previous else "none", stage.value)))
        seconds = None
        if previous is not None and entered is not None:
            seconds = max(0.0, (event.occurred_at - entered).total_seconds())
            observations.append(Observation("stage_duration", (previous.value,), seconds))
        return Transition(customer.customer_id, previous, stage, event.occurred_at, event.event_id, entered, seconds)

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

    @staticmethod
    def _amend(
        obs: list[Observation], name: str, labels: tuple[str, ...], old: float | None, new: float | None
    ) -> None:
        """A value counted before (``old``) that an event changes: the old one taken back, the new observed."""
        if old == new:
            return
        if old is not None:
            obs.append(Observation(name + RETRACTED, labels, old))
        if new is not None:
            obs.append(Observation(name, labels, new))

    # --- leads ---------------------------------------------------------------------------------
    def _lead_created(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        cycle = customer.sales_cycle()
        if customer.first_lead_at is None or event.occurred_at < customer.first_lead_at:
            customer.first_lead_at = event.occurred_at
        obs.append(Observation("lead_created", (event.data["channel"],)))
        self._amend(obs, "sales_cycle", (), cycle, customer.sales_cycle())
        referrer = event.data.get("referred_by")
        if referrer is not None:
            obs.append(Observation("referral_lead"))
            newly_referred = customer.referred_by is None
            if _earlier(event, customer.referral_at, customer.referral_event_id):
                customer.referred_by, customer.referral_at = referrer, event.occurred_at
                customer.referral_event_id = event.event_id
            if newly_referred and customer.converted_at is not None:  # converted before the referral was known
                obs.append(Observation("referral_conversion"))
                for currency, amount in customer.won_revenue.items():
                    obs.append(Observation("referral_revenue", (currency,), amount))
        return True

    def _lead_decided(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        decision = "qualified" if event.type == "lead.qualified" else "disqualified"
        if _later(event, customer.qualification_at, customer.qualification_event_id):
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
        self.changed_deals.add(deal_id)
        return deal

    @staticmethod
    def _restatus(deal: DealState, customer: CustomerState) -> None:
        """The deal's status from its facts, and the customer's counts of deals by status with it."""
        before = deal.refresh_status()
        if before == deal.status:
            return
        for status, step in ((before, -1), (deal.status, 1)):
            if status in ("won", "open", "lost"):
                name = f"{status}_deals"
                setattr(customer, name, getattr(customer, name) + step)

    def _deal_opened(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        deal = self._deal(event)
        if deal.opened_at is not None:
            return False
        deal.opened_at = event.occurred_at
        if deal.won_at is None:  # a won event's terms are final
            _take_terms(deal, event)
            deal.kind = event.data.get("kind")
        elif deal.kind is None and (declared := event.data.get("kind")) is not None:
            counted = self._kind(deal, customer)
            deal.kind = declared
            self._relabel(deal, counted, declared, obs)
        self._restatus(deal, customer)
        obs.append(Observation("deal_opened"))
        return True

    def _deal_stage_changed(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        deal = self._deal(event)
        if _later(event, deal.pipeline_stage_at, deal.pipeline_stage_event_id):
            deal.pipeline_stage, deal.pipeline_stage_at = event.data["stage"], event.occurred_at
            deal.pipeline_stage_event_id = event.event_id
        return True

    def _deal_won(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        deal = self._deal(event)
        if deal.won_at is not None:
            return False
        deal.won_at = event.occurred_at
        amount, currency, owner = _take_terms(deal, event)
        if (declared := event.data.get("kind")) is not None:
            deal.kind = declared
        if deal.lost_at is not None:  # its loss was counted when it arrived: the win overrides it
            obs.append(Observation("deal_lost" + RETRACTED))
        self._restatus(deal, customer)
        self._first_won(deal, customer, obs)
        kind = self._kind(deal, customer)
        obs.append(Observation("deal_won", (owner, kind)))
        obs.append(Observation("revenue_won", (currency, owner, kind), amount))
        cycle = customer.sales_cycle()
        converts = customer.converted_at is None
        if converts:
            obs.append(Observation("conversion"))
        if customer.converted_at is None or event.occurred_at < customer.converted_at:
            customer.converted_at = event.occurred_at
        self._amend(obs, "sales_cycle", (), cycle, customer.sales_cycle())
        customer.won_revenue = {**customer.won_revenue, currency: customer.won_revenue.get(currency, 0.0) + amount}
        if customer.referred_by is not None:
            if converts:
                obs.append(Observation("referral_conversion"))
            obs.append(Observation("referral_revenue", (currency,), amount))
        self._record_fact(customer, event, WON, obs)
        return True

    def _first_won(self, deal: DealState, customer: CustomerState, obs: list[Observation]) -> None:
        """``deal`` (just won) becomes the customer's first won deal if it is the earliest by (won_at,
        deal_id): the one it replaces, if its kind was not declared, is expansion from now on."""
        assert deal.won_at is not None
        first = customer.first_won_deal_id
        if (
            first is not None
            and customer.converted_at is not None
            and (customer.converted_at, first) < (deal.won_at, deal.deal_id)
        ):
            return
        customer.first_won_deal_id = deal.deal_id
        replaced = self.deals.get(first) if first is not None else None
        if replaced is not None and replaced.won_at is not None and replaced.kind is None:
            self._relabel(replaced, DealKind.NEW_BUSINESS.value, DealKind.EXPANSION.value, obs)

    @staticmethod
    def _kind(deal: DealState, customer: CustomerState) -> str:
        return kind_of(deal.kind, deal.deal_id, customer.first_won_deal_id)

    @staticmethod
    def _relabel(deal: DealState, counted: str, kind: str, obs: list[Observation]) -> None:
        """A won deal counted under the kind ``counted`` is ``kind`` now: taken back, and counted again."""
        if counted == kind:
            return
        assert deal.amount is not None and deal.currency is not None and deal.owner is not None
        terms = (deal.currency, deal.owner)
        obs.append(Observation("deal_won" + RETRACTED, (deal.owner, counted)))
        obs.append(Observation("revenue_won" + RETRACTED, (*terms, counted), deal.amount))
        obs.append(Observation("deal_won", (deal.owner, kind)))
        obs.append(Observation("revenue_won", (*terms, kind), deal.amount))

    # --- commercial facts: wins and churns -----------------------------------------------------
    @staticmethod
    def _record_fact(customer: CustomerState, event: Event, kind: str, obs: list[Observation]) -> None:
        """Holds the fact in time order. Win-backs only ever grow as facts are added, whatever their order."""
        entry = (event.occurred_at.isoformat(timespec="microseconds"), event.event_id, kind)
        facts = customer.commercial_facts
        if len(facts) >= HELD_FACTS and entry < facts[0]:
            return  # older than every fact held: it cannot be the latest, and its place is not known
        before = customer.win_backs()
        position = bisect.bisect(facts, entry)
        facts = [*facts[:position], entry, *facts[position:]]
        if len(facts) > HELD_FACTS:
            dropped, *facts = facts
            customer.earlier_win_backs += dropped[2] == WON and customer.earlier_fact == CHURNED
            customer.earlier_fact = dropped[2]
        customer.commercial_facts = facts
        if (gained := customer.win_backs() - before) > 0:
            obs.append(Observation("win_back", (), gained))

    def _customer_churned(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        if _later(event, customer.churned_at, customer.churn_event_id):
            customer.churned_at, customer.churn_event_id = event.occurred_at, event.event_id
        customer.churns += 1
        self.churns.append((event.event_id, customer.customer_id, event.occurred_at, event.data.get("reason")))
        self._record_fact(customer, event, CHURNED, obs)
        self._reband(customer, obs, added=1)
        return True

    def _reband(self, customer: CustomerState, obs: list[Observation], *, added: int = 0) -> None:
        """The customer's churns are counted under the band of its recent ratings up to its latest churn:
        a rating or a churn that changes it moves them all (``added``: churns new in this event)."""
        scores = [score for _, _, score in customer.recent_csat]
        customer.csat_band = csat_band(scores, self.at_risk_threshold).value
        if customer.churned_at is None:
            return
        cutoff = customer.churned_at.isoformat(timespec="microseconds")
        band = csat_band([s for at, _, s in customer.recent_csat if at <= cutoff], self.at_risk_threshold).value
        counted, before = customer.churn_band, customer.churns - added
        if band == counted:
            if added:
                obs.append(Observation("churn", (band,), added))
            return
        if counted is not None and before:
            obs.append(Observation("churn" + RETRACTED, (counted,), before))
        obs.append(Observation("churn", (band,), customer.churns))
        customer.churn_band = band

    def _nps_submitted(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        score = int(event.data["score"])  # 9.0 is an integer to JSON Schema
        obs.append(Observation("nps_response", (nps_category(score),)))
        if _later(event, customer.nps_at, customer.nps_event_id):
            customer.nps_score, customer.nps_at, customer.nps_event_id = score, event.occurred_at, event.event_id
        return True

    def _deal_lost(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        deal = self._deal(event)
        if deal.lost_at is not None:
            return False
        deal.lost_at = event.occurred_at
        self._restatus(deal, customer)
        if deal.won_at is None:  # a won deal's loss is no outcome (won beats lost)
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
        channel, priority = ticket.channel, ticket.priority = event.data["channel"], event.data["priority"]
        ticket.set_status("open", event)
        obs.append(Observation("ticket_opened", (channel, priority)))
        # what came before the opening is told to the metrics now, under the ticket's channel
        for resolved_at, handling_seconds, contacts in ticket.early_resolutions:
            self._observe_resolution(ticket, datetime.fromisoformat(resolved_at), handling_seconds, contacts, obs)
        for _ in range(ticket.early_reopens):
            obs.append(Observation("ticket_reopened", (channel,)))
        ticket.early_resolutions, ticket.early_reopens = [], 0
        if ticket.first_response_at is not None:
            obs.append(Observation("ticket_first_response", (channel,), ticket.since_opened(ticket.first_response_at)))
        if ticket.csat_score is not None:
            obs.append(Observation("csat", (str(ticket.csat_score), channel)))
        return True

    def _ticket_responded(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        ticket = self._ticket(event)
        before = ticket.first_response_at
        if before is None or event.occurred_at < before:
            ticket.first_response_at = event.occurred_at
            if ticket.opened_at is not None:
                self._amend(
                    obs,
                    "ticket_first_response",
                    (ticket.channel or UNKNOWN,),
                    None if before is None else ticket.since_opened(before),
                    ticket.since_opened(event.occurred_at),
                )
        return True

    def _ticket_resolved(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        ticket = self._ticket(event)
        handling_seconds = float(event.data["handling_seconds"])
        contacts = int(event.data["contacts"])  # JSON Schema's integer takes 2.0 too
        if _later(event, ticket.resolved_at, ticket.resolved_event_id):
            ticket.resolved_at, ticket.resolved_event_id = event.occurred_at, event.event_id
            ticket.handling_seconds, ticket.contacts = handling_seconds, contacts
        ticket.resolutions += 1
        ticket.first_contact_resolutions += contacts == 1
        ticket.set_status("resolved", event)
        if ticket.opened_at is None and len(ticket.early_resolutions) < HELD_RESOLUTIONS:
            resolved_at = event.occurred_at.isoformat(timespec="microseconds")
            bisect.insort(ticket.early_resolutions, (resolved_at, handling_seconds, contacts))  # in order: as stored
        else:
            self._observe_resolution(ticket, event.occurred_at, handling_seconds, contacts, obs)
        return True

    @staticmethod
    def _observe_resolution(
        ticket: TicketState, resolved_at: datetime, handling_seconds: float, contacts: int, obs: list[Observation]
    ) -> None:
        channel = ticket.channel or UNKNOWN
        obs.append(Observation("ticket_resolved", (channel,)))
        obs.append(Observation("ticket_handling", (channel,), handling_seconds))
        if contacts == 1:
            obs.append(Observation("ticket_first_contact_resolved", (channel,)))
        if ticket.opened_at is not None:
            resolution = ticket.since_opened(resolved_at)
            obs.append(Observation("ticket_resolution", (channel, ticket.priority or UNKNOWN), resolution))

    def _ticket_reopened(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        ticket = self._ticket(event)
        ticket.set_status("open", event)
        if ticket.opened_at is None:
            ticket.early_reopens += 1
        else:
            obs.append(Observation("ticket_reopened", (ticket.channel or UNKNOWN,)))
        return True

    def _csat_submitted(self, event: Event, customer: CustomerState, obs: list[Observation]) -> bool:
        """One rating per ticket, the latest by (occurred_at, event_id): a newer one replaces it, for the
        stage and for the counts; an older one changes nothing."""
        ticket = self._ticket(event)
        if not _later(event, ticket.csat_at, ticket.csat_event_id):
            return True
        score = int(event.data["score"])  # 4.0 is an integer to JSON Schema: stored and labelled as 4
        replaced, replaced_id = ticket.csat_score, ticket.csat_event_id
        ticket.csat_score, ticket.csat_at, ticket.csat_event_id = score, event.occurred_at, event.event_id
        # the replaced rating, if still among the newest, is newer than none of those left out: dropping it
        # and adding the newer one keeps the window the newest ratings of the customer's tickets
        kept = [entry for entry in customer.recent_csat if entry[1] != replaced_id]
        entry = (event.occurred_at.isoformat(timespec="microseconds"), event.event_id, score)
        customer.recent_csat = sorted([*kept, entry], reverse=True)[:RECENT_CSAT_WINDOW]
        self._reband(customer, obs)
        if ticket.opened_at is not None:
            channel = ticket.channel or UNKNOWN
            if replaced is not None:
                obs.append(Observation("csat" + RETRACTED, (str(replaced), channel)))
            obs.append(Observation("csat", (str(score), channel)))
        return True


def kind_of(declared: str | None, deal_id: str, first_won_deal_id: str | None) -> str:
    """A won deal's kind: as declared, else new business if it is its customer's first won deal, else
    expansion."""
    if declared is not None:
        return declared
    return (DealKind.NEW_BUSINESS if deal_id == first_won_deal_id else DealKind.EXPANSION).value


def _take_terms(deal: DealState, event: Event) -> tuple[float, str, str]:
    """The deal's amount, currency and owner from ``event``, also returned. JSON's 1000 and 1000.0 become
    one float: PostgreSQL gets a batch's amounts as one typed array, which mixed ints and floats cannot be."""
    terms = float(event.data["amount"]), event.data["currency"], event.data["owner"]
    deal.amount, deal.currency, deal.owner = terms
    return terms
