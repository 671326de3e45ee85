"""Background handlers: fire-and-forget after the invocation, tracked, bounded, drained."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from interlock import Block, MessageEvent, Modify, PluginManager, hook, hooks


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
