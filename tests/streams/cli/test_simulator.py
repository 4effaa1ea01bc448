"""The simulator: valid, seeded events, and an expected outcome that the events themselves bear out.

The expected outcome is the generator's bookkeeping of its own decisions; here it is recomputed from
the events alone by the contract's rules (docs/stages.md, the issue #20 contract), so a slip in either
shows."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Any

import pytest

from streams.cli.simulator import DEAL_KINDS, Expected, Simulation, simulate
from streams.contract.decoding import validate_document

Facts = list[dict[str, Any]]


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate(3000, seed=21)


def by_customer(events: Facts) -> dict[str, Facts]:
    journeys: dict[str, Facts] = defaultdict(list)
    for event in sorted(events, key=lambda e: (e["occurred_at"], e["event_id"])):
        journeys[event["customer_id"]].append(event)
    return journeys


def band(scores: list[int], threshold: float = 3.0) -> str:
    if not scores:
        return "none"
    average = sum(scores) / len(scores)
    return "low" if average < threshold else "mid" if average < 4 else "high"


def window(journey: Facts, until: str | None = None) -> list[int]:
    """The 3 latest ratings (occurred at or before ``until``); the journey is in time order."""
    rated = [
        e["score"] for e in journey if e["type"] == "csat.submitted" and (until is None or e["occurred_at"] <= until)
    ]
    return rated[-3:]


def churn_window(journey: Facts, until: str) -> list[int]:
    """The ratings of the CSAT window (the 3 latest) that occurred at or before ``until``: a churn's band."""
    return [score for score, at in latest_ratings(journey) if at <= until]


def latest_ratings(journey: Facts) -> list[tuple[int, str]]:
    return [(e["score"], e["occurred_at"]) for e in journey if e["type"] == "csat.submitted"][-3:]


def category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def won_deals(journey: Facts) -> list[tuple[dict[str, Any], str]]:
    """Each won deal's deal.won and its kind by the contract: deal.won's, else deal.opened's, else
    new_business for the first won deal (by won time, then deal_id) and expansion for later ones."""
    opened = {e["deal_id"]: e for e in journey if e["type"] == "deal.opened"}
    won = sorted((e for e in journey if e["type"] == "deal.won"), key=lambda e: (e["occurred_at"], e["deal_id"]))
    kinds = []
    for index, event in enumerate(won):
        declared = event.get("kind") or opened[event["deal_id"]].get("kind")
        kinds.append((event, declared or ("new_business" if index == 0 else "expansion")))
    return kinds


def outcome_of(events: Facts) -> Expected:
    """The expected outcome, from the events and the contract's rules alone."""
    got = Expected(events=len(events))
    journeys = by_customer(events)
    referred: dict[str, str] = {}
    for customer_id, journey in journeys.items():
        got.customers += 1
        won = won_deals(journey)
        facts = [e["type"] for e in journey if e["type"] in ("deal.won", "customer.churned")]
        churns = [e for e in journey if e["type"] == "customer.churned"]
        closed = {e["deal_id"] for e in journey if e["type"] in ("deal.won", "deal.lost")}
        decisions = [e["type"] for e in journey if e["type"] in ("lead.qualified", "lead.disqualified")]
        if facts and facts[-1] == "customer.churned":
            stage = "churned"
        elif won:
            stage = "at_risk" if band(window(journey)) == "low" else "customer"
        elif any(e["type"] == "deal.opened" and e["deal_id"] not in closed for e in journey):
            stage = "opportunity"
        elif any(e["type"] == "deal.lost" for e in journey):
            stage = "lost"
        elif decisions:
            stage = "qualified" if decisions[-1] == "lead.qualified" else "disqualified"
        else:
            stage = "lead"
        got.stages[stage] += 1
        got.conversions += bool(won)
        for event, kind in won:
            got.deals_won += 1
            got.deals_won_by_kind[kind] += 1
            by_currency = got.revenue_won_by_kind.setdefault(kind, {})
            by_currency[event["currency"]] = by_currency.get(event["currency"], 0.0) + event["amount"]
        got.win_backs += sum(1 for pair in itertools.pairwise(facts) if pair == ("customer.churned", "deal.won"))
        if churns:
            got.churns += len(churns)
            got.churns_by_band[band(churn_window(journey, churns[-1]["occurred_at"]))] += len(churns)
        nps = [e for e in journey if e["type"] == "nps.submitted"]
        got.nps_by_category.update(category(e["score"]) for e in nps)
        if nps:
            got.nps_customers[category(nps[-1]["score"])] += 1
        for event in journey:
            if event["type"] == "lead.created" and "referred_by" in event:
                referred[customer_id] = event["referred_by"]
    for customer_id, referrer in referred.items():
        won = won_deals(journeys[customer_id])
        got.referral_leads += 1
        got.referral_conversions += bool(won)
        got.referred_customers[(band(window(journeys[referrer])), bool(won))] += 1
        for event, _ in won:
            got.referral_revenue[event["currency"]] = got.referral_revenue.get(event["currency"], 0.0) + event["amount"]
    return got


def test_every_event_is_valid_under_the_contract(simulation: Simulation) -> None:
    for document in simulation.events:
        validate_document(document)
    assert len({e["event_id"] for e in simulation.events}) == len(simulation.events)


def test_the_expected_outcome_is_what_the_events_imply(simulation: Simulation) -> None:
    expected = simulation.expected.as_dict()
    recomputed = outcome_of(simulation.events).as_dict()
    for name in (
        "events",
        "customers",
        "stages",
        "conversions",
        "deals_won",
        "deals_won_by_kind",
        "revenue_won_by_kind",
        "churns",
        "churns_by_band",
        "win_backs",
        "referral_leads",
        "referral_conversions",
        "referral_revenue",
        "referred_customers",
        "nps_by_category",
        "nps_customers",
    ):
        assert recomputed[name] == expected[name], name


def test_the_totals_keep_their_meaning_across_kinds(simulation: Simulation) -> None:
    expected = simulation.expected
    assert expected.deals_won == sum(expected.deals_won_by_kind.values())
    for currency, total in expected.revenue_won.items():
        assert total == pytest.approx(sum(kind.get(currency, 0.0) for kind in expected.revenue_won_by_kind.values()))
    won = [e for e in simulation.events if e["type"] == "deal.won"]
    assert expected.deals_won == len(won)
    assert expected.conversions == len({e["customer_id"] for e in won})
    assert sum(expected.stages.values()) == expected.customers
    assert expected.churns == sum(expected.churns_by_band.values())


def test_times_are_consistent(simulation: Simulation) -> None:
    journeys = by_customer(simulation.events)
    first_won = {c: next((e["occurred_at"] for e in j if e["type"] == "deal.won"), None) for c, j in journeys.items()}
    for customer_id, journey in journeys.items():
        times = [e["occurred_at"] for e in journey]
        assert len(set(times)) == len(times), customer_id  # "at or before a churn" never needs a tie broken
        for event in journey:
            if event["type"] == "customer.churned":
                assert first_won[customer_id] is not None and first_won[customer_id] < event["occurred_at"]
            if event["type"] == "lead.created" and "referred_by" in event:
                referrer = event["referred_by"]
                assert referrer != customer_id and referrer in journeys
                won = first_won[referrer]
                assert won is not None and won < event["occurred_at"], "the referrer was a customer by then"
                assert event["channel"] == "referral"


def test_the_stream_exercises_every_new_case(simulation: Simulation) -> None:
    events, expected = simulation.events, simulation.expected
    assert set(expected.deals_won_by_kind) == set(DEAL_KINDS)
    opened = {e["deal_id"]: e.get("kind") for e in events if e["type"] == "deal.opened"}

    def placement(won: dict[str, Any]) -> str:
        on_opened, on_won = opened[won["deal_id"]], won.get("kind")
        if on_opened is None:
            return "won" if on_won else "neither"
        return "opened" if on_won is None else "both" if on_won == on_opened else "overridden"

    placements = Counter(placement(e) for e in events if e["type"] == "deal.won")
    assert set(placements) == {"neither", "opened", "won", "both", "overridden"}
    churns = [e for e in events if e["type"] == "customer.churned"]
    assert any("reason" in e for e in churns) and any("reason" not in e for e in churns)
    assert "deal_id" not in churns[0]
    assert set(expected.churns_by_band) == {"low", "mid", "high", "none"}
    assert expected.win_backs and expected.stages["churned"] and expected.stages["at_risk"]
    assert max(Counter(e["customer_id"] for e in churns).values()) >= 2, "a churn after a win-back"
    nps = [e for e in events if e["type"] == "nps.submitted"]
    assert any("ticket_id" in e for e in nps) and any("ticket_id" not in e for e in nps)
    assert set(expected.nps_by_category) == {"promoter", "passive", "detractor"}
    assert expected.referral_leads and expected.referral_conversions
    referral_leads = [e for e in events if e["type"] == "lead.created" and e["channel"] == "referral"]
    assert any("referred_by" not in e for e in referral_leads)
    # a rating after the latest churn that the churn's band must leave out
    journeys = by_customer(events)
    assert any(
        band(window(j)) != band(churn_window(j, [e for e in j if e["type"] == "customer.churned"][-1]["occurred_at"]))
        for j in journeys.values()
        if any(e["type"] == "customer.churned" for e in j)
    )


def test_unhappy_customers_churn_more_happy_ones_refer_and_promote() -> None:
    events = simulate(6000, seed=3).events
    journeys = by_customer(events)
    churned: Counter[str] = Counter()
    customers: Counter[str] = Counter()
    nps: dict[str, list[int]] = defaultdict(list)
    for journey in journeys.values():
        if not any(e["type"] == "deal.won" for e in journey):
            continue
        customers[band(window(journey))] += 1
        churned[band(window(journey))] += any(e["type"] == "customer.churned" for e in journey)
        for event in journey:
            if event["type"] == "nps.submitted":
                nps[band(window(journey, until=event["occurred_at"]))].append(event["score"])
    assert churned["low"] / customers["low"] > 2 * churned["high"] / customers["high"]
    assert sum(nps["high"]) / len(nps["high"]) > sum(nps["low"]) / len(nps["low"]) + 2
    referrers = Counter(
        band(window(journeys[e["referred_by"]])) for e in events if e["type"] == "lead.created" and "referred_by" in e
    )
    assert referrers["high"] / customers["high"] > 2 * referrers["low"] / customers["low"]


def test_seeded_and_about_as_big_as_before() -> None:
    first, again, other = simulate(500, seed=9), simulate(500, seed=9), simulate(500, seed=10)
    assert first.events == again.events and first.expected == again.expected
    assert first.events != other.events
    per_customer = len(simulate(4000, seed=1).events) / 4000
    assert 5.3 < per_customer < 6.2  # the benchmarks and integration tests size their streams by it
