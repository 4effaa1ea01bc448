"""Secrets never reach the logs; the HTTP endpoints bind to loopback by default."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import make_url

from streams.cli.processes import running_worker
from streams.kafka.admin import ensure_topics
from streams.kafka.publisher import EventPublisher
from tests.conftest import settings_from
from tests.integration.test_faults import committed_events
from tests.support import event, wait_for

DB_SECRET = "db-pw-7f3a9c"
SASL_SECRET = "sasl-pw-1b2e8d"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_worker_logs_no_secret(worker_env: dict[str, str], tmp_path: Path) -> None:
    # PostgreSQL in the tests trusts local connections, so any password works: that lets a real
    # secret travel through the whole worker
    url = make_url(worker_env["LIFECYCLE_DATABASE_URL"]).set(password=DB_SECRET)
    env = {
        **worker_env,
        "LIFECYCLE_DATABASE_URL": url.render_as_string(hide_password=False),
        "LIFECYCLE_KAFKA_SASL_PASSWORD": SASL_SECRET,
        "LIFECYCLE_LOG_LEVEL": "debug",
    }
    settings = settings_from(env)
    assert DB_SECRET not in repr(settings) and SASL_SECRET not in repr(settings)
    ensure_topics(settings)
    log = tmp_path / "worker.log"
    with running_worker(env, log), EventPublisher(settings) as publisher:
        publisher.send_raw(settings.topic_leads, b"c-1", orjson.dumps(event("lead.created")))
        publisher.send_raw(settings.topic_leads, b"c-1", b"not json")  # a dead letter gets logged too
        publisher.flush()
        wait_for(lambda: committed_events(settings) == 1, timeout=60, what="the event")
        wait_for(lambda: "dead-lettered" in log.read_text(), timeout=60, what="the dead letter's log line")
    text = log.read_text()
    assert "postgresql" in text.lower()  # the URL is logged, redacted
    assert DB_SECRET not in text
    assert SASL_SECRET not in text


def test_endpoints_bind_to_loopback_by_default() -> None:
    from streams.settings import Settings

    assert Settings.model_fields["web_host"].default == "127.0.0.1"
