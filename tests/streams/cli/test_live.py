"""The live view, rendered from a read model the pipeline wrote."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from streams.cli.live import render
from streams.db.repository import Repository
from streams.pipeline.service import Pipeline
from streams.settings import Settings
from tests.streams.db.test_queries import WON_IN_TWO_CURRENCIES
from tests.support import TOPICS, messages_for, migrated


def test_the_live_view_shows_each_currencys_revenue_apart(sqlite_url: str, tmp_path: Path) -> None:
    """It showed one sum of every currency's amounts: EUR 12,000.50 and USD 3,500 as 15,500.50."""
    settings = Settings(database_url=SecretStr(sqlite_url), data_dir=tmp_path)
    pipeline = Pipeline(Repository(migrated(sqlite_url)), TOPICS)
    assert "  revenue won  none" in render(settings).splitlines()
    pipeline.process(messages_for(WON_IN_TWO_CURRENCIES))
    lines = render(settings).splitlines()
    assert "  revenue won  EUR 12,000.50 · USD 3,500.00" in lines
    assert "  deals won 3, lost 1, win rate  75.0%" in lines
