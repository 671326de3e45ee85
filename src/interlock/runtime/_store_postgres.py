"""The session log on PostgreSQL: the SQLite file's records and guarantees, for many processes.

Needs `pip install -e '<interlock checkout>[postgres]'` (psycopg 3 and psycopg-pool),
imported only when such a store is opened. interlock creates its tables in a schema of their
own (`interlock`, or `?schema=` in the URL) and migrates them: `schema_version` holds the
versions applied, and processes starting together migrate one at a time (an advisory lock).

A record's `seq` counts its session's records; `(session_id, seq)` is unique. An append is
one statement that commits before it returns. When the connection drops, the append is
tried again on a fresh connection; each record carries a random key, so a retry first looks
for an earlier attempt that committed before the drop, and a record is never stored twice.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from interlock import FrozenDict
from interlock._extras import missing_extra

from ._store import Record, RecordKind, SessionLogError, SessionSummary, _check_id

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("interlock.runtime")

T = TypeVar("T")

# Each migration is a list of statements; its version is its position, from 1. Append new
# ones, never edit an applied one: a database records which versions it has.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
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
)

# What the URL does not set itself. Without a connect timeout libpq waits on a silent host
# for minutes; the keepalives notice within about 25 s a connection that died without a word
# (a failover, a NAT that forgot it) while a statement waits for its answer.
_CONNECTION_DEFAULTS: dict[str, Any] = {
    "application_name": "interlock",
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresSessionStore:
    """Sessions and their records in a PostgreSQL database, shared by many processes.

        store = PostgresSessionStore("postgresql://agent@db.internal/agents")

    The URL is libpq's (`?sslmode=`, `?application_name=` and the `PG*` variables work);
    `?schema=NAME` picks the schema for interlock's tables (default `interlock`). Writes
    that fail on a dropped connection or an unreachable server are tried again for
    `retry_for` seconds, then raise `SessionLogError`. `pool_size` bounds the connections
    this store holds. `on_commit` is called with each record once it is committed. Safe to
    use from several threads.
    """

    def __init__(
        self,
        url: str,
        *,
        on_commit: Callable[[Record], None] | None = None,
        retry_for: float = 10.0,
        pool_size: int = 4,
    ) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:  # pragma: no cover - depends on the installation
            raise missing_extra("the PostgreSQL session log", "psycopg", "postgres") from None
        conninfo, schema, self._location = _parse_url(url)
        self._psycopg = psycopg
        self._on_commit = on_commit
        self._retry_for = retry_for
        self._sql = _Queries(f'"{schema}"')
        self._schema = schema
        try:
            given = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError as error:  # an option libpq does not know
            raise SessionLogError(
                f"{self._location} is not a PostgreSQL URL libpq accepts: {error}",
                store=self._location,
            ) from None
        defaults = {**_CONNECTION_DEFAULTS, "connect_timeout": max(1, round(retry_for))}
        extra = {name: value for name, value in defaults.items() if name not in given}
        extra["autocommit"] = True
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs=extra,
            configure=_configure,
            timeout=retry_for,
            name="interlock-session-log",
            open=False,
        )
        self._pool.open(wait=False)
        try:
            self._run("create or migrate its tables", self._migrate)
        except BaseException:
            self._pool.close()
            raise

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

        return self._run(f"open session {session_id!r}", work)

    def end_session(self, session_id: str, reason: str) -> None:
        """Mark a session ended."""
        ended = time.time()
        self._run(
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
            if attempt > 1:  # the last attempt may have committed before its connection dropped
                found = conn.execute(self._sql.find, (session_id, key)).fetchone()
                if found is not None:
                    return int(found[0])
            while True:
                inserted = conn.execute(self._sql.append, values).fetchone()
                if inserted is not None:
                    return int(inserted[0])
                # Another process took this session's next seq first: count again.

        try:
            seq = self._run(f"append a {kind} record to session {session_id!r}", work)
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
        rows = self._run(
            f"read session {session_id!r}",
            lambda conn, _: conn.execute(self._sql.records, (session_id,)).fetchall(),
        )
        return [Record(r[0], r[1], r[2], r[3], r[4], FrozenDict(json.loads(r[5]))) for r in rows]

    def sessions(self) -> list[SessionSummary]:
        """Every session, newest first."""
        rows = self._run(
            "list the sessions", lambda conn, _: conn.execute(self._sql.sessions).fetchall()
        )
        return [
            SessionSummary(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6])
            for r in rows
        ]

    def has_session(self, session_id: str) -> bool:
        """Whether the log holds a session with this id."""
        _check_id(session_id)
        row = self._run(
            f"look up session {session_id!r}",
            lambda conn, _: conn.execute(self._sql.has_session, (session_id,)).fetchone(),
        )
        return row is not None

    def close(self) -> None:
        """Close the connections."""
        self._pool.close()

    def _migrate(self, conn: psycopg.Connection[Any], attempt: int) -> None:
        schema = f'"{self._schema}"'
        try:
            with conn.transaction():
                # Processes that start together take turns; the loser finds the work done.
                lock = f"interlock session log {self._schema}"
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {schema}.schema_version "
                    "(version INTEGER PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)"
                )
                row = conn.execute(f"SELECT MAX(version) FROM {schema}.schema_version").fetchone()
                current = int(row[0]) if row is not None and row[0] is not None else 0
                if current > len(_MIGRATIONS):
                    raise SessionLogError(
                        f"the session log at {self._location} has schema version {current}; "
                        f"this interlock knows up to {len(_MIGRATIONS)}: upgrade interlock",
                        store=self._location,
                    )
                for version in range(current + 1, len(_MIGRATIONS) + 1):
                    for statement in _MIGRATIONS[version - 1]:
                        conn.execute(statement.format(schema=schema))
                    conn.execute(
                        f"INSERT INTO {schema}.schema_version VALUES (%s, %s)",
                        (version, time.time()),
                    )
        except self._psycopg.errors.InsufficientPrivilege as error:
            raise SessionLogError(
                f"cannot create the session log's tables at {self._location} ({error}): "
                f"grant CREATE on the database (or on schema {self._schema}) to this user",
                store=self._location,
            ) from None

    def _run(self, what: str, work: Callable[[psycopg.Connection[Any], int], T]) -> T:
        """`work(connection, attempt)`, tried again on a fresh connection while it fails on
        the connection (dropped, refused, timed out) and `retry_for` has not passed."""
        from psycopg_pool import PoolClosed

        deadline = time.monotonic() + self._retry_for
        delay, attempt = 0.05, 0
        while True:
            attempt += 1
            try:
                with self._pool.connection(timeout=max(deadline - time.monotonic(), 0.01)) as conn:
                    return work(conn, attempt)
            except PoolClosed:
                raise SessionLogError(
                    f"the session log at {self._location} is closed; cannot {what}",
                    store=self._location,
                ) from None
            except self._psycopg.OperationalError as error:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SessionLogError(
                        f"cannot {what} in the session log at {self._location}: {error} "
                        f"(tried {attempt} times over {self._retry_for:g} s); check that the "
                        "server is up and reachable",
                        store=self._location,
                    ) from error
                logger.warning(
                    "session log at %s: %s; trying again (%s)", self._location, error, what
                )
                time.sleep(min(delay, left))
                delay = min(delay * 2, 1.0)


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
        # The next seq is counted in the same statement; a writer that loses the race to it
        # inserts nothing (no row returned) and counts again.
        self.append = (
            f"INSERT INTO {schema}.records (session_id, seq, turn, kind, created, data, key) "
            "SELECT %(session_id)s, COALESCE(MAX(seq), 0) + 1, %(turn)s::integer, %(kind)s, "
            "%(created)s::double precision, %(data)s, %(key)s::uuid "
            f"FROM {schema}.records WHERE session_id = %(session_id)s "
            "ON CONFLICT (session_id, seq) DO NOTHING RETURNING seq"
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


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Make a commit durable on the server even where it is configured not to wait."""
    row = conn.execute("SHOW synchronous_commit").fetchone()
    if row is not None and row[0] == "off":
        conn.execute("SET synchronous_commit TO on")


def _parse_url(url: str) -> tuple[str, str, str]:
    """(libpq URL without `schema`, the schema, the URL to show: no password)."""
    parts = urlsplit(url)
    user, at, hosts = parts.netloc.rpartition("@")
    shown = urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}@{hosts}" if at else hosts))
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for name, value in query if name == "schema"), "interlock")
    if not _SCHEMA_NAME.fullmatch(schema):
        raise SessionLogError(
            f"schema {schema!r} in the session log URL is not a plain name: use lower-case "
            "letters, digits and _ (at most 63)",
            store=shown,
        )
    conninfo = urlunsplit(parts._replace(query=urlencode([q for q in query if q[0] != "schema"])))
    return conninfo, schema, shown
