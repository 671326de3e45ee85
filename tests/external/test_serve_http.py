"""`interlock serve --http` is closed by default: tokens, callers apart, slow callers cut off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import types
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from interlock import PluginManager, SessionEnd, SessionInfo, ToolCall, hooks
from interlock.cli import app
from interlock.cli._serve import MAX_HEADER_BYTES, is_loopback
from interlock.external import HttpTransport, PluginServer, connect, http_app

from .conftest import ROOT, Served
from .served import Counter

BOUND = 60.0  # the most any one wait here may take before the test fails; never reached


# -- who may start a server -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "localhost", "LocalHost"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.20", "2001:db8::1", "example.com",
             "localhost.example.com", "plugins"],
)  # fmt: skip
def test_every_other_address_is_reachable_from_elsewhere(host: str) -> None:
    assert not is_loopback(host)


class FakeSocket:
    """Stands in for the listening socket: the CLI's checks run, nothing is bound."""

    def __init__(self, *args: Any) -> None:
        self.address: tuple[str, int] = ("", 0)

    def setsockopt(self, *args: Any) -> None:
        pass

    def bind(self, address: tuple[str, int]) -> None:
        self.address = (address[0], address[1] or 8700)

    def listen(self, backlog: int) -> None:
        pass

    def getsockname(self) -> tuple[str, int]:
        return self.address

    def close(self) -> None:
        pass


@pytest.fixture
def served_configs(monkeypatch: pytest.MonkeyPatch) -> list[uvicorn.Config]:
    """uvicorn's settings for each server the CLI would run (none runs, nothing listens)."""
    configs: list[uvicorn.Config] = []

    def run(self: uvicorn.Server, sockets: list[Any] | None = None) -> None:
        configs.append(self.config)

    names = ("AF_INET", "AF_INET6", "SOCK_STREAM", "IPPROTO_TCP", "SOL_SOCKET", "SO_REUSEADDR")
    fake = types.SimpleNamespace(**{name: getattr(socket, name) for name in names})
    fake.socket = FakeSocket
    monkeypatch.setattr("interlock.cli._serve.socket", fake)
    monkeypatch.setattr(uvicorn.Server, "run", run)
    return configs


def serve(*args: str) -> Any:
    return CliRunner().invoke(app, ["serve", "tests.external.served:Guard", *args])


def said(out: Any) -> str:
    return " ".join(out.output.replace("│", " ").split())


@pytest.mark.parametrize("address", ["0.0.0.0:8700", "[::]:8700", "10.0.0.5:0", "plugins:80"])
def test_a_reachable_address_without_a_token_is_refused_naming_the_fix(
    address: str, served_configs: list[uvicorn.Config]
) -> None:
    out = serve("--http", address)
    assert out.exit_code == 2
    message = said(out)
    assert "can be reached from other machines" in message
    for fix in ("--token", "INTERLOCK_TOKEN", "--token-file", "127.0.0.1", "--insecure"):
        assert fix in message
    assert served_configs == []  # never served


def test_the_refusal_is_the_one_the_protocol_page_shows(
    served_configs: list[uvicorn.Config],
) -> None:
    page = (ROOT / "docs" / "protocol.md").read_text()
    [shown] = re.findall(r"```console\n\$ interlock serve \S+ --http (\S+)\n(.*?)```", page, re.S)
    address, message = shown
    out = serve("--http", address)
    assert out.exit_code == 2
    assert " ".join(message.split()) in said(out)


def test_insecure_serves_anyone_and_says_so(
    served_configs: list[uvicorn.Config], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="interlock.serve"):
        out = serve("--http", "0.0.0.0:8700", "--insecure")
    assert out.exit_code == 0, out.output
    assert "listening on http://0.0.0.0:8700/" in out.output
    [warning] = [r for r in caplog.records if r.name == "interlock.serve"]
    assert warning.levelno == logging.WARNING
    assert "without a token (--insecure)" in warning.getMessage()
    assert len(served_configs) == 1


def test_a_token_or_loopback_serves_without_a_warning(
    served_configs: list[uvicorn.Config],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("token-of-a\n\n  token-of-b  \n")
    with caplog.at_level(logging.WARNING, logger="interlock.serve"):
        assert serve("--http", "0.0.0.0:0", "--token", "s3cret").exit_code == 0
        assert serve("--http", "[::]:0", "--token-file", str(tokens)).exit_code == 0
        assert serve("--http", "127.0.0.1:0").exit_code == 0
        assert serve("--http", "localhost:0").exit_code == 0
        monkeypatch.setenv("INTERLOCK_TOKEN", "from-the-environment")
        assert serve("--http", "0.0.0.0:0").exit_code == 0
    assert [r for r in caplog.records if r.name == "interlock.serve"] == []
    assert len(served_configs) == 5


def test_the_limits_are_options_with_defaults_handed_to_uvicorn(
    served_configs: list[uvicorn.Config],
) -> None:
    assert serve("--http", "127.0.0.1:0").exit_code == 0
    assert serve("--http", "127.0.0.1:0", "--max-connections", "40", "--keep-alive", "2",
                 "--shutdown-timeout", "3", "--request-timeout", "4").exit_code == 0  # fmt: skip
    default, chosen = served_configs
    # (uvicorn counts the connection it is deciding on: one more lets that many be served)
    assert (default.limit_concurrency, default.timeout_keep_alive) == (513, 5)
    assert default.timeout_graceful_shutdown == 10
    assert (chosen.limit_concurrency, chosen.timeout_keep_alive) == (41, 2)
    assert chosen.timeout_graceful_shutdown == 3
    assert chosen.lifespan == "on"  # so the plugin is closed on shutdown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http", "127.0.0.1:0", "--token", " "], "the token is empty"),
        (["--http", "127.0.0.1:0", "--token-file", "no-such-file"], "cannot read no-such-file"),
        (["--http", "127.0.0.1:0", "--token-file", "{empty}"], "holds no token: write one"),
        (["--stdio", "--insecure"], "are for --http"),
        (["--stdio", "--token-file", "{empty}"], "are for --http"),
        (["--http", "127.0.0.1:0", "--request-timeout", "0"], "--request-timeout"),
        (["--http", "127.0.0.1:0", "--max-connections", "0"], "--max-connections"),
    ],
)
def test_bad_token_and_limit_options_are_explained(
    args: list[str], message: str, tmp_path: Path, served_configs: list[uvicorn.Config]
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n  \n")
    out = serve(*[a.replace("{empty}", str(empty)) for a in args])
    assert out.exit_code == 2
    assert message in said(out)
    assert served_configs == []


def test_http_app_refuses_an_empty_token_and_a_deadline_of_nothing() -> None:
    server = PluginServer(Counter())
    with pytest.raises(ValueError, match="a token is empty"):
        http_app(server, token=["a", ""])
    with pytest.raises(ValueError, match="body_timeout must be more than 0"):
        http_app(server, body_timeout=0)


# -- one caller never reaches another's sessions ---------------------------------------------


def invoke(hook: str, payload: Any, session: str, id: int = 1) -> dict[str, Any]:
    params = {"hook": hook, "payload": payload, "context": {"session": {"id": session}}}
    return {"jsonrpc": "2.0", "id": id, "method": "invoke", "params": params}


class Caller:
    """One host calling an `http_app` in process: with a token, or from a peer address."""

    def __init__(self, asgi: Any, *, token: str | None = None, peer: str = "127.0.0.1") -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.ASGITransport(app=asgi, client=(peer, 40000))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://plugin",
                                        headers=headers)  # fmt: skip

    async def seen(self, session: str) -> int:
        reply = await self.client.post("/", json=invoke("pre_tool_call", {"tool_name": "ls"},
                                                        session))  # fmt: skip
        return int(reply.json()["result"]["action"]["payload"]["arguments"]["seen"])

    async def end(self, session: str) -> None:
        reply = await self.client.post("/", json=invoke("session_end", {"session_id": session},
                                                        session))  # fmt: skip
        assert reply.json()["result"]["action"]["type"] == "continue"


async def test_each_token_has_sessions_of_its_own() -> None:
    server = PluginServer(Counter())
    asgi = http_app(server, token=["token-of-a", "token-of-b"])
    a, b = Caller(asgi, token="token-of-a"), Caller(asgi, token="token-of-b")
    a_too = Caller(asgi, token="token-of-a", peer="10.0.0.9")  # the same token elsewhere
    assert [await a.seen("s-1"), await a.seen("s-1")] == [1, 2]
    assert await b.seen("s-1") == 1  # the same id, not a's session: nothing of a's read
    assert await b.seen("s-1") == 2
    await b.end("s-1")  # ends b's session only
    assert await a.seen("s-1") == 3  # a's was neither advanced nor reset by b
    assert await a_too.seen("s-1") == 4  # a token is one caller, wherever it calls from
    assert await b.seen("s-1") == 1  # b starts afresh
    wrong = await Caller(asgi, token="token-of-c").client.post("/", json={})
    assert wrong.status_code == 401
    await server.aclose()


async def test_without_a_token_each_peer_has_sessions_of_its_own() -> None:
    server = PluginServer(Counter())
    asgi = http_app(server)
    a, b = Caller(asgi, peer="10.0.0.1"), Caller(asgi, peer="10.0.0.2")
    assert [await a.seen("s-1"), await a.seen("s-1")] == [1, 2]
    assert await b.seen("s-1") == 1
    await b.end("s-1")
    assert await a.seen("s-1") == 3
    await a.end("s-1")
    assert await a.seen("s-1") == 1
    await server.aclose()


async def test_a_served_token_file_keeps_hosts_apart(
    serve_http: Callable[..., Served], tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("token-of-a\ntoken-of-b\n")
    url = serve_http("Counter", "--token-file", str(tokens)).url
    managers = {}
    for host in ("a", "b"):
        managers[host] = PluginManager()
        transport = HttpTransport([url], token=f"token-of-{host}")
        managers[host].register(connect(transport, name="counter"))

    async def seen(host: str) -> int:
        call = ToolCall("shell", {"command": "ls"})
        result = await managers[host].invoke(hooks.PRE_TOOL_CALL, call, session=SessionInfo("s-1"))
        assert not result.errors, result.errors
        return int(result.payload.arguments["seen"])

    try:
        assert [await seen("a"), await seen("a"), await seen("b")] == [1, 2, 1]
        ended = await managers["b"].invoke(
            hooks.SESSION_END, SessionEnd("s-1"), session=SessionInfo("s-1")
        )
        assert not ended.errors
        assert [await seen("a"), await seen("b")] == [3, 1]
    finally:
        for manager in managers.values():
            await manager.aclose()


# -- slow callers, the connection limit, shutdown ---------------------------------------------


def address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def trickling_headers(url: str, stack: contextlib.AsyncExitStack) -> socket.socket:
    """A caller that sends the first byte of a request, and nothing more."""
    sock = stack.enter_context(socket.create_connection(address(url), timeout=BOUND))
    sock.sendall(b"P")
    return sock


def trickling_body(url: str, stack: contextlib.AsyncExitStack) -> socket.socket:
    """A caller whose request the plugin's app is reading (the server said `100 Continue`),
    that sends one byte of a 100-byte body, and nothing more."""
    sock = stack.enter_context(socket.create_connection(address(url), timeout=BOUND))
    sock.sendall(b"POST / HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\nExpect: 100-continue\r\n\r\n")  # fmt: skip
    seen = b""
    while b"\r\n\r\n" not in seen:
        chunk = sock.recv(1024)
        assert chunk, f"closed before 100 Continue: {seen!r}"
        seen += chunk
    assert seen.startswith(b"HTTP/1.1 100 Continue"), seen
    sock.sendall(b"{")
    return sock


def until_closed(sock: socket.socket) -> bytes:
    """All the server sends until it closes the connection (within BOUND seconds)."""
    seen = b""
    while chunk := sock.recv(4096):
        seen += chunk
    return seen


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def call(manager: PluginManager, tool: str = "shell") -> Any:
    return await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall(tool, {"command": "ls"}))


@contextlib.asynccontextmanager
async def host_of(url: str, name: str = "counter") -> AsyncIterator[PluginManager]:
    """A host with the plugin at `url` registered (closed at the end, whatever happens)."""
    manager = PluginManager()
    manager.register(connect(HttpTransport([url]), name=name), timeout=BOUND)
    try:
        yield manager
    finally:
        await manager.aclose()


async def test_eighty_slow_callers_do_not_block_a_real_call_and_are_cut_off(
    serve_http: Callable[..., Served],
) -> None:
    url = serve_http("Counter", "--request-timeout", "2").url
    async with host_of(url) as manager, contextlib.AsyncExitStack() as stack:
        slow = [trickling_headers(url, stack) for _ in range(40)]
        slow += [trickling_body(url, stack) for _ in range(40)]  # each one held by the app
        result = await call(manager)  # while all 80 are open
        assert not result.errors, result.errors
        assert result.payload.arguments == {"seen": 1}
        answers = await asyncio.to_thread(lambda: [until_closed(s) for s in slow])
        for answer in answers[:40]:
            assert status(answer) == 408 and b"the request headers did not arrive" in answer
        for answer in answers[40:]:
            assert status(answer) == 408 and b"the request body did not arrive" in answer
        again = await call(manager)
        assert not again.errors and again.payload.arguments == {"seen": 2}


async def test_the_connection_limit_turns_callers_away_until_slow_ones_are_cut_off(
    serve_http: Callable[..., Served],
) -> None:
    url = serve_http("Counter", "--max-connections", "3", "--request-timeout", "2").url
    async with host_of(url) as manager, contextlib.AsyncExitStack() as stack:
        slow = [trickling_body(url, stack) for _ in range(3)]
        turned_away = await call(manager)
        assert turned_away.blocked  # pre_tool_call fails closed
        [failure] = turned_away.errors
        assert "HTTP 503" in failure.message
        answers = await asyncio.to_thread(lambda: [until_closed(s) for s in slow])
        assert [status(a) for a in answers] == [408] * 3
        served = await call(manager)
        assert not served.errors and served.payload.arguments == {"seen": 1}


def test_headers_over_the_bound_are_refused(serve_http: Callable[..., Served]) -> None:
    url = serve_http("Counter").url
    with socket.create_connection(address(url), timeout=BOUND) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: plugin\r\n")
        filler = b"X-Filler: " + b"x" * 1000 + b"\r\n"
        with contextlib.suppress(ConnectionError):  # the server may close while we send
            for _ in range(MAX_HEADER_BYTES // len(filler) + 2):
                sock.sendall(filler)
        answer = until_closed(sock)
    assert status(answer) == 431


async def test_sigterm_stops_the_server_with_calls_and_slow_callers_in_flight(
    serve_http: Callable[..., Served],
) -> None:
    served = serve_http("Replica", "--shutdown-timeout", "1", "--request-timeout", "3600")
    async with host_of(served.url, "replica") as manager, contextlib.AsyncExitStack() as stack:
        in_flight = asyncio.ensure_future(call(manager, "hang"))  # the plugin never answers
        await asyncio.to_thread(Served.first_saying, "hanging", [served])
        slow = [trickling_headers(served.url, stack), trickling_body(served.url, stack)]
        os.kill(served.pid, signal.SIGTERM)
        try:
            code = await asyncio.to_thread(served.process.wait, BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not stop on SIGTERM")
        assert code in (0, -signal.SIGTERM)
        for sock in slow:  # nothing is left holding them
            with contextlib.suppress(ConnectionResetError):
                until_closed(sock)
        lost = await in_flight
        assert lost.blocked and lost.errors and lost.errors[0].plugin == "replica"
    await asyncio.to_thread(Served.first_saying, "closed in", [served])  # the plugin was closed
