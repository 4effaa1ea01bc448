"""Poison messages in a seeded stream, through the real broker and `lifecycle worker`, on SQLite and
PostgreSQL: each one processed or dead-lettered with the class decided here beforehand, and none of
them stalls the worker or changes any other customer's outcome.

The cases are the ones that used to stall the worker forever on PostgreSQL (a UTC time outside years
1-9999, an id field of the wrong type or owned by someone else on a type that has no such id, a NUL
character in stored text, ``schema_version: 2.0``, a currency outside ISO 4217, a leap second), plus
schema-valid but odd ones (limits met exactly, non-ASCII at the length limits, deep unknown fields,
a ticket resolved before it was opened). Each poison message has a customer of its own, keyed by it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from streams.cli.processes import WorkerProcess, running_worker
from streams.cli.simulator import simulate
from streams.contract.vocabulary import EVENT_TOPICS
from streams.db.engine import make_engine
from streams.db.models import Customer, Deal, Ticket
from streams.domain.errors import ErrorClass
from streams.domain.stages import Stage
from streams.kafka.admin import ensure_topics
from streams.kafka.dead_letters import read_dead_letters
from streams.kafka.publisher import EventPublisher
from streams.metrics.scraped import metric_value
from tests.conftest import settings_from
from tests.integration.test_faults import committed_events, wait_until_published
from tests.support import wait_for_value

T = TypeVar("T")
CUSTOMERS = 600  # ~3,500 events
OUTCOMES = ("processed", "duplicate", "dead_lettered")
DEPTH = 1000  # nesting of an unknown field: just under the JSON parser's limit (1024)
OWNER_128 = "o" * 128
EMOJI_OWNER_128 = "\U0001f984" * 128  # 128 characters, 512 bytes in UTF-8
AMOUNT_MAX = 1e15  # the contract's maximum, exactly


@dataclass(frozen=True)
class Poison:
    """One odd customer: its messages (contract topic, value) in the order sent, all keyed by
    ``customer_id``, and the outcome decided beforehand: dead-lettered with ``error_class`` (then it
    has one message), or every message processed and the customer at ``stage``."""

    case: str
    customer_id: str
    messages: tuple[tuple[str, bytes], ...]
    error_class: ErrorClass | None = None
    stage: Stage | None = None

    @property
    def key(self) -> bytes:
        return self.customer_id.encode()


def document(event_type: str, customer_id: str, index: int = 0, **fields: Any) -> dict[str, Any]:
    """A valid event of ``event_type`` for ``customer_id``; ``fields`` override or add."""
    defaults: dict[str, dict[str, Any]] = {
        "lead.created": {"lead_id": f"{customer_id}-l1", "channel": "web"},
        "lead.qualified": {"lead_id": f"{customer_id}-l1"},
        "lead.disqualified": {"lead_id": f"{customer_id}-l1", "reason": "no budget"},
        "deal.opened": {"deal_id": f"{customer_id}-d1", "amount": 1000, "currency": "EUR", "owner": "ana"},
        "deal.won": {"deal_id": f"{customer_id}-d1", "amount": 1000, "currency": "EUR", "owner": "ana"},
        "ticket.opened": {"ticket_id": f"{customer_id}-t1", "channel": "email", "priority": "normal"},
        "ticket.responded": {"ticket_id": f"{customer_id}-t1"},
        "ticket.resolved": {"ticket_id": f"{customer_id}-t1", "handling_seconds": 600, "contacts": 1},
        "csat.submitted": {"ticket_id": f"{customer_id}-t1", "score": 5},
    }
    return {
        "event_id": f"{customer_id}-e{index}",
        "type": event_type,
        "customer_id": customer_id,
        "occurred_at": "2026-03-01T10:00:00Z",
        "schema_version": 1,
        **defaults[event_type],
        **fields,
    }


def single(case: str, customer_id: str, outcome: ErrorClass | Stage, event_type: str, **fields: Any) -> Poison:
    message = ((EVENT_TOPICS[event_type], orjson.dumps(document(event_type, customer_id, **fields))),)
    if isinstance(outcome, ErrorClass):
        return Poison(case, customer_id, message, error_class=outcome)
    return Poison(case, customer_id, message, stage=outcome)


def with_deep_unknown_field(customer_id: str) -> bytes:
    """A lead.created with ``extra`` nested DEPTH objects deep (orjson cannot write that; spliced in)."""
    nested = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
    return orjson.dumps(document("lead.created", customer_id))[:-1] + b',"extra":' + nested + b"}"


def poisons(foreign_ticket_id: str) -> list[Poison]:
    """The poison customers; ``foreign_ticket_id`` is a simulated customer's ticket."""
    invalid, unsupported = ErrorClass.INVALID_FIELD, ErrorClass.UNSUPPORTED_SCHEMA_VERSION
    ids = (f"poison-{n:02d}" for n in range(100))
    nul_customer = next(ids) + "\x00x"
    long_customer = next(ids)
    return [
        # --- the root-caused stalls: dead-lettered with their class -----------------------------
        single("utc before year 1", next(ids), invalid, "lead.created", occurred_at="0001-01-01T00:30:00+01:00"),
        single("utc after 9999", next(ids), invalid, "ticket.opened", occurred_at="9999-12-31T23:59:59-01:00"),
        single("nul in owner", next(ids), invalid, "deal.opened", owner="ana\x00"),
        single("nul in event_id", (c := next(ids)), invalid, "lead.created", event_id=f"{c}-e\x00"),
        single("nul in deal_id", (c := next(ids)), invalid, "deal.won", deal_id=f"{c}-d\x001"),
        single("nul in ticket_id", (c := next(ids)), invalid, "ticket.opened", ticket_id=f"{c}-t\x001"),
        single("nul in customer_id", nul_customer, invalid, "lead.created", event_id="poison-nul-customer-e0"),
        single("schema_version 2.0", next(ids), unsupported, "csat.submitted", schema_version=2.0),
        single("leap second", next(ids), invalid, "lead.qualified", occurred_at="2026-03-01T23:59:60Z"),
        single("currency not ISO 4217", next(ids), invalid, "deal.won", currency="ABC"),
        # --- odd, of our own: dead-lettered ----------------------------------------------------
        single("amount 1e308, over the maximum", next(ids), invalid, "deal.opened", amount=1e308),
        single("owner of 129 characters", next(ids), invalid, "deal.won", owner="o" * 129),
        single("nul in reason", next(ids), invalid, "lead.disqualified", reason="no\x00budget"),
        single("nul in source", next(ids), invalid, "ticket.responded", source="crm\x00"),
        single("february 30", next(ids), invalid, "lead.created", occurred_at="2026-02-30T10:00:00Z"),
        single("customer_id of 65", long_customer.ljust(65, "x"), invalid, "lead.created"),
        # --- the root-caused stalls: processed normally -----------------------------------------
        single("ticket_id object on lead.created", next(ids), Stage.LEAD, "lead.created", ticket_id={"x": 1}),
        single("int deal_id on lead.qualified", next(ids), Stage.QUALIFIED, "lead.qualified", deal_id=12345),
        single("foreign ticket_id on lead.created", next(ids), Stage.LEAD, "lead.created", ticket_id=foreign_ticket_id),
        single("lower-case z", next(ids), Stage.LEAD, "lead.created", occurred_at="2026-03-01T10:00:00z"),
        # --- odd, of our own: processed ---------------------------------------------------------
        single(
            "space, 9 fractional digits, +23:59",
            next(ids),
            Stage.DISQUALIFIED,
            "lead.disqualified",
            occurred_at="2026-03-01 10:00:00.123456789+23:59",
        ),
        single(
            "lower-case t and z", next(ids), Stage.QUALIFIED, "lead.qualified", occurred_at="2026-03-01t10:00:00.5z"
        ),
        single("amount at the maximum", next(ids), Stage.CUSTOMER, "deal.won", amount=AMOUNT_MAX, currency="JPY"),
        single("owner of 128 characters", next(ids), Stage.CUSTOMER, "deal.won", owner=OWNER_128),
        single("owner of 128 emoji", next(ids), Stage.OPPORTUNITY, "deal.opened", owner=EMOJI_OWNER_128),
        single("currency XXX (no currency)", next(ids), Stage.OPPORTUNITY, "deal.opened", currency="XXX"),
        single("nul only in unknown fields", next(ids), Stage.LEAD, "lead.created", notes="a\x00b", **{"\x00": 1}),
        single("event_id of 128", (c := next(ids)), Stage.LEAD, "lead.created", event_id=c.ljust(128, "e")),
        single("customer_id of 64, non-ASCII", next(ids).ljust(64, "\u00fc"), Stage.QUALIFIED, "lead.qualified"),
        single("integral floats", next(ids), Stage.LEAD, "ticket.resolved", contacts=2.0, schema_version=1.0),
        single("csat for a ticket never opened", next(ids), Stage.LEAD, "csat.submitted", score=1),
        Poison("deep unknown field", (c := next(ids)), (("leads", with_deep_unknown_field(c)),), stage=Stage.LEAD),
        Poison(
            "ticket resolved before opened",
            (c := next(ids)),
            (
                ("tickets", orjson.dumps(document("ticket.resolved", c, 1, occurred_at="2026-03-02T10:00:00Z"))),
                ("tickets", orjson.dumps(document("ticket.opened", c, 2))),
            ),
            stage=Stage.LEAD,
        ),
    ]


def within_deadline(worker: WorkerProcess, fetch: Callable[[], T], accept: Callable[[T], bool], what: str) -> T:
    """wait_for_value, failing with the end of the worker's log (where a stall shows)."""
    try:
        return wait_for_value(fetch, accept, timeout=120, what=what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n--- worker log (end) ---\n{worker.log()[-3000:]}") from None


def test_poison_messages_in_a_seeded_stream(worker_env: dict[str, str], tmp_path: Path) -> None:
    settings = settings_from(worker_env)
    simulation = simulate(CUSTOMERS, seed=31)
    events = simulation.events
    rng = random.Random(17)
    # a ticket of a simulated customer, opened early: stored long before the lead.created naming it
    owner_index, owner = next((i, e) for i, e in enumerate(events) if e["type"] == "ticket.opened")
    cases = poisons(owner["ticket_id"])
    assert len({p.customer_id for p in cases}) == len(cases)
    schedule: dict[int, list[tuple[Poison, bytes]]] = {}
    for poison in cases:
        earliest = owner_index + len(events) // 3 if poison.case.startswith("foreign") else 0
        for position, (_, value) in zip(
            sorted(rng.randint(earliest, len(events)) for _ in poison.messages), poison.messages, strict=True
        ):
            schedule.setdefault(position, []).append((poison, value))
    sent_poison = sum(len(p.messages) for p in cases)
    dead = [p for p in cases if p.error_class is not None]
    processed = [p for p in cases if p.error_class is None]
    total = len(events) + sent_poison

    ensure_topics(settings)
    with running_worker(worker_env, tmp_path / "worker.log") as worker:
        with EventPublisher(settings) as publisher:

            def send_poison(position: int) -> None:
                for poison, value in schedule.get(position, ()):
                    topic = poison.messages[0][0]
                    publisher.send_raw(settings.source_topics[topic], poison.key, value)

            for index, simulated in enumerate(events):
                send_poison(index)
                publisher.publish(simulated)
            send_poison(len(events))
        text = within_deadline(
            worker,
            lambda: worker.metrics("lifecycle_events_total"),
            lambda t: sum(metric_value(t, "lifecycle_events_total", outcome=o) for o in OUTCOMES) >= total,
            what=f"all {total} messages counted in /metrics",
        )
        counted = {o: metric_value(text, "lifecycle_events_total", outcome=o) for o in OUTCOMES}
        assert counted == {
            "processed": len(events) + sum(len(p.messages) for p in processed),
            "duplicate": 0,
            "dead_lettered": len(dead),
        }
        assert worker.process is not None and worker.process.poll() is None
        wait_until_published(settings, dead_letters=len(dead))
    assert committed_events(settings) == counted["processed"]

    # the dead-letter topic: exactly the poison customers meant for it, each with its class and a reason
    letters = list(read_dead_letters(settings))
    assert sorted((letter.key or b"").decode() for letter in letters) == sorted(p.customer_id for p in dead)
    classes = {(letter.key or b"").decode(): letter.error_class for letter in letters}
    assert classes == {p.customer_id: str(p.error_class) for p in dead}
    sent = {p.customer_id: (settings.source_topics[p.messages[0][0]], p.messages[0][1]) for p in dead}
    for letter in letters:
        customer_id = (letter.key or b"").decode()
        assert letter.reason, customer_id
        assert (letter.source_topic, letter.value) == sent[customer_id], customer_id

    engine = make_engine(settings.sqlalchemy_url)
    try:
        with Session(engine) as session:
            stages = dict(session.execute(select(Customer.customer_id, Customer.stage)).tuples().all())
            deals = {d.customer_id: d for d in session.scalars(select(Deal).where(Deal.customer_id.like("poison-%")))}
            tickets = {t.ticket_id: t for t in session.scalars(select(Ticket))}
    finally:
        engine.dispose()
    # every simulated customer as the simulator says, none of the poison ones changed that
    simulated = {c: s for c, s in stages.items() if not c.startswith("poison-")}
    assert len(simulated) == simulation.expected.customers
    assert Counter(simulated.values()) == Counter(dict(simulation.expected.stages))
    # the processed poison customers at their stage, the dead-lettered ones nowhere
    assert {c: s for c, s in stages.items() if c.startswith("poison-")} == {
        p.customer_id: str(p.stage) for p in processed
    }
    by_case = {p.case: p.customer_id for p in cases}
    # stored whole: the limits met exactly, multibyte text included
    assert deals[by_case["amount at the maximum"]].amount == AMOUNT_MAX
    assert deals[by_case["owner of 128 characters"]].owner == OWNER_128
    assert deals[by_case["owner of 128 emoji"]].owner == EMOJI_OWNER_128
    assert deals[by_case["currency XXX (no currency)"]].currency == "XXX"
    # the ticket named on someone else's lead.created is still its owner's
    assert tickets[owner["ticket_id"]].customer_id == owner["customer_id"]
    late = tickets[f"{by_case['ticket resolved before opened']}-t1"]
    assert (late.status, late.opened_at is not None, late.resolved_at is not None) == ("resolved", True, True)
    assert tickets[f"{by_case['integral floats']}-t1"].contacts == 2
