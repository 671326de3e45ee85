"""The session log, on each backend: a SQLite file and PostgreSQL (`store_url`, conftest)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from interlock import PluginManager, hook
from interlock.runtime import (
    Agent,
    Record,
    ScriptedBackend,
    SessionLogError,
    SessionStore,
    Step,
    default_data_dir,
    open_session_store,
)


def test_records_are_kept_in_order_and_sessions_summarised(store_url: str) -> None:
    committed: list[Record] = []
    store = open_session_store(store_url, on_commit=committed.append)
    assert store.open_session("s1", ("dev",), {"who": "ada"})
    first = store.append("s1", "user", {"content": "hi"}, turn=1)
    store.append("s1", "system_item", {"kind": "reminder", "text": "x", "plugin": "p"}, turn=1)
    store.end_session("s1", "completed")
    assert [r.kind for r in store.records("s1")] == ["user", "system_item"]
    assert committed[0] == first
    assert first.data == {"content": "hi"}
    [summary] = store.sessions()
    assert (summary.id, summary.tags, summary.turns, summary.records) == ("s1", ("dev",), 1, 2)
    assert summary.end_reason == "completed"
    assert not store.open_session("s1")  # reopening is not new
    assert store.sessions()[0].ended is None
    store.close()

    reopened = open_session_store(store_url)
    assert [r.seq for r in reopened.records("s1")] == [1, 2]
    assert reopened.records("s1")[0] == first
    assert reopened.has_session("s1") and not reopened.has_session("s2")
    reopened.close()


def test_text_that_is_not_utf8_or_holds_nul_is_kept(store_url: str) -> None:
    store = open_session_store(store_url)
    store.open_session("s")
    odd = {"path": b"caf\xe9".decode("utf-8", "surrogateescape"), "nul": "a\x00b", "n": 1.5}
    store.append("s", "tool_result", odd, turn=1)
    assert [dict(r.data) for r in store.records("s")] == [odd]
    with pytest.raises(ValueError, match="holds a NUL character"):
        store.open_session("a\x00b")
    store.close()


def test_threads_appending_to_one_session_keep_its_order(store_url: str) -> None:
    store = open_session_store(store_url)
    store.open_session("s")
    start = threading.Barrier(4)
    appended: dict[int, list[int]] = {}

    def write(writer: int) -> None:
        start.wait()
        seqs = [store.append("s", "hook", {"w": writer, "i": i}).seq for i in range(25)]
        appended[writer] = seqs

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = store.records("s")
    assert len(records) == 100 == len({r.seq for r in records})
    for writer, seqs in appended.items():  # each writer's records, in the order it wrote them
        assert [r.data["i"] for r in records if r.data["w"] == writer] == list(range(25))
        assert seqs == sorted(seqs)
    store.close()


def shell(command: str) -> str:
    """Run a shell command (pretend)."""
    return f"ran {command}"


@hook("turn_end")
def remind(payload: Any, ctx: Any) -> None:
    ctx.system_items.append("reminder", f"turn {payload.turn} done")


async def logged_session(store_url: str) -> list[tuple[Any, ...]]:
    """A two-turn agent session with a tool call and a system item, as the log keeps it."""
    store = open_session_store(store_url)
    manager = PluginManager()
    manager.register(remind, capabilities=["system_items"])
    script = [Step(tool_calls=(("shell", {"command": "ls"}),)), "done", "bye"]
    agent = Agent(ScriptedBackend(script), tools=[shell], manager=manager, store=store)
    async with agent.session("s-1", tags=["t"]) as session:
        await session.send("list it")
        await session.send("thanks")
    await agent.aclose()
    # A second agent continues the session from the log alone.
    again = Agent(ScriptedBackend(["still here"]), store=store)
    async with again.session("s-1") as session:
        result = await session.send("still there?")
    assert result.turn == 3
    records = [(r.seq, r.turn, r.kind, dict(r.data)) for r in store.records("s-1")]
    store.close()
    return [r for r in records if r[2] != "stats"]  # stats carry timings


async def test_both_backends_log_the_same_records(tmp_path: Path, postgres_url: str) -> None:
    in_file = await logged_session(str(tmp_path / "sessions.db"))
    in_postgres = await logged_session(postgres_url)
    assert in_postgres == in_file
    assert {"user", "assistant", "tool_call", "tool_result", "system_item"} <= {
        r[2] for r in in_file
    }


def test_the_store_is_chosen_by_its_url(tmp_path: Path) -> None:
    by_url = open_session_store(f"sqlite://{tmp_path / 'a.db'}")
    assert isinstance(by_url, SessionStore) and by_url.location == str(tmp_path / "a.db")
    by_url.close()
    by_path = open_session_store(tmp_path / "b.db")
    assert isinstance(by_path, SessionStore) and (tmp_path / "b.db").exists()
    by_path.close()
    with pytest.raises(SessionLogError, match=r"mysql:// is no session log: give a file path"):
        open_session_store("mysql://db/agents")


def test_the_file_is_plain_sqlite(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "s.db", durability="full")
    store.open_session("s")
    store.append("s", "user", {"content": "hi"})
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("SELECT kind FROM records").fetchall() == [("user",)]
    store.close()


def test_bad_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability must be 'normal' or 'full'"):
        SessionStore(tmp_path / "s.db", durability="sometimes")  # type: ignore[arg-type]


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(tmp_path / "here"))
    assert default_data_dir() == tmp_path / "here"
    monkeypatch.delenv("INTERLOCK_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "interlock"


def test_the_runtime_does_not_load_the_postgres_driver() -> None:
    code = "import sys, interlock.runtime; print([m for m in sys.modules if 'psycopg' in m])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_libpq_key_value_settings_are_refused_without_echoing_them() -> None:
    """`--store "host=db password=..."` is no file name: refused, the password unshown."""
    from interlock.runtime import SessionLogError, open_session_store

    with pytest.raises(SessionLogError) as info:
        open_session_store("host=db.internal dbname=agents password=s3cret-pw")
    assert "s3cret-pw" not in str(info.value) and "s3cret-pw" not in repr(info.value)
    assert "postgresql://" in str(info.value)
