"""Nothing a handler raises or returns escapes into the host or stops interlock's loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from interlock import MessageEvent, PluginManager, PortalError, ToolCall, hook, hooks
from interlock._portal import Portal


def within(seconds: float, work: Callable[[], Any]) -> Any:
    """Run `work` in a thread; fail (instead of hanging the suite) if it does not return."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "it hung"
    return box[0]


@hook("message_received", name="exiter")
async def exiter(event: MessageEvent, ctx: Any) -> None:
    await asyncio.sleep(0)  # on interlock's loop, as a sync host's async handlers are
    raise SystemExit(0)


def test_system_exit_from_an_async_handler_is_its_failure_and_the_loop_lives_on() -> None:
    manager = PluginManager()
    manager.register(exiter)
    for _ in range(2):
        result = within(10, lambda: manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("")))
        [failure] = result.errors
        assert failure.plugin == "exiter" and failure.message == "SystemExit: 0"
    within(10, manager.close)


def test_system_exit_from_a_sync_gate_blocks_as_its_failure() -> None:
    @hook("pre_tool_call", name="quitter")
    def quitter(call: ToolCall, ctx: Any) -> None:
        raise SystemExit(3)

    manager = PluginManager()
    manager.register(quitter)
    result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert result.blocked_by == "quitter"  # pre_tool_call fails closed
    assert result.errors[0].message == "SystemExit: 3"
    manager.close()


def test_close_returns_after_a_background_handler_raised_keyboard_interrupt() -> None:
    @hook("message_received", name="interrupter", background=True)
    async def interrupter(event: MessageEvent, ctx: Any) -> None:
        raise KeyboardInterrupt  # not in the main thread: never a real interrupt

    manager = PluginManager()
    manager.register(interrupter)
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent(""))
    assert within(10, lambda: manager.drain_sync(10))
    assert manager.stats().get("interrupter", "message_received").errors == 1
    result = within(10, lambda: manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("")))
    assert not result.errors  # still served
    within(10, manager.close)


@pytest.mark.parametrize("raised", [GeneratorExit, KeyboardInterrupt, SystemExit])
async def test_a_threaded_gate_raising_a_base_exception_blocks_in_an_async_host(
    raised: type[BaseException],
) -> None:
    @hook("pre_tool_call", name="odd")
    def odd(call: ToolCall, ctx: Any) -> None:
        raise raised

    manager = PluginManager()
    manager.register(odd, thread=True)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert result.blocked_by == "odd"
    assert result.errors[0].message.startswith(raised.__name__)
    await manager.aclose()


class Shapeless:
    """An answer whose `__class__` itself raises."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("no class")


@pytest.mark.parametrize("hook_name", ["message_received", "turn_end"])
def test_an_answer_whose_class_raises_is_the_handlers_failure(hook_name: str) -> None:
    from interlock import TurnEnd

    def shapeless(payload: Any, ctx: Any) -> Any:
        return Shapeless()

    manager = PluginManager()
    manager.register(shapeless, hook=hook_name)
    payload = MessageEvent("") if hook_name == "message_received" else TurnEnd(1)
    result = manager.invoke_sync(hook_name, payload)
    [failure] = result.errors
    assert failure.plugin == "shapeless" and failure.kind == "invalid_action"
    manager.close()


@hook("pre_tool_call", name="busy")
async def busy(call: ToolCall, ctx: Any) -> None:
    time.sleep(0.1)  # stands in for work that never awaits, so no timer can interrupt it


async def test_an_answer_past_the_timeout_is_discarded_even_without_awaiting() -> None:
    manager = PluginManager()
    manager.register(busy, timeout=0.02)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert result.blocked_by == "busy"  # fails closed: its time was up
    assert result.errors[0].kind == "timeout"
    assert manager.stats().get("busy", "pre_tool_call").timeouts == 1
    await manager.aclose()


async def test_a_background_answer_past_the_timeout_is_counted_as_one() -> None:
    manager = PluginManager()
    manager.register(busy, timeout=0.02, background=True)
    await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert await manager.drain(10)
    assert manager.stats().get("busy", "pre_tool_call").timeouts == 1
    await manager.aclose()


def test_a_dead_loop_fails_its_waiters_at_once_and_the_next_call_gets_a_new_one() -> None:
    portal = Portal()
    never = threading.Event()

    async def wait_for_ever() -> None:
        await asyncio.to_thread(never.wait, 10)

    waiting = portal.submit(wait_for_ever())
    loop = portal._ensure_loop()

    def stop_the_loop() -> None:
        raise SystemExit("stopped from inside")  # ends run_forever, as nothing else can

    loop.call_soon_threadsafe(stop_the_loop)
    with pytest.raises(PortalError, match="event-loop thread ended"):
        waiting.result(10)
    never.set()

    async def answer() -> int:
        return 42

    assert within(10, lambda: portal.run(answer())) == 42
    within(10, portal.close)
