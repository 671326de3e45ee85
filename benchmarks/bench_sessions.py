"""Session scopes at scale: open+close cost against how many others are open, and memory.

    python benchmarks/bench_sessions.py [--quick]

Rows, in one run: the median cost of opening a session scope, invoking one hook in it and
closing it, with 500 and with 8,000 other scopes open (a plain scope, and one with a plugin
of its own); the time to open and close 100,000 scopes one after another; and the memory
an idle open scope holds (tracemalloc, averaged over many).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from typing import Any

from interlock import Plugin, PluginManager, TurnEnd, hooks


class Counter(Plugin):
    """A global plugin, so every invocation has a handler to run."""

    name = "counter"

    def on_turn_end(self, payload: TurnEnd, ctx: Any) -> None:
        ctx.state["turns"] = ctx.state.get("turns", 0) + 1


class Own(Plugin):
    """A plugin a session registers for itself."""

    name = "own"

    def on_turn_end(self, payload: TurnEnd, ctx: Any) -> None:
        return None


def cycle_cost(others: int, rounds: int, *, own: bool) -> float:
    """Median µs to open a scope, invoke turn_end in it and close it, with `others` open."""
    manager = PluginManager()
    manager.register(Counter())
    keep = [manager.session(f"other-{i}").open() for i in range(others)]
    for scope in keep[: others // 10]:  # some of them busy, with plans of their own
        manager.invoke_sync(hooks.TURN_END, TurnEnd(1), scope=scope)
    samples = []
    for i in range(rounds):
        plugins = [Own()] if own else []
        started = time.perf_counter()
        scope = manager.session(f"s-{i}", plugins=plugins).open()
        manager.invoke_sync(hooks.TURN_END, TurnEnd(1), scope=scope)
        scope.close()
        samples.append(time.perf_counter() - started)
    for scope in keep:
        scope.close()
    manager.close()
    return statistics.median(samples) * 1e6


def many(count: int) -> float:
    """Seconds to open, use and close `count` scopes one after another."""
    manager = PluginManager()
    manager.register(Counter())
    started = time.perf_counter()
    for i in range(count):
        scope = manager.session(f"s-{i}").open()
        manager.invoke_sync(hooks.TURN_END, TurnEnd(1), scope=scope)
        scope.close()
    elapsed = time.perf_counter() - started
    manager.close()
    return elapsed


def idle_bytes(count: int) -> float:
    """Bytes held per idle open scope (no plugins of its own)."""
    manager = PluginManager()
    manager.register(Counter())
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    scopes = [manager.session(f"idle-{i}").open() for i in range(count)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    for scope in scopes:
        scope.close()
    manager.close()
    return grown / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run, numbers unreliable")
    quick = parser.parse_args().quick
    rounds, big, total = (50, 800, 2_000) if quick else (400, 8_000, 100_000)
    small = big // 16
    print("session scopes: open + one invoke + close, median µs")
    for own in (False, True):
        label = "with a plugin of its own" if own else "plain"
        few, lots = cycle_cost(small, rounds, own=own), cycle_cost(big, rounds, own=own)
        print(f"  {label:26} {small:>6} open: {few:8.1f}   {big:>6} open: {lots:8.1f}"
              f"   ratio {lots / few:.2f}")  # fmt: skip
    print(f"{total:,} sessions opened, used and closed: {many(total):.2f} s")
    print(f"memory per idle open scope: {idle_bytes(2_000 if quick else 20_000):.0f} bytes")


if __name__ == "__main__":
    main()
