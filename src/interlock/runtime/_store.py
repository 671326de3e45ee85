"""The durable session log: what a store must do (`SessionLog`), and the SQLite file.

Every record is committed before the agent acts on it, so a killed process loses nothing it
had acknowledged. SQLite in WAL mode makes each commit survive the process (`normal`) or
also a power cut (`full`, an fsync per commit). `open_session_store(url)` opens a SQLite
file or a PostgreSQL database (`_store_postgres`) by where it lives.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from interlock import FrozenDict, InterlockError, JsonValue

RecordKind = Literal[
    "user",
    "assistant",
    "tool_call",
    "tool_result",
    "system_item",
    "notification",
    "hook",
    "error",
    "delivered",
    "undelivered",
    "stats",
]
"""What a record holds. `system_item`s are model-visible; `notification`s are not; `stats`
is the plugins' counters when the session ended."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    ended REAL,
    end_reason TEXT
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    turn INTEGER,
    kind TEXT NOT NULL,
    created REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_session ON records(session_id, seq);
"""


@dataclass(frozen=True)
class Record:
    """One entry of a session's log.

    `seq` orders a session's records: it only grows within a session (in a SQLite file it
    counts the whole file's records, on PostgreSQL each session's own).
    """

    seq: int
    session_id: str
    turn: int | None
    kind: RecordKind
    created: float
    data: Mapping[str, JsonValue] = field(default_factory=FrozenDict)


@dataclass(frozen=True)
class SessionSummary:
    """One session as `interlock log` lists it."""

    id: str
    created: float
    ended: float | None
    end_reason: str | None
    tags: tuple[str, ...]
    turns: int
    records: int


class SessionLogError(InterlockError):
    """A session log that cannot be opened, written or read; `store` names where it lives."""

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(message)
        self.store = store


class SessionLog(Protocol):
    """What the runtime and the command line need of a session log.

    `SessionStore` (a SQLite file) and `PostgresSessionStore` implement it;
    `open_session_store(url)` opens either. `append` returns only once the record is
    committed, so a process killed after it loses nothing.
    """

    @property
    def location(self) -> str:
        """Where the log lives, fit to show (a file path, or a URL without its password)."""
        ...

    def open_session(
        self, session_id: str, tags: tuple[str, ...] = (), metadata: Mapping[str, Any] | None = None
    ) -> bool:
        """Start a session, or reopen it; True when it is new."""
        ...

    def end_session(self, session_id: str, reason: str) -> None:
        """Mark a session ended."""
        ...

    def append(
        self, session_id: str, kind: RecordKind, data: Mapping[str, Any], *, turn: int | None = None
    ) -> Record:
        """Append one record and commit it before returning it."""
        ...

    def records(self, session_id: str) -> list[Record]:
        """A session's records, in order."""
        ...

    def sessions(self) -> list[SessionSummary]:
        """Every session, newest first."""
        ...

    def has_session(self, session_id: str) -> bool:
        """Whether the log holds a session with this id."""
        ...

    def close(self) -> None:
        """Let go of the file or the connections."""
        ...


_KEY_VALUE = re.compile(r"\s*(host|hostaddr|dbname|user|password|port|service)\s*=", re.I)


def open_session_store(
    target: str | Path,
    *,
    on_commit: Callable[[Record], None] | None = None,
    create: bool = True,
) -> SessionLog:
    """The session log at `target`: a SQLite file or a PostgreSQL database.

        open_session_store("sessions.db")                # a file (or ":memory:")
        open_session_store("sqlite:///var/lib/interlock/sessions.db")
        open_session_store("postgresql://agent@db.internal/agents?schema=interlock")

    `create=False` opens a log that exists, to read it: nothing is created or migrated,
    and where there is none, `SessionLogError` says so. PostgreSQL needs
    `pip install 'interlock[postgres]'`; see `PostgresSessionStore`.
    """
    text = str(target)
    scheme, separator, rest = text.partition("://")
    if not separator and _KEY_VALUE.match(text):
        # libpq's key=value form would be taken for a file name, and echoed with its
        # password in every message about that file.
        raise SessionLogError(
            "a PostgreSQL session log is given as a URL, not as key=value settings: "
            "postgresql://USER@HOST[:PORT]/DATABASE",
            store="postgresql://...",
        )
    if not separator:
        return SessionStore(text, on_commit=on_commit, create=create)
    if scheme == "sqlite":
        return SessionStore(rest or ":memory:", on_commit=on_commit, create=create)
    if scheme in ("postgresql", "postgres"):
        from ._store_postgres import PostgresSessionStore

        return PostgresSessionStore(text, on_commit=on_commit, create=create)
    raise SessionLogError(
        f"{scheme}:// is no session log: give a file path, sqlite:///PATH or "
        "postgresql://HOST/DATABASE",
        store=scheme + "://",
    )


def default_data_dir() -> Path:
    """`$INTERLOCK_DATA_DIR`, else `$XDG_DATA_HOME/interlock`, else `~/.local/share/interlock`."""
    explicit = os.environ.get("INTERLOCK_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "interlock"


class SessionStore:
    """Sessions and their records in one SQLite file (or `":memory:"`): a `SessionLog`.

        store = SessionStore(default_data_dir() / "sessions.db")

    `on_commit` is called with each record once it is committed (tests, live views).
    `create=False` opens a file that holds a session log, to read it: a missing file, or
    one without the log's tables, raises `SessionLogError`. Safe to use from several
    threads.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        durability: Literal["normal", "full"] = "normal",
        on_commit: Callable[[Record], None] | None = None,
        create: bool = True,
    ) -> None:
        if durability not in ("normal", "full"):
            raise ValueError(f"durability must be 'normal' or 'full', got {durability!r}")
        self.path = str(path)
        if self.path != ":memory:":
            if not create and not Path(self.path).is_file():
                raise SessionLogError(f"no session log at {self.path}", store=self.path)
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._on_commit = on_commit
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={durability.upper()}")
            if create:
                self._db.executescript(_SCHEMA)
            else:
                self._find()
        except BaseException:
            self._db.close()
            raise

    def _find(self) -> None:
        """A reader's opening: the file holds the log's tables."""
        found = self._db.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' "
            "AND name IN ('sessions', 'records')"
        ).fetchone()
        if found != (2,):
            raise SessionLogError(
                f"{self.path} holds no interlock session log (no sessions and records tables)",
                store=self.path,
            )

    @property
    def location(self) -> str:
        """The file's path (or `":memory:"`)."""
        return self.path

    def open_session(
        self, session_id: str, tags: tuple[str, ...] = (), metadata: Mapping[str, Any] | None = None
    ) -> bool:
        """Start a session, or reopen it; True when it is new."""
        _check_id(session_id)
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO sessions (id, created, tags, metadata) VALUES (?, ?, ?, ?)",
                (session_id, time.time(), json.dumps(list(tags)), json.dumps(dict(metadata or {}))),
            )
            if cursor.rowcount == 0:
                db.execute(
                    "UPDATE sessions SET ended = NULL, end_reason = NULL WHERE id = ?",
                    (session_id,),
                )
            return cursor.rowcount == 1

    def end_session(self, session_id: str, reason: str) -> None:
        """Mark a session ended."""
        with self._write() as db:
            db.execute(
                "UPDATE sessions SET ended = ?, end_reason = ? WHERE id = ?",
                (time.time(), reason, session_id),
            )

    def append(
        self, session_id: str, kind: RecordKind, data: Mapping[str, Any], *, turn: int | None = None
    ) -> Record:
        """Append one record and commit it before returning it."""
        created = time.time()
        # ASCII JSON: text that is not valid UTF-8 (lone surrogates from a file name or an
        # argv) is kept, escaped, instead of failing the write.
        text = json.dumps(data, default=str)
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO records (session_id, turn, kind, created, data) "
                "VALUES (?, ?, ?, ?, ?)",
                (session_id, turn, kind, created, text),
            )
        seq = cursor.lastrowid or 0  # always set after an INSERT
        record = Record(seq, session_id, turn, kind, created, FrozenDict(json.loads(text)))
        if self._on_commit is not None:
            self._on_commit(record)
        return record

    def records(self, session_id: str) -> list[Record]:
        """A session's records, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, session_id, turn, kind, created, data FROM records "
                "WHERE session_id = ? ORDER BY seq",
                (session_id,),
            ).fetchall()
        return [Record(r[0], r[1], r[2], r[3], r[4], FrozenDict(json.loads(r[5]))) for r in rows]

    def sessions(self) -> list[SessionSummary]:
        """Every session, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.id, s.created, s.ended, s.end_reason, s.tags, "
                "COALESCE(MAX(r.turn), 0), COUNT(r.seq) FROM sessions s "
                "LEFT JOIN records r ON r.session_id = s.id GROUP BY s.id ORDER BY s.created DESC"
            ).fetchall()
        return [
            SessionSummary(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6])
            for r in rows
        ]

    def has_session(self, session_id: str) -> bool:
        """Whether the log holds a session with this id."""
        _check_id(session_id)
        with self._lock:
            row = self._db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


MAX_ID_BYTES = 1_000
"""The longest session id either backend keeps, in UTF-8 bytes."""


def _check_id(session_id: str) -> None:
    """Refuse an id that one of the backends could not keep (PostgreSQL text holds no NUL,
    and its indexes no key over about 2,700 bytes)."""
    try:
        size = len(session_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(
            f"session id {session_id!r} is not valid UTF-8 text; use letters, digits, - and _"
        ) from None
    if "\x00" in session_id:
        raise ValueError(
            f"session id {session_id!r} holds a NUL character; use letters, digits, - and _"
        )
    if size > MAX_ID_BYTES:
        raise ValueError(
            f"session id {session_id[:40]!r}... is {size:,} bytes long; use at most "
            f"{MAX_ID_BYTES:,} (UTF-8)"
        )
