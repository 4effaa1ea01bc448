from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract.decoding import validate_document
from streams.domain.errors import ConflictingEvent
from streams.domain.events import Event
from streams.domain.journey import Journeys, Outcome
from streams.domain.stages import SERVICE_STAGES, Stage
from tests.support import event


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


def test_second_csat_for_a_ticket_is_a_duplicate() -> None:
    _, applied = run([event("csat.submitted", score=1), event("csat.submitted", score=5)])
    assert applied[1].outcome is Outcome.DUPLICATE


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
    for deal in range(draw(st.integers(0, 3))):
        deal_id = f"d-{deal}"
        if draw(st.booleans()):
            docs.append(event("deal.opened", deal_id=deal_id, at=draw(time)))
        ending = draw(st.sampled_from(["open", "won", "lost", "both"]))
        if ending in ("won", "both"):
            docs.append(event("deal.won", deal_id=deal_id, at=draw(time)))
        if ending in ("lost", "both"):
            docs.append(event("deal.lost", deal_id=deal_id, at=draw(time)))
    for ticket in range(draw(st.integers(0, 5))):
        ticket_id = f"t-{ticket}"
        docs.append(event("ticket.opened", ticket_id=ticket_id, at=draw(time)))
        if draw(st.booleans()):
            docs.append(event("csat.submitted", ticket_id=ticket_id, score=draw(st.integers(1, 5)), at=draw(time)))
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
