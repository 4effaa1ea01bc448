from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract.decoding import validate_document
from streams.domain.errors import ConflictingEvent
from streams.domain.events import Event
from streams.domain.journey import HELD_FACTS, Journeys, Outcome
from streams.domain.stages import SERVICE_STAGES, Stage
from tests.support import event, net_observations


def net(applied: list[Any], prefix: str = "") -> Counter[tuple[str, tuple[str, ...], float]]:
    """The applied events' observations minus their retractions, of the names starting with ``prefix``."""
    observed = [o for a in applied for o in a.observations if o.name.startswith(prefix)]
    return net_observations((o.name, o.labels, o.value) for o in observed)


def as_event(document: dict[str, Any]) -> Event:
    return validate_document(document)


def run(documents: list[dict[str, Any]], threshold: float = 3.0) -> tuple[Journeys, list[Any]]:
    journeys = Journeys({}, {}, {}, at_risk_threshold=threshold)
    return journeys, [journeys.apply(as_event(d)) for d in documents]


def final_stage(documents: list[dict[str, Any]]) -> Stage | None:
    journeys, _ = run(documents)
    return journeys.customers["c-1"].stage


def test_won_deal_moves_customer_into_service_once() -> None:
    _, applied = run(
        [
            event("lead.created", at="2026-01-01T00:00:00Z"),
            event("deal.opened", at="2026-01-02T00:00:00Z"),
            event("deal.won", at="2026-01-10T00:00:00Z"),
            event("deal.won", deal_id="d-2", at="2026-02-10T00:00:00Z"),
        ]
    )
    assert [a.transition.to_stage if a.transition else None for a in applied] == [
        Stage.LEAD,
        Stage.OPPORTUNITY,
        Stage.CUSTOMER,
        None,
    ]
    names = [o.name for a in applied for o in a.observations]
    assert names.count("conversion") == 1
    assert names.count("deal_won") == 2
    sales_cycle = [o.value for a in applied for o in a.observations if o.name == "sales_cycle"]
    assert sales_cycle == [9 * 86400]


def test_second_won_for_the_same_deal_is_a_duplicate() -> None:
    _, applied = run([event("deal.won"), event("deal.won")])
    assert [a.outcome for a in applied] == [Outcome.PROCESSED, Outcome.DUPLICATE]
    assert applied[1].observations == []


def test_the_latest_rating_of_a_ticket_counts_whatever_the_arrival() -> None:
    """Score 1 first gave `at_risk`, score 5 first `customer`: the first to arrive counted, for the stage
    and the counters. Now the latest by (occurred_at, event_id) does, for both."""
    low = event("csat.submitted", score=1, at="2026-03-01T00:00:00Z")
    high = event("csat.submitted", score=5, at="2026-03-02T00:00:00Z")
    opened, won = event("ticket.opened", at="2026-02-01T00:00:00Z"), event("deal.won")
    outcomes = []
    for order in ([won, opened, low, high], [won, opened, high, low], [won, high, low, opened]):
        journeys, applied = run(order)
        assert stage_now(journeys) is Stage.CUSTOMER
        assert journeys.tickets["t-1"].csat_score == 5
        assert net(applied, "csat") == Counter({("csat", ("5", "email"), 1.0): 1})
        outcomes.append(sorted(a.outcome for a in applied))
    assert outcomes[0] == outcomes[1] == outcomes[2]  # each rating is processed, whichever came first


def test_a_newer_rating_replaces_the_older_in_the_stage_window() -> None:
    """The window of recent ratings holds one per ticket: a ticket rated 1, then 5, is a 5."""
    journeys, _ = run(
        [
            event("deal.won"),
            event("csat.submitted", ticket_id="t-1", score=1, at="2026-03-01T00:00:00Z"),
            event("csat.submitted", ticket_id="t-2", score=2, at="2026-03-02T00:00:00Z"),
        ]
    )
    assert stage_now(journeys) is Stage.AT_RISK
    journeys.apply(as_event(event("csat.submitted", ticket_id="t-1", score=5, at="2026-03-03T00:00:00Z")))
    journeys.apply(as_event(event("csat.submitted", ticket_id="t-2", score=5, at="2026-03-04T00:00:00Z")))
    assert [score for *_, score in journeys.customers["c-1"].recent_csat] == [5, 5]
    assert stage_now(journeys) is Stage.CUSTOMER


def test_sales_cycle_does_not_depend_on_arrival_order() -> None:
    """`deal.won` before `lead.created` never observed the cycle; an earlier lead arriving last kept the
    later one's."""
    first_lead = event("lead.created", at="2026-01-01T00:00:00Z")
    second_lead = event("lead.created", at="2026-01-11T00:00:00Z")
    won = event("deal.won", at="2026-02-01T00:00:00Z")
    for order in ([first_lead, second_lead, won], [won, second_lead, first_lead], [second_lead, won, first_lead]):
        _, applied = run(order)
        assert net(applied, "sales_cycle") == Counter({("sales_cycle", (), 31 * 86400.0): 1})
    _, applied = run([second_lead, won, first_lead])
    retracted = [o.value for a in applied for o in a.observations if o.name == "sales_cycle_retracted"]
    assert retracted == [21 * 86400.0]


def test_a_deal_lost_then_won_counts_as_won_only() -> None:
    lost, won = event("deal.lost", at="2026-03-01T00:00:00Z"), event("deal.won", at="2026-03-02T00:00:00Z")
    for order in ([lost, won], [won, lost]):
        journeys, applied = run(order)
        assert net(applied, "deal_") == Counter({("deal_won", ("ana", "new_business"), 1.0): 1})
        assert journeys.deals["d-1"].status == "won"
        customer = journeys.customers["c-1"]
        assert (customer.won_deals, customer.open_deals, customer.lost_deals) == (1, 0, 0)


def test_what_comes_before_the_opening_counts_under_the_tickets_channel() -> None:
    """Resolutions before `ticket.opened` were counted under channel `unknown`, their resolution time
    under the real one. Now every ticket figure waits for the channel, and each resolution counts."""
    opened = event("ticket.opened", channel="chat", priority="high", at="2026-03-01T00:00:00Z")
    first = event("ticket.resolved", contacts=1, handling_seconds=60, at="2026-03-01T01:00:00Z")
    reopened = event("ticket.reopened", at="2026-03-01T02:00:00Z")
    second = event("ticket.resolved", contacts=3, handling_seconds=300, at="2026-03-01T03:00:00Z")
    responded = event("ticket.responded", at="2026-03-01T00:10:00Z")
    expected = Counter(
        {
            ("ticket_opened", ("chat", "high"), 1.0): 1,
            ("ticket_resolved", ("chat",), 1.0): 2,
            ("ticket_first_contact_resolved", ("chat",), 1.0): 1,
            ("ticket_handling", ("chat",), 60.0): 1,
            ("ticket_handling", ("chat",), 300.0): 1,
            ("ticket_resolution", ("chat", "high"), 3600.0): 1,
            ("ticket_resolution", ("chat", "high"), 3 * 3600.0): 1,
            ("ticket_reopened", ("chat",), 1.0): 1,
            ("ticket_first_response", ("chat",), 600.0): 1,
        }
    )
    for order in (
        [opened, responded, first, reopened, second],
        [second, reopened, first, responded, opened],
        [first, opened, second, responded, reopened],
    ):
        journeys, applied = run(order)
        assert net(applied, "ticket_") == expected
        ticket = journeys.tickets["t-1"]
        assert (ticket.resolutions, ticket.first_contact_resolutions, ticket.contacts) == (2, 1, 3)
        assert ticket.early_resolutions == [] and ticket.early_reopens == 0


def test_an_earlier_first_response_arriving_later_replaces_the_first() -> None:
    opened = event("ticket.opened", at="2026-03-01T00:00:00Z")
    late, early = (event("ticket.responded", at=f"2026-03-01T00:{minute}:00Z") for minute in ("30", "05"))
    _, applied = run([opened, late, early])
    assert net(applied, "ticket_first_response") == Counter({("ticket_first_response", ("email",), 300.0): 1})


def test_low_csat_puts_a_customer_at_risk_and_recovery_brings_it_back() -> None:
    journeys, _ = run(
        [
            event("deal.won"),
            event("csat.submitted", ticket_id="t-1", score=1, at="2026-03-01T00:00:00Z"),
            event("csat.submitted", ticket_id="t-2", score=2, at="2026-03-02T00:00:00Z"),
        ]
    )
    assert stage_now(journeys) is Stage.AT_RISK
    for index, day in enumerate(("03", "04", "05")):
        journeys.apply(
            as_event(event("csat.submitted", ticket_id=f"t-{9 + index}", score=5, at=f"2026-03-{day}T00:00:00Z"))
        )
    assert stage_now(journeys) is Stage.CUSTOMER


def stage_now(journeys: Journeys) -> Stage | None:
    return journeys.customers["c-1"].stage


def test_deal_of_another_customer_is_a_conflict() -> None:
    journeys, _ = run([event("deal.opened", customer_id="c-1")])
    with pytest.raises(ConflictingEvent):
        journeys.apply(as_event(event("deal.won", customer_id="c-2")))
    assert "c-2" not in journeys.customers


def test_ticket_status_is_the_latest_status_event_whatever_the_arrival() -> None:
    opened = event("ticket.opened", at="2026-03-01T00:00:00Z")
    resolved = event("ticket.resolved", at="2026-03-02T00:00:00Z")
    reopened = event("ticket.reopened", at="2026-03-03T00:00:00Z")
    for order in ([opened, resolved, reopened], [reopened, resolved, opened], [resolved, reopened, opened]):
        journeys, _ = run(order)
        assert journeys.tickets["t-1"].status == "open"


def test_resolution_time_is_observed_once_when_resolution_arrives_first() -> None:
    _, applied = run(
        [
            event("ticket.resolved", at="2026-03-02T00:00:00Z"),
            event("ticket.opened", at="2026-03-01T00:00:00Z"),
        ]
    )
    resolutions = [o for a in applied for o in a.observations if o.name == "ticket_resolution"]
    assert [o.value for o in resolutions] == [86400.0]


# --- order independence ----------------------------------------------------------------------------
TIMES = [f"2026-0{month}-{day:02d}T00:00:00Z" for month in (1, 2, 3) for day in (1, 5, 9, 13, 17)]


@st.composite
def customer_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A random but valid history of one customer across the three topics."""
    docs: list[dict[str, Any]] = []
    time = st.sampled_from(TIMES)
    if draw(st.booleans()):
        docs.append(event("lead.created", at=draw(time)))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["lead.qualified", "lead.disqualified"]))
        docs.append(event(kind, at=draw(time)))
    declared = st.sampled_from([{}, {"kind": "new_business"}, {"kind": "renewal"}, {"kind": "expansion"}])
    for deal in range(draw(st.integers(0, 3))):
        deal_id = f"d-{deal}"
        if draw(st.booleans()):
            docs.append(event("deal.opened", deal_id=deal_id, at=draw(time), **draw(declared)))
        ending = draw(st.sampled_from(["open", "won", "lost", "both"]))
        if ending in ("won", "both"):
            docs.append(event("deal.won", deal_id=deal_id, at=draw(time), **draw(declared)))
        if ending in ("lost", "both"):
            docs.append(event("deal.lost", deal_id=deal_id, at=draw(time)))
    for ticket in range(draw(st.integers(0, 5))):
        ticket_id = f"t-{ticket}"
        docs.append(event("ticket.opened", ticket_id=ticket_id, at=draw(time)))
        if draw(st.booleans()):
            docs.append(event("csat.submitted", ticket_id=ticket_id, score=draw(st.integers(1, 5)), at=draw(time)))
    for _ in range(draw(st.integers(0, 2))):
        docs.append(event("customer.churned", at=draw(time)))
    return docs


@settings(max_examples=300, deadline=None)
@given(data=st.data(), docs=customer_events())
def test_final_stage_does_not_depend_on_arrival_order(data: st.DataObject, docs: list[dict[str, Any]]) -> None:
    if not docs:
        return
    reference = final_stage(docs)
    shuffled = data.draw(st.permutations(docs))
    assert final_stage(shuffled) == reference
    # and replaying the whole history (duplicates) changes nothing
    journeys, _ = run(shuffled)
    before = journeys.customers["c-1"].stage
    assert all(journeys.apply(as_event(d)).outcome in (Outcome.PROCESSED, Outcome.DUPLICATE) for d in docs)
    assert journeys.customers["c-1"].stage == before


@settings(max_examples=200, deadline=None)
@given(data=st.data(), docs=customer_events())
def test_service_stage_never_falls_back(data: st.DataObject, docs: list[dict[str, Any]]) -> None:
    journeys = Journeys({}, {}, {})
    in_service = False
    for document in data.draw(st.permutations(docs)):
        journeys.apply(as_event(document))
        stage = journeys.customers["c-1"].stage
        if in_service:
            assert stage in SERVICE_STAGES
        in_service = stage in SERVICE_STAGES


def test_a_transition_says_when_the_stage_it_leaves_was_entered_and_how_long_it_lasted() -> None:
    _, applied = run(
        [
            event("lead.created", at="2026-01-01T00:00:00Z"),
            event("lead.qualified", at="2026-01-11T00:00:00Z"),
            event("deal.won", at="2026-02-10T00:00:00Z"),
            event("lead.created", at="2025-12-01T00:00:00Z"),  # an earlier lead, late: no stage change
        ]
    )
    transitions = [a.transition for a in applied if a.transition is not None]
    assert [(t.to_stage, t.seconds_in_previous_stage) for t in transitions] == [
        (Stage.LEAD, None),
        (Stage.QUALIFIED, 10 * 86400.0),
        (Stage.CUSTOMER, 30 * 86400.0),
    ]
    assert [str(t.previous_stage_entered_at) for t in transitions[1:]] == ["2026-01-01 00:00:00", "2026-01-11 00:00:00"]
    durations = [(o.labels, o.value) for a in applied for o in a.observations if o.name == "stage_duration"]
    assert durations == [(("lead",), 10 * 86400.0), (("qualified",), 30 * 86400.0)]


def test_a_stage_left_by_an_event_older_than_its_entry_lasted_zero_seconds() -> None:
    """Out of time order the path is what arrival made it: the duration is never negative."""
    _, applied = run([event("deal.opened", at="2026-01-10T00:00:00Z"), event("deal.won", at="2026-01-01T00:00:00Z")])
    assert [a.transition.seconds_in_previous_stage for a in applied if a.transition] == [None, 0.0]


# --- retention and word of mouth ---------------------------------------------------------------


def every_order(documents: list[dict[str, Any]]) -> Iterator[tuple[Journeys, list[Any]]]:
    for order in itertools.permutations(documents):
        yield run(list(order))


def test_the_latest_commercial_fact_decides_churned_and_a_later_win_wins_back() -> None:
    """Churn, win, churn, win in time: every arrival order ends as a customer with two win-backs."""
    facts = [
        event("deal.won", deal_id="d-1", at="2026-01-01T00:00:00Z"),
        event("customer.churned", at="2026-02-01T00:00:00Z"),
        event("deal.won", deal_id="d-2", at="2026-03-01T00:00:00Z"),
        event("customer.churned", at="2026-04-01T00:00:00Z"),
        event("deal.won", deal_id="d-3", at="2026-05-01T00:00:00Z"),
    ]
    for journeys, applied in every_order(facts):
        customer = journeys.customers["c-1"]
        assert customer.stage is Stage.CUSTOMER
        assert net(applied, "win_back") == Counter({("win_back", (), 1.0): 2})
        assert (
            sum(o.value for a in applied for o in a.observations if o.name == "churn")
            - sum(o.value for a in applied for o in a.observations if o.name == "churn_retracted")
            == 2
        )
    journeys, _ = run(facts[:4])
    assert journeys.customers["c-1"].stage is Stage.CHURNED
    assert journeys.churns[-1][1:3] == ("c-1", datetime(2026, 4, 1))


def test_win_backs_are_counted_once_a_customer_has_more_facts_than_it_holds() -> None:
    wins = [event("deal.won", deal_id=f"d-{n}", at=f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z") for n in range(120)]
    churn = event("customer.churned", at="2025-12-31T00:00:00Z")
    late_churn = event("customer.churned", at="2026-01-01T00:00:30Z")  # after win 30, before win 31
    journeys, applied = run([churn, *wins, late_churn])
    customer = journeys.customers["c-1"]
    assert len(customer.commercial_facts) == HELD_FACTS
    assert customer.win_backs() == 2 and net(applied, "win_back") == Counter({("win_back", (), 1.0): 2})
    assert customer.stage is Stage.CUSTOMER


def test_a_won_deal_s_kind_is_declared_or_follows_the_first_won_deal_in_any_order() -> None:
    documents = [
        event("deal.won", deal_id="d-1", at="2026-02-01T00:00:00Z", amount=100),
        event("deal.won", deal_id="d-2", at="2026-01-01T00:00:00Z", amount=200),  # the first won, arriving later
        event("deal.opened", deal_id="d-3", at="2026-01-15T00:00:00Z", amount=300, kind="renewal"),
        event("deal.won", deal_id="d-3", at="2026-03-01T00:00:00Z", amount=300),
    ]
    expected = Counter(
        {
            ("deal_won", ("ana", "new_business"), 1.0): 1,
            ("deal_won", ("ana", "expansion"), 1.0): 1,
            ("deal_won", ("ana", "renewal"), 1.0): 1,
            ("revenue_won", ("EUR", "ana", "new_business"), 200.0): 1,
            ("revenue_won", ("EUR", "ana", "expansion"), 100.0): 1,
            ("revenue_won", ("EUR", "ana", "renewal"), 300.0): 1,
        }
    )
    for journeys, applied in every_order(documents):
        assert net(applied, "deal_won") + net(applied, "revenue_won") == expected
        assert journeys.customers["c-1"].first_won_deal_id == "d-2"
    # deal.won's kind overrides deal.opened's
    journeys, applied = run([documents[2], event("deal.won", deal_id="d-3", kind="expansion")])
    assert journeys.deals["d-3"].kind == "expansion"
    assert net(applied, "deal_won") == Counter({("deal_won", ("ana", "expansion"), 1.0): 1})


def test_churns_are_counted_under_the_band_of_the_ratings_up_to_the_latest_churn() -> None:
    documents = [
        event("deal.won", at="2026-01-01T00:00:00Z"),
        event("ticket.opened", ticket_id="t-1", at="2026-01-02T00:00:00Z"),
        event("csat.submitted", ticket_id="t-1", score=1, at="2026-01-03T00:00:00Z"),
        event("customer.churned", at="2026-01-04T00:00:00Z"),
        event("ticket.opened", ticket_id="t-2", at="2026-01-05T00:00:00Z"),
        event("csat.submitted", ticket_id="t-2", score=5, at="2026-01-06T00:00:00Z"),  # after it: not counted
    ]
    for journeys, applied in every_order(documents):
        assert net(applied, "churn") == Counter({("churn", ("low",), 1.0): 1})
        assert journeys.customers["c-1"].csat_band == "mid"  # (1 + 5) / 2: the whole window
    _, applied = run([documents[0], documents[3], documents[1], documents[2]])
    assert [(o.name, o.labels, o.value) for a in applied for o in a.observations if o.name.startswith("churn")] == [
        ("churn", ("none",), 1.0),
        ("churn_retracted", ("none",), 1.0),
        ("churn", ("low",), 1.0),
    ]


def test_a_referral_known_after_the_conversion_counts_it_and_its_revenue() -> None:
    documents = [
        event("lead.created", at="2026-01-01T00:00:00Z", channel="referral", referred_by="c-9"),
        event("deal.won", deal_id="d-1", at="2026-02-01T00:00:00Z", amount=100),
        event("deal.won", deal_id="d-2", at="2026-03-01T00:00:00Z", amount=50, currency="USD"),
        event("lead.created", at="2026-01-02T00:00:00Z", channel="referral", referred_by="c-8"),
    ]
    expected = Counter(
        {
            ("referral_lead", (), 1.0): 2,
            ("referral_conversion", (), 1.0): 1,
            ("referral_revenue", ("EUR",), 100.0): 1,
            ("referral_revenue", ("USD",), 50.0): 1,
        }
    )
    for journeys, applied in every_order(documents):
        assert net(applied, "referral") == expected
        assert journeys.customers["c-1"].referred_by == "c-9"  # the earliest lead that names a referrer


def test_nps_answers_are_counted_by_category_and_the_latest_is_kept() -> None:
    journeys, applied = run(
        [
            event("nps.submitted", score=10, at="2026-01-02T00:00:00Z"),
            event("nps.submitted", score=6, at="2026-01-01T00:00:00Z"),
            event("nps.submitted", score=7.0, at="2026-01-01T12:00:00Z"),
        ]
    )
    assert net(applied, "nps") == Counter(
        {("nps_response", (c,), 1.0): 1 for c in ("promoter", "detractor", "passive")}
    )
    assert journeys.customers["c-1"].nps_score == 10
