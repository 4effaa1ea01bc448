"""Real driver errors, sorted: what a retry cures is the infrastructure's, the rest the data's."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from streams.db.engine import make_engine
from streams.db.faults import is_infrastructure_fault
from streams.kafka.broker import free_port


def raised(url: str, statement: str) -> SQLAlchemyError:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE IF NOT EXISTS t (id VARCHAR(10) PRIMARY KEY, n INT CHECK (n > 0))"))
            connection.execute(text("INSERT INTO t VALUES ('a', 1)"))
            connection.execute(text(statement))
    except SQLAlchemyError as error:
        return error
    finally:
        engine.dispose()
    raise AssertionError(f"{statement} did not fail")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO t VALUES ('a', 2)",  # duplicate key
        "INSERT INTO t VALUES ('b', -1)",  # check constraint
    ],
)
def test_errors_the_batch_itself_causes_are_the_data_s(database_url: str, statement: str) -> None:
    assert not is_infrastructure_fault(raised(database_url, statement))


def test_a_missing_table_is_the_deployment_s_and_waited_out(database_url: str) -> None:
    """Every batch would fail alike until `lifecycle db upgrade` runs: nothing is to be dead-lettered for it."""
    assert is_infrastructure_fault(raised(database_url, "SELECT * FROM no_such_table"))


def test_a_nul_character_refused_by_postgresql_is_the_data_s(postgres_url: str) -> None:
    assert not is_infrastructure_fault(raised(postgres_url, "INSERT INTO t VALUES ('nul\x00', 3)"))


def test_an_unreachable_postgresql_is_the_infrastructure_s() -> None:
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x?connect_timeout=2")
    with pytest.raises(SQLAlchemyError) as caught:
        engine.connect()
    assert is_infrastructure_fault(caught.value)


def test_a_locked_sqlite_database_is_the_infrastructure_s(tmp_path: object) -> None:
    path = f"{tmp_path}/locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (id TEXT)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    try:
        with pytest.raises(SQLAlchemyError) as caught, engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES ('x')"))
        assert is_infrastructure_fault(caught.value)
    finally:
        holder.close()
        engine.dispose()


def test_a_python_error_while_writing_is_the_data_s() -> None:
    assert not is_infrastructure_fault(TypeError("unhashable type: 'dict'"))
    assert is_infrastructure_fault(ConnectionResetError())
    assert is_infrastructure_fault(OSError(5, "Input/output error"))
