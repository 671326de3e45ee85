"""Dispatch cost of interlock against pluggy, side by side in one run.

    python benchmarks/bench_dispatch.py [--quick]

Prints nanoseconds per call (median of several rounds) and the ratio to the reference
next to it. pluggy is sync-only, so async rows are compared with a bare `await noop()` or
with pluggy's sync call as the nearest reference.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pluggy

from interlock import Modify, PluginManager, ToolCall, hook, hooks

ROUNDS = 7


@dataclasses.dataclass(frozen=True, slots=True)
class PlainCall:
    """A tool call with a plain, mutable dict: what payloads would be without freezing."""

    tool_name: str
    arguments: dict[str, Any]
    call_id: str = ""


ARGS = {"command": "ls -la /tmp", "cwd": "/home/user", "env": {"LANG": "C"}, "timeout": 30}
PAYLOAD = ToolCall("shell", ARGS, "call-1")
TURN = hooks.TURN_END.payload_type(1, "done")


def measure(fn: Callable[[], object], number: int) -> float:
    """Median nanoseconds per call of `fn` over ROUNDS rounds of `number` calls."""
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter_ns() - start) / number)
    return statistics.median(samples)


async def ameasure(fn: Callable[[], Awaitable[object]], number: int) -> float:
    """`measure` for coroutine functions, awaited in a plain loop."""
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(number):
            await fn()
        samples.append((time.perf_counter_ns() - start) / number)
    return statistics.median(samples)


# -- pluggy --------------------------------------------------------------------------

hookspec = pluggy.HookspecMarker("bench")
hookimpl = pluggy.HookimplMarker("bench")


class Spec:
    @hookspec
    def pre_tool_call(self, payload: Any, ctx: Any) -> Any:
        """The same hook point, as pluggy declares it."""


def pluggy_caller(count: int, *, modify: bool = False) -> Callable[[], object]:
    pm = pluggy.PluginManager("bench")
    pm.add_hookspecs(Spec)
    for i in range(count):

        class Impl:
            if modify:

                @hookimpl
                def pre_tool_call(self, payload: Any, ctx: Any) -> Any:
                    return payload.replace(arguments={**payload.arguments, "dry_run": True})
            else:

                @hookimpl
                def pre_tool_call(self, payload: Any, ctx: Any) -> Any:
                    return None

        pm.register(Impl(), name=f"p{i}")
    caller = pm.hook.pre_tool_call
    return lambda: caller(payload=PAYLOAD, ctx=None)


# -- interlock -----------------------------------------------------------------------


def manager_with(
    count: int, *, kind: str = "sync", modify: bool = False, spec: Any = hooks.PRE_TOOL_CALL
) -> PluginManager:
    manager = PluginManager()
    for i in range(count):
        if kind == "async":

            async def handler(payload: Any, ctx: Any) -> Any:
                return None
        elif modify:

            def handler(payload: Any, ctx: Any) -> Any:
                return Modify(payload.replace(arguments={**payload.arguments, "dry_run": True}))
        else:

            def handler(payload: Any, ctx: Any) -> Any:
                return None

        manager.register(hook(spec)(handler), name=f"p{i}")
    return manager


def row(name: str, ns: float, ref_name: str, ref_ns: float) -> tuple[str, float, str, float]:
    return (name, ns, ref_name, ref_ns)


def run(quick: bool) -> list[tuple[str, float, str, float]]:
    n = 20_000 if quick else 200_000
    rows = []
    table: dict[str, int] = {"pre_tool_call": 1}
    empty = PluginManager()
    rows.append(
        row(
            "has(hook), nothing registered",
            measure(lambda: empty.has(hooks.PRE_TOOL_CALL), n * 5),
            "`key in dict`",
            measure(lambda: "pre_tool_call" in table, n * 5),
        )
    )
    rows.append(
        row(
            "invoke_sync, nothing registered",
            measure(lambda: empty.invoke_sync(hooks.PRE_TOOL_CALL, PAYLOAD), n),
            "pluggy, no impls",
            measure(pluggy_caller(0), n),
        )
    )
    for count in (1, 10):
        m = manager_with(count)
        rows.append(
            row(
                f"invoke_sync, {count} no-op sync handlers",
                measure(lambda m=m: m.invoke_sync(hooks.PRE_TOOL_CALL, PAYLOAD), n // count),
                f"pluggy, {count} no-op impls",
                measure(pluggy_caller(count), n // count),
            )
        )
    m = manager_with(10, spec=hooks.TURN_END)
    rows.append(
        row(
            "invoke_sync (observe), 10 no-op sync handlers",
            measure(lambda: m.invoke_sync(hooks.TURN_END, TURN), n // 10),
            "pluggy, 10 no-op impls",
            measure(pluggy_caller(10), n // 10),
        )
    )
    rows.append(sync_host_async_row(n))
    m = manager_with(10, modify=True)
    rows.append(
        row(
            "invoke_sync, 10 modifying handlers",
            measure(lambda: m.invoke_sync(hooks.PRE_TOOL_CALL, PAYLOAD), n // 10),
            "pluggy, 10 impls doing the same work",
            measure(pluggy_caller(10, modify=True), n // 10),
        )
    )
    rows.extend(asyncio.run(run_async(n)))
    rows.append(
        row(
            "build a frozen ToolCall payload",
            measure(lambda: ToolCall("shell", ARGS, "call-1"), n),
            "build the same with a plain dict",
            measure(lambda: PlainCall("shell", ARGS, "call-1"), n),
        )
    )
    return rows


async def run_async(n: int) -> list[tuple[str, float, str, float]]:
    async def noop() -> None:
        return None

    rows = []
    empty = PluginManager()
    rows.append(
        row(
            "await invoke, nothing registered",
            await ameasure(lambda: empty.invoke(hooks.PRE_TOOL_CALL, PAYLOAD), n),
            "bare `await noop()`",
            await ameasure(lambda: noop(), n),  # through a lambda, like the row it is beside
        )
    )
    for count, kind in ((1, "sync"), (1, "async"), (10, "sync"), (10, "async"), (50, "async")):
        m = manager_with(count, kind=kind)
        rows.append(
            row(
                f"await invoke, {count} no-op {kind} handlers",
                await ameasure(lambda m=m: m.invoke(hooks.PRE_TOOL_CALL, PAYLOAD), n // count),
                f"pluggy, {count} no-op impls (sync)",
                measure(pluggy_caller(count), n // count),
            )
        )
    for kind in ("sync", "async"):
        m = manager_with(10, kind=kind, spec=hooks.TURN_END)
        rows.append(
            row(
                f"await invoke (observe), 10 no-op {kind} handlers",
                await ameasure(lambda m=m: m.invoke(hooks.TURN_END, TURN), n // 10),
                "pluggy, 10 no-op impls (sync)",
                measure(pluggy_caller(10), n // 10),
            )
        )
    return rows


def sync_host_async_row(n: int) -> tuple[str, float, str, float]:
    """`invoke_sync` with 10 async handlers against what it cannot do without: one hop to
    an event loop in another thread and back, plus the async host's own cost of the same
    hook (`await invoke`, 10 async handlers), measured side by side."""
    m = manager_with(10, kind="async")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def noop() -> None:
        return None

    async def awaited() -> float:
        return await ameasure(lambda: m.invoke(hooks.PRE_TOOL_CALL, PAYLOAD), n // 10)

    try:
        ns = measure(lambda: m.invoke_sync(hooks.PRE_TOOL_CALL, PAYLOAD), n // 10)
        hop = measure(lambda: asyncio.run_coroutine_threadsafe(noop(), loop).result(), n // 10)
        chain = asyncio.run_coroutine_threadsafe(awaited(), loop).result()
    finally:
        m.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    return row(
        "invoke_sync, 10 no-op async handlers",
        ns,
        "one bare thread hop + `await invoke` row",
        hop + chain,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, pluggy {pluggy.__version__}; ns per call, median")
    print(f"{'interlock case':48} {'ns':>8}   {'reference':38} {'ns':>8} {'ratio':>6}")
    for name, ns, ref_name, ref_ns in run(args.quick):
        print(f"{name:48} {ns:8.0f}   {ref_name:38} {ref_ns:8.0f} {ns / ref_ns:6.2f}")


if __name__ == "__main__":
    main()
