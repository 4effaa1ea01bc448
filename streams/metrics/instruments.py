"""The counters and histograms the worker keeps: the public monitoring contract (docs/metrics.md).

They are per worker process and count each event once, after its batch has committed. A figure that a
later-arriving event can change has a ``*_retracted`` twin that counts the values taken back
(``streams.domain.journey``): the figure is the metric minus its twin, order-free; the recording rules
subtract it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

from streams.contract.vocabulary import LEAD_CHANNELS, PRIORITIES, TICKET_CHANNELS
from streams.domain.figures import NPS_CATEGORIES
from streams.domain.journey import UNKNOWN, DealKind, Outcome
from streams.domain.stages import CsatBand, Stage
from streams.metrics.labels import BoundedLabel
from streams.pipeline.service import INVALID_TYPE, BatchResult

_MINUTE, _HOUR, _DAY = 60.0, 3600.0, 86400.0
SALES_CYCLE_BUCKETS = tuple(d * _DAY for d in (1, 3, 7, 14, 30, 60, 90, 180, 365))
HANDLING_BUCKETS = tuple(m * _MINUTE for m in (1, 2, 5, 10, 15, 30, 60, 120, 240))
RESOLUTION_BUCKETS = tuple(h * _HOUR for h in (0.25, 0.5, 1, 2, 4, 8, 24, 48, 72, 168, 336))
FIRST_RESPONSE_BUCKETS = tuple(m * _MINUTE for m in (1, 5, 15, 30, 60, 120, 240, 480, 1440))
DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
STAGE_DURATION_BUCKETS = tuple(h * _HOUR for h in (1, 6, 24, 72, 168, 336, 720, 1440, 2160, 4320, 8760))
BATCH_EVENTS_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000)
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_STEPS = ("write", "publish")


class LifecycleMetrics:
    def __init__(self, registry: CollectorRegistry, *, max_owner_labels: int = 100) -> None:
        self.owner = BoundedLabel(max_owner_labels)
        c, h = self._counter_factory(registry), self._histogram_factory(registry)
        # sales
        self.leads = c("lifecycle_leads", "Leads created, by channel.", ["channel"])
        self.leads_qualified = c("lifecycle_leads_qualified", "Lead qualification decisions: qualified.")
        self.leads_disqualified = c("lifecycle_leads_disqualified", "Lead qualification decisions: disqualified.")
        self.deals_opened = c("lifecycle_deals_opened", "Deals opened.")
        self.deals_won = c("lifecycle_deals_won", "Deals won (each deal once), by owner and kind.", ["owner", "kind"])
        self.deals_won_retracted = c(
            "lifecycle_deals_won_retracted",
            "Won deals taken back from a kind: an earlier win or a late deal.opened changed it.",
            ["owner", "kind"],
        )
        self.deals_lost = c("lifecycle_deals_lost", "Deals lost (each deal once, unless it was won first).")
        self.deals_lost_retracted = c(
            "lifecycle_deals_lost_retracted", "Losses counted, then overridden by the deal's win (won beats lost)."
        )
        self.revenue_won = c(
            "lifecycle_revenue_won", "Won deal amounts, in the deal's currency.", ["currency", "owner", "kind"]
        )
        self.revenue_won_retracted = c(
            "lifecycle_revenue_won_retracted",
            "Won amounts taken back from a kind (see lifecycle_deals_won_retracted).",
            ["currency", "owner", "kind"],
        )
        self.conversions = c("lifecycle_conversions", "Customers moved from acquisition into service (once each).")
        self.sales_cycle = h(
            "lifecycle_sales_cycle_seconds", "First lead.created to first deal.won.", [], SALES_CYCLE_BUCKETS
        )
        self.sales_cycle_retracted = h(
            "lifecycle_sales_cycle_retracted_seconds",
            "Sales cycles observed, then taken back: an earlier lead or win arrived later.",
            [],
            SALES_CYCLE_BUCKETS,
        )
        # service
        self.tickets_opened = c("lifecycle_tickets_opened", "Tickets opened.", ["channel", "priority"])
        self.tickets_resolved = c("lifecycle_tickets_resolved", "Ticket resolutions.", ["channel"])
        self.tickets_fcr = c("lifecycle_tickets_first_contact_resolved", "Resolutions with contacts == 1.", ["channel"])
        self.tickets_reopened = c("lifecycle_tickets_reopened", "Tickets reopened.", ["channel"])
        self.handling = h(
            "lifecycle_ticket_handling_seconds", "Agent handling time per resolution.", ["channel"], HANDLING_BUCKETS
        )
        self.resolution = h(
            "lifecycle_ticket_resolution_seconds",
            "Opened to resolved.",
            ["channel", "priority"],
            RESOLUTION_BUCKETS,
        )
        self.first_response = h(
            "lifecycle_ticket_first_response_seconds",
            "Opened to first agent response.",
            ["channel"],
            FIRST_RESPONSE_BUCKETS,
        )
        self.first_response_retracted = h(
            "lifecycle_ticket_first_response_retracted_seconds",
            "First response times taken back: an earlier response arrived later.",
            ["channel"],
            FIRST_RESPONSE_BUCKETS,
        )
        self.csat = c(
            "lifecycle_csat_responses",
            "CSAT ratings by score (1-5) and ticket channel: a ticket's latest.",
            ["score", "channel"],
        )
        self.csat_points = c(
            "lifecycle_csat_score_points", "Sum of CSAT scores (average = points / responses).", ["channel"]
        )
        self.csat_retracted = c(
            "lifecycle_csat_responses_retracted",
            "CSAT ratings taken back: the ticket got a newer one.",
            ["score", "channel"],
        )
        self.csat_points_retracted = c(
            "lifecycle_csat_score_points_retracted", "Sum of the CSAT scores taken back.", ["channel"]
        )
        # what service earns: retention and word of mouth
        self.churns = c(
            "lifecycle_churns",
            "customer.churned events, by the band of the customer's recent CSAT up to its latest churn.",
            ["csat_band"],
        )
        self.churns_retracted = c(
            "lifecycle_churns_retracted", "Churns taken back from a band: a rating changed it.", ["csat_band"]
        )
        self.win_backs = c("lifecycle_win_backs", "Won deals that directly follow a churn of their customer.")
        self.referral_leads = c("lifecycle_referral_leads", "lead.created events that name a referring customer.")
        self.referral_conversions = c(
            "lifecycle_referral_conversions", "Referred customers' first won deal (once per customer)."
        )
        self.referral_revenue = c("lifecycle_referral_revenue", "Won deal amounts of referred customers.", ["currency"])
        self.nps = c("lifecycle_nps_responses", "NPS answers: promoter 9-10, passive 7-8, detractor 0-6.", ["category"])
        # lifecycle and pipeline
        self.transitions = c(
            "lifecycle_stage_transitions",
            "Stage changes; from_stage 'none' is a new customer.",
            ["from_stage", "to_stage"],
        )
        self.stage_duration = h(
            "lifecycle_stage_duration_seconds",
            "Time in a stage, observed when the customer leaves it: its entry's occurred_at to its exit's.",
            ["stage"],
            STAGE_DURATION_BUCKETS,
        )
        self.events = c("lifecycle_events", "Messages consumed, by outcome.", ["topic", "type", "outcome"])
        self.event_delay = h("lifecycle_event_delay_seconds", "Processed time minus occurred_at.", [], DELAY_BUCKETS)
        self.commit_delay = h(
            "lifecycle_commit_delay_seconds",
            "Kafka record timestamp to the commit of its batch: the pipeline's own latency.",
            [],
            DELAY_BUCKETS,
        )
        self.batch_events = h(
            "lifecycle_batch_events", "Events per batch (one database transaction).", [], BATCH_EVENTS_BUCKETS
        )
        self.batch_seconds = h(
            "lifecycle_batch_seconds",
            "A batch's steps: write (its database transaction, retries included), publish (to Kafka).",
            ["step"],
            BATCH_SECONDS_BUCKETS,
        )
        owner = self.owner
        # observation name -> what one series' values do to the metrics (values are 1.0 per counted fact,
        # or an amount: a counter adds their sum)
        self._route: dict[str, Callable[[tuple[str, ...], list[float]], None]] = {
            "lead_created": _count(self.leads),
            "lead_qualified": _count(self.leads_qualified),
            "lead_disqualified": _count(self.leads_disqualified),
            "deal_opened": _count(self.deals_opened),
            "deal_won": _count(self.deals_won, lambda rep, kind: (owner(rep), kind), self.deals_won_retracted),
            "deal_won_retracted": _count(self.deals_won_retracted, lambda rep, kind: (owner(rep), kind)),
            "deal_lost": _count(self.deals_lost),
            "deal_lost_retracted": _count(self.deals_lost_retracted),
            "revenue_won": _count(
                self.revenue_won, lambda currency, rep, kind: (currency, owner(rep), kind), self.revenue_won_retracted
            ),
            "revenue_won_retracted": _count(
                self.revenue_won_retracted, lambda currency, rep, kind: (currency, owner(rep), kind)
            ),
            "conversion": _count(self.conversions),
            "sales_cycle": _observe(self.sales_cycle),
            "sales_cycle_retracted": _observe(self.sales_cycle_retracted),
            "ticket_opened": _count(self.tickets_opened),
            "ticket_resolved": _count(self.tickets_resolved),
            "ticket_first_contact_resolved": _count(self.tickets_fcr),
            "ticket_reopened": _count(self.tickets_reopened),
            "ticket_handling": _observe(self.handling),
            "ticket_resolution": _observe(self.resolution),
            "ticket_first_response": _observe(self.first_response),
            "ticket_first_response_retracted": _observe(self.first_response_retracted),
            "csat": self._csat_recorder(self.csat, self.csat_points),
            "csat_retracted": self._csat_recorder(self.csat_retracted, self.csat_points_retracted),
            "churn": _count(self.churns),
            "churn_retracted": _count(self.churns_retracted),
            "win_back": _count(self.win_backs),
            "referral_lead": _count(self.referral_leads),
            "referral_conversion": _count(self.referral_conversions),
            "referral_revenue": _count(self.referral_revenue),
            "nps_response": _count(self.nps),
            "stage_transition": _count(self.transitions),
            "stage_duration": _observe(self.stage_duration),
            "event_delay": _observe(self.event_delay),
        }

    @staticmethod
    def _counter_factory(registry: CollectorRegistry) -> Callable[..., Counter]:
        def make(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, list(labels), registry=registry)

        return make

    @staticmethod
    def _histogram_factory(registry: CollectorRegistry) -> Callable[..., Histogram]:
        def make(name: str, doc: str, labels: Iterable[str], buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, list(labels), buckets=buckets, registry=registry)

        return make

    def create_known_children(self, topics: Iterable[str], event_types: Iterable[str]) -> None:
        """Every known label combination exists from start-up at 0: a ratio over a missing series is empty."""
        for step in BATCH_STEPS:
            self.batch_seconds.labels(step)
        channels = (*TICKET_CHANNELS, UNKNOWN)
        for channel in LEAD_CHANNELS:
            self.leads.labels(channel)
        for channel in channels:
            for child in (
                self.tickets_resolved,
                self.tickets_fcr,
                self.tickets_reopened,
                self.handling,
                self.first_response,
                self.first_response_retracted,
            ):
                child.labels(channel)
            for priority in (*PRIORITIES, UNKNOWN):
                self.resolution.labels(channel, priority)
                if channel != UNKNOWN and priority != UNKNOWN:
                    self.tickets_opened.labels(channel, priority)
            self.csat_points.labels(channel)
            self.csat_points_retracted.labels(channel)
            for score in range(1, 6):
                self.csat.labels(str(score), channel)
                self.csat_retracted.labels(str(score), channel)
        for band in CsatBand:
            self.churns.labels(band.value)
            self.churns_retracted.labels(band.value)
        for category in NPS_CATEGORIES:
            self.nps.labels(category)
        stages = [s.value for s in Stage]
        for stage in stages:
            self.stage_duration.labels(stage)
        for to_stage in stages:
            for from_stage in ("none", *stages):
                if from_stage != to_stage:
                    self.transitions.labels(from_stage, to_stage)
        types = list(event_types)
        for topic in topics:
            for event_type in (*types, INVALID_TYPE):
                for outcome in Outcome:
                    self.events.labels(topic, event_type, outcome.value)

    def create_owner_children(self, owners: Iterable[str], currency: str) -> None:
        """Reps known in advance (from the quota file) get their series at start-up too."""
        for owner in owners:
            label = self.owner(owner)
            for kind in DealKind:
                for won, revenue in (
                    (self.deals_won, self.revenue_won),
                    (self.deals_won_retracted, self.revenue_won_retracted),
                ):
                    won.labels(label, kind.value)
                    revenue.labels(currency, label, kind.value)
            self.referral_revenue.labels(currency)

    @staticmethod
    def _csat_recorder(responses: Counter, points: Counter) -> Callable[[tuple[str, ...], list[float]], None]:
        def record(labels: tuple[str, ...], values: list[float]) -> None:
            score, channel = labels
            responses.labels(score, channel).inc(len(values))
            points.labels(channel).inc(int(score) * len(values))

        return record

    def record_write(self, events: int, seconds: float, delays: Iterable[float]) -> None:
        """A batch's database step; ``delays``: each event's record timestamp to the commit."""
        self.batch_events.observe(events)
        self.batch_seconds.labels("write").observe(seconds)
        for delay in delays:
            self.commit_delay.observe(max(0.0, delay))

    def record(self, result: BatchResult) -> None:
        """Per series, not per event: a ``labels()`` lookup per event would be most of this method's cost."""
        for (name, labels), values in result.observations.items():
            self._route[name](labels, values)
        for (topic, event_type, outcome), count in result.outcomes.items():
            self.events.labels(topic, event_type, outcome.value).inc(count)


def _count(
    counter: Counter, relabel: Callable[..., tuple[str, ...]] | None = None, twin: Counter | None = None
) -> Callable[[tuple[str, ...], list[float]], None]:
    """``twin``: the counter's ``*_retracted`` one, whose series is created with the counter's (at 0), so
    that ``increase()`` sees its first retraction too."""

    def record(labels: tuple[str, ...], values: list[float]) -> None:
        if not labels:
            counter.inc(sum(values))
            return
        names = relabel(*labels) if relabel else labels
        counter.labels(*names).inc(sum(values))
        if twin is not None:
            twin.labels(*names)

    return record


def _observe(histogram: Histogram) -> Callable[[tuple[str, ...], list[float]], None]:
    def record(labels: tuple[str, ...], values: list[float]) -> None:
        target = histogram.labels(*labels) if labels else histogram
        for value in values:
            target.observe(value)

    return record
