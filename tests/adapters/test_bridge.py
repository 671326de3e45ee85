"""The bridge every adapter shares: sessions by host id, firing that never raises."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from interlock import (
    Block,
    HookContext,
    MessageEvent,
    Modify,
    Plugin,
    PluginManager,
    ToolCall,
    hook,
    hooks,
)
from interlock.adapters._bridge import Bridge, arguments, text, tool_call
from interlock.testing import Conformance, Expected, RecordingPlugin


class Counting(Plugin):
    """Counts calls per session in `ctx.state`, and appends a system item for each."""

    name = "counting"

    @hook("pre_tool_call")
    def count(self, call: ToolCall, ctx: HookContext) -> None:
        ctx.state["calls"] = ctx.state.get("calls", 0) + 1
        if ctx.system_items is not None:
            ctx.system_items.append("note", f"call {ctx.state['calls']} in {ctx.session.id}")


def test_a_session_opens_once_per_host_id_and_ends_with_session_end() -> None:
    recorder = RecordingPlugin()
    manager = PluginManager()
    manager.register(recorder)
    bridge = Bridge(manager, host="test")
    first = bridge.session_sync("thread-1")
    assert bridge.session_sync("thread-1") is first
    assert recorder.names() == ["session_start"]
    bridge.end_sync(first)
    bridge.end_sync(first)  # once only
    assert recorder.names() == ["session_start", "session_end"]
    assert bridge.session_sync("thread-1") is not first  # a new one after the end
    manager.close()


def test_without_a_host_id_each_use_gets_a_session_of_its_own() -> None:
    bridge = Bridge(PluginManager(), host="test")
    assert bridge.session_sync(None).key != bridge.session_sync(None).key
    assert bridge.session_sync(None).key.startswith("test-")


async def test_sessions_keep_plugin_state_and_system_items_apart() -> None:
    manager = PluginManager()
    manager.register(Counting(), capabilities=["system_items"])
    bridge = Bridge(manager, host="test")
    a, b = await bridge.session("a"), await bridge.session("b")
    for session in (a, a, b):
        await bridge.fire(hooks.PRE_TOOL_CALL, ToolCall("ls"), session)
    assert [t for _, t, _ in a.take_system_items()] == ["call 1 in a", "call 2 in a"]
    assert a.take_system_items() == []
    assert [(k, t, p) for k, t, p in b.take_system_items()] == [("note", "call 1 in b", "counting")]
    await bridge.aclose()


@hook("pre_tool_call", name="broken")
def broken(call: ToolCall, ctx: Any) -> None:
    raise RuntimeError("down")


async def test_a_failing_gate_is_a_visible_block_never_an_exception() -> None:
    manager = PluginManager()
    manager.register(broken)  # pre_tool_call fails closed
    bridge = Bridge(manager, host="test")
    session = await bridge.session("s")
    verdict = await bridge.fire(hooks.PRE_TOOL_CALL, ToolCall("ls"), session)
    assert verdict.blocked and verdict.blocked_by == "broken"
    assert verdict.reason is not None and "RuntimeError: down" in verdict.reason
    sync = bridge.fire_sync(hooks.PRE_TOOL_CALL, ToolCall("ls"), session)
    assert sync.blocked
    await bridge.aclose()


def test_interlocks_own_failure_blocks_with_a_reason() -> None:
    manager = PluginManager()
    manager.register(RecordingPlugin())
    bridge = Bridge(manager, host="test")
    wrong = MessageEvent("not a tool call")  # a payload of the wrong type: a host bug
    verdict = bridge.fire_sync(hooks.PRE_TOOL_CALL, wrong, None)  # type: ignore[arg-type]
    assert verdict.blocked and verdict.blocked_by == "interlock"
    assert verdict.reason is not None and "could not judge pre_tool_call" in verdict.reason
    manager.close()


async def test_verdicts_carry_modify_respond_and_ask() -> None:
    @hook("pre_tool_call", name="edit")
    async def edit(call: ToolCall, ctx: Any) -> Modify[ToolCall]:
        await asyncio.sleep(0)
        return Modify(call.replace(arguments={"command": "ls -la"}))

    manager = PluginManager()
    manager.register(edit)
    bridge = Bridge(manager, host="test")
    verdict = bridge.fire_sync(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}), None)
    assert verdict.changed and verdict.payload.arguments == {"command": "ls -la"}
    nobody = bridge.fire_sync(hooks.MESSAGE_RECEIVED, MessageEvent("hi"), None)
    assert nobody.payload == MessageEvent("hi") and not nobody.changed
    manager.close()


def test_idle_sessions_end_after_their_ttl() -> None:
    recorder = RecordingPlugin()
    manager = PluginManager()
    manager.register(recorder)
    bridge = Bridge(manager, host="test", idle_ttl=60.0)
    old = bridge.session_sync("old")
    old.last_used -= 120.0  # as if unused for two minutes
    bridge._swept -= 120.0  # and not looked for since
    bridge.session_sync("new")  # looking up a session sweeps the idle ones
    ended = [p for name, p in recorder.events if name == "session_end"]
    assert [(p.session_id, p.reason) for p in ended] == [("old", "idle")]
    manager.close()


def test_two_threads_open_sessions_at_once() -> None:
    manager = PluginManager()
    manager.register(Counting())
    bridge = Bridge(manager, host="test")
    barrier = threading.Barrier(2)
    seen: dict[str, int] = {}

    def run(key: str) -> None:
        barrier.wait()
        session = bridge.session_sync(key)
        for _ in range(3):
            bridge.fire_sync(hooks.PRE_TOOL_CALL, ToolCall("ls"), session)
        seen[key] = session.scope.states["counting"]["calls"]

    threads = [threading.Thread(target=run, args=(k,)) for k in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen == {"a": 3, "b": 3}
    bridge.close()
    manager.close()


def test_an_ask_without_an_approver_is_refused() -> None:
    bridge = Bridge(PluginManager(), host="test")
    assert bridge.approve(ToolCall("x"), "run it?") is False
    asked: list[str] = []
    yes = Bridge(PluginManager(), host="test", approver=lambda c, q: asked.append(q) or True)
    assert yes.approve(ToolCall("x"), "run it?") is True and asked == ["run it?"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, {}),
        ("", {}),
        ('{"command": "ls"}', {"command": "ls"}),
        ("ls -la", {"input": "ls -la"}),
        (["a", 1], {"input": ("a", 1)}),
        ({"path": ["a", "b"]}, {"path": ("a", "b")}),
    ],
)
def test_tool_arguments_are_a_mapping_never_none(given: Any, expected: Any) -> None:
    assert arguments(given) == expected
    assert tool_call("t", given, None).call_id == ""


def test_text_of_host_values() -> None:
    assert text("plain") == "plain"
    assert text({"a": [1, 2]}) == '{"a": [1, 2]}'


def test_the_conformance_kit_names_what_differs() -> None:
    kit = Conformance(["message_received", "pre_llm_call", "pre_tool_call", "post_tool_call"])
    manager = kit.manager
    manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("ls", {}, "c1"))
    manager.invoke_sync(hooks.POST_TOOL_CALL, hooks.POST_TOOL_CALL.payload_type("ls", {}, "c2"))
    manager.invoke_sync(hooks.TURN_END, hooks.TURN_END.payload_type(1))
    with pytest.raises(AssertionError) as failure:
        kit.check(Expected(user_messages=1, tool_calls=1))
    message = str(failure.value)
    assert "message_received fired 0 times for 1 events" in message
    assert "turn_end fired 1 times, but the adapter does not claim it" in message
    assert "follows no pre_tool_call of that id" in message
    kit.reset()
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("hi"))
    kit.check(Expected(user_messages=1))
    manager.close()


def test_a_blocking_plugin_through_the_bridge() -> None:
    @hook("pre_tool_call", name="no-rm")
    def no_rm(call: ToolCall, ctx: Any) -> Block | None:
        return Block("no rm") if "rm" in str(call.arguments.get("command")) else None

    manager = PluginManager()
    manager.register(no_rm)
    bridge = Bridge(manager, host="test")
    verdict = bridge.fire_sync(
        hooks.PRE_TOOL_CALL, tool_call("shell", {"command": "rm"}, "1"), None
    )
    assert (verdict.blocked, verdict.reason, verdict.blocked_by) == (True, "no rm", "no-rm")
    manager.close()
