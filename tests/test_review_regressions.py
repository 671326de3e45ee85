"""Regression tests for problems a code review found; each names what used to go wrong."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest

from interlock import (
    Ask,
    Block,
    ConditionError,
    HookSpec,
    LLMRequest,
    Message,
    MessageEvent,
    Modify,
    Plugin,
    PluginManager,
    PluginSet,
    RegistrationError,
    SessionInfo,
    SessionStart,
    ToolCall,
    TurnEnd,
    UnknownHookError,
    hook,
    hooks,
)
from tests.conftest import FakeClock


def test_an_undeclared_spec_cannot_shadow_a_declared_hook(manager: PluginManager) -> None:
    rogue = HookSpec("pre_tool_call", ToolCall, kind="modify", accepts={Block})

    @hook("pre_tool_call")
    def gate(payload: Any, ctx: Any) -> Block:
        return Block("gate")

    manager.register(gate)
    with pytest.raises(UnknownHookError, match="is not declared on this manager"):
        manager.register(lambda p, c: None, hook=rogue, name="rogue")
    assert manager.invoke_sync("pre_tool_call", ToolCall("shell")).blocked


def test_a_suspended_gate_only_blocks_what_it_guards(clock: FakeClock) -> None:
    manager = PluginManager(clock=clock, failure_threshold=2)

    @hook("pre_tool_call", when={"tool_name": "shell"})
    def flaky(payload: Any, ctx: Any) -> None:
        raise ConnectionError("down")

    manager.register(flaky)
    for _ in range(3):
        assert manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell")).blocked
    assert not manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("read_file")).blocked


class Unprintable(Exception):
    def __str__(self) -> str:
        raise AttributeError("no detail")


class Unrepresentable:
    def __repr__(self) -> str:
        raise ValueError("no repr")


class Touchy(str):
    def __ne__(self, other: object) -> bool:
        raise RuntimeError("boom in __ne__")

    __hash__ = str.__hash__


@pytest.mark.parametrize(
    ("answer", "expect"),
    [
        (Unprintable(), "Unprintable: <Unprintable that cannot be shown>"),
        (Unrepresentable(), "returned <Unrepresentable instance at"),
        ("touchy", "could not be checked: RuntimeError: boom in __ne__"),
    ],
)
def test_plugin_objects_that_break_str_repr_or_eq_do_not_reach_the_host(
    manager: PluginManager, answer: Any, expect: str
) -> None:
    def handler(payload: ToolCall, ctx: Any) -> Any:
        if isinstance(answer, Exception):
            raise answer
        if answer == "touchy":
            return Modify(payload.replace(tool_name=Touchy("other")))
        return answer

    manager.register(handler, hook="pre_tool_call", on_error="ignore")
    result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert expect in result.errors[0].message


def test_sync_handlers_stay_in_the_hosts_thread_next_to_async_ones(
    manager: PluginManager,
) -> None:
    threads: list[threading.Thread] = []

    @hook("message_received", priority=0)
    def sync_first(payload: Any, ctx: Any) -> None:
        threads.append(threading.current_thread())

    @hook("message_received", priority=1)
    async def async_middle(payload: Any, ctx: Any) -> None:
        await asyncio.sleep(0)

    @hook("message_received", priority=2)
    def sync_last(payload: Any, ctx: Any) -> None:
        threads.append(threading.current_thread())

    for handler in (sync_first, async_middle, sync_last):
        manager.register(handler)
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert threads == [threading.current_thread()] * 2


def test_a_dropped_manager_stops_its_helper_thread() -> None:
    manager = PluginManager()

    @hook("turn_end")
    async def note(payload: Any, ctx: Any) -> None:
        await asyncio.sleep(0)

    manager.register(note)
    manager.invoke_sync(hooks.TURN_END, TurnEnd(1))
    thread = manager._portal._thread
    assert thread is not None and thread.is_alive()
    del manager
    gc.collect()
    assert not thread.is_alive()


async def test_a_scope_left_from_another_context_still_cleans_up(manager: PluginManager) -> None:
    class Budget(Plugin):
        name = "budget"

        def on_turn_end(self, payload: Any, ctx: Any) -> None:
            return None

    scope = manager.session("s", plugins=[Budget()])
    await asyncio.ensure_future(scope.__aenter__())  # entered in another task's context
    await scope.__aexit__(None, None, None)
    assert not manager.has(hooks.TURN_END)
    manager.register(Budget())  # the name is free again


async def test_unregister_by_name_never_reaches_another_session(manager: PluginManager) -> None:
    class Budget(Plugin):
        name = "budget"

        def on_turn_end(self, payload: Any, ctx: Any) -> None:
            return None

    a_entered, b_done = asyncio.Event(), asyncio.Event()

    async def session_a() -> list[str]:
        async with manager.session("a", plugins=[Budget()]):
            a_entered.set()
            await b_done.wait()
            return [r.plugin for r in manager.registrations()]

    async def session_b() -> None:
        await a_entered.wait()
        async with manager.session("b", plugins=[Budget()]):
            manager.unregister("budget")
            assert manager.registrations() == ()
        b_done.set()

    seen_by_a, _ = await asyncio.gather(session_a(), session_b())
    assert seen_by_a == ["budget"]


async def test_background_handlers_get_failures_without_exception_objects(
    manager: PluginManager,
) -> None:
    seen: list[Any] = []

    @hook("message_received")
    def broken(payload: Any, ctx: Any) -> None:
        raise ValueError("secret frame")

    @hook("message_received", background=True)
    def spy(payload: Any, ctx: Any) -> None:
        seen.extend(ctx.result.errors)

    manager.register(broken)
    manager.register(spy)
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    await manager.drain()
    assert result.errors[0].error is not None  # the host keeps the exception
    assert [(f.plugin, f.error) for f in seen] == [("broken", None)]


def test_roles_and_scalar_fields_are_checked(manager: PluginManager) -> None:
    with pytest.raises(ValueError, match="role must be one of"):
        Message("developer", "be evil")  # type: ignore[arg-type]

    def nulls(payload: MessageEvent, ctx: Any) -> Modify[MessageEvent]:
        return Modify(payload.replace(content=None))

    manager.register(nulls, hook="message_received")
    result = manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert result.payload is None
    assert "set field 'content' to a NoneType; it takes str" in result.errors[0].message


def test_plugin_wide_options_apply_where_they_can(manager: PluginManager) -> None:
    class Budget(Plugin):
        name = "budget"

        def on_pre_llm_call(self, payload: LLMRequest, ctx: Any) -> None:
            return None

        def on_session_end(self, payload: Any, ctx: Any) -> None:
            return None

    handle = manager.register(Budget(), when={"model": "gpt-*"}, writable=["tools"])
    by_hook = {r.hook.name: r for r in handle.registrations}
    assert by_hook["pre_llm_call"].when == {"model": "gpt-*"}
    assert by_hook["pre_llm_call"].writable == {"tools"}
    assert by_hook["session_end"].when is None
    assert by_hook["session_end"].writable == frozenset()
    with pytest.raises(ConditionError, match="key 'modle' names no field of its hooks"):
        manager.register(Budget(), name="b2", when={"modle": "gpt-*"})


def test_set_wide_capabilities_apply_to_members_whose_hooks_offer_them(
    manager: PluginManager,
) -> None:
    @hook("session_start")
    def hello(payload: Any, ctx: Any) -> None:
        return None

    @hook("session_end")
    def bye(payload: Any, ctx: Any) -> None:
        return None

    handle = manager.register(PluginSet("greet", [hello, bye]), capabilities=["system_items"])
    assert {r.plugin: r.capabilities for r in handle.registrations} == {
        "hello": {"system_items"},
        "bye": frozenset(),
    }
    with pytest.raises(RegistrationError, match="capability 'filesystem' is not offered"):
        manager.register(
            PluginSet("g2", [hook("turn_end")(lambda p, c: None)]), capabilities=["filesystem"]
        )


def test_small_mistakes_get_clear_errors(manager: PluginManager) -> None:
    with pytest.raises(TypeError, match="got a string"):
        SessionInfo("s", "prod")  # type: ignore[arg-type]

    async def handler(payload: Any, ctx: Any) -> None:
        return None

    with pytest.raises(RegistrationError, match="thread=True is for sync handlers"):
        manager.register(handler, hook="turn_end", thread=True)

    class Greeter(Plugin):
        def on_session_start(self, payload: SessionStart, ctx: Any) -> None:
            return None

    with pytest.raises(RegistrationError, match=r"register an instance, e.g. register\(Greeter"):
        manager.register(Greeter)


def test_turn_end_conditions_read_the_payloads_turn(manager: PluginManager) -> None:
    seen: list[int] = []
    manager.register(
        lambda p, c: seen.append(p.turn), hook="turn_end", name="t", when={"turn": "2"}
    )
    manager.invoke_sync(hooks.TURN_END, TurnEnd(2), turn=7)
    manager.invoke_sync(hooks.TURN_END, TurnEnd(3), turn=2)
    assert seen == [2]


@pytest.mark.parametrize("path", ["timed", "untimed", "awaited"])
def test_a_rejected_one_step_modify_that_fails_closed_ends_the_chain(path: str) -> None:
    """A quick Modify of a protected field from an `on_error="block"` registration blocks,
    and nothing after it runs: no later Modify or Ask lands in the blocked result."""
    manager = PluginManager()
    ran: list[str] = []

    def bad(payload: ToolCall, ctx: Any) -> Modify[ToolCall]:
        return Modify(payload.replace(tool_name="rm"))  # tool_name is not writable

    def later(payload: ToolCall, ctx: Any) -> Ask:
        ran.append("later")
        return Ask("run it?")

    async def later_async(payload: ToolCall, ctx: Any) -> None:
        ran.append("later_async")

    manager.register(bad, hook="pre_tool_call", on_error="block")
    manager.register(later, hook="pre_tool_call", priority=1)
    if path == "awaited":
        manager.register(later_async, hook="pre_tool_call", priority=2)
        result = asyncio.run(manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("x")))
    else:
        if path == "untimed":  # the first invocation of a plan is a timed one
            manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("x"))
            ran.clear()
        result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("x"))
    manager.close()
    assert (result.blocked_by, result.modified_by, result.asks) == ("bad", (), ())
    assert ran == []
