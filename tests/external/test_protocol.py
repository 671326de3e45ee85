"""The protocol's edges: whatever a plugin sends, the host gets an answer or a
`ProtocolError` attributed to the plugin, never a hang or another exception."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock import (
    Block,
    LLMResponse,
    Modify,
    PluginManager,
    ProtocolError,
    Respond,
    SessionInfo,
    ToolCall,
    hooks,
)
from interlock.external import PluginServer, connect
from interlock.external._channel import Channel
from interlock.external.protocol import (
    decode,
    dump_action,
    encode,
    load_hello,
    load_result,
    parse,
)
from interlock.testing import sample

from .served import Guard

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 4096


class FakePlugin:
    """The far end of a channel: answers each request with whatever `reply` makes of it."""

    def __init__(self, reply: Callable[[dict[str, Any]], bytes]) -> None:
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        self.channel = Channel(
            os.fdopen(replies_r, "rb"), os.fdopen(requests_w, "wb"), name="fake", limit=LIMIT
        ).start()
        self._requests = os.fdopen(requests_r, "rb")
        self._replies = os.fdopen(replies_w, "wb")
        self._reply = reply
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for line in self._requests:
            data = self._reply(json.loads(line))
            try:
                self._replies.write(data)
                self._replies.flush()
            except (OSError, ValueError):
                return

    def hang_up(self) -> None:
        self._replies.close()

    def close(self) -> None:
        self.channel.close("test over")
        self._thread.join(10)
        self._requests.close()
        if not self._replies.closed:
            self._replies.close()


@pytest.fixture
def fake() -> Iterator[Callable[[Callable[[dict[str, Any]], bytes]], FakePlugin]]:
    made: list[FakePlugin] = []

    def make(reply: Callable[[dict[str, Any]], bytes]) -> FakePlugin:
        made.append(FakePlugin(reply))
        return made[-1]

    yield make
    for plugin in made:
        plugin.close()


def good(request: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "ok"}).encode() + b"\n"


def not_an_object(data: bytes) -> bool:
    if not data.strip():
        return False  # a blank line: skipped, not an answer
    try:
        return not isinstance(json.loads(data), dict)
    except ValueError:
        return True


@FUZZ
@given(junk=st.binary(max_size=200).filter(lambda b: b"\n" not in b and not_an_object(b)))
def test_garbage_fails_the_waiting_call_and_the_channel_goes_on(junk: bytes) -> None:
    replies = iter([junk + b"\n"])
    plugin = FakePlugin(lambda request: next(replies, None) or good(request))
    try:
        with pytest.raises(ProtocolError, match="plugin 'fake' sent"):
            plugin.channel.call_sync("invoke", {}, 10)
        assert plugin.channel.call_sync("invoke", {}, 10) == "ok"
    finally:
        plugin.close()


@FUZZ
@given(
    wrong=st.lists(st.one_of(st.integers(), st.text(), st.none()), min_size=1, max_size=3),
    extra=json_values,
)
def test_replies_with_the_wrong_id_never_reach_another_caller(wrong: list[Any], extra: Any) -> None:
    def reply(request: dict[str, Any]) -> bytes:
        lines = [{"jsonrpc": "2.0", "id": w, "result": extra} for w in wrong if w != request["id"]]
        return b"".join(json.dumps(m).encode() + b"\n" for m in lines) + good(request)

    plugin = FakePlugin(reply)
    try:
        assert plugin.channel.call_sync("invoke", {}, 10) == "ok"
    finally:
        plugin.close()


def test_an_oversized_reply_fails_the_call_and_is_skipped_whole() -> None:
    replies = iter([b'{"jsonrpc": "2.0", "id": 1, "result": "' + b"x" * LIMIT * 3 + b'"}\n'])
    plugin = FakePlugin(lambda request: next(replies, None) or good(request))
    try:
        with pytest.raises(ProtocolError, match=f"over the {LIMIT}-byte limit"):
            plugin.channel.call_sync("invoke", {}, 10)
        assert plugin.channel.call_sync("invoke", {}, 10) == "ok"
    finally:
        plugin.close()


def test_an_oversized_request_is_refused_before_it_is_sent() -> None:
    plugin = FakePlugin(good)
    try:
        with pytest.raises(ProtocolError, match="over the 4096-byte limit"):
            plugin.channel.call_sync("invoke", {"big": "x" * LIMIT}, 10)
        assert plugin.channel.call_sync("invoke", {}, 10) == "ok"
    finally:
        plugin.close()


def test_a_partial_reply_then_hang_up_fails_the_call() -> None:
    plugin: FakePlugin

    def partial(request: dict[str, Any]) -> bytes:
        plugin._replies.write(b'{"jsonrpc": "2.0", "id": 1, "res')
        plugin.hang_up()
        return b""

    plugin = FakePlugin(partial)
    try:
        with pytest.raises(ProtocolError, match="sent a message that is not JSON"):
            plugin.channel.call_sync("invoke", {}, 10)
        with pytest.raises(ProtocolError, match="closed its output"):
            plugin.channel.call_sync("invoke", {}, 10)  # and it stays closed
    finally:
        plugin.close()


@FUZZ
@given(result=json_values)
def test_any_invoke_result_is_an_action_or_a_protocol_error(result: Any) -> None:
    for spec in (hooks.PRE_TOOL_CALL, hooks.PRE_LLM_CALL, hooks.TURN_END):
        with contextlib.suppress(ProtocolError):
            load_result(spec, result)


@FUZZ
@given(
    action=st.fixed_dictionaries(
        {"type": st.sampled_from(["modify", "respond", "block", "ask"])},
        optional=dict.fromkeys(("payload", "response", "reason", "question"), json_values),
    )
)
def test_actions_with_any_fields_are_checked(action: dict[str, Any]) -> None:
    with contextlib.suppress(ProtocolError):
        load_result(hooks.PRE_LLM_CALL, {"action": action})


@FUZZ
@given(data=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
async def test_the_server_answers_every_message_with_a_json_rpc_reply(data: bytes) -> None:
    server = PluginServer(Guard())
    reply = await server.handle_bytes(data)
    await server.aclose()
    if reply is None:  # a notification (or a batch of them): a request without an id
        return
    answer = json.loads(reply)
    if isinstance(answer, list):  # a batch, answered with an array of replies
        assert answer and data.lstrip().startswith(b"[")
    for message in answer if isinstance(answer, list) else [decode(reply)]:
        assert message["jsonrpc"] == "2.0" and ("result" in message) != ("error" in message)


async def test_the_server_names_what_is_wrong() -> None:
    server = PluginServer(Guard())

    async def ask(method: str, params: Any) -> dict[str, Any]:
        message = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
        reply = await server.handle(message)
        assert reply is not None
        return reply

    assert (await ask("dance", {}))["error"]["code"] == -32601
    assert (await ask("initialize", {"protocol": 99}))["error"]["code"] == -32602
    no_hook = await ask("invoke", {"hook": "turn_end", "payload": {}})
    assert "does not handle 'turn_end'" in no_hook["error"]["message"]
    bad_payload = await ask("invoke", {"hook": "pre_tool_call", "payload": {"arguments": 3}})
    assert bad_payload["error"]["code"] == -32602
    assert "tool_name" in bad_payload["error"]["message"]
    ok = await ask("invoke", {"hook": "pre_tool_call", "payload": {"tool_name": "shell"}})
    assert ok["result"]["action"]["type"] == "modify"
    await server.aclose()


def test_actions_round_trip_through_json() -> None:
    call = ToolCall("shell", {"command": "ls"})
    spec = hooks.PRE_TOOL_CALL
    for action in (None, Block("no"), Modify(call)):
        wire = json.loads(json.dumps(dump_action(spec, action)))
        assert load_result(spec, {"action": wire})[0] == action
    answer = LLMResponse("cache", "cached", (ToolCall("shell", {"command": "ls"}, "c1"),))
    respond = Respond(answer)
    wire = json.loads(json.dumps(dump_action(hooks.PRE_LLM_CALL, respond)))
    assert load_result(hooks.PRE_LLM_CALL, {"action": wire})[0] == respond


@pytest.mark.parametrize(
    ("hello", "problem"),
    [
        ({"protocol": 2, "hooks": ["pre_tool_call"]}, "speaks protocol 2"),
        ({"protocol": 1, "hooks": []}, "handles no hooks"),
        ({"protocol": 1, "hooks": ["pre_tool_cal"]}, "which this host does not have"),
        ({"protocol": 1, "hooks": [{"name": "pre_tool_call", "priority": "high"}]}, "integer"),
        ({"protocol": 1, "hooks": ["turn_end"], "capabilities": "all"}, "list of names"),
    ],
)
def test_a_handshake_that_does_not_fit_is_refused(hello: dict[str, Any], problem: str) -> None:
    known = {key: spec for spec in hooks.CATALOG for key in spec.keys}
    with pytest.raises(ProtocolError, match=problem):
        load_hello(hello, known)


def test_a_reply_nested_too_deeply_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode(b"[" * 200_000)


def test_an_error_without_an_id_fails_the_waiting_calls_at_once() -> None:
    # What a server answers to a request it could not read: it cannot say whose it was.
    unreadable = b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "bad"}}\n'
    replies = iter([unreadable])
    plugin = FakePlugin(lambda request: next(replies, None) or good(request))
    try:
        with pytest.raises(ProtocolError, match="an error for a request it could not read: bad"):
            plugin.channel.call_sync("invoke", {}, 10)
        assert plugin.channel.call_sync("invoke", {}, 10) == "ok"
    finally:
        plugin.close()


async def test_notifications_get_no_answer_even_when_they_fail() -> None:
    server = PluginServer(Guard())
    assert await server.handle({"jsonrpc": "2.0", "method": "dance"}) is None
    assert await server.handle({"jsonrpc": "2.0", "method": "shutdown"}) is None
    await server.aclose()


class Recording:
    """A transport that records the params of each call and lets the event pass."""

    def __init__(self, takes_encoded: bool) -> None:
        self.takes_encoded = takes_encoded
        self.params: list[Any] = []

    async def call(self, method: str, params: Any) -> Any:
        self.params.append(json.loads(params) if isinstance(params, bytes) else params)
        return {"action": {"type": "continue"}}

    def call_sync(self, method: str, params: Any, timeout: float = 10.0) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


class Writer:
    def write_system_item(self, kind: str, text: str, *, plugin: str) -> None:
        pass

    def write_notification(self, text: str, *, level: str, plugin: str) -> None:
        pass


async def test_encoded_invoke_params_are_the_params_as_data() -> None:
    encoded, plain = Recording(takes_encoded=True), Recording(takes_encoded=False)
    manager = PluginManager()
    for name, transport in (("encoded", encoded), ("plain", plain)):
        plugin = connect(transport, name=name, hooks=["pre_tool_call", "turn_end"])
        manager.register(plugin, config={"limit": 3, "nested": {"é": [1.5, None]}},
                         capabilities=["notify", "system_items"])  # fmt: skip
    first = SessionInfo("s1", tags=("prod",), metadata={"user": "ada"})
    again = SessionInfo("s1", tags=("dev",))  # the same id, other facts: never the old ones
    events = [
        (hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls \u2028", "n": float("inf")}),
         {"session": first, "turn": 2, "capabilities": {"notify": Writer()}}),
        (hooks.PRE_TOOL_CALL, ToolCall("fs_read", {}), {"session": first, "turn": 3}),
        (hooks.TURN_END, sample(hooks.TURN_END),
         {"session": again, "capabilities": {"notify": Writer(), "system_items": Writer()}}),
        (hooks.PRE_TOOL_CALL, ToolCall("shell", {}), {}),
    ]  # fmt: skip
    for spec, payload, facts in events:
        result = await manager.invoke(spec, payload, **facts)
        assert not result.errors
    assert len(encoded.params) == len(events)
    for params in plain.params:
        params["context"]["plugin"] = "encoded"
    assert encoded.params == json.loads(json.dumps(plain.params))
    assert [p["context"]["session"] for p in encoded.params][2]["tags"] == ["dev"]
    assert [p["context"]["capabilities"] for p in encoded.params] == [
        ["notify"],
        [],
        ["notify", "system_items"],
        [],
    ]


@FUZZ
@given(value=json_values)
def test_messages_read_and_write_as_the_json_module_does(value: Any) -> None:
    text = json.dumps(value).encode()
    assert parse(text) == json.loads(text)
    message = {"jsonrpc": "2.0", "id": 1, "result": value}
    try:
        json.dumps(message, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate is no UTF-8: refused either way
        with pytest.raises(UnicodeEncodeError, match="surrogates"):
            encode(message)  # as `json.dumps` fails
        return
    line = encode(message)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert json.loads(line) == message
