"""The memory store's holds lapse each at its own time, whatever order they were taken,
settled or given up in (it looks at its holds only once the earliest may have lapsed)."""

from __future__ import annotations

from interlock.store import Claim, MemoryStore


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CLAIM = Claim("budget", {"tokens": 10.0}, {"tokens": 100.0})


async def held(store: MemoryStore) -> float:
    return (await store.balance("budget")).held.get("tokens", 0.0)


async def test_a_shorter_hold_taken_after_a_longer_one_lapses_first() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert (await store.reserve([CLAIM], "long", ttl=100)).granted
    assert (await store.reserve([CLAIM], "short", ttl=5)).granted
    clock.now = 6
    assert await held(store) == 10.0  # "short" lapsed, "long" still held
    clock.now = 101
    assert await held(store) == 0.0


async def test_holds_left_after_the_earliest_is_settled_lapse_on_time() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    for hold, ttl in (("first", 10.0), ("second", 20.0), ("third", 30.0)):
        assert (await store.reserve([CLAIM], hold, ttl=ttl)).granted
    await store.settle(["budget"], "first", {"tokens": 1.0}, ttl=60)
    assert await held(store) == 20.0
    clock.now = 25  # "second" lapsed
    assert await held(store) == 10.0
    assert (await store.reserve([CLAIM], "fourth", ttl=100)).granted
    clock.now = 31  # "third" lapsed; "fourth" is held till 125
    assert await held(store) == 10.0
    clock.now = 125
    assert await held(store) == 0.0
    assert (await store.balance("budget")).spent == {"tokens": 1.0}
