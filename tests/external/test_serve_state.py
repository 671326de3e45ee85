"""`interlock serve --http --state URL`: replicas behind a load balancer share sessions' state.

Sessions' `ctx.state` lives in the store, so calls of one session may reach any replica;
a session runs on one replica at a time; a store that fails fails the call with the
reason (gates closed). Also: `serve --stdio` reading a file or /dev/null ends at its end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import interlock
from interlock import Modify, PluginManager, SessionEnd, SessionInfo, ToolCall, hooks
from interlock.cli import app
from interlock.external import HttpTransport, PluginServer, connect
from interlock.external._served_state import IDLE
from interlock.store import MemoryStore, StateStore, key, open_store

from ..store.test_faults import Server
from .conftest import ENV, ROOT, Served, serve_command
from .test_http import closed_port

BOUND = 60.0  # the most any one wait here may take before the test fails; never reached


def invoke(hook: str, payload: dict[str, Any], session: str = "s-1") -> dict[str, Any]:
    context = {"session": {"id": session}}
    params = {"hook": hook, "payload": payload, "context": context}
    return {"jsonrpc": "2.0", "id": 1, "method": "invoke", "params": params}


def tool_call(session: str = "s-1") -> dict[str, Any]:
    return invoke("pre_tool_call", {"tool_name": "shell", "arguments": {}}, session)


def seen(answer: dict[str, Any] | None) -> int:
    assert answer is not None and "result" in answer, answer
    return int(answer["result"]["action"]["payload"]["arguments"]["seen"])


class Count(interlock.Plugin):
    """Counts calls per session; tool "wait" waits, inside the handler, for `release`."""

    name = "count"

    def __init__(self, log: list[str] | None = None) -> None:
        self.log = log if log is not None else []
        self.inside = asyncio.Event()
        self.release = asyncio.Event()

    async def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        self.log.append(f"in {call.tool_name}")
        if call.tool_name == "wait":
            self.inside.set()
            await self.release.wait()
        count = ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        self.log.append(f"out {call.tool_name}")
        return Modify(call.replace(arguments={"seen": count}))

    def on_session_end(self, payload: Any, ctx: interlock.HookContext) -> None:
        return None


def replicas(store: StateStore, n: int = 2) -> list[PluginServer]:
    return [PluginServer(Count(), state=store) for _ in range(n)]


# -- in process: servers sharing one store ------------------------------------------------


async def test_servers_sharing_a_store_continue_each_others_sessions() -> None:
    store = MemoryStore(deployment="d", plugin="count")
    a, b = replicas(store)
    counts = [seen(await server.handle(tool_call(), caller="host")) for server in [a, b] * 3]
    assert counts == [1, 2, 3, 4, 5, 6]
    assert seen(await b.handle(tool_call("s-2"), caller="host")) == 1  # sessions apart
    assert seen(await a.handle(tool_call(), caller="another host")) == 1  # callers apart
    assert seen(await a.handle(tool_call(), caller="host")) == 7
    await a.aclose()
    await b.aclose()


async def test_without_a_store_each_server_has_its_own_half_of_a_session() -> None:
    a, b = PluginServer(Count()), PluginServer(Count())
    counts = [seen(await server.handle(tool_call(), caller="host")) for server in [a, b] * 2]
    assert counts == [1, 1, 2, 2]  # what --state is for


class Watched(MemoryStore):
    """A memory store that says when a server looks at a lease another one holds."""

    def __init__(self) -> None:
        super().__init__(deployment="d", plugin="count")
        self.waiting = asyncio.Event()

    async def get(self, key: str) -> str | None:
        value = await super().get(key)
        if key.endswith(":lease") and value not in (None, "free"):
            self.waiting.set()
        return value


async def test_a_session_runs_on_one_server_at_a_time() -> None:
    store = Watched()
    log: list[str] = []
    first, second = Count(log), Count(log)
    a, b = PluginServer(first, state=store), PluginServer(second, state=store)
    waiting = asyncio.ensure_future(
        a.handle(invoke("pre_tool_call", {"tool_name": "wait"}), caller="host")
    )
    await asyncio.wait_for(first.inside.wait(), BOUND)
    other = asyncio.ensure_future(b.handle(tool_call(), caller="host"))
    await asyncio.wait_for(store.waiting.wait(), BOUND)  # b waits for a's lease
    assert not other.done()
    first.release.set()
    assert seen(await asyncio.wait_for(waiting, BOUND)) == 1
    assert seen(await asyncio.wait_for(other, BOUND)) == 2  # after a's call, with its state
    assert log == ["in wait", "out wait", "in shell", "out shell"]
    await a.aclose()
    await b.aclose()


async def test_session_end_deletes_the_sessions_keys() -> None:
    store = MemoryStore(deployment="d", plugin="count")
    a, b = replicas(store)
    assert seen(await a.handle(tool_call(), caller="host")) == 1
    base = key("session", "host", "s-1")
    assert await store.get(f"{base}:state") == '{"count":{"seen":1}}'
    ended = await b.handle(invoke("session_end", {"session_id": "s-1"}), caller="host")
    assert ended is not None and "result" in ended, ended
    assert await store.get(f"{base}:state") is None
    assert await store.get(f"{base}:lease") is None
    assert seen(await a.handle(tool_call(), caller="host")) == 1  # a new session
    await a.aclose()
    await b.aclose()


class Tags(interlock.Plugin):
    """Keeps a set in ctx.state: fine in one process, not in a shared store."""

    name = "tags"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> None:
        ctx.state.setdefault("tools", set()).add(call.tool_name)


async def test_state_json_cannot_hold_fails_the_call_naming_the_plugin_and_the_fix() -> None:
    store = MemoryStore(deployment="d", plugin="tags")
    server = PluginServer(Tags(), state=store)
    answer = await server.handle(tool_call(), caller="host")
    assert answer is not None
    message = answer["error"]["message"]
    assert message.startswith("plugin 'tags', session 's-1': ctx.state['tools'] (a set) ")
    assert "--state" in message and "dicts with text keys, lists" in message
    assert await store.get(key("session", "host", "s-1") + ":state") is None  # not saved
    await server.aclose()


async def test_an_unreachable_store_fails_the_call_with_its_url_and_no_password() -> None:
    pytest.importorskip("redis", reason="needs pip install 'interlock[redis]'")
    port = closed_port()
    store = open_store(f"redis://:pa55word@127.0.0.1:{port}/0", deployment="d", plugin="count")
    server = PluginServer(Count(), state=store)
    answer = await server.handle(tool_call(), caller="host")
    assert answer is not None
    message = answer["error"]["message"]
    assert message.startswith(f"plugin 'count', session 's-1': state store "
                              f"redis://***@127.0.0.1:{port}/0 is unreachable (")  # fmt: skip
    assert "pa55word" not in message
    await server.aclose()


# -- real replicas on the shared Redis ------------------------------------------------------


def served_by(result: Any) -> tuple[int, int]:
    assert not result.errors, result.errors
    arguments = result.payload.arguments
    return int(arguments["seen"]), int(arguments["served_by"])


def host(*urls: str) -> PluginManager:
    manager = PluginManager()
    manager.register(connect(HttpTransport(list(urls), name="tally"), name="tally"), timeout=BOUND)
    return manager


async def tool(manager: PluginManager, session: str = "s-1") -> Any:
    call = ToolCall("shell", {"command": "ls"})
    return await manager.invoke(hooks.PRE_TOOL_CALL, call, session=SessionInfo(session))


async def test_replicas_keep_one_count_and_the_survivor_carries_on(
    serve_http: Callable[..., Served], shared_redis: tuple[str, str]
) -> None:
    url, deployment = shared_redis
    state = ("--state", url, "--deployment", deployment)
    a, b = serve_http("Tally", *state), serve_http("Tally", *state)
    manager = host(a.url, b.url)
    try:
        first = [served_by(await tool(manager)) for _ in range(6)]
        assert [n for n, _ in first] == [1, 2, 3, 4, 5, 6]
        pids = [pid for _, pid in first]
        assert pids in ([a.pid, b.pid] * 3, [b.pid, a.pid] * 3)  # alternating

        # The state's key expires when the session goes idle; the lease was given back.
        base = f"interlock:{deployment}:tally:" + key("session", "peer 127.0.0.1", "s-1")
        assert 0 < redis_ttl(url, f"{base}:state") <= IDLE
        assert redis_get(url, f"{base}:lease") == "free"

        os.kill(a.pid, signal.SIGKILL)
        a.process.wait()
        rest = [served_by(await tool(manager)) for _ in range(6)]
        assert rest == [(n, b.pid) for n in range(7, 13)]  # none lost, none counted twice

        ended = await manager.invoke(
            hooks.SESSION_END, SessionEnd("s-1"), session=SessionInfo("s-1")
        )
        assert not ended.errors, ended.errors
        assert redis_get(url, f"{base}:state") is None and redis_get(url, f"{base}:lease") is None
        assert served_by(await tool(manager)) == (1, b.pid)  # ended: a new session
    finally:
        await manager.aclose()


def redis_ttl(url: str, name: str) -> float:
    import redis

    with redis.Redis.from_url(url) as client:
        return float(client.pttl(name)) / 1000


def redis_get(url: str, name: str) -> str | None:
    import redis

    with redis.Redis.from_url(url, decode_responses=True) as client:
        value = client.get(name)
        return None if value is None else str(value)


# -- the store goes away and comes back -----------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[Server]:
    """A redis-server of this test's own, to kill and start again (killed by its pid)."""
    pytest.importorskip("redis", reason="needs pip install 'interlock[redis]'")
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server program")
    server = Server(closed_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_a_store_that_goes_away_blocks_gates_with_the_reason_and_calls_resume_after(
    serve_http: Callable[..., Served], own_redis: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLOCK_STATE", own_redis.url)  # what --state falls back on
    a, b = serve_http("Tally"), serve_http("Tally")
    manager = host(a.url, b.url)
    try:
        assert [served_by(await tool(manager))[0] for _ in range(2)] == [1, 2]

        own_redis.kill()
        down = [await tool(manager) for _ in range(2)]  # one on each replica
        for result in down:
            assert result.blocked and result.blocked_by == "tally"  # the gate fails closed
            [error] = result.errors
            assert error.plugin == "tally"
            assert (f"plugin 'tally', session 's-1': state store {own_redis.url} is "
                    "unreachable (") in error.message  # fmt: skip
        assert a.process.poll() is None and b.process.poll() is None  # nothing crashed

        own_redis.start()  # the same port, empty: Redis kept nothing
        back = [served_by(await tool(manager)) for _ in range(2)]
        assert [n for n, _ in back] == [1, 2]  # the store is the truth: it starts afresh
        assert {pid for _, pid in back} == {a.pid, b.pid}
    finally:
        await manager.aclose()


# -- the command line -----------------------------------------------------------------------


def serve(*args: str) -> Any:
    return CliRunner().invoke(app, ["serve", "tests.external.served:Tally", *args])


def said(out: Any) -> str:
    return " ".join(out.output.replace("│", " ").split())


def test_state_is_for_http() -> None:
    out = serve("--stdio", "--state", "redis://127.0.0.1:6379/0")
    assert out.exit_code == 2
    assert "--state is for --http replicas" in said(out)


@pytest.mark.parametrize(
    ("url", "problem"),
    [("redis://:${REDIS_PASSWORD}@cache:6379/0", "the shell did not expand"),
     ("http://user:pa55word@cache:6379/0", "a store is 'memory' or a URL redis://")],
)  # fmt: skip
def test_a_state_url_that_cannot_work_stops_the_server_before_it_listens(
    url: str, problem: str
) -> None:
    out = serve("--http", "127.0.0.1:0", "--state", url)
    assert out.exit_code == 2
    message = said(out)
    assert problem in message and "--state" in message
    assert "listening" not in message
    assert "pa55word" not in message and "REDIS_PASSWORD" not in message


# -- stdio from a file the event loop cannot watch ------------------------------------------


def stdio(source: Any) -> subprocess.CompletedProcess[bytes]:
    """`interlock serve --stdio` reading `source`, to its end (bounded)."""
    command = serve_command("Tally", "--stdio")
    return subprocess.run(command, stdin=source, cwd=ROOT, env={**os.environ, **ENV},
                          capture_output=True, timeout=BOUND)  # fmt: skip


def test_serve_stdio_with_input_from_dev_null_ends_at_once() -> None:
    with open(os.devnull, "rb") as nothing:
        out = stdio(nothing)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b""


def test_serve_stdio_answers_the_requests_of_a_file(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        '{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocol": 1}}\n'
        '{"jsonrpc": "2.0", "id": 2, "method": "shutdown"}\n'
    )
    with requests.open("rb") as source:
        out = stdio(source)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 2 and '"name":"tally"' in lines[0] and '"id":2' in lines[1]
