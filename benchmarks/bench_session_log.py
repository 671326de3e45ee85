"""The session log's write rate: SQLite against PostgreSQL, with 1 and with 8 writers.

    python benchmarks/bench_session_log.py [--quick] [--repeat N] [--postgres URL]

Each writer is a process of its own with its own session, appending records of about the
size a tool result has, each committed before the next (as the runtime does). Rows, in one
run and alternating: a SQLite file (`durability="normal"`, then `"full"`: an fsync per
commit) and PostgreSQL (each commit flushed by the server), with 1 and 8 writers started
together. Printed: records/s over all writers, and the median and p99 latency of one append.
The PostgreSQL rows are left out when no server answers at `--postgres` (default:
$INTERLOCK_BENCH_POSTGRES, else postgresql://postgres@127.0.0.1:5432/test); they use a
schema of their own, dropped at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from interlock.runtime import SessionLog, SessionStore, open_session_store

DATA = {"tool_name": "shell", "call_id": "call_1", "output": "file.txt\n" * 20, "ok": True}

Opener = Callable[[], SessionLog]


class Sqlite:
    """Opens the benchmark's SQLite file in a writer process (picklable, for spawn)."""

    def __init__(self, path: Path, durability: str) -> None:
        self.path, self.durability = path, durability

    def __call__(self) -> SessionLog:
        return SessionStore(self.path, durability=self.durability)  # type: ignore[arg-type]


class Postgres:
    """Opens the benchmark's PostgreSQL log in a writer process."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self) -> SessionLog:
        return open_session_store(self.url)


def writer(open_log: Opener, name: str, count: int, start: Barrier, out: Any) -> None:
    """Append `count` records to a session of its own, once every writer is ready; puts
    (start, end, latencies), or the error that stopped it."""
    log = open_log()
    log.open_session(name)
    log.append(name, "user", DATA, turn=1)  # connections and statements warmed up
    latencies = []
    start.wait()
    began = time.perf_counter()
    try:
        for _ in range(count):
            before = time.perf_counter()
            log.append(name, "tool_result", DATA, turn=1)
            latencies.append(time.perf_counter() - before)
    except Exception as error:  # SQLite's "database is locked", past its busy timeout
        out.put(f"{type(error).__name__}: {error}")
    else:
        out.put((began, time.perf_counter(), latencies))
    finally:
        log.close()


def measure(open_log: Opener, writers: int, count: int) -> tuple[float, float, float] | str:
    """(records/s over all writers, median µs per append, p99 µs per append), or why a
    writer failed."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(writers), context.Queue()
    run = uuid.uuid4().hex[:8]
    processes = [
        context.Process(target=writer, args=(open_log, f"bench-{run}-{i}", count, start, out))
        for i in range(writers)
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    failed = [r for r in results if isinstance(r, str)]
    if failed:
        return f"{len(failed)} of {writers} writers failed: {failed[0]}"
    began = min(r[0] for r in results)
    ended = max(r[1] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    p99 = latencies[int(len(latencies) * 0.99)]
    return writers * count / (ended - began), statistics.median(latencies) * 1e6, p99 * 1e6


def postgres_schema(url: str) -> str | None:
    """A fresh schema's URL for the benchmark, or None when no server answers."""
    try:
        import psycopg
    except ImportError:
        print("PostgreSQL rows left out: pip install 'interlock[postgres]'")
        return None
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        print(f"PostgreSQL rows left out: no server at {url} ({error})")
        return None
    return f"{url}{'&' if '?' in url else '?'}schema=bench_{uuid.uuid4().hex[:12]}"


def drop_schema(server: str, url: str) -> None:
    import psycopg

    schema = url.rpartition("schema=")[2]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run, numbers unreliable")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every row (medians)")
    default = "postgresql://postgres@127.0.0.1:5432/test"
    parser.add_argument("--postgres", default=os.environ.get("INTERLOCK_BENCH_POSTGRES", default))
    options = parser.parse_args()
    count, repeat = (50, 1) if options.quick else (1_000, options.repeat)
    with tempfile.TemporaryDirectory() as folder:
        rows: dict[str, Opener] = {
            "sqlite, normal": Sqlite(Path(folder) / "normal.db", "normal"),
            "sqlite, full": Sqlite(Path(folder) / "full.db", "full"),
        }
        url = postgres_schema(options.postgres)
        if url is not None:
            open_session_store(url).close()  # tables created before the writers start
            rows["postgresql"] = Postgres(url)
        try:
            report(rows, count, repeat)
        finally:
            if url is not None:
                drop_schema(options.postgres, url)


def report(rows: dict[str, Opener], count: int, repeat: int) -> None:
    samples: dict[tuple[str, int], list[tuple[float, float, float] | str]] = {}
    for _ in range(repeat):  # alternating, so that a slow moment hits every row alike
        for writers in (1, 8):
            for label, open_log in rows.items():
                samples.setdefault((label, writers), []).append(measure(open_log, writers, count))
    print(f"session log appends, {count:,} per writer, median of {repeat} runs")
    print(f"  {'backend':16} {'writers':>7} {'records/s':>10} {'p50 µs':>8} {'p99 µs':>8}  "
          "records/s per run")  # fmt: skip
    for (label, writers), results in samples.items():
        runs = [r for r in results if not isinstance(r, str)]
        for failure in (r for r in results if isinstance(r, str)):
            print(f"  {label:16} {writers:>7}  a run failed: {failure}")
        if runs:
            rate, p50, p99 = (statistics.median(r[i] for r in runs) for i in range(3))
            spread = " ".join(f"{r[0]:,.0f}" for r in runs)
            print(f"  {label:16} {writers:>7} {rate:>10,.0f} {p50:>8.0f} {p99:>8.0f}  {spread}")


if __name__ == "__main__":
    main()
