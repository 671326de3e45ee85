"""profiler through the reference runtime, on a clock that ticks once per reading."""

from __future__ import annotations

import re

from interlock.plugins.profiler import Profiler
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig
from interlock.runtime import Step

from .helpers import run


class Ticks:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


async def test_the_session_ends_with_a_table_of_calls_and_plugins() -> None:
    guard = ToolGuard(ToolGuardConfig.model_validate({"rules": [{"deny": "rm*"}]}))
    script = [Step(tool_calls=(("shell", {"command": "ls"}),)),
              Step(tool_calls=(("shell", {"command": "make"}),)), "done"]  # fmt: skip
    result = await run(
        [(Profiler(clock=Ticks()), {"capabilities": ["notify", "stats"]}), (guard, {})],
        script,
        ["build"],
    )
    [table] = [n for n in result.notifications if "time per model and tool call" in n]
    cells = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()]
    rows = {row[0]: row[1:] for row in cells if len(row) > 2}
    # three model calls and two tool calls, each one tick of the clock long
    assert rows["model"][:2] == ["3", "3000.000"]
    assert rows["tool shell"][:2] == ["2", "2000.000"]
    assert "time per plugin and hook" in table and rows["tool-guard"][:2] == ["pre_tool_call", "2"]
    logged = [d["text"] for d in result.kinds("notification") if d["plugin"] == "profiler"]
    assert logged == [table]  # in the session log, which `interlock log` lists


async def test_without_stats_it_still_times_model_and_tool_calls() -> None:
    result = await run([(Profiler(), {"capabilities": ["notify"]})], ["hi"], ["hello"])
    [table] = result.notifications
    assert "model" in table and "time per plugin and hook" not in table
