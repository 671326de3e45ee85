"""What one plugin server takes from its callers: calls in flight, batches, session ids,
replies JSON cannot hold as UTF-8, session facts that change, the size of shared state,
and a store that answers too late."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import interlock
from interlock import Modify, ToolCall
from interlock.external import PluginServer, serve_stdio
from interlock.external.protocol import MAX_BATCH
from interlock.store import MemoryStore, key, open_store
from interlock.store._redis import RedisStore

from ..store.stall import stalling
from .test_serve_state import Count, invoke, seen, tool_call

BOUND = 60.0  # the most any one wait here may take before the test fails; never reached


class Peak(interlock.Plugin):
    """Counts its calls in flight; each waits for `release` once `reached` of them run."""

    name = "peak"

    def __init__(self, reached: int) -> None:
        self.now = self.peak = 0
        self.reached = reached
        self.full = asyncio.Event()
        self.release = asyncio.Event()

    async def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        if self.now == self.reached:
            self.full.set()
        await self.release.wait()
        self.now -= 1


async def test_calls_past_max_calls_wait_for_a_turn() -> None:
    plugin = Peak(reached=2)
    server = PluginServer(plugin, max_calls=2)
    calls = [asyncio.ensure_future(server.handle(tool_call(f"s-{i}"))) for i in range(6)]
    await asyncio.wait_for(plugin.full.wait(), BOUND)  # the others, if let in, ran too
    plugin.release.set()
    answers = await asyncio.wait_for(asyncio.gather(*calls), BOUND)
    assert all(a is not None and "result" in a for a in answers), answers
    assert plugin.peak == 2
    await server.aclose()


async def test_many_sessions_at_once_on_one_replica_share_the_stores_connections(
    shared_redis: tuple[str, str],
) -> None:
    url, deployment = shared_redis
    server = PluginServer(Count(), state=open_store(url, deployment=deployment, plugin="count"))
    answers = await asyncio.gather(
        *(server.handle(tool_call(f"agent-{i}"), caller="host") for i in range(300))
    )
    assert [seen(a) for a in answers] == [1] * 300  # none refused for want of a connection
    await server.aclose()


# -- batches --------------------------------------------------------------------------------


async def test_a_batch_over_the_request_bound_is_refused_whole() -> None:
    server = PluginServer(Count())
    batch = [{**tool_call(f"s-{i}"), "id": i} for i in range(MAX_BATCH + 1)]
    reply = await server.handle_bytes(json.dumps(batch).encode())
    assert reply is not None
    answer = json.loads(reply)
    assert answer["id"] is None and answer["error"]["code"] == -32600
    assert answer["error"]["message"] == (
        f"a batch of {MAX_BATCH + 1} requests is over the {MAX_BATCH}-request limit"
    )
    assert len(server.batch(json.dumps(batch[:MAX_BATCH]).encode())) == MAX_BATCH
    await server.aclose()


async def test_objects_without_a_method_are_invalid_requests_answered_even_without_an_id() -> None:
    server = PluginServer(Count())
    batch = [{}, {"jsonrpc": "2.0", "id": 7}, {"id": 8, "method": "invoke"},
             {"jsonrpc": "2.0", "method": "shutdown"}]  # fmt: skip
    reply = await server.handle_bytes(json.dumps(batch).encode())
    assert reply is not None
    answers = json.loads(reply)
    assert [(a["id"], a["error"]["code"]) for a in answers] == [
        (None, -32600), (7, -32600), (8, -32600)
    ]  # the notification (a request without an id) alone gets no answer  # fmt: skip
    assert 'must have "jsonrpc": "2.0" and a "method"' in answers[1]["error"]["message"]
    await server.aclose()


async def test_a_session_id_over_the_bound_is_refused_saying_so() -> None:
    store = MemoryStore(deployment="d", plugin="count")
    server = PluginServer(Count(), state=store)
    answer = await server.handle(tool_call("k" * 257), caller="host")
    assert answer is not None and answer["error"]["code"] == -32602
    assert answer["error"]["message"] == (
        "context.session.id has 257 characters, over the 256-character limit: name "
        "sessions with shorter ids"
    )
    assert seen(await server.handle(tool_call("k" * 256), caller="host")) == 1
    await server.aclose()


# -- replies UTF-8 cannot hold ---------------------------------------------------------------


class Echo(interlock.Plugin):
    """Echoes its call's arguments back, whatever text they hold."""

    name = "echo"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        return Modify(call.replace(arguments={**call.arguments, "echoed": True}))


def echo(id: int, text: str) -> dict[str, Any]:
    payload = {"tool_name": "shell", "arguments": {"text": text}}
    params = {"hook": "pre_tool_call", "payload": payload}
    return {"jsonrpc": "2.0", "id": id, "method": "invoke", "params": params}


def echoed(answer: dict[str, Any]) -> str:
    arguments = answer["result"]["action"]["payload"]["arguments"]
    assert arguments["echoed"] is True
    return str(arguments["text"])


async def test_a_lone_surrogate_in_a_reply_is_escaped_and_its_batch_answered() -> None:
    server = PluginServer(Echo())
    batch = json.dumps([echo(1, "\ud800"), echo(2, "fine")]).encode()  # valid JSON: escaped
    reply = await server.handle_bytes(batch)
    assert reply is not None
    first, second = json.loads(reply)
    assert (echoed(first), echoed(second)) == ("\ud800", "fine")
    single = await server.handle_bytes(json.dumps(echo(3, "\udfff")).encode())
    assert single is not None and echoed(json.loads(single)) == "\udfff"
    await server.aclose()


async def test_over_stdio_a_lone_surrogate_is_answered_and_the_next_call_too() -> None:
    lines = [json.dumps(echo(1, "\ud800")), json.dumps(echo(2, "fine"))]
    output = io.BytesIO()
    server = PluginServer(Echo())
    source = io.BytesIO("\n".join(lines).encode() + b"\n")
    await asyncio.wait_for(serve_stdio(server, source, output), BOUND)
    answers = {a["id"]: a for a in map(json.loads, output.getvalue().splitlines())}
    assert echoed(answers[1]) == "\ud800" and echoed(answers[2]) == "fine"


# -- session facts ---------------------------------------------------------------------------


class Facts(interlock.Plugin):
    """Says what it is told of the session."""

    name = "facts"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        assert ctx.session is not None
        facts = {"tags": list(ctx.session.tags), "metadata": dict(ctx.session.metadata)}
        return Modify(call.replace(arguments=facts))


async def test_each_call_brings_the_sessions_current_tags_and_metadata() -> None:
    server = PluginServer(Facts())

    async def call(tags: list[str], user: str) -> Any:
        message = tool_call("s-1")
        message["params"]["context"]["session"].update(tags=tags, metadata={"user": user})
        answer = await server.handle(message, caller="host")
        assert answer is not None and "result" in answer, answer
        return answer["result"]["action"]["payload"]["arguments"]

    assert await call(["trusted"], "alice") == {"tags": ["trusted"], "metadata": {"user": "alice"}}
    assert await call(["untrusted"], "mallory") == {
        "tags": ["untrusted"], "metadata": {"user": "mallory"}
    }  # fmt: skip
    await server.aclose()


# -- shared state ----------------------------------------------------------------------------


class Grow(interlock.Plugin):
    """Adds `n` characters to its session's state on each call."""

    name = "grow"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> None:
        ctx.state["blob"] = ctx.state.get("blob", "") + "x" * int(call.arguments["n"])


async def test_a_shared_state_over_the_bound_fails_naming_plugin_session_and_bound() -> None:
    store = MemoryStore(deployment="d", plugin="grow")
    server = PluginServer(Grow(), state=store, max_state_bytes=1000)

    def grow(n: int) -> dict[str, Any]:
        return invoke("pre_tool_call", {"tool_name": "x", "arguments": {"n": n}}, "s-1")

    fine = await server.handle(grow(900), caller="host")
    assert fine is not None and "result" in fine, fine
    over = await server.handle(grow(200), caller="host")
    assert over is not None
    message = over["error"]["message"]
    assert message.startswith("plugin 'grow', session 's-1': ctx.state is 1120 bytes as JSON, "
                              "over the 1000-byte bound of a session's state")  # fmt: skip
    assert "not saved" in message
    kept = json.loads(await store.get(key("session", "host", "s-1") + ":state") or "{}")
    assert len(kept["grow"]["blob"]) == 900  # the change was not saved
    await server.aclose()


class LeaseReads(RedisStore):
    """A Redis store that counts the reads of leases."""

    reads = 0

    async def get(self, key: str) -> str | None:
        self.reads += key.endswith(":lease")
        return await super().get(key)


async def test_a_lease_taken_while_the_store_answered_too_late_is_taken_back_at_once(
    shared_redis: tuple[str, str],
) -> None:
    url, deployment = shared_redis
    async with stalling(url) as proxy:
        store = LeaseReads(f"{proxy.url}?socket_timeout=0.5", deployment=deployment,
                           plugin="count")  # fmt: skip
        server = PluginServer(Count(), state=store)
        assert seen(await server.handle(tool_call(), caller="host")) == 1
        proxy.stall()  # the next call's lease is taken in Redis; the reply never comes
        lost = await server.handle(tool_call(), caller="host")
        assert lost is not None and "is unreachable" in lost["error"]["message"]
        # The lease holds this replica's token of that call: ours to take back, not a
        # session another replica runs (which would hold it off for the lease's 10 s).
        store.reads = 0
        assert seen(await server.handle(tool_call(), caller="host")) == 2
        assert store.reads == 1  # looked once, and took it: never waited for it to lapse
        await server.aclose()
