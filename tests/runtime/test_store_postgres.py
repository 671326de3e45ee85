"""The session log on PostgreSQL: migrations, faults, and the command line on it.

What both backends share is tested in test_store.py; `postgres_url` (conftest) is a schema
of the test's own on the test server.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from typer.testing import CliRunner

from interlock.cli import app
from interlock.runtime import PostgresSessionStore, SessionLogError, open_session_store

from ..conftest import POSTGRES
from .relay import Relay

psycopg = pytest.importorskip("psycopg", reason="needs pip install 'interlock[postgres]'")


def tables(url: str) -> Any:
    """A plain connection to the test server and the schema the store uses."""
    base, _, schema = url.rpartition("schema=")
    return psycopg.connect(base.rstrip("?&"), autocommit=True), schema


def test_tables_are_created_once_and_versioned(postgres_url: str) -> None:
    open_session_store(postgres_url).close()
    store = open_session_store(postgres_url)  # a second opening migrates nothing
    store.close()
    conn, schema = tables(postgres_url)
    with conn:
        versions = conn.execute(f'SELECT version FROM "{schema}".schema_version').fetchall()
        assert versions == [(1,), (2,)]
        conn.execute(f'INSERT INTO "{schema}".schema_version VALUES (3, 0)')
    with pytest.raises(SessionLogError, match="has schema version 3; this interlock knows up to 2"):
        open_session_store(postgres_url)


def test_the_url_names_the_schema_and_hides_the_password(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(SessionLogError, match="'Bad-Name' in the session log URL is not a plain"):
        PostgresSessionStore("postgresql://db/agents?schema=Bad-Name")
    with pytest.raises(SessionLogError, match=r"not a PostgreSQL URL libpq accepts: .*bogus"):
        PostgresSessionStore("postgresql://ada:s3cret@db/agents?bogus=1")
    unreachable = socket.socket()
    unreachable.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = unreachable.getsockname()[1]
    with pytest.raises(SessionLogError) as caught:
        PostgresSessionStore(f"postgresql://ada:s3cret@127.0.0.1:{port}/test", retry_for=0.3)
    unreachable.close()
    message = str(caught.value)
    assert "cannot create or migrate its tables in the session log at" in message
    assert f"postgresql://ada@127.0.0.1:{port}/test" in message and "s3cret" not in message
    # One line: the cause, the connection attempts made, what to check.
    assert "\n" not in message and "Connection refused" in message
    assert re.search(r"\(tried [1-9]\d* times? in 0\.3 s\); check that the server is up", message)
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]  # folded into ours


def server_url(database: str, user: str | None = None) -> str:
    """The test server's URL, naming `database` (and `user`)."""
    parts = urlsplit(POSTGRES)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}@{host}" if user is not None else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


@pytest.mark.usefixtures("postgres_url")  # skips without a server
def test_a_server_refusing_for_good_fails_at_once_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # retry_for is far above the time the refusals take: they are not tried again.
    name = f"interlock_missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(SessionLogError) as caught:
        PostgresSessionStore(server_url(name), retry_for=120)
    assert str(caught.value) == (
        f"cannot create or migrate its tables in the session log at {server_url(name)}: the "
        f'server refuses: database "{name}" does not exist; fix the URL (user, password, '
        "database)"
    )
    nobody = server_url("test", user="interlock_nobody")
    with pytest.raises(SessionLogError, match='the server refuses: role "interlock_nobody" does'):
        open_session_store(nobody, create=False)
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]


def test_a_reader_creates_nothing_and_says_there_is_no_log(postgres_url: str) -> None:
    conn, schema = tables(postgres_url)
    conn.close()
    with pytest.raises(SessionLogError, match=f"no session log at .*: schema {schema} holds no"):
        open_session_store(postgres_url, create=False)
    cli = CliRunner(env={"INTERLOCK_STORE": postgres_url, "COLUMNS": "200"})
    for args in (["log"], ["log", "--json"], ["log", "s"], ["plugins", "--session", "s"]):
        out = cli.invoke(app, args)
        assert out.exit_code == 1 and f"schema {schema} holds no interlock tables" in out.output
    with tables(postgres_url)[0] as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        assert found.fetchone() is None  # not created
    writer = open_session_store(postgres_url)
    writer.open_session("s")
    writer.close()
    reader = open_session_store(postgres_url, create=False)
    assert [s.id for s in reader.sessions()] == ["s"]
    reader.close()
    with tables(postgres_url)[
        0
    ] as conn:  # a log this interlock would migrate: a reader leaves it as it is
        conn.execute(f'DELETE FROM "{schema}".schema_version')
    with pytest.raises(SessionLogError, match="has schema version 0; this interlock reads version"):
        open_session_store(postgres_url, create=False)


def test_a_dropped_connection_loses_nothing_and_duplicates_nothing(postgres_url: str) -> None:
    name = f"interlock-test-{uuid.uuid4().hex[:8]}"
    store = open_session_store(f"{postgres_url}&application_name={name}")
    store.open_session("s")
    store.append("s", "user", {"content": "one"})
    admin, _ = tables(postgres_url)
    with admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (name,),
        ).fetchall()
    assert killed and all(row == (True,) for row in killed)
    store.append("s", "user", {"content": "two"})  # on a fresh connection
    assert [(r.seq, r.data["content"]) for r in store.records("s")] == [(1, "one"), (2, "two")]
    store.close()


def test_a_retried_append_whose_first_attempt_committed_is_stored_once(postgres_url: str) -> None:
    conn, schema = tables(postgres_url)
    with conn:
        host, port, user, dbname = conn.info.host, conn.info.port, conn.info.user, conn.info.dbname
    proxy = Relay(host, port)
    url = (f"postgresql://{user}@127.0.0.1:{proxy.port}/{dbname}"
           f"?sslmode=disable&gssencmode=disable&schema={schema}")  # fmt: skip
    committed: list[Any] = []
    store = open_session_store(url, on_commit=committed.append)
    store.open_session("s")
    proxy.armed.set()
    record = store.append("s", "user", {"content": "once"})
    assert proxy.dropped.is_set()  # the first attempt's answer never arrived
    assert store.records("s") == [record] == committed
    assert record.seq == 1
    store.close()
    proxy.close()


def test_two_stores_writing_one_session_share_its_sequence(postgres_url: str) -> None:
    first, second = open_session_store(postgres_url), open_session_store(postgres_url)
    first.open_session("s")
    start = threading.Barrier(2)

    def write(store: Any, name: str) -> None:
        start.wait()
        for i in range(30):
            store.append("s", "hook", {"by": name, "i": i})

    threads = [
        threading.Thread(target=write, args=(s, n)) for s, n in ((first, "a"), (second, "b"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = first.records("s")
    assert [r.seq for r in records] == list(range(1, 61))
    for name in "ab":
        assert [r.data["i"] for r in records if r.data["by"] == name] == list(range(30))
    first.close()
    second.close()


def test_appending_to_a_session_never_opened_is_refused(postgres_url: str) -> None:
    store = open_session_store(postgres_url)
    with pytest.raises(SessionLogError, match="no session 'ghost' in the session log at"):
        store.append("ghost", "user", {"content": "boo"})
    store.close()
    with pytest.raises(SessionLogError, match="is closed; cannot list the sessions"):
        store.sessions()


def test_the_command_line_runs_and_reads_a_postgres_log(postgres_url: str) -> None:
    cli = CliRunner(env={"INTERLOCK_STORE": postgres_url, "COLUMNS": "200"})
    out = cli.invoke(app, ["run", "hello", "--session", "pg-1", "--no-trace"])
    assert out.exit_code == 0, out.output
    listed = json.loads(cli.invoke(app, ["log", "--json"]).output)
    assert [s["id"] for s in listed] == ["pg-1"]
    shown = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["log", "pg-1", "--store", postgres_url])
    assert shown.exit_code == 0 and "You said: hello" in shown.output
    missing = cli.invoke(app, ["log", "nope"])
    assert missing.exit_code == 1
    assert f"no session 'nope' in {postgres_url}" in missing.output
    unknown = cli.invoke(app, ["run", "hi", "--store", "mysql://db/agents"])
    assert unknown.exit_code == 1 and "mysql:// is no session log" in unknown.output
