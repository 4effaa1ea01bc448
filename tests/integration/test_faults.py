"""Real faults while events flow: killed workers, a killed broker, a stopped PostgreSQL.

Each test publishes a seeded stream of >= 50,000 events, injects the fault while the worker is
processing it, lets the pipeline finish and compares the read model with the simulator's expected
outcome: equal, exactly. Marked ``faults`` (``./dev test -m faults`` selects them).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from streams.cli.processes import LIFECYCLE, WorkerProcess
from streams.cli.simulator import Simulation
from streams.db.engine import make_engine
from streams.db.models import Churn, Customer, Deal, ProcessedEvent, StageTransition, Ticket
from streams.db.queries import stage_counts
from streams.db.retention import revenue_by_kind
from streams.kafka.admin import ensure_topics
from streams.kafka.broker import LocalKafka, free_port
from streams.kafka.publisher import EventPublisher
from streams.settings import Settings
from tests.conftest import IN_CI, settings_from
from tests.support import ROOT, row_count, wait_for

pytestmark = pytest.mark.faults
REPORT = ROOT / "data" / "reliability.json"


class FaultReport:
    """One README "Reliability" row per test: written to data/reliability.json (rerun: -m faults)."""

    def __init__(self, fault: str, injected: str) -> None:
        self.row: dict[str, Any] = {"fault": fault, "how injected": injected, "in flight": [], "recovery s": []}
        self._started = 0.0
        self._at = 0

    def fault_starts(self, settings: Settings, published: int) -> None:
        self._at = committed_events(settings)
        self.row["in flight"].append(published - self._at)

    def recovery_starts(self) -> None:
        self._started = time.monotonic()

    def wait_recovered(self, settings: Settings) -> None:
        at = self._at
        wait_for(lambda: committed_events(settings) > at, timeout=300, what="processing to resume")
        self.row["recovery s"].append(round(time.monotonic() - self._started, 1))

    def finish(self, settings: Settings, simulation: Simulation) -> None:
        committed = committed_events(settings)
        self.row.update(events=len(simulation.events), lost=len(simulation.events) - committed, doubled=0)
        rows = json.loads(REPORT.read_text()) if REPORT.exists() else {}
        rows[self.row["fault"]] = self.row
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(json.dumps(rows, indent=2) + "\n")


def committed_events(settings: Settings) -> int:
    return max(0, row_count(settings.sqlalchemy_url, ProcessedEvent))


def publish(settings: Settings, simulation: Simulation) -> None:
    with EventPublisher(settings) as publisher:
        for document in simulation.events:
            publisher.publish(document)


def lifecycle_topic_event_ids(settings: Settings) -> list[str]:
    import orjson

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False)
    partitions = [
        TopicPartition(settings.topic_lifecycle, p)
        for p in consumer.partitions_for_topic(settings.topic_lifecycle) or ()
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    ids: list[str] = []
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        for records in consumer.poll(timeout_ms=1000).values():
            ids.extend(orjson.loads(r.value)["event_id"] for r in records)
    consumer.close()
    return ids


def assert_exact_outcome(settings: Settings, simulation: Simulation, *, on_topic: bool = True) -> None:
    """The read model equals the simulator's truth; transitions are all there, once each."""
    expected = simulation.expected
    engine = make_engine(settings.sqlalchemy_url)
    assert stage_counts(engine) == dict(expected.stages)
    with Session(engine) as session:

        def count(statement: Any) -> int:
            return int(session.scalar(statement) or 0)

        assert count(select(func.count()).select_from(ProcessedEvent)) == len(simulation.events)
        assert count(select(func.count()).select_from(Customer)) == expected.customers
        assert count(select(func.count()).select_from(Deal).where(Deal.status == "won")) == expected.deals_won
        assert count(select(func.count()).select_from(Deal).where(Deal.status == "lost")) == expected.deals_lost
        assert count(select(func.count()).select_from(Ticket)) == expected.tickets_opened
        assert count(select(func.count()).select_from(Ticket).where(Ticket.status == "open")) == expected.tickets_open
        assert count(select(func.count()).select_from(Ticket).where(Ticket.csat_score.is_not(None))) == sum(
            expected.csat_by_score.values()
        )
        won = session.scalar(select(func.sum(Deal.amount)).where(Deal.status == "won"))
        assert won == pytest.approx(sum(expected.revenue_won.values()))
        # what service earns: churns once each, revenue by kind, referrals, NPS answers kept
        assert count(select(func.count()).select_from(Churn)) == expected.churns > 0
        by_kind = revenue_by_kind(session)
        assert {kind: pytest.approx(amounts) for kind, amounts in expected.revenue_won_by_kind.items()} == by_kind
        referred = count(select(func.count()).select_from(Customer).where(Customer.referred_by.is_not(None)))
        assert referred == sum(expected.referred_customers.values())
        answered = count(select(func.count()).select_from(Customer).where(Customer.nps_score.is_not(None)))
        assert answered == sum(expected.nps_customers.values())
        # every customer starts with exactly one transition from nothing and ends where its row says
        assert count(select(func.count()).select_from(StageTransition).where(StageTransition.from_stage.is_(None))) == (
            expected.customers
        )
        ordered = select(StageTransition.customer_id, StageTransition.to_stage).order_by(StageTransition.id)
        last = {customer_id: to_stage for customer_id, to_stage in session.execute(ordered)}
        assert last == {
            customer_id: stage for customer_id, stage in session.execute(select(Customer.customer_id, Customer.stage))
        }
        recorded = set(session.scalars(select(StageTransition.event_id)))
        assert count(select(func.count()).select_from(StageTransition).where(StageTransition.published.is_(False))) == 0
    engine.dispose()
    if on_topic:  # at least once on the topic: nothing recorded is missing there
        assert recorded <= set(lifecycle_topic_event_ids(settings))


def unpublished_transitions(settings: Settings) -> int:
    return row_count(settings.sqlalchemy_url, StageTransition, StageTransition.published.is_(False))


def wait_until_done(settings: Settings, simulation: Simulation, timeout: float = 600) -> None:
    """Every event committed and the transitions outbox drained (after a broker fault it may lag)."""
    total = len(simulation.events)
    wait_for(
        lambda: committed_events(settings) >= total and unpublished_transitions(settings) == 0,
        timeout=timeout,
        what=f"{total} events committed and every transition published",
    )


def wait_until_published(settings: Settings, *, dead_letters: int, timeout: float = 120) -> None:
    """/metrics counts a batch once committed; its dead letters and transitions reach Kafka right after
    (before its ack). A test that stops the worker once all is counted waits for them first: a stop
    leaves the batch being published unacked, for the next start."""
    wait_for(
        lambda: unpublished_transitions(settings) == 0 and count_messages(settings, settings.topic_dlq) >= dead_letters,
        timeout=timeout,
        what=f"every transition and {dead_letters} dead letters published",
    )


def count_messages(settings: Settings, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    ends = consumer.end_offsets(partitions)
    starts = consumer.beginning_offsets(partitions)
    consumer.close()
    return sum(ends[tp] - starts[tp] for tp in partitions)


def reached(settings: Settings, count: int) -> Callable[[], bool]:
    return lambda: committed_events(settings) >= count


def kill_points(total: int, count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return sorted(rng.sample(range(total // 10, total * 9 // 10), count))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_worker_killed_three_times_mid_stream(
    worker_env: dict[str, str], tmp_path: Path, big_simulation: Simulation
) -> None:
    settings = settings_from(worker_env)
    ensure_topics(settings)
    publish(settings, big_simulation)
    report = FaultReport("worker SIGKILL x3", "SIGKILL to the worker's process group at random points, restart")
    worker = WorkerProcess(worker_env, tmp_path / "worker.log").start()
    try:
        for point in kill_points(len(big_simulation.events), 3, seed=1):
            wait_for(reached(settings, point), timeout=300, what=f"{point} events committed")
            report.fault_starts(settings, len(big_simulation.events))
            worker.signal(signal.SIGKILL)
            assert worker.process is not None
            worker.process.wait(30)
            report.recovery_starts()
            worker = WorkerProcess(worker_env, tmp_path / "worker.log").start()
            report.wait_recovered(settings)
        wait_until_done(settings, big_simulation)
    finally:
        worker.stop()
    assert_exact_outcome(settings, big_simulation)
    report.finish(settings, big_simulation)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_worker_stopped_gracefully_mid_batch_and_two_workers_rebalancing(
    worker_env: dict[str, str], tmp_path: Path, big_simulation: Simulation
) -> None:
    settings = settings_from(worker_env)
    ensure_topics(settings)
    publish(settings, big_simulation)
    total = len(big_simulation.events)
    first = WorkerProcess(worker_env, tmp_path / "w1.log").start()
    second_env = {**worker_env, "LIFECYCLE_WEB_PORT": str(free_port())}
    second = WorkerProcess(second_env, tmp_path / "w2.log").start()
    report = FaultReport(
        "SIGTERM + rebalance", "two workers in one group: SIGTERM one mid-batch, SIGKILL the other, restart both"
    )
    try:
        wait_for(lambda: committed_events(settings) >= total // 4, timeout=300, what="a quarter committed")
        report.fault_starts(settings, total)
        assert first.stop(timeout=60) == 0  # SIGTERM: graceful, exits cleanly
        report.recovery_starts()
        report.wait_recovered(settings)  # the survivor takes over the partitions
        wait_for(lambda: committed_events(settings) >= total // 2, timeout=300, what="half committed")
        report.fault_starts(settings, total)
        second.signal(signal.SIGKILL)  # the other one crashes; the group rebalances onto the new one
        report.recovery_starts()
        first = WorkerProcess(worker_env, tmp_path / "w1.log").start()
        second = WorkerProcess(second_env, tmp_path / "w2.log").start()
        report.wait_recovered(settings)
        wait_until_done(settings, big_simulation)
    finally:
        first.stop()
        second.stop()
    assert_exact_outcome(settings, big_simulation)
    report.finish(settings, big_simulation)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    broker = LocalKafka(tmp_path / "kafka", partitions=4).start()
    yield broker
    broker.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_broker_killed_and_restarted_mid_stream(
    worker_env: dict[str, str], own_broker: LocalKafka, tmp_path: Path, big_simulation: Simulation
) -> None:
    env = {**worker_env, "KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap_servers}
    settings = settings_from(env)
    ensure_topics(settings)
    publisher = threading.Thread(target=publish, args=(settings, big_simulation))
    with_worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        publisher.start()
        wait_for(lambda: committed_events(settings) >= 10_000, timeout=300, what="10,000 events committed")
        report = FaultReport("broker SIGKILL", "SIGKILL to the Kafka JVM while publishing and consuming, restart")
        report.fault_starts(settings, len(big_simulation.events))
        own_broker.kill()
        report.recovery_starts()
        own_broker.start()
        report.wait_recovered(settings)
        publisher.join(600)
        assert not publisher.is_alive()
        wait_until_done(settings, big_simulation)
        assert with_worker.process is not None and with_worker.process.poll() is None, "the worker rode it out"
    finally:
        with_worker.stop()
    assert_exact_outcome(settings, big_simulation)
    report.finish(settings, big_simulation)


class PrivatePostgres:
    """A PostgreSQL cluster of our own, so that the test can stop and start it."""

    def __init__(self, directory: Path) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            message = "PostgreSQL server binaries are not installed"
            pytest.fail(message) if IN_CI else pytest.skip(message)
        self.bin = found[-1].parent
        self.data = directory
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        directory.mkdir(parents=True)
        if self.as_postgres:
            shutil.chown(directory, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(directory), "-A", "trust", "-U", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_postgres, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "log"), "-o", options, "start"
        )

    def stop(self) -> None:
        subprocess.run(
            [*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
            capture_output=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # outside pytest's tmp dir: that one is root-only, and the server runs as user postgres
    parent = Path(tempfile.mkdtemp(prefix="lifecycle-test-pg-"))
    os.chmod(parent, 0o755)
    server = PrivatePostgres(parent / "pg")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_postgres_down_for_30_seconds_mid_stream(
    worker_env: dict[str, str], private_postgres: PrivatePostgres, tmp_path: Path, big_simulation: Simulation
) -> None:
    env = {**worker_env, "LIFECYCLE_DATABASE_URL": private_postgres.url, "LIFECYCLE_DB_RETRY_MAX_SECONDS": "2"}
    settings = settings_from(env)
    ensure_topics(settings)
    publish(settings, big_simulation)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        wait_for(lambda: committed_events(settings) >= 15_000, timeout=300, what="15,000 events committed")
        report = FaultReport("PostgreSQL down 30 s", "pg_ctl stop -m fast mid-stream, start again after 30 s")
        report.fault_starts(settings, len(big_simulation.events))
        private_postgres.stop()
        down_since = time.monotonic()
        wait_for(lambda: "; retrying in" in worker.log(), timeout=60, what="the worker to notice and back off")
        # the outage itself lasts 30 s: this waits out the fault, not an event
        time.sleep(max(0.0, 30 - (time.monotonic() - down_since)))
        assert worker.process is not None and worker.process.poll() is None, "the worker must wait, not die"
        private_postgres.start()
        report.recovery_starts()
        report.wait_recovered(settings)
        wait_until_done(settings, big_simulation)
    finally:
        worker.stop()
    assert_exact_outcome(settings, big_simulation)
    report.finish(settings, big_simulation)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_read_model_rebuilt_from_the_topics_is_identical(
    worker_env: dict[str, str], tmp_path: Path, big_simulation: Simulation
) -> None:
    settings = settings_from(worker_env)
    ensure_topics(settings)
    publish(settings, big_simulation)
    worker = WorkerProcess(worker_env, tmp_path / "worker.log").start()
    try:
        wait_until_done(settings, big_simulation)
    finally:
        worker.stop()
    before = snapshot(settings)
    report = FaultReport("read model lost", "`lifecycle rebuild`: tables dropped, replayed from offset 0")
    report.fault_starts(settings, len(big_simulation.events))
    started = time.monotonic()
    rebuilt = subprocess.run([LIFECYCLE, "rebuild"], env=worker_env, capture_output=True, timeout=600, check=False)
    assert rebuilt.returncode == 0, rebuilt.stderr
    report.row["recovery s"].append(round(time.monotonic() - started, 1))
    assert snapshot(settings) == before
    # a rebuild replays per partition, not in the original interleaving: final state is identical,
    # the intermediate transitions it records may differ (and are not re-published)
    assert_exact_outcome(settings, big_simulation, on_topic=False)
    report.finish(settings, big_simulation)


def snapshot(settings: Settings) -> dict[str, Any]:
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:

        def rows(statement: Any) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in session.execute(statement)]

        result = {
            "customers": rows(
                select(Customer.customer_id, Customer.stage, Customer.converted_at, Customer.first_seen_at).order_by(
                    Customer.customer_id
                )
            ),
            "deals": rows(select(Deal.deal_id, Deal.status, Deal.amount, Deal.closed_at).order_by(Deal.deal_id)),
            "tickets": rows(
                select(Ticket.ticket_id, Ticket.status, Ticket.resolved_at, Ticket.csat_score).order_by(
                    Ticket.ticket_id
                )
            ),
        }
    engine.dispose()
    return result
