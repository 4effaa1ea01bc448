"""The application service: one batch of Kafka messages in, one database transaction out.

Blocking (SQLAlchemy), so the worker runs it off its event loop (``streams.pipeline.runner``: a process
of its own, or a thread). It is also what `lifecycle rebuild` and the tests call directly. A transaction
commits whole (state, dedup records, outbox transitions) or not at all. When the database is at fault
the caller retries the batch, and the dedup records make the retry exact; when a message is, the
batch is split until that message is found and dead-lettered, and the rest commits.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from streams.contract.decoding import decode_message
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


# A metric series: the observation's name and labels
Series = tuple[str, tuple[str, ...]]


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


class Pipeline:
    def __init__(
        self,
        repository: Repository,
        source_topics: Mapping[str, str],
        *,
        max_message_bytes: int = 65536,
    ) -> None:
        self.repository = repository
        # configured topic name -> contract topic name
        self.contract_topic = {configured: contract for contract, configured in source_topics.items()}
        self.max_message_bytes = max_message_bytes

    def process(self, messages: Sequence[RawMessage], *, published: Sequence[str] = ()) -> BatchResult:
        """``published``: event ids of transitions now on the ``lifecycle`` topic; recorded in this batch's
        transaction, so the outbox costs no transaction of its own.

        Raises only what :func:`is_infrastructure_fault` calls the infrastructure's: the caller retries the
        batch, and the dedup records make the retry exact. Whatever a message itself makes fail is
        dead-lettered (``rejected``, with the exception as the reason) and the rest of the batch commits."""
        result = BatchResult()
        valid: list[tuple[RawMessage, Event]] = []
        batch_ids: set[str] = set()
        for message in messages:
            try:
                event = decode_message(
                    message.value,
                    message.key,
                    self.contract_topic.get(message.topic, message.topic),
                    max_bytes=self.max_message_bytes,
                )
            except InvalidEvent as exc:
                self._dead_letter(result, message, exc.error_class, exc.reason)
                continue
            except Exception as exc:  # a message the contract's checks let through and decoding trips on
                self._dead_letter(result, message, ErrorClass.REJECTED, rejection_reason(exc))
                continue
            if event.event_id in batch_ids:
                result.outcomes[message.topic, event.type, Outcome.DUPLICATE] += 1
                continue
            batch_ids.add(event.event_id)
            valid.append((message, event))
        if valid or published:
            self._commit(valid, published, result)
        return result

    def _commit(self, valid: list[tuple[RawMessage, Event]], published: Sequence[str], result: BatchResult) -> None:
        """One transaction for ``valid``; when the data makes it fail, each half in a transaction of its own,
        down to the messages at fault: k of them in a batch of n cost O(k log n) extra transactions, and a
        clean batch costs nothing more. A failed transaction leaves nothing behind: it rolled back, and the
        repository forgot the states it kept (the domain changed them in place)."""
        attempt = BatchResult()
        try:
            with self.repository.transaction() as session:
                self.repository.mark_published(session, published)
                if valid:
                    self._apply(session, valid, attempt)
        except Exception as exc:
            if is_infrastructure_fault(exc) or not valid:
                raise
            if len(valid) > 1:
                log.warning("a batch of %d failed on its data (%s); splitting it", len(valid), rejection_reason(exc))
                middle = len(valid) // 2
                self._commit(valid[:middle], published, result)
                self._commit(valid[middle:], (), result)
                return
            message, event = valid[0]
            self._dead_letter(result, message, ErrorClass.REJECTED, rejection_reason(exc), event.type)
            if published:
                self._commit([], published, result)
            return
        result.merge(attempt)

    def _apply(self, session: Session, valid: list[tuple[RawMessage, Event]], result: BatchResult) -> None:
        processed_ids: list[str] = []
        delays = result.observations.setdefault(("event_delay", ()), [])
        now = datetime.now(UTC).replace(tzinfo=None)
        working = self.repository.load(
            session,
            event_ids=[event.event_id for _, event in valid],
            customer_ids={event.customer_id for _, event in valid},
            deal_ids={event.deal_id for _, event in valid if event.deal_id is not None},
            ticket_ids={event.ticket_id for _, event in valid if event.ticket_id is not None},
        )
        for message, event in valid:
            if event.event_id in working.seen_event_ids:
                result.outcomes[message.topic, event.type, Outcome.DUPLICATE] += 1
                continue
            try:
                applied: Applied = working.journeys.apply(event)
            except ConflictingEvent as exc:
                self._dead_letter(result, message, exc.error_class, exc.reason, event.type)
                continue
            result.outcomes[message.topic, event.type, applied.outcome] += 1
            # a repeated fact under a new event id (second deal.won) is remembered too: its replay is a duplicate
            processed_ids.append(event.event_id)
            if applied.outcome is Outcome.PROCESSED:
                for observation in applied.observations:
                    result.observe(observation)
                delays.append(max(0.0, (now - event.occurred_at).total_seconds()))
                if applied.transition is not None:
                    result.transitions.append(applied.transition)
        self.repository.save(session, working, processed_event_ids=processed_ids, transitions=result.transitions)

    @staticmethod
    def _dead_letter(
        result: BatchResult, message: RawMessage, error_class: ErrorClass, reason: str, event_type: str = INVALID_TYPE
    ) -> None:
        result.dead_letters.append(DeadLetter(message, error_class, reason))
        result.outcomes[message.topic, event_type, Outcome.DEAD_LETTERED] += 1


@dataclass(frozen=True)
class PipelineConfig:
    """What it takes to build a :class:`Pipeline`: plain values, so a child process can build its own."""

    database_url: str
    source_topics: Mapping[str, str]
    at_risk_threshold: float
    max_message_bytes: int
    state_cache_customers: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfig:
        return cls(
            settings.sqlalchemy_url,
            settings.source_topics,
            settings.at_risk_csat_threshold,
            settings.max_message_bytes,
            settings.state_cache_customers,
        )

    def build(self) -> Pipeline:
        repository = Repository(
            make_engine(self.database_url),
            at_risk_threshold=self.at_risk_threshold,
            state_cache_customers=self.state_cache_customers,
        )
        return Pipeline(repository, self.source_topics, max_message_bytes=self.max_message_bytes)


def rejection_reason(error: BaseException) -> str:
    """The dead letter's reason for a message that made the pipeline fail: the exception, class first. A
    driver's error is named by itself: SQLAlchemy's wrapper would add the statement and every row's values
    of the batch."""
    cause = getattr(error, "orig", None) or error
    return f"{type(cause).__name__}: {cause}"[:2000]
