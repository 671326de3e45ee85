"""Dropped background calls are visible: the session's stats, `interlock log`, the profiler
table, and the audit log's gap records all say how many."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from interlock import Plugin, PluginManager, hook
from interlock.cli._log import describe
from interlock.plugins.audit_log import AuditLog, AuditLogConfig
from interlock.plugins.profiler import Profiler
from interlock.runtime import Record

from .helpers import run


class Holder(Plugin):
    """Holds the only place in the background queue from session start to session end."""

    name = "holder"

    def __init__(self) -> None:
        self.release = asyncio.Event()

    @hook("session_start", background=True, timeout=None)
    async def hold(self, payload: Any, ctx: Any) -> None:
        await self.release.wait()

    def on_session_end(self, payload: Any, ctx: Any) -> None:
        self.release.set()


async def test_a_sessions_drops_are_in_its_stats_log_profile_and_audit_gaps(
    tmp_path: Path,
) -> None:
    audit = tmp_path / "audit.jsonl"
    manager = PluginManager(background_limit=1)
    log = AuditLog(AuditLogConfig(path=str(audit), fsync="never"))
    result = await run(
        [
            (Holder(), {}),
            (log, {"overflow": "drop"}),
            (Profiler(), {"capabilities": ["notify", "stats"]}),
        ],
        ["hello"],
        ["hi"],
        manager=manager,
    )  # closes the manager: the trailing gap is written
    audit_stats = manager.stats().get("audit-log", "session_start")
    dropped = sum(s.dropped for s in manager.stats().for_plugin("audit-log"))
    assert audit_stats.dropped == 1 and dropped > 1

    # The session's stats record, written after the drain, has every drop of the session.
    [stats] = result.kinds("stats")
    logged = {(r["hook"], r["dropped"]) for r in stats["registrations"] if r["dropped"]}
    assert sum(n for _, n in logged) == dropped
    line = describe(Record(1, "s-1", 1, "stats", 0.0, stats)).plain
    assert "background calls dropped: audit-log at session_start: 1" in line

    # The profiler's table, made at session end, lists the drops up to then.
    [table] = [n for n in result.notifications if "time per model and tool call" in n]
    assert "background calls dropped (the queue was full):" in table
    assert "audit-log at session_start: 1" in table

    # Nothing was written, and the gap at close says so: every invocation is accounted for.
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["gap"] for r in records] == [dropped]
