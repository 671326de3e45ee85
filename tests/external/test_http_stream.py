"""A batch's replies streamed one per line: each call settles when its own call is done,
never held back by a slower call of another session in the same batch."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import interlock
from interlock import Modify, PluginManager, SessionInfo, ToolCall, hooks
from interlock.external import HttpTransport, PluginServer, connect, http_app

uvicorn = pytest.importorskip("uvicorn", reason="needs pip install 'interlock[http]'")

BOUND = 60.0  # the most any one wait here may take before the test fails; never reached


class Slow(interlock.Plugin):
    """Tool "wait" waits for `release`; any other is answered at once."""

    name = "slow"

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        if call.tool_name == "wait":
            self.waiting.set()
            await self.release.wait()
        return Modify(call.replace(arguments={"done": call.tool_name}))


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """`app` on a loopback port of its own, for the block: its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # bound before serving: early requests wait in the backlog
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    task = asyncio.ensure_future(server.serve([sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, BOUND)
        sock.close()


async def test_a_fast_call_settles_while_a_slow_one_of_its_batch_still_runs() -> None:
    plugin = Slow()
    server = PluginServer(plugin)
    async with served(http_app(server)) as url:
        transport = HttpTransport([url], name="slow")
        manager = PluginManager()
        manager.register(await asyncio.to_thread(connect, transport, name="slow"), timeout=BOUND)
        assert transport.batch

        def call(tool: str, session: str) -> Any:
            return manager.invoke(hooks.PRE_TOOL_CALL, ToolCall(tool), session=SessionInfo(session))

        slow = asyncio.ensure_future(call("wait", "s-1"))
        fast = asyncio.ensure_future(call("ls", "s-2"))  # the same loop turn: one batch
        await asyncio.wait_for(plugin.waiting.wait(), BOUND)
        answered = await asyncio.wait_for(fast, BOUND)  # while the slow call still waits
        assert not answered.errors and answered.payload.arguments == {"done": "ls"}
        assert not slow.done()
        plugin.release.set()
        late = await asyncio.wait_for(slow, BOUND)
        assert not late.errors and late.payload.arguments == {"done": "wait"}
        await manager.aclose()
        await server.aclose()


def invoke(id: int | None, tool: str) -> dict[str, Any]:
    params = {"hook": "pre_tool_call", "payload": {"tool_name": tool}}
    message = {"jsonrpc": "2.0", "method": "invoke", "params": params}
    return message if id is None else {**message, "id": id}


async def test_only_a_host_that_asks_gets_a_stream_and_old_hosts_an_array() -> None:
    server = PluginServer(Slow())
    transport = httpx.ASGITransport(app=http_app(server))
    batch = [invoke(1, "ls"), invoke(2, "pwd"), invoke(None, "ls")]
    async with httpx.AsyncClient(transport=transport, base_url="http://plugin") as client:
        old = await client.post("/", json=batch)
        assert old.headers["content-type"] == "application/json"
        assert sorted(a["id"] for a in old.json()) == [1, 2]

        ndjson = {"Accept": "application/x-ndjson, application/json"}
        new = await client.post("/", json=batch, headers=ndjson)
        assert new.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in new.text.splitlines()]
        assert sorted(a["id"] for a in lines) == [1, 2]  # the notification: no line

        refused = await client.post("/", json=[invoke(i, "ls") for i in range(300)],
                                    headers=ndjson)  # fmt: skip
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"]["code"] == -32600

        only_notifications = await client.post("/", json=[invoke(None, "ls")], headers=ndjson)
        assert only_notifications.status_code == 204
    await server.aclose()


async def test_a_broken_line_fails_the_calls_not_answered_yet_only() -> None:
    from aiohttp import web

    guard = PluginServer(Slow())

    async def post(request: web.Request) -> web.StreamResponse:
        data = json.loads(await request.read())
        if not isinstance(data, list):  # the handshake
            return web.Response(body=await guard.handle_bytes(json.dumps(data).encode()))
        stream = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await stream.prepare(request)
        first = {"jsonrpc": "2.0", "id": data[0]["id"], "result": {"action": {"type": "block"}}}
        await stream.write(json.dumps(first).encode() + b"\n{broken\n")
        return stream

    app = web.Application()
    app.router.add_post("/", post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    manager = PluginManager()
    transport = HttpTransport([url], name="slow")
    manager.register(await asyncio.to_thread(connect, transport, name="slow"))
    try:
        answered, broken = await asyncio.gather(
            *(manager.invoke(hooks.PRE_TOOL_CALL, ToolCall(t)) for t in ["ls", "pwd"])
        )
        assert answered.blocked and not answered.errors
        [failure] = broken.errors
        assert f"plugin 'slow' at {url}: a message that is not JSON" in failure.message
    finally:
        await manager.aclose()
        await runner.cleanup()
        await guard.aclose()
