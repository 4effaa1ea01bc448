"""Fixtures on real services: the project's own Kafka broker, SQLite files and a real PostgreSQL.

With ``CI=true`` a missing broker or PostgreSQL fails the run; elsewhere the tests that need them
are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from streams.kafka.broker import LocalKafka, free_port
from streams.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required, never skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set, else the project's own broker on free ports for the session."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"), partitions=4)
    try:
        broker.start()
    except Exception as exc:
        _unavailable(f"could not start the local Kafka broker: {exc}")
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def topic_names() -> dict[str, str]:
    """Unique topic names and consumer group per test, as LIFECYCLE_* environment variables."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "LIFECYCLE_TOPIC_LEADS": f"leads-{suffix}",
        "LIFECYCLE_TOPIC_DEALS": f"deals-{suffix}",
        "LIFECYCLE_TOPIC_TICKETS": f"tickets-{suffix}",
        "LIFECYCLE_TOPIC_LIFECYCLE": f"lifecycle-{suffix}",
        "LIFECYCLE_TOPIC_DLQ": f"lifecycle-dlq-{suffix}",
        "LIFECYCLE_APP_ID": f"lifecycle-test-{suffix}",
    }


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lifecycle.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database per test on the PostgreSQL of LIFECYCLE_TEST_POSTGRES_URL, dropped afterwards."""
    admin_url = os.environ.get("LIFECYCLE_TEST_POSTGRES_URL")
    if not admin_url:
        _unavailable("LIFECYCLE_TEST_POSTGRES_URL is not set")
    assert admin_url is not None
    name = f"lifecycle_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))  # name is ours, not input
    except Exception as exc:
        admin.dispose()
        _unavailable(f"PostgreSQL at LIFECYCLE_TEST_POSTGRES_URL is not reachable: {exc}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs on SQLite and on PostgreSQL, with the same code."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def worker_env(kafka_bootstrap: str, topic_names: dict[str, str], database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a `lifecycle worker` process and for in-process Settings of the same test."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LIFECYCLE_")}
    env.update(topic_names)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "LIFECYCLE_DATABASE_URL": database_url,
            "LIFECYCLE_DATA_DIR": str(tmp_path / "data"),
            "LIFECYCLE_WEB_PORT": str(free_port()),
            "LIFECYCLE_BATCH_WITHIN": "0.02",
        }
    )
    return env


def settings_from(env: dict[str, str]) -> Settings:
    """Settings as the worker with ``env`` sees them."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
