"""Per-turn cost of dispatch in the reference runtime, with the offline scripted model.

    python benchmarks/bench_runtime.py [--quick]

Runs the same turns (two tool calls, then an answer) with no plugins, with one no-op plugin
on every hook, with the demo's plugins, with all seven built-ins and with each built-in
alone, in one run. Numbers per row: the time of a whole turn, the time spent inside
`invoke` during it, which is what hook dispatch costs the turn (the whole-turn difference
between rows is within the run-to-run noise of the model, tools and log), and that time
over the same run's row without plugins (the reference). The session log is in memory so
that disk speed does not drown the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interlock import HookContext, Plugin, PluginManager, hooks
from interlock.cli._demo import plugins as demo_plugins
from interlock.plugins.audit_log import AuditLog, AuditLogConfig
from interlock.plugins.content_policy import ContentPolicy
from interlock.plugins.profiler import Profiler
from interlock.plugins.rate_limit import RateLimit, RateLimitConfig
from interlock.plugins.task_reminder import TaskReminder
from interlock.plugins.token_budget import TokenBudget, TokenBudgetConfig
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig
from interlock.runtime import Agent, ScriptedBackend, SessionStore, Step

ROUNDS = 5
TURNS = 5


class NoOp(Plugin):
    """One handler on every hook of the catalog, doing nothing."""

    name = "no-op"


for _spec in hooks.CATALOG:

    def _handler(self: NoOp, payload: Any, ctx: HookContext) -> None:
        return None

    setattr(NoOp, f"on_{_spec.name}", _handler)


def shell(command: str) -> str:
    """Pretend to run a command."""
    return f"ran {command}"


SCRIPT = [
    Step(tool_calls=(("shell", {"command": "ls"}),)),
    Step(tool_calls=(("shell", {"command": "make"}),)),
    Step("All done, nothing to mail to ada@example.com."),
]


class Timed(PluginManager):
    """A manager that adds up the time its `invoke` calls take, and counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.spent = 0.0
        self.calls = 0

    async def invoke(self, hook: Any, payload: Any, **options: Any) -> Any:
        start = time.perf_counter()
        try:
            return await super().invoke(hook, payload, **options)
        finally:
            self.spent += time.perf_counter() - start
            self.calls += 1


Plugins = Callable[[], list[tuple[Any, dict[str, Any]]]]


async def per_turn(plugins: Plugins, sessions: int, stream: bool) -> tuple[float, float, float]:
    """Median µs per turn, median µs inside invoke per turn, and invocations per turn.

    Each session has TURNS turns, so the conversation (which the scripted model reads)
    stays the same size from row to row.
    """
    whole, dispatch, calls = [], [], 0.0
    for _ in range(ROUNDS):
        manager = Timed()
        for plugin, options in plugins():
            manager.register(plugin, **options)
        store = SessionStore(":memory:")
        agent = Agent(ScriptedBackend(SCRIPT * TURNS * sessions), tools=[shell],
                      manager=manager, store=store, stream=stream)  # fmt: skip
        elapsed, spent, invokes = 0.0, 0.0, 0
        for _ in range(sessions):
            async with agent.session() as session:
                manager.spent, manager.calls = 0.0, 0
                start = time.perf_counter()
                for _ in range(TURNS):
                    await session.send("tidy up")
                elapsed += time.perf_counter() - start
                spent, invokes = spent + manager.spent, invokes + manager.calls
        turns = TURNS * sessions
        whole.append(elapsed / turns * 1e6)
        dispatch.append(spent / turns * 1e6)
        calls = invokes / turns
        await manager.aclose()  # background work (the audit log) finishes here
        store.close()
    return statistics.median(whole), statistics.median(dispatch), calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer turns (smoke run)")
    args = parser.parse_args()
    sessions = 4 if args.quick else 60

    scratch = Path(tempfile.mkdtemp(prefix="interlock-bench-"))
    configurations: dict[str, Plugins] = {
        "no plugins": list,
        "one no-op plugin on every hook": lambda: [(NoOp(), {})],
        "the demo's six built-in plugins": lambda: demo_plugins(scratch),
        "all seven built-in plugins": lambda: every_builtin(scratch),
    }
    # The breakdown: what each built-in costs a turn on its own.
    for index, (plugin, _) in enumerate(every_builtin(scratch)):
        configurations[f"  {plugin.name} alone"] = lambda i=index: [every_builtin(scratch)[i]]

    async def run() -> None:
        for stream in (False, True):
            print(f"streaming={stream}: per turn of 3 model calls and 2 tool calls")
            print(f"  {'plugins':34} {'turn µs':>9} {'in invoke µs':>13} {'over none':>10} "
                  f"{'invokes':>8}")  # fmt: skip
            reference = 0.0
            for name, plugins in configurations.items():
                whole, dispatch, calls = await per_turn(plugins, sessions, stream)
                reference = dispatch if plugins is list else reference
                print(f"  {name:34} {whole:9.1f} {dispatch:13.1f} {dispatch - reference:+10.1f} "
                      f"{calls:8.0f}")  # fmt: skip

    try:
        asyncio.run(run())
    finally:
        shutil.rmtree(scratch)


def every_builtin(folder: Path) -> list[tuple[Any, dict[str, Any]]]:
    """Every built-in plugin, configured as an operator might, none of them blocking here."""
    guard = ToolGuardConfig.model_validate({"destructive": "deny", "rules": [{"allow": "shell"}]})
    limits = RateLimitConfig.model_validate({"tools": {"*": {"calls": 10**9, "per": "1m"}}})
    budget = TokenBudgetConfig.model_validate({"session": {"tokens": 10**12}})
    audit = AuditLogConfig(path=str(folder / f"audit-{time.monotonic_ns()}.jsonl"))
    notify = {"capabilities": ["notify"]}
    return [
        (ContentPolicy(), notify),
        (ToolGuard(guard), {}),
        (TokenBudget(budget), notify),
        (TaskReminder(), {"capabilities": ["system_items"]}),
        (RateLimit(limits), {}),
        (AuditLog(audit), {}),
        (Profiler(), {"capabilities": ["notify", "stats"]}),
    ]


if __name__ == "__main__":
    main()
