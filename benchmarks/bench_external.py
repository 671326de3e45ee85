"""Out-of-process plugins: round-trip latency and throughput against the in-process call.

    python benchmarks/bench_external.py [--quick]

One plugin that lets every `pre_tool_call` pass, invoked through a `PluginManager`:
in process; over stdio served by `interlock serve --stdio` (Python) and by a 20-line
Node.js plugin; over HTTP served by one `interlock serve --http` replica. Latency is one
call at a time (p50/p99); throughput keeps `CONCURRENCY` calls in flight. All in one run,
so the rows compare with each other; the absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interlock import HookContext, Plugin, PluginManager, ToolCall, hooks
from interlock.external import HttpTransport, StdioTransport, connect

HERE = Path(__file__).resolve().parent
CONCURRENCY = 64

NODE_PLUGIN = """
const rl = require("readline").createInterface({ input: process.stdin });
const out = (m) => process.stdout.write(JSON.stringify(m) + "\\n");
rl.on("line", (line) => {
  const { id, method } = JSON.parse(line);
  if (method === "initialize") {
    out({ jsonrpc: "2.0", id, result: { protocol: 1, name: "pass", version: "1",
          hooks: ["pre_tool_call"] } });
  } else if (method === "shutdown") { out({ jsonrpc: "2.0", id, result: null }); process.exit(0); }
  else out({ jsonrpc: "2.0", id, result: { action: { type: "continue" } } });
});
"""


class Pass(Plugin):
    """Lets every tool call pass (what `interlock serve` hosts in this benchmark)."""

    name = "pass"

    def on_pre_tool_call(self, call: ToolCall, ctx: HookContext) -> None:
        return None


async def latency(manager: PluginManager, calls: int) -> list[float]:
    """Microseconds per call, one call at a time."""
    call = ToolCall("shell", {"command": "ls"})
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        result = await manager.invoke(hooks.PRE_TOOL_CALL, call)
        times.append((time.perf_counter() - start) * 1e6)
        if result.errors:
            raise RuntimeError(result.errors[0].message)
    return times


async def throughput(manager: PluginManager, calls: int) -> float:
    """Calls per second with `CONCURRENCY` in flight."""
    call = ToolCall("shell", {"command": "ls"})
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            result = await manager.invoke(hooks.PRE_TOOL_CALL, call)
            if result.errors:
                raise RuntimeError(result.errors[0].message)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return calls / (time.perf_counter() - start)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(plugin: object, calls: int) -> tuple[float, float, float]:
    manager = PluginManager()
    manager.register(plugin, name="pass", timeout=30)
    await latency(manager, max(10, calls // 10))  # warm up: process start, connections
    times = await latency(manager, calls)
    rate = await throughput(manager, calls * 2)
    await manager.aclose()
    return statistics.median(times), percentile(times, 0.99), rate


def serve_http() -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "interlock", "serve", "bench_external:Pass"]
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    process = subprocess.Popen([*command, "--http", "127.0.0.1:0"], stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("listening on "):
        process.kill()
        process.wait()
        raise RuntimeError(f"the HTTP server did not start: {line!r}")
    return process, line.removeprefix("listening on ").strip()


async def main(quick: bool) -> None:
    calls = 300 if quick else 5000
    env = {"PYTHONPATH": str(HERE)}
    serve = [sys.executable, "-m", "interlock", "serve", "bench_external:Pass", "--stdio"]
    rows: list[tuple[str, Callable[[], Any]]] = [
        ("in process", Pass),
        ("stdio, interlock serve", lambda: connect(StdioTransport(serve, env=env), name="pass")),
    ]
    node = shutil.which("node")
    scratch = tempfile.TemporaryDirectory()
    if node is not None:
        script = Path(scratch.name) / "pass.js"
        script.write_text(NODE_PLUGIN)
        node_stdio = StdioTransport([node, str(script)])
        rows.append(("stdio, Node.js plugin", lambda: connect(node_stdio, name="pass")))
    server, url = serve_http()
    rows.append(("HTTP, 1 replica", lambda: connect(HttpTransport([url]), name="pass")))
    try:
        results = [(label, await measure(make(), calls)) for label, make in rows]
    finally:
        server.kill()
        server.wait()
        scratch.cleanup()
    base = results[0][1][0]
    print(f"{'transport':<24} {'p50 µs':>9} {'p99 µs':>9} {'x in-process':>13} "
          f"{'calls/s (' + str(CONCURRENCY) + ' in flight)':>26}")  # fmt: skip
    for label, (p50, p99, rate) in results:
        print(f"{label:<24} {p50:>9.1f} {p99:>9.1f} {p50 / base:>13.1f} {rate:>26,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    asyncio.run(main(parser.parse_args().quick))
