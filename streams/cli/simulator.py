"""Seeded customer journeys, and the outcome they imply, so a run can be checked against the truth.

The expected outcome comes from the generator's own knowledge of each journey (what it decided to
happen), not from the pipeline's rules, so comparing the two is a real check.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

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


@dataclass
class Expected:
    """What the pipeline must end up with for a generated stream."""

    customers: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    leads_by_channel: Counter[str] = field(default_factory=Counter)
    leads_qualified: int = 0
    leads_disqualified: int = 0
    deals_opened: int = 0
    deals_won: int = 0
    deals_lost: int = 0
    conversions: int = 0
    revenue_won: dict[str, float] = field(default_factory=dict)  # by currency
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
            "revenue_won": {k: round(v, 2) for k, v in sorted(self.revenue_won.items())},
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


@dataclass
class Simulation:
    events: list[dict[str, Any]]
    expected: Expected


class _Journey:
    def __init__(self, sim: Simulator, customer_id: str, start: datetime) -> None:
        self.sim, self.customer_id, self.now = sim, customer_id, start
        self.csat: list[tuple[datetime, str, int]] = []

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

    def run(self, customers: int) -> Simulation:
        for index in range(customers):
            self._journey(f"{self.prefix}-c{index:07d}")
        # upstream systems publish roughly in time order
        self.out.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
        self.expected.events = len(self.out)
        return Simulation(self.out, self.expected)

    def _pick(self, options: tuple[Any, ...], weights: tuple[int, ...]) -> Any:
        return self.rng.choices(options, weights)[0]

    def _journey(self, customer_id: str) -> None:
        rng, exp = self.rng, self.expected
        j = _Journey(self, customer_id, self.start + timedelta(seconds=rng.uniform(0, 90 * 86400)))
        exp.customers += 1
        if rng.random() < 0.02:  # a contact known only from support tickets
            self._ticket(j, 1)
            exp.stages["lead"] += 1
            return
        channel = self._pick(*LEAD_CHANNEL_DRAW)
        j.emit("lead.created", lead_id=f"{customer_id}-l1", channel=channel, owner=rng.choice(self.owners))
        exp.leads_by_channel[channel] += 1
        if rng.random() < 0.05:  # pre-sale support
            self._ticket(j, 0)
        roll = rng.random()
        if roll < 0.2:
            j.emit("lead.disqualified", lead_id=f"{customer_id}-l1", reason="no budget")
            exp.leads_disqualified += 1
            exp.stages["disqualified"] += 1
            return
        if roll < 0.35:
            exp.stages["lead"] += 1
            return
        j.emit("lead.qualified", lead_id=f"{customer_id}-l1")
        exp.leads_qualified += 1
        if rng.random() < 0.25:
            exp.stages["qualified"] += 1
            return
        outcome = self._deal(j, f"{customer_id}-d1", allow_open=True)
        if outcome == "open":
            exp.stages["opportunity"] += 1
            return
        if outcome == "lost":
            exp.stages["lost"] += 1
            return
        exp.conversions += 1
        for ticket_index in range(rng.choice((0, 1, 1, 2, 3, 4))):
            self._ticket(j, ticket_index + 1)
        if rng.random() < 0.1:
            self._deal(j, f"{customer_id}-d2", allow_open=False, only_won=True)
        recent = sorted(j.csat, reverse=True)[:3]
        at_risk = bool(recent) and sum(score for _, _, score in recent) / len(recent) < self.at_risk_threshold
        exp.stages["at_risk" if at_risk else "customer"] += 1

    def _deal(self, j: _Journey, deal_id: str, *, allow_open: bool, only_won: bool = False) -> str:
        rng, exp = self.rng, self.expected
        amount = round(rng.lognormvariate(9, 0.8), 2)
        currency = rng.choice(CURRENCIES)
        owner = rng.choice(self.owners)
        j.emit("deal.opened", deal_id=deal_id, amount=amount, currency=currency, owner=owner)
        exp.deals_opened += 1
        for stage in ("qualification", "demo", "proposal", "negotiation")[: rng.randint(0, 4)]:
            j.emit("deal.stage_changed", deal_id=deal_id, stage=stage)
        roll = rng.random()
        if only_won or roll < 0.5:
            j.emit("deal.won", deal_id=deal_id, amount=amount, currency=currency, owner=owner)
            exp.deals_won += 1
            exp.revenue_won[currency] = exp.revenue_won.get(currency, 0.0) + amount
            return "won"
        if not allow_open or roll < 0.85:
            j.emit("deal.lost", deal_id=deal_id, reason="competitor")
            exp.deals_lost += 1
            return "lost"
        return "open"

    def _ticket(self, j: _Journey, index: int) -> None:
        rng, exp = self.rng, self.expected
        ticket_id = f"{j.customer_id}-t{index}"
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


def simulate(customers: int, seed: int = 1, **options: Any) -> Simulation:
    return Simulator(seed, **options).run(customers)
