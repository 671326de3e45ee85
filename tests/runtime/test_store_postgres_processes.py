"""Eight agent processes log to one PostgreSQL database at once; three are killed mid-turn.

Every record a writer acknowledged (printed once its append returned) is in the log exactly
once, and every session's records are numbered 1, 2, 3, ... in the order they were written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg", reason="needs pip install 'interlock[postgres]'")

WRITERS = 8
SESSIONS, TURNS = 3, 4  # about 29 records a session
# The writers killed, each after this many acknowledged records: mid-turn, in the first,
# second and third session.
KILLED = {1: 12, 4: 40, 6: 67}

CHILD = r"""
import asyncio, sys
from interlock import PluginManager, hook
from interlock.runtime import Agent, ScriptedBackend, Step, open_session_store

url, writer, sessions, turns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def ack(record):
    print(f"ACK {record.session_id} {record.seq} {record.kind}", flush=True)

def shell(command: str) -> str:
    return "ok " + command

@hook("turn_end")
def remind(payload, ctx):
    ctx.system_items.append("reminder", f"turn {payload.turn} done")

store = open_session_store(url, on_commit=ack)  # eight processes migrate at once
manager = PluginManager()
manager.register(remind, capabilities=["system_items"])
script = [Step(tool_calls=(("shell", {"command": "ls"}),)), "done"] * sessions * turns
agent = Agent(ScriptedBackend(script), tools=[shell], manager=manager, store=store)

async def main():
    for n in range(sessions):
        async with agent.session(f"w{writer}-s{n}") as session:
            for _ in range(turns):
                await session.send("again")
    await agent.aclose()

asyncio.run(main())
store.close()
print("DONE", flush=True)
"""

Ack = tuple[str, int, str]  # session, seq, kind


def follow(child: subprocess.Popen[str], acks: list[Ack], kill_after: int | None) -> None:
    """Collect the child's acknowledgements; kill it after `kill_after` of them."""
    assert child.stdout is not None
    for line in child.stdout:
        word, *rest = line.split()
        if word == "ACK":
            acks.append((rest[0], int(rest[1]), rest[2]))
            if len(acks) == kill_after:
                os.kill(child.pid, signal.SIGKILL)
        else:
            acks.append(("DONE", 0, ""))


def test_eight_writers_some_killed_lose_no_acknowledged_record(postgres_url: str) -> None:
    acks: dict[int, list[Ack]] = {w: [] for w in range(WRITERS)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, postgres_url, str(w), str(SESSIONS), str(TURNS)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for w in range(WRITERS)
    ]
    readers = [
        threading.Thread(target=follow, args=(child, acks[w], KILLED.get(w)))
        for w, child in enumerate(children)
    ]
    try:
        for reader in readers:
            reader.start()
        for child in children:
            child.wait(timeout=300)
        for reader in readers:
            reader.join(timeout=30)
    finally:
        for child in children:
            child.kill()  # only a child still running after the timeouts above
            child.wait(timeout=30)
            assert child.stdout is not None
            child.stdout.close()

    stored = logged(postgres_url)
    for writer, child in enumerate(children):
        own = {s: rows for s, rows in stored.items() if s.startswith(f"w{writer}-")}
        acknowledged = [a for a in acks[writer] if a[0] != "DONE"]
        if writer in KILLED:
            assert child.returncode == -signal.SIGKILL
            assert len(acknowledged) >= KILLED[writer] and acks[writer][-1][0] != "DONE"
        else:
            assert child.returncode == 0 and acks[writer][-1][0] == "DONE"
            assert len(own) == SESSIONS and all(rows["ended"] for rows in own.values())
        unacknowledged = 0
        for session, rows in own.items():
            records = rows["records"]
            assert [seq for seq, _, _ in records] == list(range(1, len(records) + 1))
            turns = [turn for _, turn, _ in records]
            assert turns == sorted(turns)  # a session's turns come in order
            assert writer in KILLED or turns[-1] == TURNS
            mine = [(seq, kind) for s, seq, kind in acknowledged if s == session]
            assert mine == [(seq, kind) for seq, _, kind in records[: len(mine)]]
            unacknowledged += len(records) - len(mine)
        # A killed writer may have committed one record it had no time to acknowledge.
        assert unacknowledged <= (1 if writer in KILLED else 0)
        assert len(acknowledged) == len(set(acknowledged))  # nothing acknowledged twice


def logged(url: str) -> dict[str, dict[str, Any]]:
    """Every session in the log: whether it ended, and its (seq, turn, kind) in seq order."""
    base, _, schema = url.rpartition("schema=")
    with psycopg.connect(base.rstrip("?&")) as conn:
        sessions = conn.execute(f'SELECT id, ended FROM "{schema}".sessions').fetchall()
        rows = conn.execute(
            f'SELECT session_id, seq, turn, kind FROM "{schema}".records ORDER BY session_id, seq'
        ).fetchall()
    stored: dict[str, dict[str, Any]] = {
        session: {"ended": ended is not None, "records": []} for session, ended in sessions
    }
    for session, seq, turn, kind in rows:
        stored[session]["records"].append((seq, turn or 0, kind))
    return stored
