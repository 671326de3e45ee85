"""HTTP: plugin servers as ASGI apps (`interlock serve --http`), replicas and failover."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from interlock import PluginManager, ProtocolError, ToolCall, hooks
from interlock.external import HttpTransport, PluginServer, connect, http_app
from interlock.testing import sample

from .conftest import Served
from .served import Guard


def served_by(result: Any) -> int:
    assert not result.errors, result.errors
    return int(result.payload.arguments["served_by"])


async def test_calls_spread_over_replicas_and_survive_one_stopped_mid_run(
    serve_http: Callable[..., Served],
) -> None:
    first, second = serve_http("Replica"), serve_http("Replica")
    transport = HttpTransport([first.url, second.url], name="replicas")
    manager = PluginManager()
    manager.register(connect(transport, name="replicas"), timeout=60)

    async def call(tool: str = "shell") -> Any:
        return await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall(tool, {"command": "ls"}))

    spread = {served_by(await call()) for _ in range(4)}
    assert spread == {first.pid, second.pid}

    in_flight = asyncio.ensure_future(call("hang"))
    victim = await asyncio.to_thread(Served.first_saying, "hanging", [first, second])
    survivor = second if victim is first else first
    os.kill(victim.pid, signal.SIGKILL)
    victim.process.wait()

    lost = await in_flight
    assert lost.blocked and lost.blocked_by == "replicas"  # pre_tool_call fails closed
    [failure] = lost.errors
    assert failure.plugin == "replicas" and victim.url in failure.message

    after = [await call() for _ in range(10)]
    assert [served_by(r) for r in after] == [survivor.pid] * 10  # none lost
    await manager.aclose()


async def test_a_token_is_required_when_the_server_has_one(
    serve_http: Callable[..., Served],
) -> None:
    url = serve_http("Guard", "--token", "s3cret").url
    with pytest.raises(ProtocolError, match=r"refused the token \(HTTP 401\)"):
        connect(HttpTransport([url], token="wrong"), name="guard")
    with pytest.raises(ProtocolError, match="HTTP 401"):
        connect(HttpTransport([url]), name="guard")
    plugin = connect(HttpTransport([url], token="s3cret"), name="guard")
    manager = PluginManager()
    manager.register(plugin)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "rm -rf /"}))
    assert result.reason == "rm -rf is not allowed"
    await manager.aclose()


def closed_port() -> int:
    """A loopback port nobody listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_no_replica_reachable_is_a_failure_naming_each() -> None:
    urls = [f"http://127.0.0.1:{closed_port()}/" for _ in range(2)]
    manager = PluginManager()
    manager.register(connect(HttpTransport(urls, name="gone"), name="gone", hooks=["turn_end"]))
    result = await manager.invoke(hooks.TURN_END, sample(hooks.TURN_END))
    [failure] = result.errors
    assert "no replica could be reached" in failure.message
    assert all(url in failure.message for url in urls)
    await manager.aclose()


@pytest.fixture
async def app_client() -> Any:
    server = PluginServer(Guard())
    app = http_app(server, token="t", limit=2000)
    headers = {"Authorization": "Bearer t"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://plugin", headers=headers
    ) as c:
        yield c
    await server.aclose()


async def test_the_server_validates_every_request(app_client: httpx.AsyncClient) -> None:
    about = await app_client.get("/")
    assert about.json()["name"] == "guard" and about.json()["protocol"] == 1

    unauthorized = await app_client.post("/", content=b"{}", headers={"Authorization": "x"})
    assert unauthorized.status_code == 401 and "token" in unauthorized.json()["error"]["message"]
    assert (await app_client.get("/", headers={"Authorization": "x"})).status_code == 401

    too_big = await app_client.post("/", content=b"x" * 3000)
    assert too_big.status_code == 413

    garbage = await app_client.post("/", content=b"{not json")
    assert garbage.json()["error"]["code"] == -32700

    def invoke(id: int, payload: Any) -> dict[str, Any]:
        params = {"hook": "pre_tool_call", "payload": payload}
        return {"jsonrpc": "2.0", "id": id, "method": "invoke", "params": params}

    wrong = await app_client.post("/", json=invoke(1, 5))
    assert wrong.json()["id"] == 1 and wrong.json()["error"]["code"] == -32602

    fine = await app_client.post("/", json=invoke(2, {"tool_name": "x"}))
    assert fine.json()["result"]["action"]["type"] == "modify"


@pytest.mark.skipif(
    sys.platform != "linux", reason="relies on Linux dropping SYNs to a full backlog"
)
async def test_a_replica_that_drops_connections_silently_is_skipped(
    serve_http: Callable[..., Served],
) -> None:
    alive = serve_http("Replica")
    # A listener that never accepts, its backlog full: connecting to it just hangs, as to a
    # dead machine or through a firewall that drops packets.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(silent.getsockname())
        dead = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        transport = HttpTransport([dead, alive.url], connect_timeout=0.2, name="pair")
        manager = PluginManager()
        manager.register(connect(transport, name="pair", hooks=["pre_tool_call"]), timeout=30)
        try:
            results = [
                await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell")) for _ in range(4)
            ]
        finally:
            await manager.aclose()
            for filler in fillers:
                filler.close()
    assert [served_by(r) for r in results] == [alive.pid] * 4
