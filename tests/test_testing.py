"""interlock.testing: the harness, sample payloads, the recording plugin, pytest fixtures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from interlock import (
    Block,
    HookContext,
    HookSpec,
    PluginManager,
    ToolCall,
    TurnEnd,
    hook,
    hooks,
)
from interlock.testing import Harness, RecordingPlugin, sample


@hook("pre_tool_call")
def guard(payload: ToolCall, ctx: HookContext) -> Block | None:
    if "rm" in str(payload.arguments.get("command", "")):
        if ctx.notify is not None:
            ctx.notify.notify("refused a deletion", level="warning")
        return Block("no deleting")
    return None


@hook("turn_end")
def remind(payload: TurnEnd, ctx: HookContext) -> None:
    ctx.state["turns"] = ctx.state.get("turns", 0) + 1
    if ctx.system_items is not None:
        ctx.system_items.append("reminder", f"turn {payload.turn} done")


@pytest.mark.parametrize("spec", hooks.CATALOG, ids=lambda s: s.name)
def test_sample_builds_a_payload_for_every_catalog_hook(spec: HookSpec[Any]) -> None:
    assert isinstance(sample(spec), spec.payload_type)
    assert isinstance(sample(spec.name), spec.payload_type)


def test_sample_takes_overrides() -> None:
    call = sample("before_tool_call", tool_name="fs_write", arguments={"path": "/etc"})
    assert (call.tool_name, call.arguments) == ("fs_write", {"path": "/etc"})


def test_the_harness_records_actions_and_capability_calls() -> None:
    with Harness(guard) as harness:
        result = harness.invoke("pre_tool_call", arguments={"command": "rm -rf /"})
        assert result.blocked and result.reason == "no deleting"
        assert harness.notifications == [("refused a deletion", "warning")]
        assert not harness.invoke("pre_tool_call").blocked
        assert harness.stats().get("guard", "pre_tool_call").calls == 2


async def test_the_harness_keeps_session_state_and_system_items() -> None:
    with Harness(remind) as harness:
        await harness.ainvoke("turn_end", turn=1)
        await harness.ainvoke(hooks.TURN_END, TurnEnd(2))
        assert harness.system_items == [("reminder", "turn 1 done"), ("reminder", "turn 2 done")]
        assert harness.state == {"remind": {"turns": 2}}


def test_capabilities_can_be_narrowed() -> None:
    with Harness(remind, capabilities=[]) as harness:
        harness.invoke("turn_end")
        assert harness.system_items == []


def test_the_recording_plugin_sees_every_hook() -> None:
    recorder = RecordingPlugin()
    manager = PluginManager()
    manager.register(recorder)
    for spec in hooks.CATALOG:
        manager.invoke_sync(spec, sample(spec))
    assert recorder.names() == [spec.name for spec in hooks.CATALOG]


def test_the_pytest_fixtures(
    interlock_harness: Callable[..., Harness], interlock_manager: PluginManager
) -> None:
    harness = interlock_harness(guard)
    assert harness.invoke("pre_tool_call", arguments={"command": "rm x"}).blocked
    interlock_manager.register(guard)
    assert interlock_manager.has(hooks.PRE_TOOL_CALL)


def test_the_harness_takes_a_hosts_own_hooks() -> None:
    from dataclasses import dataclass

    from interlock import Modify

    @dataclass(frozen=True)
    class Deploy:
        target: str

    spec = HookSpec("pre_deploy", Deploy, kind="modify", accepts={Block, Modify})

    @hook("pre_deploy")
    def no_prod(payload: Deploy, ctx: HookContext) -> Block | None:
        return Block("not on a Friday") if payload.target == "prod" else None

    with Harness(no_prod, specs=[spec]) as harness:
        assert harness.invoke("pre_deploy", target="prod").blocked
        assert not harness.invoke(spec, Deploy("staging")).blocked
