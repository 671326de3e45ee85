"""Background handlers: fire-and-forget after the invocation, tracked, bounded, drained."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from interlock import (
    Block,
    MessageEvent,
    Modify,
    Plugin,
    PluginManager,
    RegistrationError,
    hook,
    hooks,
)


async def test_background_handlers_run_after_and_drain_waits(manager: PluginManager) -> None:
    release = asyncio.Event()
    seen: list[Any] = []

    @hook("message_received", background=True)
    async def audit(payload: MessageEvent, ctx: Any) -> None:
        await release.wait()
        seen.append((payload.content, ctx.result.modified_by))

    @hook("message_received")
    def upper(payload: MessageEvent, ctx: Any) -> Modify[MessageEvent]:
        return Modify(payload.replace(content=payload.content.upper()))

    manager.register(audit)
    manager.register(upper)
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("hi"))
    assert result.modified_by == ("upper",)  # the caller did not wait for the audit
    assert seen == []
    assert manager.stats().background_pending == 1
    release.set()
    assert await manager.drain(timeout=10)
    assert seen == [("HI", ("upper",))]  # the final payload and the outcome
    assert manager.stats().background_pending == 0


async def test_background_handlers_see_blocked_events_too(manager: PluginManager) -> None:
    seen: list[Any] = []

    @hook("message_received", background=True)
    def audit(payload: Any, ctx: Any) -> None:
        seen.append(ctx.result.blocked_by)

    @hook("message_received")
    def deny(payload: Any, ctx: Any) -> Block:
        return Block("no")

    manager.register(audit)
    manager.register(deny)
    await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    await manager.drain()
    assert seen == ["deny"]


async def test_the_queue_is_bounded_and_drops_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = PluginManager(background_limit=2)
    release = asyncio.Event()

    @hook("message_received", background=True)
    async def slow(payload: Any, ctx: Any) -> None:
        await release.wait()

    manager.register(slow)
    with caplog.at_level("WARNING", logger="interlock"):
        for _ in range(7):
            await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    stats = manager.stats()
    assert (stats.background_pending, stats.background_dropped) == (2, 5)
    # Logged at the 1st, 2nd and 4th drop: the count doubles between warnings.
    warnings = [r.getMessage() for r in caplog.records if "background queue full" in r.getMessage()]
    assert [w.rsplit("(", 1)[1] for w in warnings] == [
        "1 dropped so far)",
        "2 dropped so far)",
        "4 dropped so far)",
    ]
    release.set()
    assert await manager.drain(timeout=10)
    assert manager.stats().get("slow", "message_received").calls == 2


async def test_drain_times_out(manager: PluginManager) -> None:
    @hook("message_received", background=True, timeout=None)
    async def forever(payload: Any, ctx: Any) -> None:
        await asyncio.Event().wait()

    manager.register(forever)
    await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert not await manager.drain(timeout=0.01)


async def test_background_failures_and_actions_are_counted(manager: PluginManager) -> None:
    @hook("message_received", background=True)
    def broken(payload: Any, ctx: Any) -> None:
        raise ValueError("audit disk full")

    @hook("message_received", background=True)
    def meddler(payload: Any, ctx: Any) -> Block:
        return Block("too late to block")

    manager.register(broken)
    manager.register(meddler)
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    await manager.drain()
    assert result.errors == ()  # background work cannot reach a result already returned
    stats = manager.stats()
    assert stats.get("broken", "message_received").errors == 1
    assert stats.get("meddler", "message_received").errors == 1


def test_sync_hosts_run_background_work_on_the_helper_loop(manager: PluginManager) -> None:
    ran = threading.Event()

    @hook("turn_end", background=True)
    async def notify(payload: Any, ctx: Any) -> None:
        await asyncio.sleep(0)
        ran.set()

    manager.register(notify)
    manager.invoke_sync(hooks.TURN_END, hooks.TURN_END.payload_type(1))
    assert manager.drain_sync(timeout=10)
    assert ran.is_set()


# -- a full queue: overflow="drop" (counted, told to the plugin) or "wait" (back-pressure) --


class Counting(Plugin):
    """A background handler that counts its runs, and the drops it is told of."""

    name = "counting"

    def __init__(self) -> None:
        self.ran = 0
        self.told: list[tuple[str, int]] = []

    @hook("message_received", background=True)
    async def count(self, payload: Any, ctx: Any) -> None:
        self.ran += 1

    def background_dropped(self, hook: str, count: int) -> None:
        self.told.append((hook, count))


async def test_drop_mode_counts_each_drop_per_registration_and_tells_the_plugin() -> None:
    manager = PluginManager(background_limit=5)
    counting = Counting()
    manager.register(counting)
    for _ in range(200):  # never yields: only the first five fit
        await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert await manager.drain(timeout=10)
    stats = manager.stats()
    assert counting.ran == 5
    assert stats.get("counting", "message_received").dropped == 195
    assert stats.background_dropped == 195
    assert counting.told == [("message_received", 1)] * 195


@pytest.mark.parametrize("burst", ["loop", "gather"])
async def test_wait_mode_runs_every_call_of_an_async_burst(burst: str) -> None:
    manager = PluginManager(background_limit=5)
    counting = Counting()
    manager.register(counting, overflow="wait")
    invocations = [manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x")) for _ in range(500)]
    if burst == "gather":
        await asyncio.gather(*invocations)
    else:
        for invocation in invocations:
            await invocation
    assert await manager.drain(timeout=10)
    assert counting.ran == 500 and counting.told == []
    stats = manager.stats()
    assert stats.background_dropped == 0 and stats.get("counting", "message_received").dropped == 0


def test_wait_mode_runs_every_call_of_a_sync_burst() -> None:
    with PluginManager(background_limit=5) as manager:
        counting = Counting()
        manager.register(counting, overflow="wait")
        for _ in range(500):
            manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
        assert manager.drain_sync(timeout=10)
        assert counting.ran == 500 and manager.stats().background_dropped == 0


def _stuck_queue(manager: PluginManager, release: threading.Event) -> None:
    """Fill the queue with calls that finish only when `release` is set."""

    @hook("turn_end", background=True, timeout=None)
    def stuck(payload: Any, ctx: Any) -> None:
        release.wait()

    manager.register(stuck)
    for number in range(manager._background.limit):
        manager.invoke_sync(hooks.TURN_END, hooks.TURN_END.payload_type(number))
    assert manager.stats().background_pending == manager._background.limit


async def test_a_wait_gives_up_when_nothing_finishes_for_its_bound() -> None:
    manager = PluginManager(background_limit=2)
    release = threading.Event()
    try:
        _stuck_queue(manager, release)
        short, long = Counting(), Counting()
        manager.register(short, name="short", overflow="wait", timeout=0.05)
        # The queue is stalled once a wait gave up: the next one drops at once instead of
        # waiting its whole bound (an hour here) while nothing finishes.
        manager.register(long, name="long", overflow="wait", timeout=3600)
        await asyncio.wait_for(manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x")), 60)
        stats = manager.stats()
        assert stats.get("short", "message_received").dropped == 1
        assert stats.get("long", "message_received").dropped == 1
        assert short.told == long.told == [("message_received", 1)]
    finally:
        release.set()
    assert await manager.drain(timeout=10)
    # Progress ends the stall: waiting works again.
    await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("y"))
    assert await manager.drain(timeout=10)
    assert (short.ran, long.ran) == (1, 1)
    assert manager.stats().get("stuck", "turn_end").calls == 2
    await manager.aclose()


def test_a_sync_wait_gives_up_when_nothing_finishes_for_its_bound() -> None:
    manager = PluginManager(background_limit=2)
    release = threading.Event()
    try:
        _stuck_queue(manager, release)
        counting = Counting()
        manager.register(counting, overflow="wait", timeout=0.05)
        manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
        assert manager.stats().get("counting", "message_received").dropped == 1
        assert counting.told == [("message_received", 1)]
    finally:
        release.set()
    assert manager.drain_sync(timeout=10)
    manager.close()


async def test_invoke_sync_on_an_event_loop_thread_never_waits() -> None:
    manager = PluginManager(background_limit=2)
    release = threading.Event()
    try:
        _stuck_queue(manager, release)
        counting = Counting()
        manager.register(counting, overflow="wait", timeout=3600)
        # Blocking this thread could block the loop that finishes the pending work.
        manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
        assert manager.stats().get("counting", "message_received").dropped == 1
    finally:
        release.set()
    assert await manager.drain(timeout=10)
    await manager.aclose()


async def test_a_failing_drop_notice_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Careless(Counting):
        name = "careless"

        def background_dropped(self, hook: str, count: int) -> None:
            raise RuntimeError("cannot note it")

    manager = PluginManager(background_limit=1)
    manager.register(Careless())
    with caplog.at_level("ERROR", logger="interlock"):
        for _ in range(3):
            await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert manager.stats().get("careless", "message_received").dropped == 2
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "plugin 'careless' failed to take note of a dropped background call at hook "
        "'message_received'"
    ] * 2
    await manager.drain()


def test_overflow_is_checked_at_registration(manager: PluginManager) -> None:
    @hook("message_received")
    def inline(payload: Any, ctx: Any) -> None: ...

    with pytest.raises(RegistrationError, match="overflow='wait' applies to background"):
        manager.register(inline, overflow="wait")
    with pytest.raises(RegistrationError, match="overflow must be one of drop, wait"):
        manager.register(Counting(), overflow="block")  # type: ignore[arg-type]
    [reg] = manager.register(Counting(), overflow="wait", timeout=2).registrations
    assert (reg.overflow, reg.overflow_wait) == ("wait", 2.0)
