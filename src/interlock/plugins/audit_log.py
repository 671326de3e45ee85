"""`audit_log`: every hook outcome as a line of JSON, in an append-only file (or a table).

    plugins:
      - name: audit-log
        use: audit-log
        config:
          path: logs/audit.jsonl
          fsync: always            # always | interval | never
          max_bytes: 10000000      # then audit.jsonl.1, .2, ... up to `keep`
          keep: 5

One record per invocation of every hook but `llm_stream_chunk` (a record per chunk of a
streamed answer; name it in `hooks:` to have it), written in the background after
the plugins have decided: when, the session and turn, the hook, the outcome (continued,
modified, blocked, responded, asked, failed), which plugin did what, the reason, failures,
permissive-mode violations, and a summary of the payload that names tools, models and
roles but never quotes content (text becomes its length, mappings their keys).

`fsync: always` makes each record durable before its handler returns: what the host has
seen drained survives a killed process; a record that cannot be written fails its
handler (counted, and after five failures in a row the breaker pauses the log for its
cooldown). `interval` syncs at most once per
`fsync_interval`, `never` leaves it to the system. Records are made from what the
handler saw (frozen payloads and results), encoded and written in the order of the
invocations by a thread of their own: the event loop neither formats them nor waits for
the disk.
Closing the manager drains pending records, writes them, then syncs and closes the file.

No record is lost silently. Records are background work, bounded by the manager's
`background_limit` (1,000 waiting), and the log registers with `overflow: wait`: when the
queue is full, the invocation waits for room (back-pressure) as long as background calls
keep finishing. Only when none finished for the registration's `timeout` (5 s by
default), or when the host calls `invoke_sync` from a thread running an event loop (which
must not block), is a record dropped. With `overflow: drop` in the plugin's entry the host
never waits and the excess is dropped at once. Either way a dropped record is counted
(`stats()`: the registration's `dropped` and `background_dropped`) and written down: a gap
record, before the next record and at close, says how many were dropped, between which
times, at which hooks:

    {"gap": 12, "from": "2026-11-22T02:10:00.123+00:00",
     "to": "2026-11-22T02:10:00.140+00:00", "hooks": {"pre_tool_call": 12}}

so that the records plus the gaps' counts are every invocation. An audit log registered
into a session scope is the host's to close (its trailing gap is written at close).

With `url: postgresql://HOST/DATABASE?schema=NAME` instead of `path:` the records go to a
PostgreSQL table (`pip install 'interlock[postgres]'`; see `_audit_postgres`): the same
records as JSON, with columns to query them by, a batch of records per statement, each
batch committed before the handlers waiting on it (`fsync: always`) return.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import IO, Annotated, Any, Generic, Literal, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .. import HookContext, HookResult, InterlockError, Plugin, hook, hooks
from ..config import ConfigPath, parse_duration

logger = logging.getLogger("interlock.plugins.audit_log")

_BATCH = 64  # hand-overs written (and synced) together at most
_ALL = tuple(spec.name for spec in hooks.CATALOG)
# Payload fields whose text is a name, not content: kept as they are.
_NAMES = frozenset(
    {"tool_name", "model", "role", "channel", "call_id", "finish_reason", "session_id",
     "error_type", "stage", "plugin", "reason"}
)  # fmt: skip


class AuditLogConfig(BaseModel):
    """Where the log goes, how durable each record is, and when it rotates."""

    model_config = ConfigDict(extra="forbid")

    path: ConfigPath | None = Field(default=None, min_length=1)
    """The file; relative to the config file's folder when loaded from one."""
    url: str | None = Field(default=None, min_length=1)
    """A PostgreSQL database instead of a file: `postgresql://HOST/DATABASE?schema=NAME`."""
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval: Annotated[float, BeforeValidator(parse_duration)] = 1.0
    max_bytes: int = Field(default=10_000_000, gt=0)
    keep: int = Field(default=5, ge=0)
    hooks: list[str] = Field(default_factory=lambda: [h for h in _ALL if h != "llm_stream_chunk"])
    """The hooks recorded: all but `llm_stream_chunk` (a record per chunk) by default."""
    retry_for: Annotated[float, BeforeValidator(parse_duration)] = Field(default=10.0, gt=0)
    """With `url`: how long a write is tried again over a dropped connection, then fails."""


# Options that mean something for one kind of sink only.
_FILE_ONLY = ("fsync_interval", "max_bytes", "keep")
_DATABASE_ONLY = ("retry_for",)


class AuditLogError(InterlockError):
    """An audit log that cannot be opened or written; `sink` names where it goes (a URL
    without its password)."""

    def __init__(self, message: str, *, sink: str) -> None:
        super().__init__(message)
        self.sink = sink


class AuditLog(Plugin):
    """Writes an audit record per hook outcome; see the module documentation."""

    name = "audit-log"
    version = "1.0"
    config_model = AuditLogConfig

    def __init__(self, config: AuditLogConfig) -> None:
        self.config = config
        self._hooks = frozenset(config.hooks)
        unknown = self._hooks - set(_ALL)
        if unknown:
            raise ValueError(f"no hook {sorted(unknown)[0]!r}; hooks: {', '.join(_ALL)}")
        self.path = None if config.path is None else Path(config.path)
        """The file written, or None when the log goes to a database."""
        self._writer: _Writer[Any] = _Writer(_sink(config))
        self._gap = _Gap()

    @hook(*_ALL, background=True, overflow="wait")
    async def record(self, payload: Any, ctx: HookContext) -> None:
        """Queue the record of one invocation (a background handler: it runs after the
        others). Records are queued in the order of the invocations and written in that
        order by a thread of their own; with `fsync: always` this returns once the record
        is on disk. Records dropped since the last one are written down first, as a gap."""
        if ctx.hook.name not in self._hooks:
            return
        if self._gap.count:
            self._put_gap()
        # The facts only, taken now (the context is revoked once this returns); the record
        # is made and encoded on the writer thread, not on the event loop.
        session = ctx.session
        seen = Seen(time.time(), session.id if session is not None else None, ctx.turn,
                    ctx.hook.name, ctx.result, payload)  # fmt: skip
        always = self.config.fsync == "always"
        written = self._writer.put(seen, acknowledged=always)
        if written is not None:
            await asyncio.wrap_future(written)

    def background_dropped(self, hook: str, count: int) -> None:
        """Note records the manager dropped (a full queue): the next record, or closing,
        writes them down as a gap record."""
        if hook in self._hooks:
            self._gap.add(hook, count)

    async def aclose(self) -> None:
        """Write what is queued (and a gap for records dropped since the last one), then
        sync and close the file (or close the database's connection)."""
        written = self._put_gap()
        if written is not None:
            with contextlib.suppress(Exception):  # the writer logged it
                await asyncio.wrap_future(written)
        await asyncio.to_thread(self._writer.close)

    def _put_gap(self) -> concurrent.futures.Future[None] | None:
        gap = self._gap.take()
        if gap is None:
            return None
        return self._writer.put(gap, acknowledged=True)


def _sink(config: AuditLogConfig) -> _Sink[Any]:
    """Where the records go: the file at `path`, or the database at `url`."""
    if (config.path is None) == (config.url is None):
        raise ValueError("give the audit log a file (path:) or a PostgreSQL database (url:), "
                         "one of the two")  # fmt: skip
    chosen = config.model_fields_set
    kind, unused = ("file", _DATABASE_ONLY) if config.url is None else ("database", _FILE_ONLY)
    wrong = [name for name in unused if name in chosen]
    if wrong:
        raise ValueError(f"{wrong[0]} does not apply to an audit log in a {kind}: remove it")
    if config.path is not None:
        return _FileSink(Path(config.path), config)
    from ._audit_postgres import PostgresSink

    return PostgresSink(config.url or "", retry_for=config.retry_for)


class _Gap:
    """Records dropped and not yet written down: how many, when, at which hooks.

    Drops are noted from whichever thread invoked the hook; the record handler (on an
    event loop) takes them, so both sides hold the lock.
    """

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._first = self._last = ""
        self._hooks: dict[str, int] = {}

    def add(self, hook: str, count: int) -> None:
        now = _now()
        with self._lock:
            if not self.count:
                self._first = now
            self.count += count
            self._last = now
            self._hooks[hook] = self._hooks.get(hook, 0) + count

    def take(self) -> dict[str, Any] | None:
        """The gap record for what was dropped since the last take, if anything was."""
        with self._lock:
            if not self.count:
                return None
            gap = {"gap": self.count, "from": self._first, "to": self._last,
                   "hooks": self._hooks}  # fmt: skip
            self.count = 0
            self._hooks = {}
            return gap


class Seen(NamedTuple):
    """What one invocation's record is made of, as its handler saw it.

    Everything in it is immutable (payloads and results are frozen), so the writer thread
    makes the record from it later and the record is the same as if made at once.
    """

    time: float
    """When the handler ran (seconds since the epoch)."""
    session: str | None
    turn: int | None
    hook: str
    result: HookResult[Any] | None
    payload: Any

    def line(self) -> bytes:
        """The record as a line of JSON."""
        return (encode(entry(self)) + "\n").encode()


def encode(record: dict[str, Any]) -> str:
    """A record as JSON text, as every sink stores it."""
    return json.dumps(record, ensure_ascii=False, default=str)


_Ack = concurrent.futures.Future[None] | None  # None: nobody waits for this record
_Data = Seen | dict[str, Any]  # what a record is made of, or a gap record
_Pending = tuple[_Data, _Ack]
_Item = TypeVar("_Item")


class _Sink(Protocol[_Item]):
    """Where the writer thread puts records: a file, a database."""

    where: str
    """Named in messages: the file's path, the URL without its password."""

    def make(self, data: _Data) -> _Item:
        """The record made from `data`, ready to write; raises when it cannot be made."""
        ...

    def write(self, items: list[_Item]) -> None:
        """Store `items` in order, durably as configured, or raise."""
        ...

    def close(self) -> None:
        """Let go of the file or the connections, once written."""
        ...


class _Writer(Generic[_Item]):
    """Makes records and writes them in order, a batch at a time, on a thread of its own."""

    def __init__(self, sink: _Sink[_Item]) -> None:
        self.sink = sink
        self._queue: queue.SimpleQueue[list[_Pending] | None] = queue.SimpleQueue()
        self._batches: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, data: _Data, *, acknowledged: bool) -> _Ack:
        """Queue `data`, what a record is made of or a gap (from an event loop). When
        `acknowledged`, the future returned is done once it is written (and synced, if
        always); otherwise there is none, and nothing to make or resolve per record. The
        records of one turn of the loop go to the writer thread together: one wake-up of
        it, not one per record."""
        done: _Ack = concurrent.futures.Future() if acknowledged else None
        loop = asyncio.get_running_loop()
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = []
            loop.call_soon(self._hand_over, loop)
        batch.append((data, done))
        return done

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._batches.pop(loop, [])
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="interlock-audit-log",
                                                daemon=True)  # fmt: skip
                self._thread.start()
        if batch:
            self._queue.put(batch)

    def close(self) -> None:
        """Write what is queued, then close the sink (on the writer thread, if it ran)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            self.sink.close()
            return
        self._queue.put(None)
        thread.join()

    def _run(self) -> None:
        """Write what is queued, a batch at a time: one write (flush, commit) per batch."""
        running = True
        while running:
            batches: list[list[_Pending] | None] = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batches) < _BATCH:
                    batches.append(self._queue.get_nowait())
            running = None not in batches
            records = self._made([record for batch in batches if batch is not None
                                  for record in batch])  # fmt: skip
            try:
                self.sink.write([item for item, _ in records])
            # Whatever the sink raises, the thread goes on: a writer that died would leave
            # every later handler waiting. Each record of the batch is reported, none waits.
            except Exception as error:
                logger.error("audit log %s: cannot write %d records: %s", self.sink.where,
                             len(records), error)  # fmt: skip
                for _, future in records:
                    if future is not None:
                        future.set_exception(error)
                continue
            for _, future in records:
                if future is not None:
                    future.set_result(None)
        self.sink.close()

    def _made(self, pending: list[_Pending]) -> list[tuple[_Item, _Ack]]:
        """The records made, in order. One that cannot be made fails alone: its handler
        (with `fsync: always`) or the log says so, and the others are written."""
        made = []
        for data, future in pending:
            try:
                made.append((self.sink.make(data), future))
            except Exception as error:
                what = f"a {data.hook} invocation" if isinstance(data, Seen) else "a gap"
                logger.exception("audit log %s: cannot make the record of %s", self.sink.where,
                                 what)  # fmt: skip
                if future is not None:
                    future.set_exception(error)
        return made


class _FileSink:
    """Appends records as lines to a file: syncing as configured, rotating by size."""

    def __init__(self, path: Path, config: AuditLogConfig) -> None:
        self.path = path
        self.where = str(path)
        self.config = config
        self._file: IO[bytes] | None = None
        self._size = 0
        self._synced = 0.0

    def make(self, data: _Data) -> bytes:
        """The record as a line of JSON."""
        return data.line() if isinstance(data, Seen) else (encode(data) + "\n").encode()

    def write(self, items: list[bytes]) -> None:
        """Append the lines, then flush (and sync, as configured) once."""
        for data in items:
            self._open(len(data)).write(data)
            self._size += len(data)
        self._flush()

    def close(self) -> None:
        """Sync and close the file."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def _flush(self) -> None:
        file = self._file
        if file is None:
            return
        file.flush()
        if self.config.fsync == "always":
            os.fsync(file.fileno())
        elif self.config.fsync == "interval":
            now = time.monotonic()
            if now - self._synced >= self.config.fsync_interval:
                os.fsync(file.fileno())
                self._synced = now

    def _open(self, incoming: int) -> IO[bytes]:
        """The file to append to, rotated first if this record would overflow it."""
        if self._file is not None and self._size and self._size + incoming > self.config.max_bytes:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            self._rotate()
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - held open across records
            self._size = self._file.tell()
        return self._file

    def _rotate(self) -> None:
        """audit.jsonl -> audit.jsonl.1 -> .2 ...; the oldest beyond `keep` goes."""
        keep = self.config.keep
        if keep == 0:
            self.path.unlink(missing_ok=True)
            return
        self.path.with_name(f"{self.path.name}.{keep}").unlink(missing_ok=True)
        for number in range(keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{number + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))


def entry(seen: Seen) -> dict[str, Any]:
    """The audit record of one invocation, from what its background handler saw."""
    result = seen.result
    record: dict[str, Any] = {
        "ts": _timestamp(seen.time),
        "session": seen.session,
        "turn": seen.turn,
        "hook": seen.hook,
        "outcome": outcome(result),
    }
    if result is not None and not result.empty:
        record.update(_what_plugins_did(result))
    record["payload"] = summary(seen.payload)
    return record


def _now() -> str:
    return _timestamp(time.time())


def _timestamp(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def outcome(result: HookResult[Any] | None) -> str:
    """One word for what the plugins decided."""
    if result is None:
        return "continued"
    if result.blocked:
        return "blocked"
    if result.responded:
        return "responded"
    if result.asked:
        return "asked"
    if result.modified:
        return "modified"
    return "failed" if result.errors else "continued"


def _what_plugins_did(result: HookResult[Any]) -> dict[str, Any]:
    done: dict[str, Any] = {}
    if result.modified_by:
        done["modified_by"] = list(result.modified_by)
    if result.blocked_by is not None:
        done["blocked_by"] = result.blocked_by
        done["reason"] = result.reason
    if result.responded_by is not None:
        done["responded_by"] = result.responded_by
    if result.asks:
        done["asks"] = [{"plugin": p, "question": q} for p, q in result.asks]
    if result.errors:
        done["errors"] = [{"plugin": e.plugin, "kind": e.kind, "message": e.message}
                          for e in result.errors]  # fmt: skip
    if result.violations:
        done["violations"] = [{"plugin": v.plugin, "action": v.action, "reason": v.reason}
                              for v in result.violations]  # fmt: skip
    return done


def summary(payload: Any) -> dict[str, Any]:
    """The payload without its content: names kept, text as its length, mappings as their
    keys, sequences as their length, numbers and flags as they are."""
    kind = type(payload)
    names = _FIELDS.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(payload):
            return {"type": kind.__name__}
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(payload))
    out: dict[str, Any] = {"type": kind.__name__}
    for name in names:
        value = getattr(payload, name)
        if isinstance(value, str):
            out[name] = value if name in _NAMES else {"chars": len(value)}
        elif value is None or isinstance(value, bool | int | float):
            out[name] = value
        elif isinstance(value, dict):
            out[name] = {"keys": sorted(value)}
        elif isinstance(value, tuple | list):
            out[name] = {"items": len(value)}
        elif dataclasses.is_dataclass(value):
            out[name] = summary(value)
    return out


_FIELDS: dict[type[Any], tuple[str, ...]] = {}
