"""Everything under tests/integration runs on the real broker, PostgreSQL and Prometheus: marked
``integration`` here, by directory, so ``-m "not integration"`` starts none of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli.simulator import Simulation, simulate

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


CUSTOMERS = 9500  # ~52,000 events


@pytest.fixture(scope="session")
def big_simulation() -> Simulation:
    """The seeded >= 50,000-event stream the fault and backpressure tests push through the worker."""
    simulation = simulate(CUSTOMERS, seed=77)
    assert len(simulation.events) >= 50_000
    return simulation
