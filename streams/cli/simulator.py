"""Seeded customer journeys, and the outcome they imply, so a run can be checked against the truth.

The expected outcome comes from the generator's own knowledge of each journey (what it decided to
happen), not from the pipeline's rules, so comparing the two is a real check.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import schemas
from streams.contract.timestamps import format_timestamp
from streams.contract.vocabulary import LEAD_CHANNELS, PRIORITIES, TICKET_CHANNELS
from streams.domain import figures

# How often each of the contract's values is drawn; a value the contract gains and the simulator does
# not weigh fails at import, not in a run
LEAD_CHANNEL_WEIGHTS = {"web": 40, "referral": 15, "event": 10, "outbound": 20, "partner": 10, "other": 5}
TICKET_CHANNEL_WEIGHTS = {"phone": 25, "email": 35, "chat": 25, "in_person": 5, "web": 10}
PRIORITY_WEIGHTS = {"low": 30, "normal": 50, "high": 15, "urgent": 5}


def _weights(options: tuple[str, ...], weights: dict[str, int]) -> tuple[int, ...]:
    if set(weights) != set(options):
        raise ValueError(f"simulator weights {sorted(weights)} do not match the contract's {sorted(options)}")
    return tuple(weights[option] for option in options)


LEAD_CHANNEL_DRAW = LEAD_CHANNELS, _weights(LEAD_CHANNELS, LEAD_CHANNEL_WEIGHTS)
TICKET_CHANNEL_DRAW = TICKET_CHANNELS, _weights(TICKET_CHANNELS, TICKET_CHANNEL_WEIGHTS)
PRIORITY_DRAW = PRIORITIES, _weights(PRIORITIES, PRIORITY_WEIGHTS)
NORMAL_SCORES = (1, 2, 3, 4, 5)
NORMAL_SCORE_WEIGHTS = (4, 5, 11, 35, 45)
DIP_SCORE_WEIGHTS = (35, 30, 15, 12, 8)
CURRENCIES = ("EUR", "USD")
CSAT_WINDOW = 3  # a customer's recent CSAT: its latest ratings

# the contract's deal kinds; a kind absent from both deal events is the pipeline's to infer
DEAL_KINDS = ("new_business", "renewal", "expansion")
if set(DEAL_KINDS) != set(schemas.load_schemas()["deal.won"]["properties"]["kind"]["enum"]):
    raise ValueError(f"simulator deal kinds {DEAL_KINDS} do not match the contract's")
KindDraw = tuple[tuple[str | None, ...], tuple[int, ...]]
FIRST_KINDS: KindDraw = ("new_business", None), (50, 50)
LATER_KINDS: KindDraw = ("renewal", "expansion", None), (40, 30, 30)
WIN_BACK_KINDS: KindDraw = ("new_business", "renewal", None), (40, 30, 30)
# where a declared kind is written: deal.opened, deal.won, both, or deal.won overriding another on deal.opened
KIND_PLACEMENT_DRAW = ("opened", "won", "both", "overridden"), (30, 30, 30, 10)
# by the customer's recent CSAT band: the chance to churn, to be picked as a referrer, its NPS scores
CHURN_CHANCE = {"low": 0.5, "mid": 0.25, "high": 0.08, "none": 0.15}
CHURN_REASON_DRAW = ("price", "switched to a competitor", "no longer needed", "budget cut"), (35, 30, 25, 10)
REFERRED_SHARE = 0.7  # of referral leads, those that name the referring customer
REFERRER_WEIGHTS = {"high": 8, "mid": 3, "none": 2, "low": 1}  # one customer's chance to be the referrer, relative
NPS_SCORES = tuple(range(11))
NPS_SCORE_WEIGHTS = {
    "high": (0, 0, 0, 1, 1, 2, 3, 6, 14, 33, 40),
    "mid": (1, 1, 2, 3, 4, 6, 10, 22, 25, 16, 10),
    "low": (10, 10, 12, 13, 13, 12, 10, 8, 6, 4, 2),
    "none": (2, 2, 3, 4, 5, 7, 10, 15, 18, 18, 16),
}


@dataclass
class Expected:
    """What the pipeline must end up with for a generated stream."""

    customers: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    leads_by_channel: Counter[str] = field(default_factory=Counter)
    leads_qualified: int = 0
    leads_disqualified: int = 0
    deals_opened: int = 0
    deals_won: int = 0  # every kind
    deals_lost: int = 0
    conversions: int = 0
    revenue_won: dict[str, float] = field(default_factory=dict)  # by currency, every kind
    deals_won_by_kind: Counter[str] = field(default_factory=Counter)
    revenue_won_by_kind: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> currency -> amount
    churns: int = 0
    churns_by_band: Counter[str] = field(default_factory=Counter)  # the customer's band at its latest churn
    win_backs: int = 0
    referral_leads: int = 0
    referral_conversions: int = 0
    referral_revenue: dict[str, float] = field(default_factory=dict)  # by currency
    # referred customers by (the referrer's band over its whole window, whether the referred one converted)
    referred_customers: Counter[tuple[str, bool]] = field(default_factory=Counter)
    nps_by_category: Counter[str] = field(default_factory=Counter)  # every answer
    nps_customers: Counter[str] = field(default_factory=Counter)  # by the category of each one's latest answer
    tickets_opened: int = 0
    tickets_open: int = 0
    resolutions: int = 0
    first_contact_resolutions: int = 0
    handling_seconds: float = 0.0
    reopened: int = 0
    csat_by_score: Counter[int] = field(default_factory=Counter)
    events: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "customers": self.customers,
            "stages": dict(sorted(self.stages.items())),
            "leads_by_channel": dict(sorted(self.leads_by_channel.items())),
            "leads_qualified": self.leads_qualified,
            "leads_disqualified": self.leads_disqualified,
            "deals_opened": self.deals_opened,
            "deals_won": self.deals_won,
            "deals_lost": self.deals_lost,
            "conversions": self.conversions,
            "revenue_won": _money(self.revenue_won),
            "deals_won_by_kind": dict(sorted(self.deals_won_by_kind.items())),
            "revenue_won_by_kind": {k: _money(v) for k, v in sorted(self.revenue_won_by_kind.items())},
            "churns": self.churns,
            "churns_by_band": dict(sorted(self.churns_by_band.items())),
            "win_backs": self.win_backs,
            "referral_leads": self.referral_leads,
            "referral_conversions": self.referral_conversions,
            "referral_revenue": _money(self.referral_revenue),
            "referred_customers": {
                f"{band}/{str(converted).lower()}": n
                for (band, converted), n in sorted(self.referred_customers.items())
            },
            "nps_by_category": dict(sorted(self.nps_by_category.items())),
            "nps_customers": dict(sorted(self.nps_customers.items())),
            "tickets_opened": self.tickets_opened,
            "tickets_open": self.tickets_open,
            "resolutions": self.resolutions,
            "first_contact_resolutions": self.first_contact_resolutions,
            "handling_seconds": round(self.handling_seconds, 3),
            "reopened": self.reopened,
            "csat_by_score": {str(k): v for k, v in sorted(self.csat_by_score.items())},
            "csat_share": figures.csat_share(self.csat_by_score),
            "csat_average": figures.csat_average(self.csat_by_score),
            "first_contact_resolution_rate": figures.first_contact_resolution_rate(
                self.first_contact_resolutions, self.resolutions
            ),
            "average_handling_seconds": figures.average_handling_seconds(self.handling_seconds, self.resolutions),
            "win_rate": figures.win_rate(self.deals_won, self.deals_lost),
            "conversion_rate": figures.conversion_rate(self.conversions, sum(self.leads_by_channel.values())),
        }


def _money(by_currency: dict[str, float]) -> dict[str, float]:
    return {currency: round(amount, 2) for currency, amount in sorted(by_currency.items())}


def _add(by_currency: dict[str, float], currency: str, amount: float) -> None:
    by_currency[currency] = by_currency.get(currency, 0.0) + amount


@dataclass
class Simulation:
    events: list[dict[str, Any]]
    expected: Expected


# (occurred_at, event_id): the order the contract's "latest" means; one customer's events never tie on time
Moment = tuple[datetime, str]


@dataclass
class _Won:
    at: Moment
    deal_id: str
    kind: str | None  # as declared: deal.won's, else deal.opened's, else None
    amount: float
    currency: str


class _Journey:
    def __init__(self, sim: Simulator, customer_id: str, start: datetime) -> None:
        self.sim, self.customer_id, self.now = sim, customer_id, start
        self.csat: list[tuple[datetime, str, int]] = []
        self.tickets = 0
        self.deals = 0
        self.rated_ticket: str | None = None  # the latest ticket with a rating
        self.won: list[_Won] = []
        self.churns: list[Moment] = []
        self.nps: list[tuple[datetime, str, str]] = []  # (occurred_at, event_id, category)
        self.referrer_band: str | None = None  # set when a referral named a customer

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        self.now += timedelta(seconds=self.sim.rng.uniform(60, 3 * 86400))
        self.sim.counter += 1
        event = {
            "event_id": f"{self.sim.prefix}-e{self.sim.counter:09d}",
            "type": event_type,
            "customer_id": self.customer_id,
            "occurred_at": format_timestamp(self.now),
            "schema_version": 1,
            "source": "simulator",
            **fields,
        }
        self.sim.out.append(event)
        return event

    def recent_scores(self, until: datetime | None = None) -> list[int]:
        """The CSAT window, the 3 latest ratings; of them, those that occurred at or before ``until``, if given."""
        window = sorted(self.csat, reverse=True)[:CSAT_WINDOW]
        return [score for at, _, score in window if until is None or at <= until]


class Simulator:
    def __init__(
        self,
        seed: int = 1,
        *,
        csat_dip: float = 0.0,
        owners: int = 12,
        start: datetime | None = None,
        prefix: str | None = None,
        at_risk_threshold: float = 3.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.csat_dip = csat_dip
        self.owners = [f"rep-{i:03d}" for i in range(owners)]
        self.start = start or datetime(2026, 1, 1)
        self.prefix = prefix or f"s{seed}"
        self.at_risk_threshold = at_risk_threshold
        self.counter = 0
        self.out: list[dict[str, Any]] = []
        self.expected = Expected()
        # customers who have won a deal, by their CSAT band over the whole window: (first won, customer_id)
        self.referrers: dict[str, list[tuple[datetime, str]]] = {band: [] for band in REFERRER_WEIGHTS}

    def run(self, customers: int) -> Simulation:
        for index in range(customers):
            self._journey(f"{self.prefix}-c{index:07d}")
        # upstream systems publish roughly in time order
        self.out.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
        self.expected.events = len(self.out)
        return Simulation(self.out, self.expected)

    def _pick(self, options: tuple[Any, ...], weights: tuple[int, ...]) -> Any:
        return self.rng.choices(options, weights)[0]

    def _band(self, scores: list[int]) -> str:
        if not scores:
            return "none"
        average = sum(scores) / len(scores)
        return "low" if average < self.at_risk_threshold else "mid" if average < 4 else "high"

    def _journey(self, customer_id: str) -> None:
        j = _Journey(self, customer_id, self.start + timedelta(seconds=self.rng.uniform(0, 90 * 86400)))
        self.expected.customers += 1
        stage = self._acquire(j)
        if stage is None:
            self._serve(j)
        self._settle(j, stage)

    def _acquire(self, j: _Journey) -> str | None:
        """Lead to first won deal: the stage the journey ends in, None once a customer."""
        rng, exp, customer_id = self.rng, self.expected, j.customer_id
        if rng.random() < 0.02:  # a contact known only from support tickets
            self._ticket(j)
            return "lead"
        channel = self._pick(*LEAD_CHANNEL_DRAW)
        referral: dict[str, str] = {}
        if channel == "referral" and rng.random() < REFERRED_SHARE:
            referrer = self._referrer(j.now)
            if referrer is not None:
                referral["referred_by"], j.referrer_band = referrer
                exp.referral_leads += 1
        j.emit("lead.created", lead_id=f"{customer_id}-l1", channel=channel, owner=rng.choice(self.owners), **referral)
        exp.leads_by_channel[channel] += 1
        if rng.random() < 0.05:  # pre-sale support
            self._ticket(j)
        roll = rng.random()
        if roll < 0.2:
            j.emit("lead.disqualified", lead_id=f"{customer_id}-l1", reason="no budget")
            exp.leads_disqualified += 1
            return "disqualified"
        if roll < 0.35:
            return "lead"
        j.emit("lead.qualified", lead_id=f"{customer_id}-l1")
        exp.leads_qualified += 1
        if rng.random() < 0.25:
            return "qualified"
        outcome = self._deal(j, win=0.5, keep_open=0.15, kinds=FIRST_KINDS)
        if outcome == "open":
            return "opportunity"
        if outcome == "lost":
            return "lost"
        exp.conversions += 1
        return None

    def _serve(self, j: _Journey) -> None:
        """A customer's life after its first won deal: tickets, NPS, more deals, churns and win-backs."""
        rng = self.rng
        for _ in range(rng.choice((0, 1, 1, 2, 3, 4))):
            self._ticket(j)
        if rng.random() < 0.2:
            self._nps(j)
        for _ in range(self._pick((0, 1, 2), (78, 18, 4))):  # renewals and expansions
            self._deal(j, win=0.75, keep_open=0.1, kinds=LATER_KINDS, steps=2)
        for attempt in range(2):  # a churn, a win-back, a second churn at most
            chance = CHURN_CHANCE[self._band(j.recent_scores())] / (attempt + 1)
            if rng.random() >= chance:
                break
            reason = {"reason": self._pick(*CHURN_REASON_DRAW)} if rng.random() < 0.7 else {}
            event = j.emit("customer.churned", **reason)
            j.churns.append((j.now, event["event_id"]))
            if rng.random() < 0.2:  # a last ticket after leaving: outside the band at the churn
                self._ticket(j)
            roll = rng.random()
            if roll < 0.3:
                self._deal(j, win=1.0, keep_open=0.0, kinds=WIN_BACK_KINDS, steps=2)
                for _ in range(rng.choice((0, 1, 2))):
                    self._ticket(j)
            else:
                if roll < 0.45:  # tried to win it back, not (yet) won
                    self._deal(j, win=0.0, keep_open=0.3, kinds=WIN_BACK_KINDS, steps=2)
                break
        if rng.random() < 0.05:  # a second NPS answer: the latest one counts for the customer
            self._nps(j)

    def _settle(self, j: _Journey, stage: str | None) -> None:
        """The outcome the journey's decisions imply: the stage, the won deals' kinds, churns, referrals."""
        exp = self.expected
        won = sorted(j.won, key=lambda w: (w.at[0], w.deal_id))  # the contract's "first won deal"
        for index, deal in enumerate(won):
            kind = deal.kind or ("new_business" if index == 0 else "expansion")
            exp.deals_won_by_kind[kind] += 1
            _add(exp.revenue_won_by_kind.setdefault(kind, {}), deal.currency, deal.amount)
        facts = sorted([(w.at, "won") for w in j.won] + [(c, "churn") for c in j.churns])
        exp.win_backs += sum(1 for a, b in itertools.pairwise(facts) if (a[1], b[1]) == ("churn", "won"))
        if j.churns:
            exp.churns += len(j.churns)
            exp.churns_by_band[self._band(j.recent_scores(until=max(j.churns)[0]))] += len(j.churns)
        if stage is None:  # a customer
            if facts[-1][1] == "churn":
                stage = "churned"
            else:
                stage = "at_risk" if self._band(j.recent_scores()) == "low" else "customer"
            self.referrers[self._band(j.recent_scores())].append((won[0].at[0], j.customer_id))
        exp.stages[stage] += 1
        if j.referrer_band is not None:
            exp.referral_conversions += bool(won)
            exp.referred_customers[(j.referrer_band, bool(won))] += 1
            for deal in won:
                _add(exp.referral_revenue, deal.currency, deal.amount)
        if j.nps:
            exp.nps_customers[max(j.nps)[2]] += 1

    def _referrer(self, before: datetime) -> tuple[str, str] | None:
        """An earlier journey's customer who had won a deal by ``before``, more likely a happy one:
        (its customer_id, its CSAT band over its whole window)."""
        bands = tuple(band for band, pool in self.referrers.items() if pool)
        if not bands:
            return None
        weights = tuple(REFERRER_WEIGHTS[band] * len(self.referrers[band]) for band in bands)  # per customer
        for _ in range(3):
            band = self._pick(bands, weights)
            first_won, customer_id = self.rng.choice(self.referrers[band])
            if first_won < before:
                return customer_id, band
        return None

    def _deal(self, j: _Journey, *, win: float, keep_open: float, kinds: KindDraw, steps: int = 4) -> str:
        """A deal, won with chance ``win``, left open with ``keep_open``, else lost; its declared kind
        drawn from ``kinds`` (None: declared on neither event); up to ``steps`` pipeline stages."""
        rng, exp = self.rng, self.expected
        j.deals += 1
        deal_id = f"{j.customer_id}-d{j.deals}"
        amount = round(rng.lognormvariate(9, 0.8), 2)
        currency = rng.choice(CURRENCIES)
        owner = rng.choice(self.owners)
        kind: str | None = self._pick(*kinds)
        opened: dict[str, str] = {}
        won: dict[str, str] = {}
        if kind is not None:
            placement = self._pick(*KIND_PLACEMENT_DRAW)
            if placement in ("opened", "both"):
                opened["kind"] = kind
            if placement in ("won", "both", "overridden"):
                won["kind"] = kind
            if placement == "overridden":  # deal.won's kind wins over deal.opened's
                opened["kind"] = rng.choice([k for k in DEAL_KINDS if k != kind])
        j.emit("deal.opened", deal_id=deal_id, amount=amount, currency=currency, owner=owner, **opened)
        exp.deals_opened += 1
        for stage in ("qualification", "demo", "proposal", "negotiation")[: rng.randint(0, steps)]:
            j.emit("deal.stage_changed", deal_id=deal_id, stage=stage)
        roll = rng.random()
        if roll < win:
            event = j.emit("deal.won", deal_id=deal_id, amount=amount, currency=currency, owner=owner, **won)
            j.won.append(_Won((j.now, event["event_id"]), deal_id, kind, amount, currency))
            exp.deals_won += 1
            _add(exp.revenue_won, currency, amount)
            return "won"
        if roll < win + keep_open:
            return "open"
        j.emit("deal.lost", deal_id=deal_id, reason="competitor")
        exp.deals_lost += 1
        return "lost"

    def _ticket(self, j: _Journey) -> None:
        rng, exp = self.rng, self.expected
        j.tickets += 1
        ticket_id = f"{j.customer_id}-t{j.tickets}"
        channel = self._pick(*TICKET_CHANNEL_DRAW)
        j.emit("ticket.opened", ticket_id=ticket_id, channel=channel, priority=self._pick(*PRIORITY_DRAW))
        exp.tickets_opened += 1
        if rng.random() < 0.1:
            exp.tickets_open += 1
            return
        j.emit("ticket.responded", ticket_id=ticket_id)
        resolutions = 2 if rng.random() < 0.05 else 1
        for attempt in range(resolutions):
            if attempt:
                j.emit("ticket.reopened", ticket_id=ticket_id)
                exp.reopened += 1
            contacts = 1 if rng.random() < 0.7 else rng.randint(2, 5)
            handling = round(rng.uniform(120, 3600), 1)
            j.emit("ticket.resolved", ticket_id=ticket_id, handling_seconds=handling, contacts=contacts)
            exp.resolutions += 1
            exp.handling_seconds += handling
            exp.first_contact_resolutions += contacts == 1
        if rng.random() < 0.6:
            dip = rng.random() < self.csat_dip
            score = self._pick(NORMAL_SCORES, DIP_SCORE_WEIGHTS if dip else NORMAL_SCORE_WEIGHTS)
            event = j.emit("csat.submitted", ticket_id=ticket_id, score=score)
            exp.csat_by_score[score] += 1
            j.csat.append((j.now, event["event_id"], score))
            j.rated_ticket = ticket_id

    def _nps(self, j: _Journey) -> None:
        """An NPS answer, higher the happier the customer's recent CSAT; after a rated ticket, now and then
        naming it."""
        score: int = self._pick(NPS_SCORES, NPS_SCORE_WEIGHTS[self._band(j.recent_scores())])
        ticket = {"ticket_id": j.rated_ticket} if j.rated_ticket and self.rng.random() < 0.5 else {}
        event = j.emit("nps.submitted", score=score, **ticket)
        category = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
        self.expected.nps_by_category[category] += 1
        j.nps.append((j.now, event["event_id"], category))


def simulate(customers: int, seed: int = 1, **options: Any) -> Simulation:
    return Simulator(seed, **options).run(customers)
