"""HTTP batches: the `invoke` requests of one loop turn in one POST, where the peer says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from interlock import HookTimeoutError, PluginManager, ToolCall, hooks
from interlock.external import HttpTransport, PluginServer, connect

from .served import Guard

Hold = Callable[[list[Any]], Awaitable[None]]


class Peer:
    """A plugin server on loopback that records every body it is sent. `batches=False`
    plays an older server: no `"batch"` in its hello, and an array is not a request.
    `hold` is awaited before a batch is answered; `dies` drops the connection instead;
    `drops` leaves the reply to the request whose command it names out of the answer.
    `status` answers calls (a batch, an invoke) with it instead: 503 before running them,
    as our server's connection limit does, any other after, as a proxy that gave up."""

    def __init__(
        self,
        *,
        batches: bool = True,
        hold: Hold | None = None,
        dies: bool = False,
        drops: str | None = None,
        status: int | None = None,
    ) -> None:
        self.server = PluginServer(Guard())
        self.batches = batches
        self.hold = hold
        self.dies = dies
        self.drops = drops
        self.status = status
        self.bodies: list[Any] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> Peer:
        app = web.Application()
        app.router.add_post("/", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.server.aclose()

    async def _post(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        data = json.loads(body)
        self.bodies.append(data)
        if isinstance(data, list):
            if not self.batches:
                problem = {"code": -32700, "message": "a message that is not a JSON object"}
                return web.json_response({"jsonrpc": "2.0", "id": None, "error": problem})
            if self.hold is not None:
                await self.hold(data)
            if self.dies and request.transport is not None:
                request.transport.abort()  # gone, as a killed process's connections go
                return web.Response()
        calls = isinstance(data, list) or data.get("method") == "invoke"
        if calls and self.status == 503:
            return web.Response(status=503)
        reply = await self.server.handle_bytes(body)
        if calls and self.status is not None:
            return web.Response(status=self.status, text="gateway timeout")
        answer = json.loads(reply) if reply else None
        if self.drops is not None and isinstance(answer, list):
            dropped = [m["id"] for m in data if m["params"]["payload"]["arguments"]["command"]
                       == self.drops]  # fmt: skip
            answer = [m for m in answer if m["id"] not in dropped]
        if not self.batches and isinstance(answer, dict) and "protocol" in answer.get("result", {}):
            del answer["result"]["batch"]
        return web.json_response(answer)

    def batches_sent(self) -> list[list[Any]]:
        return [body for body in self.bodies if isinstance(body, list)]

    def invokes(self) -> list[Any]:
        return [body for body in self.bodies if not isinstance(body, list)
                and body["method"] == "invoke"]  # fmt: skip


@pytest.fixture
async def peers() -> AsyncIterator[Callable[..., Awaitable[Peer]]]:
    started: list[Peer] = []

    async def start(**options: Any) -> Peer:
        peer = await Peer(**options).start()
        started.append(peer)
        return peer

    yield start
    for peer in started:
        await peer.stop()


def tool(command: str) -> ToolCall:
    return ToolCall("shell", {"command": command})


async def guarded(urls: list[str], **registration: Any) -> tuple[PluginManager, HttpTransport]:
    """A manager with the guard behind `urls`, connected (so the handshake was made)."""
    transport = HttpTransport(urls, name="guard")
    plugin = await asyncio.to_thread(connect, transport, name="guard")
    manager = PluginManager()
    manager.register(plugin, **registration)
    return manager, transport


async def test_the_calls_of_one_turn_go_in_one_batch_each_with_its_own_answer(
    peers: Callable[..., Awaitable[Peer]],
) -> None:
    peer = await peers()
    manager, transport = await guarded([peer.url])
    assert transport.batch  # the peer's hello said it takes batches
    commands = ["ls", "rm -rf /", "git push", "pwd"]
    results = await asyncio.gather(
        *(manager.invoke(hooks.PRE_TOOL_CALL, tool(c)) for c in commands)
    )
    assert [r.errors for r in results] == [(), (), (), ()]
    assert [r.blocked for r in results] == [False, True, False, False]
    assert results[1].reason == "rm -rf is not allowed"
    assert results[2].asked and "git push" in (results[2].question or "")
    [batch] = peer.batches_sent()
    assert [m["params"]["payload"]["arguments"]["command"] for m in batch] == commands
    assert not peer.invokes()
    await manager.aclose()


async def test_a_peer_without_batches_gets_one_post_per_call(
    peers: Callable[..., Awaitable[Peer]],
) -> None:
    peer = await peers(batches=False)
    manager, transport = await guarded([peer.url])
    assert not transport.batch
    results = await asyncio.gather(
        *(manager.invoke(hooks.PRE_TOOL_CALL, tool(c)) for c in ["ls", "rm -rf /", "pwd"])
    )
    assert [r.blocked for r in results] == [False, True, False]
    assert not peer.batches_sent()
    assert len(peer.invokes()) == 3
    await manager.aclose()


async def test_one_call_of_a_batch_times_out_and_the_others_still_get_their_answers(
    peers: Callable[..., Awaitable[Peer]],
) -> None:
    release = asyncio.Event()
    arrived = asyncio.Event()

    async def hold(batch: list[Any]) -> None:
        arrived.set()
        await release.wait()

    peer = await peers(hold=hold)
    transport = HttpTransport([peer.url], name="guard")
    plugin = await asyncio.to_thread(connect, transport, name="guard")
    hasty, patient = PluginManager(), PluginManager()
    hasty.register(plugin, timeout=0.05)
    patient.register(plugin, timeout=60)

    given_up = asyncio.ensure_future(hasty.invoke(hooks.PRE_TOOL_CALL, tool("ls")))
    waiting = asyncio.ensure_future(patient.invoke(hooks.PRE_TOOL_CALL, tool("rm -rf /")))
    await arrived.wait()
    timed_out = await given_up  # its timeout passes while the peer holds the batch
    [failure] = timed_out.errors
    assert isinstance(failure.error, HookTimeoutError)
    assert timed_out.blocked  # pre_tool_call fails closed
    release.set()
    answered = await waiting
    assert answered.reason == "rm -rf is not allowed" and not answered.errors
    [batch] = peer.batches_sent()
    assert len(batch) == 2
    await hasty.aclose()
    await patient.aclose()


async def test_a_batch_whose_peer_dies_fails_each_call_and_is_not_sent_again(
    peers: Callable[..., Awaitable[Peer]],
) -> None:
    first, second = await peers(dies=True), await peers(dies=True)
    manager, _ = await guarded([first.url, second.url], timeout=60)
    results = await asyncio.gather(
        *(manager.invoke(hooks.PRE_TOOL_CALL, tool(c)) for c in ["ls", "pwd"])
    )
    for result in results:
        [failure] = result.errors
        assert failure.plugin == "guard" and "the call was lost" in failure.message
        assert result.blocked
    # It reached one replica, which may have acted on it: never repeated on the other.
    assert len(first.batches_sent()) + len(second.batches_sent()) == 1
    await manager.aclose()


async def test_a_reply_missing_from_a_batch_fails_its_own_call_only(
    peers: Callable[..., Awaitable[Peer]],
) -> None:
    peer = await peers(drops="pwd")
    manager, _ = await guarded([peer.url], timeout=60)
    answered, unanswered = await asyncio.gather(
        *(manager.invoke(hooks.PRE_TOOL_CALL, tool(c)) for c in ["rm -rf /", "pwd"])
    )
    assert answered.reason == "rm -rf is not allowed" and not answered.errors
    [failure] = unanswered.errors
    assert failure.plugin == "guard" and "sent no reply to request" in failure.message
    assert len(peer.batches_sent()) == 1
    await manager.aclose()


async def test_the_server_answers_a_batch_with_an_array_in_order() -> None:
    server = PluginServer(Guard())
    assert server.hello()["batch"] is True

    def invoke(id: int | None, command: str) -> dict[str, Any]:
        params = {
            "hook": "pre_tool_call",
            "payload": {"tool_name": "shell", "arguments": {"command": command}},
        }
        message = {"jsonrpc": "2.0", "method": "invoke", "params": params}
        return message if id is None else {**message, "id": id}  # fmt: skip

    batch = [invoke(1, "rm -rf /"), 5, invoke(None, "ls"), invoke(2, "ls")]
    reply = await server.handle_bytes(json.dumps(batch).encode())
    assert reply is not None
    first, second, third = json.loads(reply)  # the notification gets no answer
    assert first["id"] == 1 and first["result"]["action"]["type"] == "block"
    assert second["id"] is None and second["error"]["code"] == -32600
    assert third["id"] == 2 and third["result"]["action"]["type"] == "modify"

    assert await server.handle_bytes(json.dumps([invoke(None, "ls")]).encode()) is None
    empty = await server.handle_bytes(b"[]")
    assert empty is not None and json.loads(empty)["error"]["code"] == -32600
    over = await server.handle_bytes(json.dumps(batch).encode(), limit=100)
    assert over is not None and "over the 100-byte limit" in json.loads(over)["error"]["message"]
    await server.aclose()


@pytest.mark.parametrize("status", [502, 504])
@pytest.mark.parametrize("batched", [False, True])
async def test_a_proxys_502_or_504_loses_the_call_and_it_is_not_sent_elsewhere(
    peers: Callable[..., Awaitable[Peer]], status: int, batched: bool
) -> None:
    first, second = await peers(status=status), await peers(status=status)
    manager, _ = await guarded([first.url, second.url], timeout=60)
    commands = ["ls", "pwd"] if batched else ["ls"]
    results = await asyncio.gather(
        *(manager.invoke(hooks.PRE_TOOL_CALL, tool(c)) for c in commands)
    )
    for result in results:
        [failure] = result.errors
        assert f"the call was lost (HTTP {status} from a proxy)" in failure.message
        assert "not sent again" in failure.message
        assert result.blocked
    # The replica behind the proxy may have run it: never repeated on the other.
    sent = [*first.bodies, *second.bodies]
    assert len([b for b in sent if isinstance(b, list) or b["method"] == "invoke"]) == 1
    await manager.aclose()


async def test_a_503_goes_to_the_next_replica_since_the_call_never_ran(
    peers: Callable[..., Awaitable[Peer]],
) -> None:
    refusing, taking = await peers(status=503), await peers()
    manager, _ = await guarded([refusing.url, taking.url], timeout=60)
    for _ in range(2):  # whichever replica comes first
        results = await asyncio.gather(
            *(manager.invoke(hooks.PRE_TOOL_CALL, tool(c)) for c in ["ls", "rm -rf /"])
        )
        assert [r.errors for r in results] == [(), ()]
        assert results[1].reason == "rm -rf is not allowed"
    assert len(taking.batches_sent()) == 2
    await manager.aclose()
