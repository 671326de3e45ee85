"""`profiler`: where a session's time went — model calls, tool calls, and each plugin at
each hook — as a table at the end of the session.

    plugins:
      - name: profiler
        use: profiler
        capabilities: [notify, stats]     # the table goes to the user; stats is read-only

It times each model call (from the last `pre_llm_call` handler to the first
`post_llm_call` one; from the first, for a call a plugin answers itself) and each tool
call (likewise, by call id), and reads the plugin statistics (`ctx.stats`) at
`session_start` and `session_end`: the difference is the time spent per plugin and per
hook in this session (`max ms`, a registration's longest single call, is over its life).
At `session_end` it is a background handler that first waits for the other background
calls to finish (`ctx.stats.settled()`), so that background handlers (an audit log's)
are counted in full, their calls at `session_end` included. Background calls dropped in
this session (the background queue was full) are listed under the table, per plugin and
hook. The table is sent as a notification: shown live, written to the session log, and
listed by `interlock log`. It is as wide as the terminal (or `Profiler(width=...)`);
where its columns do not fit, each row is a line of its own.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import shutil
import statistics
import time
from collections.abc import Callable, Sequence

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .. import (
    HookContext,
    LLMRequest,
    LLMResponse,
    Plugin,
    RegistrationStats,
    SessionEnd,
    SessionStart,
    ToolCall,
    ToolResult,
    hook,
)

logger = logging.getLogger("interlock.plugins.profiler")

_TOP = 10  # plugin rows shown, the longest first
_LAST = 1_000_000_000  # after every other plugin's handler: time the call itself
_FIRST = -_LAST


class Profiler(Plugin):
    """Times model calls, tool calls and plugins, and shows where the time went as a table
    at the end of each session.

    `width` is the table's width (None: the terminal's); `clock` is for tests.
    """

    name = "profiler"
    version = "1.0"

    def __init__(
        self, *, clock: Callable[[], float] = time.perf_counter, width: int | None = None
    ) -> None:
        self._clock = clock
        self._width = width

    def on_session_start(self, event: SessionStart, ctx: HookContext) -> None:
        # The counters are the manager's, over all sessions: this one's are the difference.
        if ctx.stats is not None:
            ctx.state["before"] = _totals(ctx.stats.registrations())

    @hook("pre_llm_call", priority=_FIRST)
    def llm_may_start(self, request: LLMRequest, ctx: HookContext) -> None:
        # For a call a plugin answers (Respond), the later handler never runs.
        ctx.state["llm_started"] = self._clock()

    @hook("pre_llm_call", priority=_LAST)
    def llm_starts(self, request: LLMRequest, ctx: HookContext) -> None:
        ctx.state["llm_started"] = self._clock()

    @hook("post_llm_call", priority=_FIRST)
    def llm_ends(self, response: LLMResponse, ctx: HookContext) -> None:
        started = ctx.state.pop("llm_started", None)
        if started is not None:
            ctx.state.setdefault("llm", []).append(self._clock() - started)

    @hook("pre_tool_call", priority=_LAST)
    def tool_starts(self, call: ToolCall, ctx: HookContext) -> None:
        ctx.state.setdefault("tool_started", {})[call.call_id] = self._clock()

    @hook("post_tool_call", priority=_FIRST)
    def tool_ends(self, result: ToolResult, ctx: HookContext) -> None:
        started = ctx.state.get("tool_started", {}).pop(result.call_id, None)
        if started is not None:
            tools = ctx.state.setdefault("tools", {})
            tools.setdefault(result.tool_name, []).append(self._clock() - started)

    # In the background, after every awaited handler, so that it may wait for the other
    # background calls (never awaited: they may be waiting for this session_end); it
    # waits for room rather than be dropped, and as long as they take (no timeout).
    @hook("session_end", background=True, overflow="wait", timeout=None)
    async def report(self, event: SessionEnd, ctx: HookContext) -> None:
        plugins: Sequence[RegistrationStats] = ()
        if ctx.stats is not None:
            plugins = _since(await ctx.stats.settled(), ctx.state.get("before", {}))
        text = render(ctx.state.get("llm", []), ctx.state.get("tools", {}), plugins,
                      width=self._width)  # fmt: skip
        logger.info("session %s:\n%s", event.session_id, text,
                    extra={"interlock_plugin": ctx.plugin})  # fmt: skip
        if ctx.notify is not None:
            ctx.notify.notify(text)


def render(
    llm: Sequence[float],
    tools: dict[str, list[float]],
    plugins: Sequence[RegistrationStats],
    *,
    width: int | None = None,
) -> str:
    """The profile as text `width` wide (None: the terminal's width): a table of calls,
    then one of plugins (times in ms), then the background calls dropped, if any were."""
    width = width or shutil.get_terminal_size().columns
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    calls = [("model", *_times(llm))] if llm else []
    calls += [(f"tool {name}", *_times(times)) for name, times in sorted(tools.items())]
    _show(console, "time per model and tool call",
          ("where", "calls", "total ms", "mean ms", "p95 ms", "max ms"), calls)  # fmt: skip
    shown = sorted((s for s in plugins if s.calls), key=lambda s: -s.time_total)[:_TOP]
    if shown:
        console.print()
        rows = [(s.plugin, s.hook, str(s.calls), _ms(s.time_total), _ms(s.time_mean),
                 _ms(s.time_max), str(s.errors)) for s in shown]  # fmt: skip
        _show(console, f"time per plugin and hook (the {_TOP} longest)",
              ("plugin", "hook", "calls", "total ms", "mean ms", "max ms", "errors"), rows,
              keys=2)  # fmt: skip
    dropped = [s for s in plugins if s.dropped]
    if dropped:
        console.print(Text("background calls dropped (the queue was full):"))
        for stats in sorted(dropped, key=lambda s: (-s.dropped, s.plugin, s.hook)):
            console.print(Text(f"  {stats.plugin} at {stats.hook}: {stats.dropped}"))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()).strip("\n")


def _show(
    console: Console,
    title: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[str, ...]],
    *,
    keys: int = 1,
) -> None:
    """A table whose cells are never cut nor wrapped; where it is wider than the console,
    each row as its `keys` (the names) on a line, then its other cells."""
    table = Table(*columns, title=title, box=box.SIMPLE, pad_edge=False, show_edge=False)
    for column in table.columns:
        column.no_wrap = True
    for row in rows:
        table.add_row(*row)
    unbounded = console.options.update_width(1_000_000)
    if console.measure(table, options=unbounded).maximum <= console.width:
        console.print(table)
        return
    console.print(Text(title))
    for row in rows:
        console.print(Text("  " + " at ".join(row[:keys])))
        cells = ", ".join(
            f"{name} {cell}" for name, cell in zip(columns[keys:], row[keys:], strict=True)
        )
        console.print(Padding(Text(cells), (0, 0, 0, 4)))


_Key = tuple[str, str, str | None]


def _totals(stats: Sequence[RegistrationStats]) -> dict[_Key, RegistrationStats]:
    return {(s.plugin, s.hook, s.scope): s for s in stats}


def _since(
    now: Sequence[RegistrationStats], before: dict[_Key, RegistrationStats]
) -> list[RegistrationStats]:
    """What each registration did since `before` (its counters at session start)."""
    out = []
    for stats in now:
        old = before.get((stats.plugin, stats.hook, stats.scope))
        if old is None:
            out.append(stats)
            continue
        out.append(dataclasses.replace(
            stats,
            calls=stats.calls - old.calls,
            errors=stats.errors - old.errors,
            dropped=stats.dropped - old.dropped,
            time_total=stats.time_total - old.time_total,
        ))  # fmt: skip
    return out


def _times(times: Sequence[float]) -> list[str]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return [str(len(times)), _ms(sum(times)), _ms(statistics.fmean(times)), _ms(p95),
            _ms(ordered[-1])]  # fmt: skip


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"
