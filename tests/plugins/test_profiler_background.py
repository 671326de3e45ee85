"""profiler: background handlers still running when `session_end` fires are counted in full,
without the session waiting for them before `session_end` (they may wait for it)."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

from interlock import (
    HookContext,
    Level,
    LLMResponse,
    Plugin,
    PluginManager,
    RegistrationStats,
    SessionEnd,
    SessionStart,
    hook,
    hooks,
)
from interlock.plugins.profiler import Profiler
from interlock.testing import sample

from .helpers import run


class Late(Plugin):
    """Background handlers that finish only after `session_end` has started."""

    name = "late"

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    @hook("post_llm_call", background=True, timeout=None)
    async def after_call(self, response: LLMResponse, ctx: HookContext) -> None:
        await self.ended.wait()

    # Starts only once session_end's awaited handlers are done: a table made by one of
    # those could never count it.
    @hook("session_end", background=True)
    def after_end(self, event: SessionEnd, ctx: HookContext) -> None:
        pass

    def on_session_end(self, event: SessionEnd, ctx: HookContext) -> None:
        self.ended.set()


class Census(Plugin):
    """A second report that settles at the same time as the profiler."""

    name = "census"

    def __init__(self) -> None:
        self.seen: tuple[RegistrationStats, ...] = ()

    @hook("session_end", background=True, timeout=None)
    async def count(self, event: SessionEnd, ctx: HookContext) -> None:
        assert ctx.stats is not None
        self.seen = await ctx.stats.settled()


def _calls(table: str) -> dict[tuple[str, str], int]:
    """(plugin, hook) -> calls, from the profiler's plugin table."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()]
    return {(r[0], r[1]): int(r[2]) for r in rows if len(r) == 7 and r[2].isdigit()}


async def test_background_calls_that_end_after_session_end_starts_are_counted() -> None:
    late, census = Late(), Census()
    granted = {"capabilities": ["notify", "stats"]}
    result = await run(
        [(late, {}), (Profiler(width=200), granted), (census, granted)],
        ["one", "two", "three"],
        ["a", "b", "c"],
    )
    [table] = [n for n in result.notifications if "time per plugin and hook" in n]
    [stats] = result.kinds("stats")  # written after the session's background work ended
    logged = {(r["plugin"], r["hook"]): r["calls"] for r in stats["registrations"]}
    shown = _calls(table)
    assert logged["late", "post_llm_call"] == 3 and logged["late", "session_end"] == 1
    for key in [("late", "post_llm_call"), ("late", "session_end")]:
        assert shown[key] == logged[key]
    # Two reports settling at once wait for the rest, not for each other.
    seen = {(s.plugin, s.hook): s.calls for s in census.seen}
    assert seen["late", "post_llm_call"] == 3 and seen["late", "session_end"] == 1


async def test_settled_is_for_background_handlers_only() -> None:
    class Eager(Plugin):
        name = "eager"

        async def on_session_end(self, event: SessionEnd, ctx: HookContext) -> None:
            assert ctx.stats is not None
            await ctx.stats.settled()

    result = await run([(Eager(), {"capabilities": ["stats"]})], ["hi"], ["hello"])
    [error] = [e for e in result.kinds("error") if e["plugin"] == "eager"]
    assert "stats.settled() from a handler that is not a background one" in error["message"]
    assert "background=True" in error["message"]


class _Host:
    """A sync host's writers: notifications kept, stats read from the manager."""

    def __init__(self, manager: PluginManager) -> None:
        self.manager = manager
        self.notes: list[str] = []

    def write_notification(self, text: str, *, level: Level, plugin: str) -> None:
        self.notes.append(text)

    def read_stats(self) -> tuple[RegistrationStats, ...]:
        return self.manager.stats().registrations

    async def settle(self) -> None:
        await self.manager.settle()


def test_a_sync_host_gets_the_whole_count_too() -> None:
    ended = threading.Event()  # set by session_end; the background calls wait for it

    @hook("post_llm_call", background=True, timeout=None, name="late")
    def late(response: LLMResponse, ctx: Any) -> None:
        ended.wait()

    @hook("session_end", name="ender")
    def ender(event: SessionEnd, ctx: Any) -> None:
        ended.set()

    manager = PluginManager()
    host = _Host(manager)
    manager.register(late)
    manager.register(ender)
    manager.register(Profiler(width=200), capabilities=["notify", "stats"])
    with manager.session("s-1", capabilities={"notify": host, "stats": host}) as scope:
        manager.invoke_sync(hooks.SESSION_START, SessionStart("s-1"), scope=scope)
        for _ in range(2):
            manager.invoke_sync(hooks.PRE_LLM_CALL, sample(hooks.PRE_LLM_CALL), scope=scope)
            manager.invoke_sync(hooks.POST_LLM_CALL, sample(hooks.POST_LLM_CALL), scope=scope)
        manager.invoke_sync(hooks.SESSION_END, SessionEnd("s-1"), scope=scope)
        assert manager.drain_sync(timeout=30)
    [table] = host.notes
    assert _calls(table)["late", "post_llm_call"] == 2
    manager.close()
