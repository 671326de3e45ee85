"""The wire protocol of out-of-process plugins: JSON-RPC 2.0, one JSON object per line
(stdio) or per request body (HTTP). docs/protocol.md describes it with examples.

Methods the host calls:

- `initialize` {protocol, host, plugin, config} -> {protocol, name, version, hooks,
  capabilities}
- `invoke` {hook, payload, context} -> {action, requests}
- `shutdown` {} -> null

Everything a plugin sends back is checked here before the host uses it: a reply that
does not fit is a `ProtocolError`, attributed to the plugin like any other failure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
import pydantic_core

from .. import (
    Ask,
    Block,
    Continue,
    HookContext,
    HookSpec,
    Modify,
    ProtocolError,
    Respond,
    SessionInfo,
)

PROTOCOL_VERSION = 1
"""The version `initialize` exchanges; a plugin that answers another one is refused."""

MAX_MESSAGE_BYTES = 1_000_000
"""The default bound on one message, in bytes."""

MAX_BATCH = 256
"""Requests in one JSON-RPC batch at most: what a host sends, what a server takes."""

NDJSON = "application/x-ndjson"
"""The media type of a batch's replies streamed one JSON object per line, each as soon as
its call is done: a host that says it takes it (`Accept`) gets them so over HTTP."""

ACTION_TYPES = ("continue", "modify", "block", "respond", "ask")


@dataclass(frozen=True)
class HookOffer:
    """A hook a plugin handles, as `initialize` tells it."""

    name: str
    priority: int | None = None


@dataclass(frozen=True)
class Hello:
    """A plugin's answer to `initialize`."""

    name: str
    version: str
    hooks: tuple[HookOffer, ...]
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    """A capability request a plugin sends along with its action."""

    capability: str
    fields: Mapping[str, Any]


class Encoded(bytes):
    """Request params already encoded as JSON text (compact, UTF-8): what
    `InvokeEncoder` makes, and what a transport whose `takes_encoded` is true accepts in
    place of the params' data."""


def request(method: str, params: Any, id: int) -> dict[str, Any]:
    """A JSON-RPC request."""
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params}


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a line of UTF-8 JSON (compact, no newlines inside)."""
    try:
        return pydantic_core.to_json(message) + b"\n"  # the same JSON, in a fifth of the time
    except ValueError:  # what it cannot write fails as it always did
        # Escaped to ASCII: text UTF-8 cannot hold (a lone surrogate) is still valid JSON.
        return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def parse(data: bytes | str) -> Any:
    """JSON text as data, read as `json.loads` reads it (in a fifth of the time when the
    fast reader takes it; what it refuses, `json.loads` reads or refuses as before)."""
    try:
        return pydantic_core.from_json(data)
    except ValueError:
        return json.loads(data)


def encode_request(method: str, params: Any, id: int) -> bytes:
    """A JSON-RPC request as a line of JSON; `params` may come `Encoded` already."""
    if type(params) is Encoded:
        name = _METHODS.get(method) or _text(method)
        return b'{"jsonrpc":"2.0","id":%d,"method":%s,"params":%s}\n' % (id, name, params)
    return encode(request(method, params, id))


_METHODS = {"invoke": b'"invoke"'}


def decode(line: bytes | str, limit: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Parse one message; raises `ProtocolError` when it is not a JSON object."""
    if len(line) > limit:
        raise ProtocolError(f"a message of {len(line)} bytes is over the {limit}-byte limit")
    try:
        message = parse(line)
    except RecursionError:
        raise ProtocolError(f"a message nested too deeply: {_brief(line)}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ProtocolError(f"a message that is not JSON: {_brief(line)} ({error})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"a message that is not a JSON object: {_brief(line)}")
    return message


def result_of(message: Mapping[str, Any]) -> Any:
    """The `result` of a JSON-RPC response; its `error` as a `ProtocolError`."""
    if message.get("jsonrpc") != "2.0":
        raise ProtocolError('a reply without "jsonrpc": "2.0"')
    error = message.get("error")
    if error is not None:
        if not isinstance(error, Mapping):
            raise ProtocolError(f"a malformed error: {_brief(json.dumps(error))}")
        raise ProtocolError(f"the plugin answered with an error: {error.get('message', error)}")
    if "result" not in message:
        raise ProtocolError("a reply with neither result nor error")
    return message["result"]


def dump_payload(spec: HookSpec[Any], payload: Any) -> Any:
    """A payload as JSON data, per its type's JSON schema."""
    return _adapter(spec.payload_type).dump_python(payload, mode="json")


def encode_payload(spec: HookSpec[Any], payload: Any) -> bytes:
    """A payload as JSON text: `dump_payload`'s data, encoded in one step."""
    return _serializer(spec.payload_type).to_json(payload)


def load_payload(spec: HookSpec[Any], data: Any) -> Any:
    """A payload from JSON data, validated and frozen; `ProtocolError` when it does not fit."""
    try:
        return _adapter(spec.payload_type).validate_python(data)
    except (pydantic.ValidationError, TypeError, ValueError) as error:
        raise ProtocolError(
            f"a {spec.payload_type.__name__} that does not fit: {_errors(error)}"
        ) from None


class InvokeEncoder:
    """Encodes the params of `invoke` requests (`Encoded`), serialising what the calls of
    one plugin share once: its name and config, each session, each set of capabilities.
    Equal, as JSON, to `{"hook", "payload": dump_payload(...), "context": dump_context(...)}`.
    """

    _BOUND = 256  # distinct sessions (or names, capability sets) kept before starting over

    def __init__(self) -> None:
        self._hooks: dict[str, bytes] = {}
        self._names: dict[str, bytes] = {}
        self._config: tuple[Mapping[str, Any] | None, bytes] = (None, b"")
        # By id, holding the session itself: a fragment is used for that very object only.
        self._sessions: dict[str, tuple[SessionInfo, bytes]] = {}
        self._capabilities: dict[frozenset[str], bytes] = {}

    def params(self, spec: HookSpec[Any], payload: Any, ctx: HookContext) -> Encoded:
        """The params of the `invoke` request for one event."""
        head = self._hooks.get(spec.name)
        if head is None:
            head = self._hooks[spec.name] = b'{"hook":%s,"payload":' % _text(spec.name)
        turn = ctx.turn
        return Encoded(b'%s%s,"context":{"plugin":%s,"session":%s,"turn":%s,"config":%s,'
                       b'"capabilities":%s%s}}' % (
            head, encode_payload(spec, payload), self._name(ctx.plugin),
            self._session(ctx.session), b"null" if turn is None else b"%d" % turn,
            self._config_of(ctx.config), self._capabilities_of(ctx.capabilities),
            b',"recheck":true' if ctx.recheck else b"",
        ))  # fmt: skip

    def _name(self, name: str) -> bytes:
        text = self._names.get(name)
        if text is None:
            text = self._names[name] = _text(name)
            _bound(self._names)
        return text

    def _config_of(self, config: Mapping[str, Any]) -> bytes:
        if self._config[0] is not config:  # a registration's config is one frozen object
            self._config = (config, pydantic_core.to_json(dict(config)))
        return self._config[1]

    def _session(self, session: SessionInfo | None) -> bytes:
        if session is None:
            return b"null"
        known = self._sessions.get(session.id)
        if known is None or known[0] is not session:
            text = pydantic_core.to_json({"id": session.id, "tags": list(session.tags),
                                          "metadata": dict(session.metadata)})  # fmt: skip
            known = self._sessions[session.id] = (session, text)
            _bound(self._sessions)
        return known[1]

    def _capabilities_of(self, capabilities: frozenset[str]) -> bytes:
        text = self._capabilities.get(capabilities)
        if text is None:
            text = self._capabilities[capabilities] = pydantic_core.to_json(sorted(capabilities))
            _bound(self._capabilities)
        return text


def _bound(cache: dict[Any, Any]) -> None:
    if len(cache) > InvokeEncoder._BOUND:
        cache.clear()  # started over: rebuilt from the calls that come next


def _text(value: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def dump_context(ctx: HookContext) -> dict[str, Any]:
    """What a remote plugin learns about the call: facts only, never handles."""
    session = ctx.session
    context: dict[str, Any] = {
        "plugin": ctx.plugin,
        "session": None if session is None else {
            "id": session.id, "tags": list(session.tags), "metadata": dict(session.metadata),
        },
        "turn": ctx.turn,
        "config": dict(ctx.config),
        "capabilities": sorted(ctx.capabilities),
    }  # fmt: skip
    if ctx.recheck:
        context["recheck"] = True
    return context


def dump_action(spec: HookSpec[Any], action: Any) -> dict[str, Any]:
    """An action as JSON (what `interlock serve` sends)."""
    if action is None or isinstance(action, Continue):
        return {"type": "continue"}
    if isinstance(action, Modify):
        return {"type": "modify", "payload": dump_payload(spec, action.payload)}
    if isinstance(action, Block):
        return {"type": "block", "reason": action.reason}
    if isinstance(action, Respond):
        response = _adapter(type(action.response)).dump_python(action.response, mode="json")
        return {"type": "respond", "response": response}
    if isinstance(action, Ask):
        return {"type": "ask", "question": action.question}
    raise TypeError(f"not an action: {action!r}")


def load_result(spec: HookSpec[Any], result: Any) -> tuple[Any, tuple[Request, ...]]:
    """An `invoke` result: the action for the host, and the capability requests."""
    if not isinstance(result, Mapping):
        raise ProtocolError(f"an invoke result must be an object, got {_brief(json.dumps(result))}")
    action = load_action(spec, result.get("action", {"type": "continue"}))
    raw = result.get("requests") or []
    if not isinstance(raw, list):
        raise ProtocolError("'requests' must be a list")
    requests = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("capability"), str):
            raise ProtocolError(
                f"a capability request must be an object with 'capability': {item!r}"
            )
        requests.append(Request(item["capability"], dict(item)))
    return action, tuple(requests)


def load_action(spec: HookSpec[Any], data: Any) -> Any:
    """An action from JSON, for `spec`; the core then checks it as from any plugin."""
    if not isinstance(data, Mapping) or data.get("type") not in ACTION_TYPES:
        kinds = ", ".join(ACTION_TYPES)
        shown = _brief(json.dumps(data, default=str))
        raise ProtocolError(f"an action must be an object with a type among {kinds}; got {shown}")
    kind = data["type"]
    if kind == "continue":
        return None
    if kind == "modify":
        return Modify(load_payload(spec, data.get("payload")))
    if kind == "block":
        reason = data.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ProtocolError("a block's reason must be text")
        return Block(reason)
    if kind == "ask":
        question = data.get("question")
        if not isinstance(question, str):
            raise ProtocolError("an ask's question must be text")
        return Ask(question)
    if spec.response_type is None:
        raise ProtocolError(f"hook {spec.name!r} takes no respond action")
    try:
        return Respond(_adapter(spec.response_type).validate_python(data.get("response")))
    except (pydantic.ValidationError, TypeError, ValueError) as error:
        raise ProtocolError(f"a response that does not fit: {_errors(error)}") from None


def load_hello(data: Any, known: Mapping[str, HookSpec[Any]]) -> Hello:
    """A plugin's `initialize` result, checked against the hooks the host knows."""
    if not isinstance(data, Mapping):
        raise ProtocolError("the initialize result must be an object")
    if data.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(f"the plugin speaks protocol {data.get('protocol')!r}; this host "
                            f"speaks {PROTOCOL_VERSION}")  # fmt: skip
    raw = data.get("hooks") or []
    if not isinstance(raw, list):
        raise ProtocolError('\'hooks\' must be a list of hook names or {"name", "priority"}')
    hooks = []
    for item in raw:
        offer = HookOffer(item) if isinstance(item, str) else _offer(item)
        if offer.name not in known:
            raise ProtocolError(
                f"the plugin offers hook {offer.name!r}, which this host does not have"
            )
        hooks.append(offer)
    if not hooks:
        raise ProtocolError("the plugin handles no hooks")
    capabilities = data.get("capabilities") or []
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise ProtocolError("'capabilities' must be a list of names")
    return Hello(str(data.get("name") or ""), str(data.get("version") or ""), tuple(hooks),
                 tuple(capabilities))  # fmt: skip


def _offer(item: Any) -> HookOffer:
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise ProtocolError(f'a hook must be a name or {{"name": ..., "priority": ...}}: {item!r}')
    priority = item.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ProtocolError(f"hook {item['name']!r}: priority must be an integer")
    return HookOffer(item["name"], priority)


_ADAPTERS: dict[type[Any], pydantic.TypeAdapter[Any]] = {}


def _adapter(kind: type[Any]) -> pydantic.TypeAdapter[Any]:
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = pydantic.TypeAdapter(kind)
    return adapter


_SERIALIZERS: dict[type[Any], pydantic_core.SchemaSerializer] = {}


def _serializer(kind: type[Any]) -> pydantic_core.SchemaSerializer:
    """Straight to JSON text, writing NaN and infinities as `json.dumps` does."""
    serializer = _SERIALIZERS.get(kind)
    if serializer is None:
        config = pydantic_core.CoreConfig(ser_json_inf_nan="constants")
        serializer = pydantic_core.SchemaSerializer(_adapter(kind).core_schema, config)
        _SERIALIZERS[kind] = serializer
    return serializer


def _errors(error: Exception) -> str:
    if isinstance(error, pydantic.ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                         for e in error.errors()[:3])  # fmt: skip
    return str(error)


def _brief(text: bytes | str, limit: int = 80) -> str:
    shown = text.decode(errors="replace") if isinstance(text, bytes) else text
    return repr(shown if len(shown) <= limit else shown[:limit] + "...")
