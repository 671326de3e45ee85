"""The session log on PostgreSQL: the SQLite file's records and guarantees, for many processes.

Needs `pip install -e '<interlock checkout>[postgres]'` (psycopg 3 and psycopg-pool),
imported only when such a store is opened. interlock creates its tables in a schema of their
own (`interlock`, or `?schema=` in the URL) and migrates them: `schema_version` holds the
versions applied, and processes starting together migrate one at a time (an advisory lock).

A record's `seq` counts its session's records; `(session_id, seq)` is unique. An append is
one statement that commits before it returns. When the connection drops, the append is
tried again on a fresh connection; each record carries a random key, unique in its session,
so a retry first looks for an earlier attempt that committed before the drop, and an attempt
whose backend commits late (it was waiting on a lock) collides with the retry's row rather
than storing the record twice. A statement waits at most about `retry_for` seconds (its
`statement_timeout` and `lock_timeout`), then is tried again like a dropped connection.
Appends block the calling thread (an async caller's event loop with it).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from interlock import FrozenDict
from interlock._postgres import Database, Migrations

from ._store import Record, RecordKind, SessionLogError, SessionSummary, _check_id

if TYPE_CHECKING:
    import psycopg

# Versions kept in `schema_version`; see interlock._postgres.Migrations.
_MIGRATIONS: Migrations = (
    (
        """CREATE TABLE {schema}.sessions (
            id TEXT PRIMARY KEY,
            created DOUBLE PRECISION NOT NULL,
            tags TEXT NOT NULL,
            metadata TEXT NOT NULL,
            ended DOUBLE PRECISION,
            end_reason TEXT
        )""",
        # `data` is the JSON text as SQLite keeps it: jsonb would refuse \\u0000 and lone
        # surrogates, which the log keeps escaped.
        """CREATE TABLE {schema}.records (
            session_id TEXT NOT NULL REFERENCES {schema}.sessions(id),
            seq BIGINT NOT NULL,
            turn INTEGER,
            kind TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            data TEXT NOT NULL,
            key UUID NOT NULL,
            PRIMARY KEY (session_id, seq)
        )""",
    ),
    # A record's key is unique in its session: an attempt whose backend outlived its client
    # (waiting on a lock) and the retry that followed cannot both store the record.
    ("ALTER TABLE {schema}.records ADD CONSTRAINT records_session_key UNIQUE (session_id, key)",),
)


class PostgresSessionStore:
    """Sessions and their records in a PostgreSQL database, shared by many processes.

        store = PostgresSessionStore("postgresql://agent@db.internal/agents")

    The URL is libpq's (`?sslmode=`, `?application_name=` and the `PG*` variables work);
    `?schema=NAME` picks the schema for interlock's tables (default `interlock`). Writes
    that fail on a dropped connection or an unreachable server are tried again for
    `retry_for` seconds, then raise `SessionLogError`. `pool_size` bounds the connections
    this store holds. `on_commit` is called with each record once it is committed.
    `create=False` opens an existing log only (to read it): its tables are never created
    nor migrated, and a schema without them raises `SessionLogError`. Safe to use from
    several threads.
    """

    def __init__(
        self,
        url: str,
        *,
        on_commit: Callable[[Record], None] | None = None,
        retry_for: float = 10.0,
        pool_size: int = 4,
        create: bool = True,
    ) -> None:
        self._db = Database(
            url,
            log="session log",
            error=_error,
            migrations=_MIGRATIONS,
            versions="schema_version",
            retry_for=retry_for,
            pool_size=pool_size,
            application_name="interlock",
            create=create,
        )
        self._psycopg = self._db.psycopg
        self._location = self._db.location
        self._on_commit = on_commit
        self._sql = _Queries(self._db.quoted)

    @property
    def location(self) -> str:
        """The URL, without its password."""
        return self._location

    def open_session(
        self, session_id: str, tags: tuple[str, ...] = (), metadata: Mapping[str, Any] | None = None
    ) -> bool:
        """Start a session, or reopen it; True when it is new.

        A retried call whose first attempt committed before the connection dropped answers
        False: the session was already there.
        """
        _check_id(session_id)
        row = (session_id, time.time(), json.dumps(list(tags)), json.dumps(dict(metadata or {})))

        def work(conn: psycopg.Connection[Any], attempt: int) -> bool:
            with conn.transaction():
                if conn.execute(self._sql.open_session, row).rowcount == 1:
                    return True
                conn.execute(self._sql.reopen_session, (session_id,))
                return False

        return self._db.run(f"open session {session_id!r}", work)

    def end_session(self, session_id: str, reason: str) -> None:
        """Mark a session ended."""
        ended = time.time()
        self._db.run(
            f"end session {session_id!r}",
            lambda conn, _: conn.execute(self._sql.end_session, (ended, reason, session_id)),
        )

    def append(
        self, session_id: str, kind: RecordKind, data: Mapping[str, Any], *, turn: int | None = None
    ) -> Record:
        """Append one record and commit it before returning it."""
        created = time.time()
        text = json.dumps(data, default=str)  # ASCII JSON, as in the SQLite file
        key = uuid.uuid4()
        values = {
            "session_id": session_id,
            "turn": turn,
            "kind": kind,
            "created": created,
            "data": text,
            "key": key,
        }

        def work(conn: psycopg.Connection[Any], attempt: int) -> int:
            # An earlier attempt may have committed before its connection dropped, or
            # commit still (its backend waiting on a lock): the key finds it either way.
            check = attempt > 1
            while True:
                if check:
                    found = conn.execute(self._sql.find, (session_id, key)).fetchone()
                    if found is not None:
                        return int(found[0])
                inserted = conn.execute(self._sql.append, values).fetchone()
                if inserted is not None:
                    return int(inserted[0])
                # Another writer took this session's next seq first, or an earlier attempt
                # stored this key meanwhile: look for it, then count again.
                check = True

        try:
            seq = self._db.run(f"append a {kind} record to session {session_id!r}", work)
        except self._psycopg.errors.ForeignKeyViolation:
            raise SessionLogError(
                f"no session {session_id!r} in the session log at {self._location}: "
                "open_session() it before appending",
                store=self._location,
            ) from None
        record = Record(seq, session_id, turn, kind, created, FrozenDict(json.loads(text)))
        if self._on_commit is not None:
            self._on_commit(record)
        return record

    def records(self, session_id: str) -> list[Record]:
        """A session's records, in order."""
        rows = self._db.run(
            f"read session {session_id!r}",
            lambda conn, _: conn.execute(self._sql.records, (session_id,)).fetchall(),
        )
        return [Record(r[0], r[1], r[2], r[3], r[4], FrozenDict(json.loads(r[5]))) for r in rows]

    def sessions(self) -> list[SessionSummary]:
        """Every session, newest first."""
        rows = self._db.run(
            "list the sessions", lambda conn, _: conn.execute(self._sql.sessions).fetchall()
        )
        return [
            SessionSummary(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6])
            for r in rows
        ]

    def has_session(self, session_id: str) -> bool:
        """Whether the log holds a session with this id."""
        _check_id(session_id)
        row = self._db.run(
            f"look up session {session_id!r}",
            lambda conn, _: conn.execute(self._sql.has_session, (session_id,)).fetchone(),
        )
        return row is not None

    def close(self) -> None:
        """Close the connections."""
        self._db.close()


class _Queries:
    """The statements, with the schema written in once."""

    def __init__(self, schema: str) -> None:
        self.open_session = (
            f"INSERT INTO {schema}.sessions (id, created, tags, metadata) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
        )
        self.reopen_session = (
            f"UPDATE {schema}.sessions SET ended = NULL, end_reason = NULL WHERE id = %s"
        )
        self.end_session = f"UPDATE {schema}.sessions SET ended = %s, end_reason = %s WHERE id = %s"
        # The next seq is counted in the same statement; a writer that loses the race to it,
        # or whose key is already stored, inserts nothing (no row returned).
        self.append = (
            f"INSERT INTO {schema}.records (session_id, seq, turn, kind, created, data, key) "
            "SELECT %(session_id)s, COALESCE(MAX(seq), 0) + 1, %(turn)s::integer, %(kind)s, "
            "%(created)s::double precision, %(data)s, %(key)s::uuid "
            f"FROM {schema}.records WHERE session_id = %(session_id)s "
            "ON CONFLICT DO NOTHING RETURNING seq"
        )
        self.find = f"SELECT seq FROM {schema}.records WHERE session_id = %s AND key = %s"
        self.records = (
            f"SELECT seq, session_id, turn, kind, created, data FROM {schema}.records "
            "WHERE session_id = %s ORDER BY seq"
        )
        self.sessions = (
            "SELECT s.id, s.created, s.ended, s.end_reason, s.tags, "
            f"COALESCE(MAX(r.turn), 0), COUNT(r.seq) FROM {schema}.sessions s "
            f"LEFT JOIN {schema}.records r ON r.session_id = s.id "
            "GROUP BY s.id ORDER BY s.created DESC"
        )
        self.has_session = f"SELECT 1 FROM {schema}.sessions WHERE id = %s"


def _error(message: str, location: str) -> SessionLogError:
    return SessionLogError(message, store=location)
