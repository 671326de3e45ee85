from __future__ import annotations

from collections.abc import Iterator

import pytest

from interlock import PluginManager


class FakeClock:
    """A monotonic clock the test moves by hand (drives the circuit breaker)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> Iterator[PluginManager]:
    m = PluginManager(clock=clock)
    yield m
    m.close()
