"""audit_log on PostgreSQL: the file's records, committed in order, batched, over faults.

`postgres_url` (tests/conftest.py) is a schema of the test's own on the test server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from interlock import PluginManager, ToolCall, hooks
from interlock.config import load_config_text
from interlock.plugins._audit_postgres import PostgresSink
from interlock.plugins.audit_log import AuditLog, AuditLogConfig, AuditLogError
from interlock.runtime import Step, open_session_store

from .helpers import run

psycopg = pytest.importorskip("psycopg", reason="needs pip install 'interlock[postgres]'")

CONFIG = """
plugins:
  - name: audit-file
    use: audit-log
    config: {{path: "{path}", fsync: always}}
  - name: audit-db
    use: audit-log
    config: {{url: "${{AUDIT_URL}}", fsync: always}}
  - name: tool-guard
    use: tool-guard
    config: {{rules: [{{deny: {{program: rm}}, reason: no deleting}}]}}
  - name: content-policy
    use: content-policy
"""


def admin(url: str) -> tuple[Any, str]:
    """A plain connection to the test server and the schema the log uses."""
    base, _, schema = url.rpartition("schema=")
    return psycopg.connect(base.rstrip("?&"), autocommit=True), schema


def stored(url: str, columns: str = "record", where: str = "TRUE") -> list[Any]:
    """The rows of the audit table, in the order written, read on a connection of its own."""
    conn, schema = admin(url)
    with conn:
        query = f'SELECT {columns} FROM "{schema}".audit_records WHERE {where} ORDER BY log, seq'
        return conn.execute(query).fetchall()


async def a_session(url: str, tmp_path: Path, session_id: str = "s-1") -> Path:
    """A session through the runtime with the log in a file and in the database."""
    path = tmp_path / f"{session_id}.jsonl"
    manager = load_config_text(CONFIG.format(path=path), environ={"AUDIT_URL": url})
    script = [Step(tool_calls=(("shell", {"command": "rm -rf /"}),)), "mail ada@example.com"]
    prompts = ["hi, I am ada@example.com"]
    await run([], script, prompts, manager=manager, session_id=session_id)  # closes: drains
    return path


def untimed(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "ts"}


async def test_records_land_in_order_as_the_file_writes_them(
    postgres_url: str, tmp_path: Path
) -> None:
    path = await a_session(postgres_url, tmp_path)
    in_file = [json.loads(line) for line in path.read_text().splitlines()]
    in_table = stored(postgres_url, "record, time")
    # Each log notes when its own handler ran: the times may differ by a millisecond.
    assert [untimed(row[0]) for row in in_table] == [untimed(r) for r in in_file]
    assert len(in_file) == 11
    assert all(time.isoformat(timespec="milliseconds") == r["ts"] for r, time in in_table)
    [blocked] = stored(
        postgres_url,
        "kind, session_id, turn, hook, outcome, plugins, reason",
        "outcome = 'blocked'",
    )
    assert blocked == ("record", "s-1", 1, "pre_tool_call", "blocked", ["tool-guard"],
                       in_file[4]["reason"])  # fmt: skip
    assert [row[0] for row in stored(postgres_url, "seq")] == list(range(1, 12))


async def test_a_record_is_committed_before_its_handler_returns(postgres_url: str) -> None:
    manager = PluginManager()
    manager.register(AuditLog(AuditLogConfig(url=postgres_url, fsync="always")))
    for number in range(20):
        await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("tool", {}, f"call-{number}"))
        await manager.drain()  # the handler returned: its record is committed
        assert len(stored(postgres_url)) == number + 1
    await manager.aclose()


class Faults:
    """Counts the audit log's INSERTs and, when told, holds one, fails them, or drops the
    connection before or after one, by wrapping psycopg's `Connection.execute`."""

    def __init__(self, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.url = url
        self.inserts = 0
        self.started, self.release = threading.Event(), threading.Event()
        self.release.set()
        self.kill_before: set[int] = set()  # inserts that find their connection killed
        self.kill_after: set[int] = set()  # inserts committed whose answer is lost
        self.fail = False  # every insert fails as if the server were unreachable
        execute = psycopg.Connection.execute
        faults = self

        def counted(conn: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if not (str(query).startswith("INSERT") and "audit_records" in str(query)):
                return execute(conn, query, *args, **kwargs)
            faults.inserts += 1
            number = faults.inserts
            faults.started.set()
            faults.release.wait()
            if faults.fail:
                raise psycopg.OperationalError("connection refused (a test's outage)")
            if number in faults.kill_before:
                faults.terminate(conn.info.backend_pid)
            done = execute(conn, query, *args, **kwargs)  # committed (autocommit)
            if number in faults.kill_after:
                faults.kill_after.discard(number)
                faults.terminate(conn.info.backend_pid)
                raise psycopg.OperationalError("the connection dropped before the answer came")
            return done

        monkeypatch.setattr(psycopg.Connection, "execute", counted)

    def terminate(self, pid: int) -> None:
        conn, _ = admin(self.url)
        with conn:  # returns once the backend is gone (waits up to 5 s)
            [(done,)] = conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchall()
        assert done


async def waited(event: threading.Event) -> None:
    """Wait for `event` (set on another thread) without holding up the event loop."""
    assert await asyncio.to_thread(event.wait, 10)


async def test_many_records_go_in_few_statements(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = Faults(postgres_url, monkeypatch)
    faults.release.clear()
    manager = PluginManager()
    manager.register(AuditLog(AuditLogConfig(url=postgres_url, fsync="never")))
    await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("tool", {}, "call-0"))
    await manager.drain()
    try:
        await waited(faults.started)  # the writer holds the first record's INSERT
        for number in range(1, 300):  # meanwhile, each record queued on a turn of its own
            await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("tool", {}, f"call-{number}"))
            await manager.drain()
    finally:
        faults.release.set()
    await manager.aclose()
    assert [row[0]["payload"]["call_id"] for row in stored(postgres_url)] == [
        f"call-{n}" for n in range(300)
    ]
    # The first alone, then the other 299 hand-overs, up to 64 a batch: 5 batches.
    assert faults.inserts <= 6


async def test_a_dropped_connection_loses_nothing_and_doubles_nothing(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"interlock-test-{uuid.uuid4().hex[:8]}"
    faults = Faults(postgres_url, monkeypatch)
    faults.kill_before = {10}  # the connection is gone when the INSERT is sent
    faults.kill_after = {15}  # committed, and the writer never learns it
    manager = PluginManager()
    url = f"{postgres_url}&application_name={name}"
    manager.register(AuditLog(AuditLogConfig(url=url, fsync="always")))
    for number in range(20):
        if number == 5:  # killed while idle, between batches
            conn, _ = admin(postgres_url)
            with conn:
                killed = conn.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (name,),
                ).fetchall()
            assert killed == [(True,)]
        await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("tool", {}, f"call-{number}"))
        await manager.drain()
    await manager.aclose()
    rows = stored(postgres_url, "seq, record")
    assert [(seq, record["payload"]["call_id"]) for seq, record in rows] == [
        (n + 1, f"call-{n}") for n in range(20)
    ]
    assert faults.kill_after == set()  # that fault happened
    assert manager.stats().get("audit-log", "pre_tool_call").errors == 0


async def test_an_outage_past_retry_for_fails_the_handler_and_the_log_goes_on(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    faults = Faults(postgres_url, monkeypatch)
    manager = PluginManager()
    manager.register(AuditLog(AuditLogConfig(url=postgres_url, fsync="always", retry_for=0.2)))
    faults.fail = True
    await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("tool", {}, "call-0"))
    await manager.drain()
    faults.fail = False
    await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("tool", {}, "call-1"))
    await manager.drain()
    await manager.aclose()
    assert [row[0]["payload"]["call_id"] for row in stored(postgres_url)] == ["call-1"]
    assert manager.stats().get("audit-log", "pre_tool_call").errors == 1
    assert "cannot write 1 records in the audit log at" in caplog.text
    assert "check that the server is up and reachable" in caplog.text


def write_a_gap(url: str, retry_for: float = 10) -> None:
    """Open the log's sink and write one gap record: its first batch connects it."""
    sink = PostgresSink(url, retry_for=retry_for)
    try:
        now = "2026-01-01T00:00:00+00:00"
        sink.write([sink.make({"gap": 1, "from": now, "to": now, "hooks": {}})])
    finally:
        sink.close()


def test_an_unreachable_database_is_named_without_its_password() -> None:
    unreachable = socket.socket()
    unreachable.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = unreachable.getsockname()[1]
    url = f"postgresql://ada:s3cret@127.0.0.1:{port}/test?schema=audit"
    # Loading the configuration (`interlock check`) does not connect: no wait, no error.
    load_config_text(
        "plugins: [{name: audit, use: audit-log, config: {url: '${URL}', retry_for: 120}}]",
        environ={"URL": url},
    ).close()
    with pytest.raises(AuditLogError) as caught:  # the first batch connects
        write_a_gap(url, retry_for=0.3)
    message = str(caught.value)
    assert "cannot create or migrate its tables in the audit log at" in message
    assert caught.value.sink == f"postgresql://ada@127.0.0.1:{port}/test?schema=audit"
    assert caught.value.sink in message and "s3cret" not in message
    unreachable.close()


async def test_queries_by_session_plugin_and_outcome_use_the_columns(
    postgres_url: str, tmp_path: Path
) -> None:
    for session in ("s-1", "s-2"):
        await a_session(postgres_url, tmp_path, session)
    records = [row[0] for row in stored(postgres_url)]
    by_session = stored(postgres_url, "record", "session_id = 's-2'")
    assert [row[0] for row in by_session] == [r for r in records if r["session"] == "s-2"]
    by_plugin = stored(postgres_url, "record", "plugins @> ARRAY['content-policy']")
    redacted = [r for r in records if "content-policy" in r.get("modified_by", ())]
    assert [row[0] for row in by_plugin] == redacted
    assert [r["hook"] for r in redacted[:2]] == ["message_received", "post_llm_call"]
    blocked = stored(postgres_url, "session_id", "outcome = 'blocked'")
    assert sorted(blocked) == [("s-1",), ("s-2",)]  # two logs (writers): no order between
    conn, schema = admin(postgres_url)
    with conn:
        conn.execute("SET enable_seqscan = off")  # a few rows: the planner would scan them
        for where, index in (
            ("session_id = 's-2'", "audit_records_session"),
            ("plugins @> ARRAY['tool-guard']", "audit_records_plugins"),
            ("outcome = 'blocked'", "audit_records_outcome"),
        ):
            plan = conn.execute(f'EXPLAIN SELECT * FROM "{schema}".audit_records WHERE {where}')
            assert index in "\n".join(row[0] for row in plan)


def test_dropped_records_are_stored_as_gap_rows(postgres_url: str) -> None:
    manager = PluginManager()
    plugin = AuditLog(AuditLogConfig(url=postgres_url, hooks=["pre_tool_call"]))
    manager.register(plugin)
    plugin.background_dropped("pre_tool_call", 3)  # as the manager does when full
    manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("tool", {}, "call-3"))
    assert manager.drain_sync(timeout=10)
    plugin.background_dropped("pre_tool_call", 2)  # trailing: written at close
    manager.close()
    rows = stored(postgres_url, "kind, hook, record")
    assert [(kind, hook, record.get("gap")) for kind, hook, record in rows] == [
        ("gap", None, 3), ("record", "pre_tool_call", None), ("gap", None, 2)
    ]  # fmt: skip
    assert rows[0][2]["hooks"] == {"pre_tool_call": 3}


def test_its_tables_sit_beside_the_session_log_versioned_apart(postgres_url: str) -> None:
    open_session_store(postgres_url).close()
    AuditLog(AuditLogConfig(url=postgres_url))  # connects on its first batch: nothing yet
    conn, schema = admin(postgres_url)
    with conn:
        found = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".audit_schema_version',))
        assert found.fetchone() == (None,)
    write_a_gap(postgres_url)  # created and migrated
    write_a_gap(postgres_url)  # migrates nothing
    conn, schema = admin(postgres_url)
    with conn:
        for table, versions in (("schema_version", [(1,), (2,)]), ("audit_schema_version", [(1,)])):
            assert conn.execute(f'SELECT version FROM "{schema}".{table}').fetchall() == versions
        conn.execute(f'INSERT INTO "{schema}".audit_schema_version VALUES (2, 0)')
    with pytest.raises(AuditLogError, match="has schema version 2; this interlock knows up to 1"):
        write_a_gap(postgres_url)
    open_session_store(postgres_url).close()  # the session log's version is its own


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        ({}, "give the audit log a file \\(path:\\) or a PostgreSQL database \\(url:\\)"),
        ({"path": "a.jsonl", "url": "postgresql://db/x"}, "one of the two"),
        ({"url": "postgresql://db/x", "max_bytes": 10}, "max_bytes does not apply to an audit"),
        ({"path": "a.jsonl", "retry_for": 1}, "retry_for does not apply to an audit log in a"),
    ],
)
def test_the_config_names_one_sink_and_only_its_options(
    config: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        AuditLog(AuditLogConfig(**config))


def test_records_not_waited_for_are_written_at_close(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    manager = PluginManager()
    manager.register(AuditLog(AuditLogConfig(url=postgres_url, fsync="never")))
    for number in range(50):
        manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("tool", {}, f"call-{number}"))
    manager.close()
    assert len(stored(postgres_url)) == 50
    assert "audit log" not in caplog.text


def test_a_session_id_too_long_for_an_index_fails_no_batch(postgres_url: str) -> None:
    sink = PostgresSink(postgres_url, retry_for=10)
    hostile, other = "x" * 9_000, "x" * 8_999 + "y"
    now = "2026-01-01T00:00:00+00:00"
    rows = [sink.make({"ts": now, "session": s, "hook": "pre_tool_call"}) for s in (hostile, other)]
    sink.write([*rows, sink.make({"ts": now, "session": "s", "hook": "pre_tool_call"})])
    sink.close()
    stored_rows = stored(postgres_url, "session_id, record")
    assert [record["session"] for _, record in stored_rows] == [hostile, other, "s"]  # whole
    short = [column for column, _ in stored_rows]
    assert short[2] == "s" and short[0] != short[1]  # cut, told apart by the hash
    assert all(len(column.encode()) <= 1_000 for column in short)
