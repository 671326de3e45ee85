"""A killed agent process loses nothing it acknowledged, and its log still opens cleanly."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import asyncio, sys
from interlock import PluginManager, hook
from interlock.runtime import Agent, ScriptedBackend, SessionStore, Step

def ack(record):
    print(f"ACK {record.seq} {record.kind}", flush=True)

def shell(command: str) -> str:
    return "ok " + command

@hook("turn_end")
def remind(payload, ctx):
    ctx.system_items.append("reminder", f"turn {payload.turn} done")

store = SessionStore(sys.argv[1], on_commit=ack)
manager = PluginManager()
manager.register(remind, capabilities=["system_items"])
script = [Step(tool_calls=(("shell", {"command": "ls"}),)), "done"] * 100_000
agent = Agent(ScriptedBackend(script), tools=[shell], manager=manager, store=store)

async def main():
    async with agent.session("durable") as session:
        while True:  # runs until the test kills it
            await session.send("again")

asyncio.run(main())
"""


def test_sigkill_mid_session_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    acknowledged: list[int] = []
    kinds: set[str] = set()
    assert child.stdout is not None
    try:
        for line in child.stdout:  # blocks until the child has committed something
            _, seq, kind = line.split()
            acknowledged.append(int(seq))
            kinds.add(kind)
            if len(acknowledged) >= 200 and "system_item" in kinds:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in conn.execute("SELECT seq FROM records")}
        ended = conn.execute("SELECT ended FROM sessions WHERE id = 'durable'").fetchone()
    assert set(acknowledged) <= stored
    assert ended == (None,)  # the session never ended: it was killed mid-way
    assert {"user", "assistant", "tool_call", "tool_result", "system_item"} <= kinds
