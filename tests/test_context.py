"""HookContext: facts, config, state and capability handles, and nothing more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from interlock import (
    CapabilityError,
    HookContext,
    MessageEvent,
    Notifier,
    PluginManager,
    PluginSet,
    SessionInfo,
    SessionStart,
    StreamChunk,
    SystemItemSink,
    TurnEnd,
    hook,
    hooks,
)
from interlock.testing import Harness, sample


class Sink:
    """A host-side system-item log."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def write_system_item(self, kind: str, text: str, *, plugin: str) -> None:
        self.items.append((kind, text, plugin))


class Bell:
    def __init__(self) -> None:
        self.rung: list[tuple[str, str, str]] = []

    def write_notification(self, text: str, *, level: str, plugin: str) -> None:
        self.rung.append((text, level, plugin))


@dataclass
class Seen:
    """What a handler saw during its call."""

    ctx: HookContext
    system_items: object
    notify: object


def capture(manager: PluginManager, hook_name: str, **options: Any) -> list[Seen]:
    seen: list[Seen] = []

    def handler(payload: Any, ctx: HookContext) -> None:
        seen.append(Seen(ctx, ctx.system_items, ctx.notify))

    manager.register(handler, hook=hook_name, name=f"capture-{hook_name}", **options)
    return seen


async def test_facts(manager: PluginManager) -> None:
    contexts = capture(manager, "message_received", config={"limit": [1, 2]})
    session = SessionInfo("s-9", ("a",))
    await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"), session=session, turn=4)
    ctx = contexts[0].ctx
    assert ctx.hook is hooks.MESSAGE_RECEIVED
    assert ctx.plugin == "capture-message_received"
    assert ctx.session is session
    assert ctx.turn == 4
    assert ctx.config == {"limit": (1, 2)}
    with pytest.raises(TypeError):
        ctx.config["limit"] = 3  # type: ignore[index]
    assert ctx.result is None
    assert "capture-message_received" in repr(ctx)


async def test_capabilities_need_offer_grant_and_handle(manager: PluginManager) -> None:
    sink, bell = Sink(), Bell()
    handles = {"system_items": sink, "notify": bell}
    granted = capture(manager, "session_start", capabilities=["system_items", "notify"])
    ungranted = capture(manager, "turn_end")
    not_offered = capture(manager, "session_end", capabilities=["notify"])
    await manager.invoke(hooks.SESSION_START, SessionStart("s"), capabilities=handles)
    await manager.invoke(hooks.TURN_END, TurnEnd(1), capabilities=handles)
    end = hooks.SESSION_END.payload_type("s")
    await manager.invoke(hooks.SESSION_END, end, capabilities=handles)

    assert isinstance(granted[0].system_items, SystemItemSink)
    assert isinstance(granted[0].notify, Notifier)
    assert ungranted[0].system_items is None and ungranted[0].notify is None
    assert not_offered[0].system_items is None  # session_end does not offer it
    assert isinstance(not_offered[0].notify, Notifier)
    assert granted[0].ctx.capability("filesystem") is None


async def test_handles_tell_the_host_which_plugin_wrote(manager: PluginManager) -> None:
    sink, bell = Sink(), Bell()

    @hook("turn_end")
    def remind(payload: Any, ctx: HookContext) -> None:
        assert ctx.system_items is not None and ctx.notify is not None
        ctx.system_items.append("reminder", "run the tests")
        ctx.notify.notify("reminded the model", level="warning")

    manager.register(remind, capabilities=["system_items", "notify"])
    handles = {"system_items": sink, "notify": bell}
    result = await manager.invoke(hooks.TURN_END, TurnEnd(1), capabilities=handles)
    assert result.errors == ()
    assert sink.items == [("reminder", "run the tests", "remind")]
    assert bell.rung == [("reminded the model", "warning", "remind")]


@pytest.mark.parametrize(
    "misuse",
    [
        lambda ctx: ctx.system_items.append("", "x"),
        lambda ctx: ctx.system_items.append("k", 3),
        lambda ctx: ctx.notify.notify("x", level="shout"),
    ],
)
async def test_handles_check_what_plugins_send(manager: PluginManager, misuse: Any) -> None:
    manager.register(
        lambda p, ctx: misuse(ctx),
        hook="turn_end",
        name="bad",
        capabilities=["system_items", "notify"],
    )
    result = await manager.invoke(
        hooks.TURN_END, TurnEnd(1), capabilities={"system_items": Sink(), "notify": Bell()}
    )
    assert isinstance(result.errors[0].error.__cause__, CapabilityError)  # type: ignore[union-attr]


async def test_handles_do_not_outlive_the_call(manager: PluginManager) -> None:
    sink = Sink()
    contexts = capture(manager, "turn_end", capabilities=["system_items"])
    await manager.invoke(hooks.TURN_END, TurnEnd(1), capabilities={"system_items": sink})
    kept = contexts[0].system_items
    assert isinstance(kept, SystemItemSink)
    assert contexts[0].ctx.system_items is None  # a kept context: no authority left
    with pytest.raises(CapabilityError, match="used system_items after its call ended"):
        kept.append("reminder", "injected later")
    assert sink.items == []


async def test_no_handle_without_a_host_provided_one(manager: PluginManager) -> None:
    contexts = capture(manager, "turn_end", capabilities=["system_items"])
    await manager.invoke(hooks.TURN_END, TurnEnd(1))
    assert contexts[0].system_items is None


async def test_session_scope_supplies_handles(manager: PluginManager) -> None:
    sink = Sink()

    @hook("turn_end")
    def remind(payload: Any, ctx: HookContext) -> None:
        assert ctx.system_items is not None
        ctx.system_items.append("reminder", "run the tests")

    async with manager.session("s", capabilities={"system_items": sink}) as scope:
        manager.register(remind, scope=scope, capabilities=["system_items"])
        await manager.invoke(hooks.TURN_END, TurnEnd(1))
    assert sink.items == [("reminder", "run the tests", "remind")]


async def test_a_context_exposes_no_host_objects(manager: PluginManager) -> None:
    contexts = capture(manager, "llm_stream_chunk")
    await manager.invoke(hooks.LLM_STREAM_CHUNK, StreamChunk("m", 0), capabilities={"x": 1})
    public = {name for name in dir(contexts[0].ctx) if not name.startswith("_")}
    assert public == {
        "capabilities",
        "capability",
        "config",
        "hook",
        "notify",
        "plugin",
        "recheck",
        "result",
        "session",
        "state",
        "stats",
        "system_items",
        "turn",
    }
    with pytest.raises(AttributeError):
        contexts[0].ctx.manager  # type: ignore[attr-defined]  # noqa: B018


def test_a_context_names_the_capabilities_usable_here() -> None:
    seen: list[frozenset[str]] = []

    @hook("pre_tool_call")
    def look(payload: object, ctx: HookContext) -> None:
        seen.append(ctx.capabilities)

    with Harness(look, capabilities=["notify"]) as harness:  # granted notify only
        harness.invoke("pre_tool_call")
    manager = PluginManager()
    manager.register(look, capabilities=["notify", "system_items"])
    manager.invoke_sync(hooks.PRE_TOOL_CALL, sample("pre_tool_call"))  # no host writers
    manager.close()
    assert seen == [frozenset({"notify"}), frozenset()]


def test_the_stats_capability_reads_the_sessions_counters_and_dies_with_the_call() -> None:
    kept: list[Any] = []

    @hook("pre_tool_call")
    def gate(payload: object, ctx: HookContext) -> None:
        return None

    @hook("turn_end")
    def report(payload: object, ctx: HookContext) -> None:
        kept.append(ctx.stats)
        if ctx.stats is not None:
            kept.append(ctx.stats.registrations())

    with Harness(PluginSet("both", [gate, report])) as harness:
        harness.invoke("pre_tool_call")
        harness.invoke("turn_end")
    handle, seen = kept
    assert {(s.plugin, s.hook, s.calls) for s in seen} >= {("gate", "pre_tool_call", 1)}
    with pytest.raises(CapabilityError, match="after its call ended"):
        handle.registrations()
    kept.clear()
    with Harness(report, capabilities=["notify"]) as harness:  # not granted: no handle
        harness.invoke("turn_end")
    assert kept == [None]
