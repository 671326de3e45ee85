"""Observe hooks: handlers run concurrently on one frozen payload and cannot act."""

from __future__ import annotations

import asyncio
from typing import Any

from interlock import Block, PluginManager, SessionEnd, hook, hooks

EVENT = SessionEnd("s-1", "completed", 2)


async def test_async_observers_run_concurrently(manager: PluginManager) -> None:
    # Each observer waits for the others: this completes only if they overlap in time.
    events = [asyncio.Event() for _ in range(3)]
    finished: list[int] = []

    def make(i: int) -> Any:
        async def observer(payload: SessionEnd, ctx: Any) -> None:
            events[i].set()
            for event in events:
                await event.wait()
            finished.append(i)

        return observer

    for i in range(3):
        manager.register(make(i), hook="session_end", name=f"o{i}")
    result = await asyncio.wait_for(manager.invoke(hooks.SESSION_END, EVENT), 10)
    assert sorted(finished) == [0, 1, 2]
    assert result.errors == ()
    assert [manager.stats().get(f"o{i}", "session_end").calls for i in range(3)] == [1, 1, 1]


async def test_every_observer_gets_the_same_frozen_payload(manager: PluginManager) -> None:
    seen: list[object] = []

    @hook("session_end")
    def first(payload: SessionEnd, ctx: Any) -> None:
        seen.append(payload)

    @hook("session_end")
    async def second(payload: SessionEnd, ctx: Any) -> None:
        await asyncio.sleep(0)
        seen.append(payload)

    manager.register(first)
    manager.register(second)
    await manager.invoke(hooks.SESSION_END, EVENT)
    assert seen == [EVENT, EVENT]
    assert seen[0] is seen[1] is EVENT


async def test_an_action_from_an_observer_is_an_error(manager: PluginManager) -> None:
    @hook("session_end")
    def blocker(payload: Any, ctx: Any) -> Block:
        return Block("stop")

    manager.register(blocker, on_error="block")
    result = await manager.invoke(hooks.SESSION_END, EVENT)
    assert not result.blocked  # observe hooks never block, whatever on_error says
    [failure] = result.errors
    assert failure.kind == "invalid_action"
    assert "this hook accepts no actions" in failure.message


async def test_observer_failures_are_isolated(manager: PluginManager) -> None:
    ran: list[str] = []

    @hook("session_end")
    async def broken(payload: Any, ctx: Any) -> None:
        await asyncio.sleep(0)
        raise ValueError("observer bug")

    @hook("session_end")
    async def fine(payload: Any, ctx: Any) -> None:
        await asyncio.sleep(0)
        ran.append("fine")

    manager.register(broken)
    manager.register(fine)
    result = await manager.invoke(hooks.SESSION_END, EVENT)
    assert ran == ["fine"]
    assert [(f.plugin, f.kind) for f in result.errors] == [("broken", "exception")]


async def test_cancelling_the_invocation_cancels_running_observers(manager: PluginManager) -> None:
    started = asyncio.Event()
    cancelled: list[str] = []

    def make(name: str) -> Any:
        async def waiter(payload: Any, ctx: Any) -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(name)
                raise

        return waiter

    manager.register(make("a"), hook="session_end", name="a", timeout=None)
    manager.register(make("b"), hook="session_end", name="b", timeout=None)
    task = asyncio.ensure_future(manager.invoke(hooks.SESSION_END, EVENT))
    await started.wait()
    await asyncio.sleep(0)
    task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert sorted(cancelled) == ["a", "b"]
