"""The session log on PostgreSQL against locks, lost clients, hostile ids and secret URLs.

`postgres_url` (conftest) is a schema of the test's own on the test server. A statement is
made to wait by a lock that a second connection holds and the test releases.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from interlock.cli import app
from interlock.plugins._audit_postgres import PostgresSink
from interlock.plugins.audit_log import AuditLogError
from interlock.runtime import PostgresSessionStore, SessionLogError, open_session_store
from interlock.runtime._store import MAX_ID_BYTES

from .relay import Relay

psycopg = pytest.importorskip("psycopg", reason="needs pip install 'interlock[postgres]'")


def admin(url: str) -> tuple[Any, str]:
    """A plain connection to the test server and the schema the log uses."""
    base, _, schema = url.rpartition("schema=")
    return psycopg.connect(base.rstrip("?&"), autocommit=True), schema


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for the server to reach a state (at most 30 s), looking every 10 ms. The state
    (a backend waiting on a lock) is the server's and sends no event, so it is polled; the
    pause only spaces the looks, nothing waits on time passing."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never {what}")
        time.sleep(0.01)


def waiting(conn: Any, name: str) -> int:
    """How many backends of the application `name` wait for a lock."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
        "AND wait_event_type = 'Lock'",
        (name,),
    ).fetchone()
    return int(row[0])


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[str, str, Relay]]:
    """(the URL through a proxy, with an application_name of its own; that name; the proxy)."""
    conn, schema = admin(postgres_url)
    with conn:
        host, port, user, dbname = conn.info.host, conn.info.port, conn.info.user, conn.info.dbname
    proxy = Relay(host, port)
    name = f"interlock-test-{uuid.uuid4().hex[:8]}"
    url = (f"postgresql://{user}@127.0.0.1:{proxy.port}/{dbname}?sslmode=disable"
           f"&gssencmode=disable&application_name={name}&schema={schema}")  # fmt: skip
    yield url, name, proxy
    proxy.close()


def test_an_attempt_committing_after_its_client_gave_up_is_stored_once(
    postgres_url: str, proxied: tuple[str, str, Relay]
) -> None:
    url, name, proxy = proxied
    store = PostgresSessionStore(url, retry_for=30)
    store.open_session("s")
    locker, schema = admin(postgres_url)
    locker.execute("BEGIN")
    locker.execute(f'LOCK TABLE "{schema}".records IN SHARE ROW EXCLUSIVE MODE')
    appended: list[Any] = []
    writer = threading.Thread(target=lambda: appended.append(store.append("s", "user", {})))
    writer.start()
    with admin(postgres_url)[0] as watcher:
        until(lambda: waiting(watcher, name) == 1, "waited for the lock")
        proxy.cut()  # the client gives up; the first attempt's backend waits on
        until(lambda: waiting(watcher, name) == 2, "retried")
    locker.execute("COMMIT")  # both backends go on: the first commits, the retry finds it
    locker.close()
    writer.join(30)
    assert [r.seq for r in store.records("s")] == [1] == [r.seq for r in appended]
    store.close()


def test_an_append_behind_a_lock_fails_within_retry_for(postgres_url: str) -> None:
    store = PostgresSessionStore(postgres_url, retry_for=0.5)
    store.open_session("s")
    locker, schema = admin(postgres_url)
    locker.execute("BEGIN")
    locker.execute(f'LOCK TABLE "{schema}".records IN ACCESS EXCLUSIVE MODE')
    failed: list[BaseException] = []

    def append() -> None:
        try:
            store.append("s", "user", {})
        except SessionLogError as error:
            failed.append(error)

    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    writer.join(30)
    alive = writer.is_alive()
    locker.execute("COMMIT")
    locker.close()
    assert not alive and len(failed) == 1
    assert "a statement timed out waiting" in str(failed[0])
    assert "look for a transaction holding a lock" in str(failed[0])
    store.close()


def test_a_busy_pool_says_so(postgres_url: str) -> None:
    store = PostgresSessionStore(postgres_url, retry_for=0.3, pool_size=1)
    holding, release = threading.Event(), threading.Event()

    def hold(conn: Any, attempt: int) -> None:
        holding.set()
        release.wait(30)

    holder = threading.Thread(target=lambda: store._db.run("hold", hold))
    holder.start()
    holding.wait(30)
    with pytest.raises(SessionLogError, match=r"its 1 connection stayed busy for 0\.3 s; raise"):
        store.sessions()
    release.set()
    holder.join(30)
    store.close()


def test_only_failures_that_may_pass_are_tried_again(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_session_store(postgres_url)
    attempts: list[int] = []

    def raising(code: str, times: int) -> Callable[[Any, int], None]:
        def work(conn: Any, attempt: int) -> None:
            attempts.append(attempt)
            if attempt <= times:
                message = "x" * 5000  # the server quotes what it refused, however long
                conn.execute(
                    f"DO $$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{code}'; END $$"
                )

        return work

    with pytest.raises(SessionLogError) as caught:  # a row over the index limit: for good
        store._db.run("write", raising("54000", 1))
    assert attempts == [1] and len(str(caught.value)) < 500
    attempts.clear()
    with caplog.at_level(logging.WARNING, logger="interlock.postgres"):
        store._db.run("write", raising("40001", 1))  # a serialization failure: passes
    assert attempts == [1, 2]
    assert "a transaction lost a race" in caplog.text and "connection" not in caplog.text
    store.close()


def test_a_session_id_too_long_for_an_index_is_refused_in_both_backends(
    postgres_url: str, tmp_path: Path
) -> None:
    longest = "é" * (MAX_ID_BYTES // 2)
    for store in (open_session_store(postgres_url), open_session_store(tmp_path / "log.db")):
        assert store.open_session(longest)
        store.append(longest, "user", {})
        with pytest.raises(ValueError, match=r"is 1,002 bytes long; use at most 1,000"):
            store.open_session(longest + "é")
        store.close()


def test_both_logs_creating_one_schema_take_turns(postgres_url: str) -> None:
    locker, schema = admin(postgres_url)
    locker.execute("BEGIN")
    locker.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"interlock schema {schema}",))
    opened: list[Any] = []
    sink = PostgresSink(postgres_url, retry_for=10)
    openers = [
        threading.Thread(target=lambda: opened.append(open_session_store(postgres_url))),
        threading.Thread(target=lambda: opened.append(sink._database())),
    ]
    for opener in openers:
        opener.start()
    with admin(postgres_url)[0] as watcher:
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        until(lambda: watcher.execute(query).fetchone()[0] == 2, "both waited for the schema")
    locker.execute("COMMIT")
    locker.close()
    for opener in openers:
        opener.join(30)
    assert len(opened) == 2
    for log in opened:
        log.close()


def test_a_writer_without_create_writes_to_current_tables(postgres_url: str) -> None:
    open_session_store(postgres_url).close()  # created by the owner
    role = f"interlock_writer_{uuid.uuid4().hex[:8]}"
    conn, schema = admin(postgres_url)
    with conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')  # no CREATE on the database
        try:
            conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
            conn.execute(
                f'GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'
            )
            url = postgres_url.replace(f"://{conn.info.user}@", f"://{role}@", 1)
            store = open_session_store(url)
            store.open_session("s")
            assert store.append("s", "user", {}).seq == 1
            store.close()
        finally:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_psycopg_pool_says_nothing_of_a_connection_it_discards(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"interlock-test-{uuid.uuid4().hex[:8]}"
    store = open_session_store(f"{postgres_url}&application_name={name}")
    store.open_session("s")
    with admin(postgres_url)[0] as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (name,),
        )
    store.append("s", "user", {})  # the pool discards the dead connection
    store.close()
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]


SECRET = "s3#c/r?t"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ada:{secret}@127.0.0.1:{port}/test",  # unescaped # / ?
        "postgresql://ada:s3?c#r@127.0.0.1:{port}/test",  # unescaped # ?
        "postgresql://ada@127.0.0.1:{port}/test?sslpassword={secret}",
        "postgresql://ada@127.0.0.1:{port}/test?password={secret}&schema=x",
        "postgresql://ada@127.0.0.1:{port}/test?Password={secret}",
        "postgres://ada@127.0.0.1:{port}/test?passfile={secret}",
        "host=127.0.0.1 port={port} password={secret}",
    ],
)
def test_no_password_is_shown(url: str, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    unreachable = socket.socket()
    unreachable.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    url = url.format(secret=SECRET, port=unreachable.getsockname()[1])
    for opening in (
        lambda: PostgresSessionStore(url, retry_for=0.2),
        lambda: PostgresSink(url, retry_for=0.2)._database(),
    ):
        with pytest.raises((SessionLogError, AuditLogError)) as caught:
            opening()
        assert "s3" not in str(caught.value) and "s3" not in repr(caught.value)
    config = tmp_path / "interlock.yaml"
    config.write_text(
        "plugins: [{name: audit, use: audit-log, config: {url: '${URL}', retry_for: 0.2}}]"
    )
    checked = CliRunner(env={"URL": url}).invoke(app, ["check", str(config)])
    unreachable.close()
    assert "s3" not in checked.output
    assert "s3" not in caplog.text
