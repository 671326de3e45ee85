"""Session scopes: plugins that fire only inside their session, across concurrent sessions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from interlock import (
    DuplicatePluginError,
    InterlockError,
    LLMRequest,
    Plugin,
    PluginManager,
    TurnEnd,
    hook,
    hooks,
)


class Recorder(Plugin):
    """Records which session each turn_end it saw belonged to, and counts per session."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, int]] = []

    def on_turn_end(self, payload: TurnEnd, ctx: Any) -> None:
        count = ctx.state["turns"] = ctx.state.get("turns", 0) + 1
        self.seen.append((ctx.session.id if ctx.session else None, count))


async def test_scoped_plugins_fire_only_inside_their_session(manager: PluginManager) -> None:
    recorder = Recorder()
    assert not manager.has(hooks.TURN_END)
    async with manager.session("s1", plugins=[recorder], tags=["prod"]) as session:
        assert manager.has(hooks.TURN_END)
        assert session.info.tags == ("prod",)
        await manager.invoke(hooks.TURN_END, TurnEnd(1))
        await manager.invoke(hooks.TURN_END, TurnEnd(2))
    await manager.invoke(hooks.TURN_END, TurnEnd(3))
    assert recorder.seen == [("s1", 1), ("s1", 2)]
    assert not manager.has(hooks.TURN_END)
    assert manager.stats().registrations == ()


async def test_concurrent_sessions_see_only_their_own_plugins(manager: PluginManager) -> None:
    recorders = {"a": Recorder(), "b": Recorder()}
    both_inside = asyncio.Barrier(2)
    both_invoked = asyncio.Barrier(2)

    async def run(session_id: str) -> None:
        async with manager.session(session_id, plugins=[recorders[session_id]]):
            await both_inside.wait()  # both scopes are active at the same time
            await manager.invoke(hooks.TURN_END, TurnEnd(1))
            await manager.invoke(hooks.TURN_END, TurnEnd(2))
            await both_invoked.wait()

    await asyncio.gather(run("a"), run("b"))
    assert recorders["a"].seen == [("a", 1), ("a", 2)]
    assert recorders["b"].seen == [("b", 1), ("b", 2)]


async def test_global_plugins_see_the_session_and_keep_state_per_session(
    manager: PluginManager,
) -> None:
    recorder = Recorder()
    manager.register(recorder)
    await manager.invoke(hooks.TURN_END, TurnEnd(1))
    for session_id in ("x", "y"):
        async with manager.session(session_id):
            await manager.invoke(hooks.TURN_END, TurnEnd(1))
            await manager.invoke(hooks.TURN_END, TurnEnd(2))
    assert recorder.seen == [(None, 1), ("x", 1), ("x", 2), ("y", 1), ("y", 2)]


async def test_nested_scopes_stack(manager: PluginManager) -> None:
    outer, inner = Recorder(), Recorder()
    async with manager.session("outer", plugins=[outer]):
        async with manager.session("inner") as scope:
            manager.register(inner, name="inner-recorder", scope=scope)
            await manager.invoke(hooks.TURN_END, TurnEnd(1))
        await manager.invoke(hooks.TURN_END, TurnEnd(2))
    # The outer plugin sees the inner session, with that session's own state.
    assert outer.seen == [("inner", 1), ("outer", 1)]
    assert inner.seen == [("inner", 1)]


async def test_scope_conditions_and_names(manager: PluginManager) -> None:
    seen: list[str] = []

    @hook("pre_llm_call", when={"session.tags": "prod*"})
    def prod_only(payload: LLMRequest, ctx: Any) -> None:
        seen.append(ctx.session.id)

    manager.register(prod_only)
    async with manager.session("dev", tags=["dev"]):
        await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"))
    async with manager.session("live", tags=["team-a", "production"]):
        await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"))
    assert seen == ["live"]


def test_sync_scopes_and_errors(manager: PluginManager) -> None:
    recorder = Recorder()
    manager.register(Recorder())
    with pytest.raises(DuplicatePluginError), manager.session("s", plugins=[recorder]):
        pass
    assert manager.invoke_sync(hooks.TURN_END, TurnEnd(1)).errors == ()
    scope = manager.session("later")
    with pytest.raises(InterlockError, match="not open on this manager"):
        manager.register(Recorder(), name="r2", scope=scope)
    with scope:
        with pytest.raises(InterlockError, match="already open"):
            scope.__enter__()
        manager.register(Recorder(), name="r2", scope=scope)
        assert {r.plugin for r in manager.registrations()} == {"recorder", "r2"}
    assert {r.plugin for r in manager.registrations()} == {"recorder"}


def test_opening_and_closing_a_session_leaves_other_sessions_plans_alone(
    manager: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.register(Recorder())
    builds: list[str] = []
    build = manager._build_plans
    monkeypatch.setattr(manager, "_build_plans", lambda regs: builds.append("x") or build(regs))
    busy = manager.session("busy", plugins=[_Other()]).open()
    before = busy.plans()  # built once, over the global plugins and its own
    plain = [manager.session(f"s{i}").open() for i in range(50)]
    for scope in plain:  # no plugins of their own: the global plans, nothing built
        assert scope.plans() is manager._plans
        manager.invoke_sync(hooks.TURN_END, TurnEnd(1), scope=scope)
    for scope in plain:
        scope.close()
    manager.session("other", plugins=[_Other()]).open().close()
    assert busy.plans() is before  # nobody else's session made it rebuild
    assert builds == ["x"]
    busy.close()


class _Other(Plugin):
    name = "other"

    def on_llm_stream_chunk(self, payload: Any, ctx: Any) -> None:
        pass


def test_has_follows_what_open_sessions_listen_to(manager: PluginManager) -> None:
    assert not manager.has(hooks.LLM_STREAM_CHUNK)
    scope = manager.session("s", plugins=[_Other()]).open()
    assert manager.has(hooks.LLM_STREAM_CHUNK)
    twin = manager.session("t", plugins=[_Other()]).open()
    scope.close()
    assert manager.has(hooks.LLM_STREAM_CHUNK)  # "t" still listens
    twin.close()
    assert not manager.has(hooks.LLM_STREAM_CHUNK)
