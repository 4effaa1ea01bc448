"""Every message the contract's JSON Schemas accept is processed or dead-lettered: the pipeline never raises.

Why: upstream teams validate against ``schemas/v1/*.json`` and nothing else, so whatever those schemas accept
reaches the worker. A batch that raises is retried forever and blocks its partition, so a schema-valid
message that makes ``Pipeline.process`` raise stops the stream. The example-based tests only send what
their authors thought of; here Hypothesis generates the events from the very schemas upstream uses
(hypothesis-jsonschema, each property from its subschemas), adds the extra fields the envelope allows
(``additionalProperties``), renders integers as the equal JSON floats sometimes (``2.0`` is the integer 2 to
JSON Schema), spells real moments in each way RFC 3339 allows, and mixes several events per batch over a
small pool of customer, deal, ticket and lead ids, so updates and conflicts happen.

Each batch is processed, then processed again: the first time every message is accounted for once
(processed, duplicate or dead-lettered with an error class and a reason); the replay raises nothing and
processes nothing twice. A dead letter of a schema-valid message must also have a reason the contract
gives: a conflict with stored state, a ``schema_version`` above 1, or a refusal the schema cannot express
but documents (a date the calendar lacks, a UTC outside years 1-9999, a NUL character). Anything else
means the schema and the pipeline disagree about the contract.

One migrated database per test, on SQLite and on PostgreSQL, shared by the examples: every id of an
example is prefixed with a counter, so no example sees another's events or rows.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import fastjsonschema
import orjson
import pycountry
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import event as statistic
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from sqlalchemy import Engine

import schemas
from streams.contract.messages import DeadLetter, RawMessage
from streams.contract.vocabulary import EVENT_TOPICS
from streams.db.repository import Repository
from streams.domain.errors import ErrorClass
from streams.domain.journey import Outcome
from streams.pipeline.service import BatchResult, Pipeline
from tests.support import TOPICS, migrated

EXAMPLES = 150  # per database: about 6 s on SQLite and 6 s on PostgreSQL while nothing fails

# the ids the pipeline keys state by, with the pool a batch shares them from (so events meet)
POOLS: dict[str, tuple[str, ...]] = {
    "customer_id": ("c-1", "c-2", "c-3"),
    "lead_id": ("l-1", "l-2"),
    "deal_id": ("d-1", "d-2"),
    "ticket_id": ("t-1", "t-2"),
    "event_id": ("e-1", "e-2"),
}
ID_MAX_LENGTH = {"customer_id": 64}  # the envelope's; every other id allows 128
EXTRA_NAMES = ("deal_id", "ticket_id", "lead_id", "customer_ref", "account_id", "parent_customer_id", "note")
_examples = itertools.count()
CURRENCIES = frozenset(currency.alpha_3 for currency in pycountry.currencies)


# --- strategies from the contract's schemas ------------------------------------------------------------
def _without_identity(document: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in ("$id", "$schema")}


def resolved(document: Mapping[str, Any], base: str | None = None) -> dict[str, Any]:
    """``document`` with each ``$ref`` to a contract schema replaced by that schema (without its ``$id`` and
    ``$schema``): hypothesis-jsonschema does not fetch remote references."""
    documents = schemas.load_schemas()
    base = str(document.get("$id", base or schemas.SCHEMA_BASE_URI))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                uri = urljoin(base, node["$ref"])
                assert uri.startswith(schemas.SCHEMA_BASE_URI) and uri.endswith(".json"), uri
                target = documents[uri.removeprefix(schemas.SCHEMA_BASE_URI).removesuffix(".json")]
                rest = {key: walk(value) for key, value in node.items() if key != "$ref"}
                return {**resolved(target, uri), **rest}
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return _without_identity(walk(dict(document)))


RESOLVED: dict[str, dict[str, Any]] = {
    name: resolved(document) for name, document in schemas.load_schemas().items() if name != schemas.ENVELOPE
}


# what each event type's resolved schema says of an object: its properties (each with its subschemas: the
# envelope's and the type's own) and the names it requires
_OBJECT_KEYWORDS = {"type", "title", "description", "x-topic", "allOf", "properties", "required"}
_ADDITIONAL = {"additionalProperties": True}


def _properties(schema: Mapping[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
    properties: dict[str, list[dict[str, Any]]] = {}
    required: set[str] = set()
    for part in [schema, *schema.get("allOf", [])]:
        unknown = {key: value for key, value in part.items() if key not in _OBJECT_KEYWORDS}
        assert unknown in ({}, _ADDITIONAL), f"a keyword this test does not build objects for: {unknown}"
        assert part is schema or "allOf" not in part, "a nested allOf"
        assert part.get("type", "object") == "object", part
        for name, spec in part.get("properties", {}).items():
            properties.setdefault(name, []).append(spec)
        required.update(part.get("required", []))
    assert required <= properties.keys(), required - properties.keys()
    return properties, required


def event_strategy(schema: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The objects ``schema`` accepts, less extra fields (added by :func:`upstream_events`). Each property's
    values come from ``from_schema`` of its subschemas; the object is assembled here, because
    hypothesis-jsonschema 0.23.1 cannot build objects on Hypothesis 6.170 (``from_schema`` of an object
    schema fails with ``AttributeError: 'many' object has no attribute 'more'``)."""
    properties, required = _properties(schema)
    values = {
        name: from_schema(specs[0] if len(specs) == 1 else {"allOf": specs}) for name, specs in properties.items()
    }
    return st.fixed_dictionaries(
        {name: values[name] for name in sorted(required)},
        optional={name: values[name] for name in sorted(properties.keys() - required)},
    )


def declared(event_type: str) -> dict[str, list[dict[str, Any]]]:
    """The properties the type's schema names, the envelope's included."""
    return _properties(RESOLVED[event_type])[0]


def _integer_fields(event_type: str) -> tuple[str, ...]:
    return tuple(
        name for name, specs in declared(event_type).items() if any(spec.get("type") == "integer" for spec in specs)
    )


INTEGER_FIELDS = {event_type: _integer_fields(event_type) for event_type in RESOLVED}


@st.composite
def calendar_times(draw: st.DrawFn) -> str:
    """A real moment in each spelling RFC 3339 allows: ``T``, ``t`` or a space; ``Z``, ``z`` or an offset; 0-9
    digits of fraction; now and then a leap second (kept only where the schema allows one), or a moment of the
    first or last day Python holds, which an offset can take out of years 1-9999."""
    moment = draw(
        st.datetimes()
        | st.datetimes(max_value=datetime(1, 1, 1, 23, 59, 59, 999999))
        | st.datetimes(min_value=datetime(9999, 12, 31))
    )
    separator = draw(st.sampled_from("Tt "))
    second = 60 if draw(st.integers(0, 7)) == 0 else moment.second
    digits = draw(st.integers(0, 9))
    fraction = f".{moment.microsecond:06d}{draw(st.integers(0, 999)):03d}"[: digits + 1] if digits else ""
    zone = draw(
        st.sampled_from(("Z", "z"))
        | st.builds("{}{:02d}:{:02d}".format, st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59))
    )
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{separator}"
        f"{moment.hour:02d}:{moment.minute:02d}:{second:02d}{fraction}{zone}"
    )


def _typical(event_type: str) -> dict[str, st.SearchStrategy[Any]]:
    """Values the schema allows that the pipeline goes on to apply, drawn 3 times in 4: else nearly every
    ``schema_version`` is above 1, nearly every currency one ISO 4217 lacks, and (with a loose pattern)
    nearly every time a date the calendar lacks, and those are refused before they reach the database."""
    candidates: dict[str, st.SearchStrategy[Any]] = {
        "schema_version": st.just(1),
        "currency": st.sampled_from(sorted(CURRENCIES)),
        "occurred_at": calendar_times(),
    }
    return {
        name: candidates[name].filter(_accepted_by(specs))
        for name, specs in declared(event_type).items()
        if name in candidates
    }


def _accepted_by(specs: list[dict[str, Any]]) -> Callable[[Any], bool]:
    validators = [fastjsonschema.compile(spec) for spec in specs]

    def accepted(value: Any) -> bool:
        try:
            for validator in validators:
                validator(value)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return accepted


TYPICAL = {event_type: _typical(event_type) for event_type in RESOLVED}

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)

EVENTS: st.SearchStrategy[dict[str, Any]] = st.one_of(
    *(event_strategy(RESOLVED[event_type]) for event_type in sorted(RESOLVED))
)


@st.composite
def upstream_events(draw: st.DrawFn) -> dict[str, Any]:
    """One schema-valid event as upstream may send it: extra fields, integers as floats, pooled ids."""
    event: dict[str, Any] = dict(draw(EVENTS))
    event_type = str(event["type"])
    for name, typical in TYPICAL[event_type].items():
        if name in event and draw(st.integers(0, 3)) != 0:
            event[name] = draw(typical)
    names = declared(event_type)
    extra_name = st.sampled_from(EXTRA_NAMES) | st.text(min_size=1, max_size=10)
    extras = draw(st.dictionaries(extra_name.filter(lambda name: name not in names), JSON_VALUES, max_size=3))
    event.update(extras)
    if draw(st.booleans()):  # JSON has one number type: 2.0 is the integer 2 to JSON Schema
        for name in INTEGER_FIELDS[event_type]:
            value = event.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
                event[name] = float(value)
    for name, pool in POOLS.items():
        share = draw(st.booleans()) if name != "event_id" else draw(st.integers(0, 3)) == 0
        if isinstance(event.get(name), str) and share:
            event[name] = draw(st.sampled_from(pool))
    return event


def scoped(event: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``event`` with its ids (strings only) prefixed, cut to the schema's maximum length."""
    copy = dict(event)
    for name in POOLS:
        value = copy.get(name)
        if isinstance(value, str):
            limit = ID_MAX_LENGTH.get(name, 128)
            copy[name] = prefix + value[: limit - len(prefix)]
    return copy


def encoded(event: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(event)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: valid JSON all the same
        return json.dumps(event).encode()


def messages_of(events: list[dict[str, Any]]) -> list[RawMessage]:
    return [
        RawMessage(EVENT_TOPICS[str(event["type"])], 0, offset, str(event["customer_id"]).encode(), encoded(event))
        for offset, event in enumerate(events)
    ]


# --- what the contract lets the pipeline refuse ----------------------------------------------------------
_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))", re.ASCII
)
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in(year: int, month: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _DAYS[month - 1]


def unholdable_time(text: str) -> bool:
    """RFC 3339 lacks the moment (February 30, hour 24, offset +24:00), or its UTC falls outside years
    1-9999: the contract documents these as refused, which a pattern cannot say. A leap second (:60) is
    RFC 3339: refusing one the schema's pattern accepts is a disagreement."""
    match = _TIME.fullmatch(text)
    if match is None:
        return True  # the schema's pattern let through what this reading of it does not: not the pipeline's fault
    year, month, day, hour, minute, second = (int(group) for group in match.groups()[:6])
    sign, offset_hours, offset_minutes = match.group(7), int(match.group(8) or 0), int(match.group(9) or 0)
    if not (1 <= month <= 12 and 1 <= day <= _days_in(year, month)):
        return True
    if hour > 23 or minute > 59 or second > 60 or offset_hours > 23 or offset_minutes > 59:
        return True
    if not 1 <= year <= 9999:
        return True
    offset = timedelta(hours=offset_hours, minutes=offset_minutes) * (-1 if sign == "-" else 1)
    try:
        _ = datetime(year, month, day, hour, minute, min(second, 59)) - offset + timedelta(seconds=second // 60)
    except OverflowError:
        return True
    return False


def documented_refusal(event: Mapping[str, Any]) -> bool:
    """An ``invalid_field`` the contract gives for a schema-valid event. Also allowed: a currency ISO 4217
    lacks, which the pipeline refuses though the schema says only ``^[A-Z]{3}$`` (a known disagreement, to
    be settled in the schema; were it checked here, nearly every run would stop at it first)."""
    if unholdable_time(str(event["occurred_at"])):
        return True
    if any("\x00" in value for value in event.values() if isinstance(value, str)):
        return True  # PostgreSQL's text cannot hold U+0000
    return "currency" in declared(str(event["type"])) and event.get("currency") not in CURRENCIES


# --- the checks ----------------------------------------------------------------------------------------
def accounted(result: BatchResult, messages: list[RawMessage]) -> dict[int, DeadLetter]:
    """Every message once in ``result.outcomes``; every dead letter classed and with a reason. The dead
    letters by offset."""
    assert sum(result.outcomes.values()) == len(messages), result.outcomes
    for topic in {message.topic for message in messages}:
        on_topic = sum(count for (where, _, _), count in result.outcomes.items() if where == topic)
        assert on_topic == sum(message.topic == topic for message in messages), (topic, result.outcomes)
    dead_lettered = sum(count for (_, _, outcome), count in result.outcomes.items() if outcome is Outcome.DEAD_LETTERED)
    assert dead_lettered == len(result.dead_letters), (result.outcomes, result.dead_letters)
    by_offset: dict[int, DeadLetter] = {}
    for letter in result.dead_letters:
        assert isinstance(letter.error_class, ErrorClass), letter
        assert isinstance(letter.reason, str) and letter.reason.strip(), letter
        assert letter.message in messages, letter
        assert letter.message.offset not in by_offset, letter  # dead-lettered once
        by_offset[letter.message.offset] = letter
    return by_offset


def agrees_with_the_schema(dead_letters: dict[int, DeadLetter], events: list[dict[str, Any]]) -> None:
    """The contract's reasons only: each class checked on a line of its own, so Hypothesis reports each
    disagreement as a bug of its own."""
    for offset, event in enumerate(events):
        letter = dead_letters.get(offset)
        error_class = letter.error_class if letter else None
        if event["schema_version"] > 1:  # an int, or a float equal to one
            assert error_class is ErrorClass.UNSUPPORTED_SCHEMA_VERSION, ("schema_version > 1", event, letter)
        elif error_class is None or error_class is ErrorClass.CONFLICT:
            pass
        elif error_class is ErrorClass.INVALID_FIELD:
            assert documented_refusal(event), ("invalid_field for a schema-valid event", event, letter)
        elif error_class is ErrorClass.UNSUPPORTED_SCHEMA_VERSION:
            raise AssertionError("unsupported_schema_version of a version-1 event", event, letter)
        else:
            raise AssertionError(f"{error_class} for a schema-valid event", event, letter)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """One migrated database for all the examples of a test."""
    engine = migrated(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(upstream_events(), min_size=1, max_size=8))
def test_every_schema_valid_message_is_processed_or_dead_lettered(engine: Engine, batch: list[dict[str, Any]]) -> None:
    prefix = f"x{next(_examples)}:"
    events = [scoped(upstream, prefix) for upstream in batch]
    messages = messages_of(events)
    note(f"messages: {messages!r}")
    pipeline = Pipeline(Repository(engine), TOPICS)

    first = pipeline.process(messages)
    for _, _, outcome in sorted(first.outcomes):
        statistic(f"a batch with {outcome}")  # pytest --hypothesis-show-statistics: how much reached the database
    for letter in first.dead_letters:
        statistic(f"dead-lettered as {letter.error_class}")
    dead_letters = accounted(first, messages)
    agrees_with_the_schema(dead_letters, events)

    replay = Pipeline(Repository(engine), TOPICS).process(messages)
    replayed_dead_letters = accounted(replay, messages)
    processed_again = sum(count for (_, _, outcome), count in replay.outcomes.items() if outcome is Outcome.PROCESSED)
    assert processed_again == 0, replay.outcomes
    agrees_with_the_schema(replayed_dead_letters, events)
