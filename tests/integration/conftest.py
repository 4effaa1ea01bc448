from __future__ import annotations

import pytest

from streams.simulator import Simulation, simulate

CUSTOMERS = 9500  # ~52,000 events


@pytest.fixture(scope="session")
def big_simulation() -> Simulation:
    """The seeded >= 50,000-event stream the fault and backpressure tests push through the worker."""
    simulation = simulate(CUSTOMERS, seed=77)
    assert len(simulation.events) >= 50_000
    return simulation
