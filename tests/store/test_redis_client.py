"""The Redis store's client: more operations at once than it has connections wait for
one; an operation whose reply comes too late is reported, never sent again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from interlock.store import StoreUnavailable, open_store
from interlock.store._redis import POOL_CONNECTIONS

from .stall import stalling


async def test_more_operations_at_once_than_connections_wait_for_one(
    shared: tuple[str, str],
) -> None:
    url, deployment = shared
    store = open_store(url, deployment=deployment, plugin="test")
    n = POOL_CONNECTIONS * 5  # and more than redis-py's own default bound, 100
    values = await asyncio.gather(*(store.incr("n") for _ in range(n)))
    assert sorted(values) == list(range(1, n + 1))
    await store.aclose()


async def test_a_pool_with_no_connection_free_in_time_says_it_is_busy(
    shared: tuple[str, str],
) -> None:
    url, deployment = shared
    async with stalling(url) as proxy:
        options = "max_connections=1&timeout=0.2&socket_timeout=5"
        store = open_store(f"{proxy.url}?{options}", deployment=deployment, plugin="test")
        await store.set("k", "a")  # opens the one connection
        proxy.stall()
        # One of them holds the connection until its socket timeout; the other waits for it.
        both = [asyncio.ensure_future(store.get("k")) for _ in range(2)]
        done, _ = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        [busy] = done
        assert isinstance(busy.exception(), StoreUnavailable)
        message = str(busy.exception())
        assert "is busy: no connection came free within 0.2 s (all 1 in use)" in message
        assert "?max_connections=" in message
        [stuck] = set(both) - done
        with pytest.raises(StoreUnavailable, match="is unreachable"):
            await stuck
        await store.aclose()


RUN_ONCE: dict[str, tuple[Callable[[Any], Awaitable[Any]], str, str]] = {
    "compare_and_set": (lambda store: store.compare_and_set("k", "a", "b"), "k", "b"),
    "incr": (lambda store: store.incr("n"), "n", "1"),
}


@pytest.mark.parametrize("operation", sorted(RUN_ONCE))
async def test_an_operation_answered_too_late_is_reported_and_not_run_twice(
    shared: tuple[str, str], operation: str
) -> None:
    url, deployment = shared
    run, name, once = RUN_ONCE[operation]
    async with stalling(url) as proxy:
        store = open_store(f"{proxy.url}?socket_timeout=0.5", deployment=deployment,
                           plugin="test")  # fmt: skip
        await store.set("k", "a")
        proxy.stall()  # Redis runs the command; its reply never arrives
        with pytest.raises(StoreUnavailable, match="is unreachable"):
            await run(store)
        # Run once, not again on a fresh connection (which answered False, or 2).
        assert await store.get(name) == once
        await store.aclose()
