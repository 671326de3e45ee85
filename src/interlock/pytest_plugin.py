"""interlock's pytest fixtures, registered through the `pytest11` entry point.

- `interlock_manager`: a fresh `PluginManager`, closed after the test.
- `interlock_harness`: a factory, `interlock_harness(plugin, **options) -> Harness`;
  every harness it made is closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from . import PluginManager
from .testing import Harness


@pytest.fixture
def interlock_manager() -> Iterator[PluginManager]:
    """A fresh plugin manager."""
    manager = PluginManager()
    yield manager
    manager.close()


@pytest.fixture
def interlock_harness() -> Iterator[Callable[..., Harness]]:
    """Make `Harness`es for plugins under test: `interlock_harness(plugin, **options)`."""
    made: list[Harness] = []

    def make(plugin: object, **options: Any) -> Harness:
        harness = Harness(plugin, **options)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()
