"""The read model's questions answer any text they are asked with, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from streams.db.models import Deal, StageTransition, Ticket
from streams.db.queries import (
    DEFAULT_LIMIT,
    ENTRIES,
    customer_entries,
    customer_journey,
    service_summary,
)
from streams.db.repository import Repository
from streams.domain.errors import InvalidRequest
from streams.pipeline.service import Pipeline
from tests.support import TOPICS, event, messages_for, migrated


@pytest.mark.parametrize("asked", ["a\x00b", "\x00", "x" * 65, "x" * 10_000, ""])
def test_a_customer_id_the_contract_refuses_is_unknown_not_an_error(database_url: str, asked: str) -> None:
    """`GET /customers/%00` was a 500 on PostgreSQL, which refuses a NUL in any text parameter."""
    engine = migrated(database_url)
    Pipeline(Repository(engine), TOPICS).process(messages_for([event("lead.created", "x" * 64)]))
    assert customer_journey(engine, asked) is None
    journey = customer_journey(engine, "x" * 64)
    assert journey is not None and journey["stage"] == "lead"


CUSTOMER = "c 1/é?&"  # a link quotes it
LIMIT = 2


def customer_with_long_lists(database_url: str) -> Engine:
    """CUSTOMER with more than LIMIT transitions (two at the same instant), deals and tickets, stored in
    an order that is not theirs; and another customer whose entries must not show."""
    engine = migrated(database_url)
    later = "2026-03-02T10:00:00Z"
    events = [
        event("lead.created", CUSTOMER),
        *(event("deal.opened", CUSTOMER, deal_id=f"d-{n}", at=later) for n in (3, 1, 5, 2, 4)),
        event("deal.won", CUSTOMER, deal_id="d-3", at=later),
        *(event("ticket.opened", CUSTOMER, ticket_id=f"t-{n}") for n in (2, 5, 1, 4, 3)),
        event("deal.opened", "c-2", deal_id="d-0"),
        event("ticket.opened", "c-2", ticket_id="t-0"),
    ]
    assert not Pipeline(Repository(engine), TOPICS).process(messages_for(events)).dead_letters
    return engine


def stored(engine: Engine, name: str) -> list[str]:
    """The ids of CUSTOMER's list ``name`` in the order the read model keeps it (as one page answered it)."""
    with Session(engine) as session:
        if name == "journey":
            rows = select(StageTransition.event_id).where(StageTransition.customer_id == CUSTOMER)
            return list(session.scalars(rows.order_by(StageTransition.occurred_at, StageTransition.id)))
        model, key = (Deal, Deal.deal_id) if name == "deals" else (Ticket, Ticket.ticket_id)
        return list(session.scalars(select(key).where(model.customer_id == CUSTOMER).order_by(key)))


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [entry.get("event_id") or entry.get("deal_id") or entry["ticket_id"] for entry in entries]


def follow(engine: Engine, name: str, link: str | None) -> list[list[dict[str, Any]]]:
    """The pages of list ``name`` that ``link`` and the next links after it lead to, as a client gets them."""
    pages = []
    while link is not None:
        url = urlsplit(link)
        assert url.path == f"/customers/{quote(CUSTOMER, safe='')}/{name}"
        page = customer_entries(engine, unquote(url.path.split("/")[2]), name, dict(parse_qsl(url.query)))
        assert page is not None and page["customer_id"] == CUSTOMER
        pages.append(page[name])
        link = page["links"][f"{name}_next"]
    return pages


@pytest.mark.parametrize("limit", [1, LIMIT])
def test_a_customers_lists_come_in_pages_with_every_entry_once_in_order(database_url: str, limit: int) -> None:
    """`GET /customers/{id}` answered every transition, deal and ticket at once, however many."""
    engine = customer_with_long_lists(database_url)
    answer = customer_journey(engine, CUSTOMER, {"limit": str(limit)})
    assert answer is not None and answer["stage"] == "customer"
    for name in ENTRIES:
        everything = stored(engine, name)
        assert len(everything) > limit
        assert len(answer[name]) == limit
        pages = [answer[name], *follow(engine, name, answer["links"][f"{name}_next"])]
        assert [len(page) for page in pages[:-1]] == [limit] * (len(pages) - 1)
        assert 1 <= len(pages[-1]) <= limit
        assert [ids(page) for page in pages] == [everything[n : n + limit] for n in range(0, len(everything), limit)]
        from_the_start = customer_entries(engine, CUSTOMER, name, {"limit": str(limit)})
        assert from_the_start is not None and from_the_start[name] == answer[name]


def test_the_default_page_is_a_hundred_entries(database_url: str) -> None:
    engine = migrated(database_url)
    events = [event("ticket.opened", ticket_id=f"t-{n:03}") for n in range(DEFAULT_LIMIT + 1)]
    Pipeline(Repository(engine), TOPICS).process(messages_for([event("lead.created"), *events]))
    answer = customer_journey(engine, "c-1")
    assert answer is not None and DEFAULT_LIMIT == 100
    assert [len(answer[name]) for name in ENTRIES] == [1, 0, DEFAULT_LIMIT]
    assert answer["links"]["journey_next"] is None and answer["links"]["deals_next"] is None
    rest = customer_entries(engine, "c-1", "tickets", dict(parse_qsl(urlsplit(answer["links"]["tickets_next"]).query)))
    assert rest is not None and ids(rest["tickets"]) == [f"t-{DEFAULT_LIMIT:03}"]
    assert rest["links"] == {"tickets_next": None}


def cursor(*key: object) -> str:
    """A cursor carrying ``key``, as a client could forge one (the answers' cursors are opaque)."""
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


BAD_LIMITS = ["0", "1001", "-1", "+5", " 5", "1e2", "2.0", "\u0663", "1_0", "", "many", "9" * 5000]
BAD_CURSORS = {
    "journey": [
        "",
        "***",
        "é",
        base64.urlsafe_b64encode(b"not json").decode(),
        cursor(),
        cursor("2026-03-01T10:00:00"),
        cursor("2026-03-01T10:00:00", 1, 2),
        cursor("2026-03-01T10:00:00+00:00", 1),  # aware: stored times are naive UTC
        cursor("yesterday", 1),
        cursor("2026-03-01T10:00:00", 2**31),  # past the column's INTEGER, which PostgreSQL refuses to compare
        cursor("2026-03-01T10:00:00", -(2**31) - 1),
        base64.urlsafe_b64encode(b'["2026-03-01T10:00:00",18446744073709551616]').decode(),
        cursor("2026-03-01T10:00:00", True),
        cursor("2026-03-01T10:00:00", 1.5),
        cursor(1, "2026-03-01T10:00:00"),
        cursor("d-1"),
        base64.urlsafe_b64encode(b"[" * 5000).decode(),
    ],
    "deals": [
        "",
        cursor(),
        cursor(1),
        cursor(None),
        cursor("d-1", "d-2"),
        cursor("d\x001"),  # PostgreSQL refuses a NUL
        base64.urlsafe_b64encode(b'["\\ud800"]').decode(),  # a lone surrogate, which no driver encodes
        base64.urlsafe_b64encode(b'["\xff"]').decode(),
    ],
}
BAD_CURSORS["tickets"] = BAD_CURSORS["deals"]


def refusal(question: Callable[..., object], *asked: object) -> str:
    """Why ``question(*asked)`` was refused as a bad page (a 400); any other error propagates."""
    try:
        question(*asked)
    except InvalidRequest as exc:
        return str(exc)
    return "answered"


def test_a_bad_limit_is_refused(database_url: str) -> None:
    engine = customer_with_long_lists(database_url)
    refused = "limit must be a whole number from 1 to 1000"
    for name in ENTRIES:
        asked = {limit: refusal(customer_entries, engine, CUSTOMER, name, {"limit": limit}) for limit in BAD_LIMITS}
        assert asked == dict.fromkeys(BAD_LIMITS, refused), name
    asked = {limit: refusal(customer_journey, engine, CUSTOMER, {"limit": limit}) for limit in BAD_LIMITS}
    assert asked == dict.fromkeys(BAD_LIMITS, refused)
    # a customer id the contract refuses is unknown before anything else is looked at
    assert customer_journey(engine, "\x00", {"limit": "0"}) is None
    assert customer_entries(engine, "\x00", "deals", {"limit": "0", "after": "***"}) is None


@pytest.mark.parametrize("name", ENTRIES)
def test_a_bad_cursor_is_refused_not_an_error(database_url: str, name: str) -> None:
    """Whatever ``after`` carries, the client's fault is a 400 (InvalidRequest), never the database's error."""
    engine = customer_with_long_lists(database_url)
    bad = BAD_CURSORS[name]
    asked = {after: refusal(customer_entries, engine, CUSTOMER, name, {"after": after}) for after in bad}
    assert asked == dict.fromkeys(bad, "after must be the cursor of a next link of this list")


def test_a_cursor_past_either_end_is_an_answer(database_url: str) -> None:
    engine = customer_with_long_lists(database_url)
    for name, after in [
        ("journey", cursor("9999-12-31T23:59:59.999999", 2**31 - 1)),
        ("journey", cursor("0001-01-01T00:00:00", -(2**31))),
        ("deals", cursor("\uffff" * 1000)),
        ("tickets", cursor("é")),
    ]:
        page = customer_entries(engine, CUSTOMER, name, {"after": after})
        assert page is not None and page["links"] == {f"{name}_next": None}
        assert ids(page[name]) in ([], stored(engine, name))


def test_an_unknown_customer_has_no_lists(database_url: str) -> None:
    engine = customer_with_long_lists(database_url)
    assert [customer_entries(engine, "nobody", name) for name in ENTRIES] == [None] * len(ENTRIES)


WON_IN_TWO_CURRENCIES = [
    event("deal.won", "c-1", deal_id="d-1", amount=1000, currency="EUR"),
    event("deal.won", "c-2", deal_id="d-2", amount=11000.5, currency="EUR"),
    event("deal.won", "c-3", deal_id="d-3", amount=3500, currency="USD"),
    event("deal.opened", "c-4", deal_id="d-4", amount=99, currency="JPY"),
    event("deal.opened", "c-5", deal_id="d-5", amount=7, currency="GBP"),
    event("deal.lost", "c-5", deal_id="d-5"),
]


def test_won_revenue_is_summed_per_currency_never_across(database_url: str) -> None:
    """The live view showed EUR and USD added together as one revenue."""
    engine = migrated(database_url)
    assert not Pipeline(Repository(engine), TOPICS).process(messages_for(WON_IN_TWO_CURRENCIES)).dead_letters
    summary = service_summary(engine)
    assert summary["won_revenue"] == {"EUR": 12000.5, "USD": 3500.0}
    assert (summary["won_deals"], summary["lost_deals"]) == (3, 1)


def test_a_customers_answer_has_its_service_facts_and_each_deal_its_kind(database_url: str) -> None:
    """The won deals' kinds as the metrics count them: declared, else new business for the first won deal
    (by won time, whatever the order of arrival) and expansion for the later ones; a deal not won: as declared."""
    engine = migrated(database_url)
    events = [
        event("lead.created", "c-2"),
        event("lead.created", "c-1", referred_by="c-2"),
        event("deal.won", deal_id="d-3", at="2026-03-05T10:00:00Z"),
        event("deal.opened", deal_id="d-2", kind="renewal"),
        event("deal.won", deal_id="d-2", at="2026-03-04T10:00:00Z"),
        event("deal.won", deal_id="d-1", at="2026-03-02T10:00:00Z"),
        event("deal.opened", deal_id="d-4", kind="expansion"),
        event("deal.opened", deal_id="d-5"),
        event("ticket.opened"),
        event("csat.submitted", score=3),
        event("nps.submitted", score=6),
        event("nps.submitted", at="2026-03-09T10:00:00Z", score=8),  # the latest answer
        event("nps.submitted", at="2026-03-08T10:00:00Z", score=10),
        event("customer.churned", at="2026-03-06T10:00:00Z", reason="price"),
        event("customer.churned", at="2026-03-07T10:00:00Z"),
    ]
    assert not Pipeline(Repository(engine), TOPICS).process(messages_for(events)).dead_letters
    answer = customer_journey(engine, "c-1")
    assert answer is not None
    assert answer["stage"] == "churned"
    assert (answer["churns"], answer["churned_at"]) == (2, "2026-03-07T10:00:00Z")
    assert (answer["referred_by"], answer["csat_band"], answer["nps_score"]) == ("c-2", "mid", 8)
    kinds = {deal["deal_id"]: (deal["status"], deal["kind"]) for deal in answer["deals"]}
    assert kinds == {
        "d-1": ("won", "new_business"),
        "d-2": ("won", "renewal"),
        "d-3": ("won", "expansion"),
        "d-4": ("open", "expansion"),
        "d-5": ("open", None),
    }
    page = customer_entries(engine, "c-1", "deals", {"limit": "1", "after": cursor("d-2")})
    assert page is not None and page["deals"] == [answer["deals"][2]]
    referrer = customer_journey(engine, "c-2")
    assert referrer is not None
    assert (referrer["churns"], referrer["churned_at"], referrer["referred_by"]) == (0, None, None)
    assert (referrer["csat_band"], referrer["nps_score"]) == ("none", None)


# Sales against service over two months (docs/metrics.md, "Retention"): c-1 and c-2 (whom c-1 referred) are
# customers at March's start; in March c-1 renews, c-2 expands (its second won deal, no kind declared) and
# churns. c-4 won in January and churned in February; c-3 lost its only deal.
SALES_AND_SERVICE = [
    event("lead.created", "c-1", at="2026-01-05T10:00:00Z"),
    event("deal.won", "c-1", deal_id="d-1", amount=1000, at="2026-02-01T10:00:00Z"),
    event("deal.won", "c-1", deal_id="d-3", amount=300, at="2026-03-03T10:00:00Z", kind="renewal"),
    event("ticket.opened", "c-1", at="2026-03-05T10:00:00Z"),
    event("ticket.resolved", "c-1", at="2026-03-05T11:00:00Z"),
    event("csat.submitted", "c-1", at="2026-03-05T12:00:00Z", score=5),
    event("nps.submitted", "c-1", score=10),
    event("lead.created", "c-2", at="2026-01-06T10:00:00Z", lead_id="l-2", referred_by="c-1"),
    event("deal.won", "c-2", deal_id="d-2", amount=500, currency="USD", at="2026-02-03T10:00:00Z"),
    event("deal.won", "c-2", deal_id="d-4", amount=200, currency="USD", at="2026-03-04T10:00:00Z"),
    event("customer.churned", "c-2", at="2026-03-10T10:00:00Z", reason="price"),
    event("nps.submitted", "c-2", at="2026-03-01T10:00:00Z", score=9),
    event("nps.submitted", "c-2", at="2026-03-11T10:00:00Z", score=3),  # its latest answer: a detractor
    event("lead.created", "c-3", at="2026-01-07T10:00:00Z", lead_id="l-3"),
    event("deal.opened", "c-3", deal_id="d-5", at="2026-01-08T10:00:00Z"),
    event("deal.lost", "c-3", deal_id="d-5", at="2026-01-09T10:00:00Z"),
    event("nps.submitted", "c-3", score=9),
    event("deal.won", "c-4", deal_id="d-6", amount=2000, at="2026-01-10T10:00:00Z"),
    event("customer.churned", "c-4", at="2026-02-15T10:00:00Z"),
    event("nps.submitted", "c-4", score=7),
]
IN_MARCH = datetime(2026, 3, 20, tzinfo=UTC)


def test_the_summary_sets_sales_against_service(database_url: str) -> None:
    engine = migrated(database_url)
    assert not Pipeline(Repository(engine), TOPICS).process(messages_for(SALES_AND_SERVICE)).dead_letters
    summary = service_summary(engine, retention_period="month", zone=UTC, now=IN_MARCH)
    assert (summary["won_deals"], summary["lost_deals"]) == (5, 1)
    assert summary["won_revenue"] == {"EUR": 3300.0, "USD": 700.0}
    assert (summary["leads"], summary["converted_leads"]) == (3, 2)
    assert summary["conversion_rate"] == pytest.approx(2 / 3)
    assert summary["revenue_by_kind"] == {
        "new_business": {"EUR": 3000.0, "USD": 500.0},
        "renewal": {"EUR": 300.0},
        "expansion": {"USD": 200.0},
    }
    assert summary["referral_revenue"] == {"USD": 700.0}
    assert (summary["churns"], summary["churned_customers"]) == (2, 2)
    assert (summary["nps_promoters"], summary["nps_detractors"], summary["nps_responses"]) == (2, 1, 4)
    assert summary["nps"] == pytest.approx(25.0)
    assert (summary["csat_responses"], summary["csat_share"], summary["fcr_rate"]) == (1, 1.0, 1.0)
    assert summary["open_tickets"] == 0
    assert (summary["retention_period"], summary["period_start"]) == ("month", datetime(2026, 3, 1))
    assert (summary["period_churns"], summary["period_customers_at_start"]) == (1, 2)
    assert summary["period_logo_churn_rate"] == 0.5
    assert summary["period_revenue_retention"] == {"EUR": pytest.approx(0.3), "USD": pytest.approx(0.4)}
    # the quarter began before any customer, and the one before it won nothing: no ratio to give
    quarter = service_summary(engine, retention_period="quarter", zone=UTC, now=IN_MARCH)
    assert (quarter["period_start"], quarter["period_churns"], quarter["period_customers_at_start"]) == (
        datetime(2026, 1, 1),
        2,
        0,
    )
    assert (quarter["period_logo_churn_rate"], quarter["period_revenue_retention"]) == (None, {})
    # March starts at 23:00 UTC the day before in Paris: the periods follow the zone
    paris = service_summary(engine, retention_period="month", zone=ZoneInfo("Europe/Paris"), now=IN_MARCH)
    assert paris["period_start"] == datetime(2026, 2, 28, 23)
