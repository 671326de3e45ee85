"""Sync hosts: invoke_sync runs sync handlers inline and async ones on a helper loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from interlock import (
    MessageEvent,
    Modify,
    PluginManager,
    PortalError,
    SessionEnd,
    ToolCall,
    hook,
    hooks,
)


def test_async_handlers_from_a_sync_host(manager: PluginManager) -> None:
    @hook("message_received", priority=0)
    async def first(payload: MessageEvent, ctx: Any) -> Modify[MessageEvent]:
        await asyncio.sleep(0)
        return Modify(payload.replace(content=payload.content + "1"))

    @hook("message_received", priority=1)
    def second(payload: MessageEvent, ctx: Any) -> Modify[MessageEvent]:
        return Modify(payload.replace(content=payload.content + "2"))

    manager.register(first)
    manager.register(second)
    result = manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert result.payload == MessageEvent("x12")
    assert result.modified_by == ("first", "second")


def test_sync_only_plans_run_in_the_calling_thread(manager: PluginManager) -> None:
    threads: list[threading.Thread] = []

    @hook("message_received")
    def where(payload: Any, ctx: Any) -> None:
        threads.append(threading.current_thread())

    manager.register(where)
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert threads == [threading.current_thread()]


def test_async_observers_overlap_for_sync_hosts(manager: PluginManager) -> None:
    events = [asyncio.Event(), asyncio.Event()]  # bound to the helper loop when first awaited

    def make(i: int) -> Any:
        async def observer(payload: Any, ctx: Any) -> None:
            events[i].set()
            await events[1 - i].wait()

        return observer

    manager.register(make(0), hook="session_end", name="a")
    manager.register(make(1), hook="session_end", name="b")
    result = manager.invoke_sync(hooks.SESSION_END, SessionEnd("s-1"))
    assert result.errors == ()


def test_invoke_sync_inside_a_helper_loop_handler_is_refused(manager: PluginManager) -> None:
    @hook("message_received")
    async def reentrant(payload: Any, ctx: Any) -> None:
        manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("t"))

    async def gate(payload: Any, ctx: Any) -> None:
        return None

    manager.register(reentrant)
    manager.register(gate, hook="pre_tool_call")
    result = manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    [failure] = result.errors
    assert failure.error is not None
    assert isinstance(failure.error.__cause__, PortalError)
    assert "use `await manager.invoke(...)` there" in failure.message


async def test_one_manager_serves_sync_and_async_callers(manager: PluginManager) -> None:
    @hook("message_received")
    async def tag(payload: MessageEvent, ctx: Any) -> Modify[MessageEvent]:
        return Modify(payload.replace(content="tagged"))

    manager.register(tag)
    from_thread = await asyncio.to_thread(
        manager.invoke_sync, hooks.MESSAGE_RECEIVED, MessageEvent("x")
    )
    from_loop = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert from_thread.payload == from_loop.payload == MessageEvent("tagged")


def test_close_is_idempotent_and_the_helper_loop_restarts_on_use() -> None:
    manager = PluginManager()

    @hook("message_received")
    async def tag(payload: MessageEvent, ctx: Any) -> Modify[MessageEvent]:
        return Modify(payload.replace(content="tagged"))

    manager.register(tag)
    assert manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x")).modified
    manager.close()
    manager.close()
    assert manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x")).modified
    manager.close()
