"""The audit log's write rate: a file against PostgreSQL, side by side in one run.

    python benchmarks/bench_audit_log.py [--quick] [--repeat N] [--postgres URL]

A host fires `pre_tool_call` with the audit log registered, two ways: a *burst* (invocations
one after another, records written behind them in batches; timed until the log is closed,
every record written) and *one by one* (each invocation drained before the next: with
`fsync: always`, each record synced or committed before the next is made). Rows: the file
and PostgreSQL, `fsync: never` and `always`. Printed: records/s, median of the runs, and
each run's. The rows alternate within a run. The PostgreSQL rows are left out when no
server answers at `--postgres` (default: $INTERLOCK_BENCH_POSTGRES, else
postgresql://postgres@127.0.0.1:5432/test); they use a schema of their own, dropped at the
end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_session_log import drop_schema, postgres_schema
from interlock import PluginManager, ToolCall, hooks
from interlock.plugins.audit_log import AuditLog, AuditLogConfig

ARGUMENTS = {"command": "ls -la", "cwd": "/srv/app"}


async def measure(sink: dict[str, Any], fsync: str, count: int, one_by_one: bool) -> float:
    """Records/s for `count` tool calls recorded in `sink` (`path` or `url`)."""
    manager = PluginManager()
    manager.register(AuditLog(AuditLogConfig(**sink, fsync=fsync)))  # type: ignore[arg-type]
    await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", ARGUMENTS, "warm"))
    await manager.drain()  # the file opened, the connection made and its statement sent
    began = time.perf_counter()
    for number in range(count):
        await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", ARGUMENTS, f"call-{number}"))
        if one_by_one:
            await manager.drain()
    await manager.aclose()  # every record written
    return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run, numbers unreliable")
    parser.add_argument("--repeat", type=int, default=5, help="runs of every row (medians)")
    default = "postgresql://postgres@127.0.0.1:5432/test"
    parser.add_argument("--postgres", default=os.environ.get("INTERLOCK_BENCH_POSTGRES", default))
    options = parser.parse_args()
    burst, single, repeat = (200, 20, 1) if options.quick else (5_000, 500, options.repeat)
    with tempfile.TemporaryDirectory() as folder:
        sinks: dict[str, dict[str, Any]] = {"file": {"path": str(Path(folder) / "audit.jsonl")}}
        url = postgres_schema(options.postgres)
        if url is not None:
            sinks["postgresql"] = {"url": url}
        rows = [
            (f"{name}, {fsync}, {how}", sink, fsync, count, how == "one by one")
            for how, count in (("burst", burst), ("one by one", single))
            for fsync in ("never", "always")
            for name, sink in sinks.items()
        ]
        samples: dict[str, list[float]] = {}
        try:
            for _ in range(repeat):  # alternating, so that a slow moment hits every row alike
                for label, sink, fsync, count, one_by_one in rows:
                    rate = asyncio.run(measure(sink, fsync, count, one_by_one))
                    samples.setdefault(label, []).append(rate)
        finally:
            if url is not None:
                drop_schema(options.postgres, url)
    print(f"audit log records/s ({burst:,} a burst, {single:,} one by one), median of {repeat}")
    for label, rates in samples.items():
        spread = " ".join(f"{rate:,.0f}" for rate in rates)
        print(f"  {label:34} {statistics.median(rates):>10,.0f}  {spread}")


if __name__ == "__main__":
    main()
