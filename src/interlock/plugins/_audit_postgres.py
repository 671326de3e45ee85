"""The audit log in a PostgreSQL table: `audit-log` with `url:` instead of `path:`.

    plugins:
      - name: audit-log
        use: audit-log
        config:
          url: postgresql://audit:${AUDIT_PASSWORD}@db.internal/agents?schema=interlock
          fsync: always            # each handler returns once its record is committed

Needs `pip install 'interlock[postgres]'`. The table `audit_records` lives in the URL's
schema (default `interlock`), migrated like the session log's tables but versioned apart
(`audit_schema_version`), when the writer thread writes its first batch (as the file is
opened on its first record): checking a configuration does not connect. A row per record, in
the order written:

    log         UUID      the writer that wrote it (one per opening of the log)
    seq         BIGINT    its place in that writer's records, from 1; (log, seq) is the key
    kind        TEXT      'record', or 'gap' for a gap record (records dropped)
    time        TIMESTAMPTZ  when the handler ran (a gap: its last drop)
    session_id, turn, hook, outcome, reason   as in the record (NULL in a gap)
    plugins     TEXT[]    every plugin the record names: modified, blocked, responded,
                          asked, failed, violated
    record      JSONB     the record itself, the line the file would hold

with indexes on session_id, plugins (GIN: `plugins @> ARRAY['tool-guard']`) and outcome.

The writer thread writes each batch of records (the handlers' records it found waiting)
as a multi-row INSERT (one per 1,000 records), committed before it acknowledges them. A batch
whose connection drops is tried again on a fresh one for `retry_for` seconds; its rows keep
their (log, seq), which the table already holding them skips, so a batch committed just
before the drop is not stored twice. Past `retry_for` the batch fails: its handlers fail
(counted; the breaker pauses the log after five in a row) and the writer goes on with the
next batch. NUL characters, which jsonb cannot hold, are stored as U+2400 (␀). A session id
longer than the session log keeps is cut in its column, ending in a hash of the whole (the
record keeps it whole), so one record cannot fail its batch.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from .._postgres import Database, Migrations, locate
from ..runtime._store import MAX_ID_BYTES
from .audit_log import AuditLogError, Seen, encode, entry

if TYPE_CHECKING:
    import psycopg

_MIGRATIONS: Migrations = (
    (
        """CREATE TABLE {schema}.audit_records (
            log UUID NOT NULL,
            seq BIGINT NOT NULL,
            kind TEXT NOT NULL,
            time TIMESTAMPTZ NOT NULL,
            session_id TEXT,
            turn INTEGER,
            hook TEXT,
            outcome TEXT,
            plugins TEXT[] NOT NULL,
            reason TEXT,
            record JSONB NOT NULL,
            PRIMARY KEY (log, seq)
        )""",
        "CREATE INDEX audit_records_session ON {schema}.audit_records (session_id)",
        "CREATE INDEX audit_records_plugins ON {schema}.audit_records USING GIN (plugins)",
        "CREATE INDEX audit_records_outcome ON {schema}.audit_records (outcome)",
    ),
)

_COLUMNS = "log, seq, kind, time, session_id, turn, hook, outcome, plugins, reason, record"
_ROW = "(%s, %s::bigint, %s, %s, %s, %s::integer, %s, %s, %s::text[], %s, %s::jsonb)"
_ROWS = 1_000  # per INSERT: 11,000 parameters, within the protocol's 65,535
# Fields of a record whose entries name a plugin.
_NAMING = ("modified_by", "blocked_by", "responded_by", "asks", "errors", "violations")

Row = tuple[Any, ...]
"""A record's columns after (log, seq)."""


class PostgresSink:
    """Writes audit records to PostgreSQL for the audit log's writer thread; see the
    module documentation."""

    def __init__(self, url: str, *, retry_for: float) -> None:
        self.where = locate(url, log="audit log", error=_error)  # a bad URL fails here
        # Connected on the first write (on the writer thread), like the file opened on its
        # first record: checking a configuration neither waits for the server nor migrates.
        self._open = functools.partial(
            Database,
            url,
            log="audit log",
            error=_error,
            migrations=_MIGRATIONS,
            versions="audit_schema_version",
            retry_for=retry_for,
            pool_size=1,  # one writer thread
            application_name="interlock-audit-log",
        )
        self._db: Database | None = None
        self._log = uuid.uuid4()
        self._next = 1

    def make(self, data: Seen | dict[str, Any]) -> Row:
        """The record's columns; raises for text no database can hold (lone surrogates)."""
        record = entry(data) if isinstance(data, Seen) else data
        text = encode(record)
        if not text.isascii():
            text.encode()  # a lone surrogate fails here, alone, not the whole batch
        if "\\u0000" in text:
            text = encode(_without_nul(json.loads(text)))
        gap = "gap" in record
        return (
            "gap" if gap else "record",
            datetime.datetime.fromisoformat(record["to"] if gap else record["ts"]),
            _session_column(record.get("session")),
            record.get("turn"),
            record.get("hook"),
            record.get("outcome"),
            _plugins(record),
            record.get("reason"),
            text,
        )

    def write(self, items: list[Row]) -> None:
        """Insert the rows, committed before this returns."""
        if not items:
            return
        # Numbered before the first attempt: a retry sends the same keys. Never reused,
        # even when the batch fails, or a later row would be skipped as already stored.
        first, self._next = self._next, self._next + len(items)
        rows = [(self._log, first + n, *item) for n, item in enumerate(items)]

        db = self._database()
        insert = (
            f"INSERT INTO {db.quoted}.audit_records ({_COLUMNS}) VALUES {{rows}} "
            "ON CONFLICT (log, seq) DO NOTHING"
        )

        # Each statement commits on its own (no BEGIN and COMMIT to wait for): a retry
        # sends them all again, and the table skips the rows it has.
        def work(conn: psycopg.Connection[Any], attempt: int) -> None:
            for start in range(0, len(rows), _ROWS):
                chunk = rows[start : start + _ROWS]
                statement = insert.format(rows=", ".join([_ROW] * len(chunk)))
                conn.execute(statement, [value for row in chunk for value in row])

        db.run(f"write {len(rows)} records", work)

    def _database(self) -> Database:
        """The database, opened on first use: a failed opening fails its batch, and the
        next batch tries again."""
        if self._db is None:
            self._db = self._open()
        return self._db

    def close(self) -> None:
        """Close the connection, if one was opened."""
        if self._db is not None:
            self._db.close()


def _plugins(record: dict[str, Any]) -> list[str]:
    """Every plugin the record names, in the order it names them, once each."""
    named: dict[str, None] = {}
    for field in _NAMING:
        value = record.get(field)
        if isinstance(value, str):
            named[value] = None
        elif isinstance(value, list):
            for item in value:
                named[item["plugin"] if isinstance(item, dict) else item] = None
    return list(named)


def _session_column(session: str | None) -> str | None:
    """The session id for its indexed column: one too long for an index (a hostile id)
    is cut, with a hash of the whole to tell such ids apart; `record` keeps it whole."""
    if session is None or len(session.encode(errors="surrogatepass")) <= MAX_ID_BYTES:
        return session
    digest = hashlib.sha256(session.encode(errors="surrogatepass")).hexdigest()[:16]
    return f"{session[: MAX_ID_BYTES // 4 - 20]}…{digest}"  # within the bytes at 4 a char


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\u2400")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


def _error(message: str, location: str) -> AuditLogError:
    return AuditLogError(message, sink=location)
