from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from interlock.runtime import Record, SessionStore, default_data_dir


def test_records_are_kept_in_order_and_sessions_summarised(tmp_path: Path) -> None:
    committed: list[Record] = []
    store = SessionStore(tmp_path / "log" / "sessions.db", on_commit=committed.append)
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

    reopened = SessionStore(tmp_path / "log" / "sessions.db")
    assert [r.seq for r in reopened.records("s1")] == [1, 2]
    assert reopened.has_session("s1") and not reopened.has_session("s2")
    reopened.close()


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
