"""Out-of-process plugins: round-trip latency and throughput against the in-process call.

    python benchmarks/bench_external.py [--quick]

One plugin that lets every `pre_tool_call` pass, invoked through a `PluginManager`:
in process; over stdio served by `interlock serve --stdio` (Python) and by a 20-line
Node.js plugin; over HTTP served by one `interlock serve --http` replica, with JSON-RPC
batches and without (one POST per call, as before batches). Latency is one call at a time
(p50/p99); throughput keeps `CONCURRENCY` calls in flight, and the host's CPU time per
call is measured over it (`time.process_time`: every thread of the host process).

The reference for stdio is the pipe floor: a plain asyncio host sending the same
JSON-RPC lines to a plain Python JSON echo process, with the same calls in flight and
nothing else (no dispatch, no validation, no timeouts). All in one run, so the rows
compare with each other; the absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from interlock import HookContext, Plugin, PluginManager, ToolCall, hooks
from interlock.external import HttpTransport, StdioTransport, connect

HERE = Path(__file__).resolve().parent
# The plugin servers import this module, and interlock from where the caller's path says.
PYTHONPATH = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
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


ECHO = """
import json, sys
source, sink = sys.stdin.buffer, sys.stdout.buffer
for line in source:
    id = json.loads(line)["id"]
    sink.write(json.dumps({"jsonrpc": "2.0", "id": id,
                           "result": {"action": {"type": "continue"}}}).encode() + b"\\n")
    sink.flush()
"""


class Pass(Plugin):
    """Lets every tool call pass (what `interlock serve` hosts in this benchmark)."""

    name = "pass"

    def on_pre_tool_call(self, call: ToolCall, ctx: HookContext) -> None:
        return None


async def throughput(call: Callable[[], Awaitable[Any]], calls: int) -> tuple[float, float]:
    """Calls per second with `CONCURRENCY` in flight, and the host's CPU µs per call."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - start
    return calls / elapsed, (time.process_time() - cpu) / calls * 1e6


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


Row = tuple[float, float, float, float]  # p50 µs, p99 µs, calls/s, host CPU µs per call


async def measure(plugin: object, calls: int) -> Row:
    manager = PluginManager()
    manager.register(plugin, name="pass", timeout=30)
    tool_call = ToolCall("shell", {"command": "ls"})

    async def call() -> None:
        result = await manager.invoke(hooks.PRE_TOOL_CALL, tool_call)
        if result.errors:
            raise RuntimeError(result.errors[0].message)

    return await _measured(call, calls, manager.aclose)


async def floor(calls: int) -> Row:
    """The same lines over a pipe to a plain JSON echo, by a plain asyncio host."""
    loop = asyncio.get_running_loop()
    echo = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ECHO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert echo.stdin is not None
    assert echo.stdout is not None
    stdin, stdout = echo.stdin, echo.stdout
    waiting: dict[int, asyncio.Future[Any]] = {}
    ids = itertools.count(1)
    params = {"hook": "pre_tool_call",
              "payload": {"tool_name": "shell", "arguments": {"command": "ls"}, "call_id": ""},
              "context": {"plugin": "pass", "session": None, "turn": None, "config": {},
                          "capabilities": []}}  # fmt: skip

    async def read() -> None:
        while line := await stdout.readline():
            reply = json.loads(line)
            waiting.pop(reply["id"]).set_result(reply["result"])

    async def call() -> None:
        id = next(ids)
        waiting[id] = future = loop.create_future()
        request = {"jsonrpc": "2.0", "id": id, "method": "invoke", "params": params}
        stdin.write(json.dumps(request, separators=(",", ":")).encode() + b"\n")
        await future

    reader = asyncio.ensure_future(read())

    async def close() -> None:
        stdin.close()
        await echo.wait()
        await reader

    return await _measured(call, calls, close)


async def _measured(
    call: Callable[[], Awaitable[Any]], calls: int, close: Callable[[], Awaitable[None]]
) -> Row:
    try:
        for _ in range(max(10, calls // 10)):  # warm up: process start, connections
            await call()
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            await call()
            times.append((time.perf_counter() - start) * 1e6)
        rate, cpu = await throughput(call, calls * 2)
    finally:
        await close()
    return statistics.median(times), percentile(times, 0.99), rate, cpu


def serve_http() -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "interlock", "serve", "bench_external:Pass"]
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    process = subprocess.Popen([*command, "--http", "127.0.0.1:0"], stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("listening on "):
        process.kill()
        process.wait()
        raise RuntimeError(f"the HTTP server did not start: {line!r}")
    return process, line.removeprefix("listening on ").strip()


def unbatched(url: str) -> object:
    """A plugin over HTTP with one POST per call (what a server without batches gets)."""
    plugin = connect(HttpTransport([url]), name="pass")
    plugin.transport.batch = False  # type: ignore[attr-defined]
    return plugin


async def main(quick: bool) -> None:
    calls = 300 if quick else 5000
    env = {"PYTHONPATH": PYTHONPATH}
    serve = [sys.executable, "-m", "interlock", "serve", "bench_external:Pass", "--stdio"]
    rows: list[tuple[str, Callable[[], Awaitable[Row]]]] = [
        ("in process", lambda: measure(Pass(), calls)),
        ("pipe floor (plain echo)", lambda: floor(calls)),
        ("stdio, interlock serve",
         lambda: measure(connect(StdioTransport(serve, env=env), name="pass"), calls)),
    ]  # fmt: skip
    node = shutil.which("node")
    scratch = tempfile.TemporaryDirectory()
    if node is not None:
        script = Path(scratch.name) / "pass.js"
        script.write_text(NODE_PLUGIN)
        plugin = lambda: connect(StdioTransport([node, str(script)]), name="pass")  # noqa: E731
        rows.append(("stdio, Node.js plugin", lambda: measure(plugin(), calls)))
    server, url = serve_http()
    rows += [
        ("HTTP, 1 replica, batches", lambda: measure(connect(HttpTransport([url]), name="pass"),
                                                     calls)),
        ("HTTP, 1 replica, no batch", lambda: measure(unbatched(url), calls)),
    ]  # fmt: skip
    try:
        results = {label: await run() for label, run in rows}
    finally:
        server.kill()
        server.wait()
        scratch.cleanup()
    base, pipe = results["in process"], results["pipe floor (plain echo)"]
    print(f"{'transport':<26} {'p50 µs':>8} {'p99 µs':>8} {'x in-process':>13} "
          f"{'calls/s (' + str(CONCURRENCY) + ' in flight)':>26} {'host CPU µs/call':>17} "
          f"{'x pipe floor':>13}")  # fmt: skip
    for label, (p50, p99, rate, cpu) in results.items():
        print(f"{label:<26} {p50:>8.1f} {p99:>8.1f} {p50 / base[0]:>13.1f} {rate:>26,.0f} "
              f"{cpu:>17.1f} {cpu / pipe[3]:>13.2f}")  # fmt: skip
    batched, single = results["HTTP, 1 replica, batches"], results["HTTP, 1 replica, no batch"]
    print(f"HTTP batches carry {batched[2] / single[2]:.2f}x the calls/s of one POST per call")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    asyncio.run(main(parser.parse_args().quick))
