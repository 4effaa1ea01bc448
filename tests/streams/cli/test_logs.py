from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from streams.cli.logs import mask_secrets_in_logs
from streams.settings import Settings


@pytest.fixture
def restore_record_factory() -> Iterator[None]:
    saved = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(saved)


def test_secrets_are_masked_in_text_and_in_logged_bytes(
    restore_record_factory: None, caplog: pytest.LogCaptureFixture
) -> None:
    mask_secrets_in_logs(["s3cr'et\\pw", ""])
    log = logging.getLogger("some.client.library")
    with caplog.at_level(logging.DEBUG):
        log.debug("Request %s", {"sasl_auth_bytes": b"\x00alice\x00s3cr'et\\pw"})
        log.debug("password=%s", "s3cr'et\\pw")
        log.debug("%r", b"\"s3cr'et\\pw")
        log.debug("nothing to hide")
    assert [record.getMessage() for record in caplog.records] == [
        "Request {'sasl_auth_bytes': b\"\\x00alice\\x00***\"}",
        "password=***",
        "b'\"***'",
        "nothing to hide",
    ]


def test_settings_name_the_sasl_and_database_passwords() -> None:
    settings = Settings(
        kafka_sasl_password="kafka-pw",  # type: ignore[arg-type]
        database_url="postgresql+psycopg://user:db-pw@host/db",  # type: ignore[arg-type]
    )
    assert sorted(settings.secret_values()) == ["db-pw", "kafka-pw"]
    assert Settings(database_url="sqlite:///x.db").secret_values() == []  # type: ignore[arg-type]
