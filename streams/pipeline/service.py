"""The application service: one batch of Kafka messages in, one database transaction out.

Blocking (SQLAlchemy), so the worker runs it off its event loop (``streams.pipeline.runner``: a process
of its own, or a thread). It is also what `lifecycle rebuild` and the tests call directly. A transaction
commits whole (state, dedup records, outbox transitions) or not at all. When the database is at fault
the caller retries the batch, and the dedup records make the retry exact; when a message is, the
batch is split until that message is found and dead-lettered, and the rest commits.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.orm import Session

from streams.contract.decoding import decode_message
from streams.contract.digest import content_digest
from streams.contract.messages import DeadLetter, RawMessage
from streams.db.engine import make_engine
from streams.db.faults import is_infrastructure_fault
from streams.db.repository import Repository
from streams.domain.errors import ConflictingEvent, ErrorClass, InvalidEvent
from streams.domain.events import Event
from streams.domain.journey import Applied, Observation, Outcome, Transition
from streams.settings import Settings

log = logging.getLogger(__name__)
INVALID_TYPE = "invalid"
DELAY = "event_delay"  # the observation of an event's processed time minus its occurred_at


# A metric series: the observation's name and labels
Series = tuple[str, tuple[str, ...]]
# a decoded message of the batch, with its content digest
Valid = tuple[RawMessage, Event, int]


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class BatchResult:
    """What the worker does with a committed batch. Observations and outcomes arrive tallied per series,
    so the worker's event loop does per-series work (a label lookup each), not per-event work."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    observations: dict[Series, list[float]] = field(default_factory=dict)
    # messages per (topic, event type, outcome), for lifecycle_events_total
    outcomes: Counter[tuple[str, str, Outcome]] = field(default_factory=Counter)

    def observe(self, observation: Observation) -> None:
        self.observations.setdefault((observation.name, observation.labels), []).append(observation.value)

    def merge(self, other: BatchResult) -> None:
        """``other``'s committed part of the same batch, added to this one."""
        self.dead_letters.extend(other.dead_letters)
        self.transitions.extend(other.transitions)
        for series, values in other.observations.items():
            self.observations.setdefault(series, []).extend(values)
        self.outcomes.update(other.outcomes)


def encode_part(event_ids: Sequence[str], result: BatchResult) -> bytes:
    """A committed part as kept in ``batch_parts``: the events it took and the figures they made. Not kept:
    the dead letters (a retry finds the same ones again), the transitions (``stage_transitions`` has them,
    committed with the part) and the event delays (a latency figure, one value an event, that a resumed
    batch can do without): a part costs a batch little to keep."""
    return orjson.dumps(
        {
            "events": event_ids,
            "observations": [
                [name, labels, values] for (name, labels), values in result.observations.items() if name != DELAY
            ],
            "outcomes": [
                [*key, count] for key, count in result.outcomes.items() if key[2] is not Outcome.DEAD_LETTERED
            ],
        }
    )


def decode_part(payload: bytes) -> tuple[list[str], BatchResult]:
    doc = orjson.loads(payload)
    result = BatchResult()
    for name, labels, values in doc["observations"]:
        result.observations[name, tuple(labels)] = values
    for topic, event_type, outcome, count in doc["outcomes"]:
        result.outcomes[topic, event_type, Outcome(outcome)] = count
    return doc["events"], result


class Pipeline:
    def __init__(
        self,
        repository: Repository,
        source_topics: Mapping[str, str],
        *,
        max_message_bytes: int = 65536,
        dedup_retention: timedelta | None = timedelta(days=30),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``dedup_retention``: how long past the later of its ``occurred_at`` and its processing an event's
        dedup record is kept (None: forever); ``clock``: naive UTC now."""
        self.repository = repository
        # configured topic name -> contract topic name
        self.contract_topic = {configured: contract for contract, configured in source_topics.items()}
        self.max_message_bytes = max_message_bytes
        self.dedup_retention = dedup_retention
        self.clock = clock

    def process(
        self,
        messages: Sequence[RawMessage],
        *,
        published: Sequence[str] = (),
        batch_id: str | None = None,
        settled: Sequence[str] = (),
        resume: bool = False,
    ) -> BatchResult:
        """``published``: event ids of transitions now on the ``lifecycle`` topic; ``settled``: batches whose
        results the worker has. Both are recorded in this batch's transaction, so they cost none of their own.

        ``batch_id``: the worker's name for this batch, the same when it retries it. Each committed part
        keeps its result under it, so that a retry (``resume``) after a lost reply (the pipeline process
        died after the commit) gets the figures and transitions of what had committed, not duplicates.

        Raises only what :func:`is_infrastructure_fault` calls the infrastructure's: the caller retries the
        batch, and the dedup records make the retry exact. Whatever a message itself makes fail is
        dead-lettered (``rejected``, with the exception as the reason) and the rest of the batch commits."""
        result = BatchResult()
        committed: set[str] = set()  # events of this batch in parts that committed before: counted in those
        parts = itertools.count()
        if resume and batch_id is not None:
            for payload in self.repository.saved_parts(batch_id):
                event_ids, part = decode_part(payload)
                result.merge(part)
                committed.update(event_ids)
                next(parts)
            result.transitions = self.repository.transitions_of(committed)
        valid: list[Valid] = []
        batch_copies: set[tuple[str, int]] = set()  # (event id, digest)
        for message in messages:
            try:
                event = decode_message(
                    message.value,
                    message.key,
                    self.contract_topic.get(message.topic, message.topic),
                    max_bytes=self.max_message_bytes,
                )
                digest = content_digest(event)
            except InvalidEvent as exc:
                self._dead_letter(result, message, exc.error_class, exc.reason)
                continue
            except Exception as exc:  # a message the contract's checks let through and decoding trips on
                self._dead_letter(result, message, ErrorClass.REJECTED, rejection_reason(exc))
                continue
            if (event.event_id, digest) in batch_copies:  # the batch has it twice: one is a duplicate
                result.outcomes[message.topic, event.type, Outcome.DUPLICATE] += 1
                continue
            batch_copies.add((event.event_id, digest))
            if event.event_id not in committed:
                valid.append((message, event, digest))
        if valid or published or settled:
            self._commit(valid, published, settled, result, batch_id, parts)
        return result

    def _commit(
        self,
        valid: list[Valid],
        published: Sequence[str],
        settled: Sequence[str],
        result: BatchResult,
        batch_id: str | None,
        parts: Iterator[int],
    ) -> None:
        """One transaction for ``valid``; when the data makes it fail, each half in a transaction of its own,
        down to the messages at fault: k of them in a batch of n cost O(k log n) extra transactions, and a
        clean batch costs nothing more. A failed transaction leaves nothing behind: it rolled back, and the
        repository forgot the states it kept (the domain changed them in place)."""
        attempt = BatchResult()
        try:
            with self.repository.transaction() as session:
                self.repository.mark_published(session, published)
                self.repository.forget_parts(session, settled)
                if valid:
                    taken = self._apply(session, valid, attempt)
                    if batch_id is not None:
                        self.repository.save_part(
                            session, batch_id, next(parts), self.clock(), encode_part(taken, attempt)
                        )
        except Exception as exc:
            if is_infrastructure_fault(exc) or not valid:
                raise
            if len(valid) > 1:
                log.warning("a batch of %d failed on its data (%s); splitting it", len(valid), rejection_reason(exc))
                middle = len(valid) // 2
                self._commit(valid[:middle], published, settled, result, batch_id, parts)
                self._commit(valid[middle:], (), (), result, batch_id, parts)
                return
            message, event, _ = valid[0]
            self._dead_letter(result, message, ErrorClass.REJECTED, rejection_reason(exc), event.type)
            if published or settled:
                self._commit([], published, settled, result, batch_id, parts)
            return
        result.merge(attempt)

    def _apply(self, session: Session, valid: list[Valid], result: BatchResult) -> list[str]:
        """Applies the batch's new events; returns the ids of those it took (processed or duplicate)."""
        taken: list[str] = []
        processed: list[tuple[str, int, datetime | None]] = []
        delays = result.observations.setdefault((DELAY, ()), [])
        now = self.clock()
        retention = self.dedup_retention
        # the records of the events that occurred before now (nearly all) share one time
        kept_from_now = None if retention is None else _kept_until(now, retention)
        working = self.repository.load(
            session,
            event_ids=[event.event_id for _, event, _ in valid],
            customer_ids={event.customer_id for _, event, _ in valid},
            deal_ids={event.deal_id for _, event, _ in valid if event.deal_id is not None},
            ticket_ids={event.ticket_id for _, event, _ in valid if event.ticket_id is not None},
            winning_customer_ids={event.customer_id for _, event, _ in valid if event.type == "deal.won"},
        )
        seen = working.seen_event_ids
        for message, event, digest in valid:
            if event.event_id in seen:
                recorded = seen[event.event_id]
                if recorded is not None and recorded != digest:
                    self._dead_letter(result, message, ErrorClass.CONFLICT, _REUSED, event.type)
                    continue
                result.outcomes[message.topic, event.type, Outcome.DUPLICATE] += 1
                taken.append(event.event_id)
                continue
            try:
                applied: Applied = working.journeys.apply(event)
            except ConflictingEvent as exc:
                self._dead_letter(result, message, exc.error_class, exc.reason, event.type)
                continue
            seen[event.event_id] = digest  # another content under this id, later in the batch, is a conflict
            result.outcomes[message.topic, event.type, applied.outcome] += 1
            taken.append(event.event_id)
            # a repeated fact under a new event id (second deal.won) is remembered too: its replay is a duplicate
            kept_until = kept_from_now
            if retention is not None and event.occurred_at > now:
                kept_until = _kept_until(event.occurred_at, retention)
            processed.append((event.event_id, digest, kept_until))
            if applied.outcome is Outcome.PROCESSED:
                for observation in applied.observations:
                    result.observe(observation)
                delays.append(max(0.0, (now - event.occurred_at).total_seconds()))
                if applied.transition is not None:
                    result.transitions.append(applied.transition)
        self.repository.save(session, working, processed=processed, transitions=result.transitions)
        return taken

    @staticmethod
    def _dead_letter(
        result: BatchResult, message: RawMessage, error_class: ErrorClass, reason: str, event_type: str = INVALID_TYPE
    ) -> None:
        result.dead_letters.append(DeadLetter(message, error_class, reason))
        result.outcomes[message.topic, event_type, Outcome.DEAD_LETTERED] += 1


def _kept_until(at: datetime, retention: timedelta) -> datetime:
    """The midnight after ``at + retention`` (or the last representable time, for an event of the year
    9999): a day's records share one value, which the database converts and indexes once in a row."""
    try:
        return datetime.combine((at + retention).date() + timedelta(days=1), datetime.min.time())
    except OverflowError:
        return datetime.max


_REUSED = "event_id reused: an event with this id and other content was processed first"


@dataclass(frozen=True)
class PipelineConfig:
    """What it takes to build a :class:`Pipeline`: plain values, so a child process can build its own."""

    database_url: str
    source_topics: Mapping[str, str]
    at_risk_threshold: float
    max_message_bytes: int
    state_cache_customers: int = 0
    dedup_retention_days: float = 30.0

    @property
    def dedup_retention(self) -> timedelta | None:
        return timedelta(days=self.dedup_retention_days) if self.dedup_retention_days > 0 else None

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfig:
        return cls(
            settings.sqlalchemy_url,
            settings.source_topics,
            settings.at_risk_csat_threshold,
            settings.max_message_bytes,
            settings.state_cache_customers,
            settings.dedup_retention_days,
        )

    def build(self) -> Pipeline:
        repository = Repository(
            make_engine(self.database_url),
            at_risk_threshold=self.at_risk_threshold,
            state_cache_customers=self.state_cache_customers,
        )
        return Pipeline(
            repository,
            self.source_topics,
            max_message_bytes=self.max_message_bytes,
            dedup_retention=self.dedup_retention,
        )


def rejection_reason(error: BaseException) -> str:
    """The dead letter's reason for a message that made the pipeline fail: the exception, class first. A
    driver's error is named by itself: SQLAlchemy's wrapper would add the statement and every row's values
    of the batch."""
    cause = getattr(error, "orig", None) or error
    return f"{type(cause).__name__}: {cause}"[:2000]
