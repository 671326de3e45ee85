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

from .. import (
    Ask,
    Block,
    Continue,
    HookContext,
    HookSpec,
    Modify,
    ProtocolError,
    Respond,
)

PROTOCOL_VERSION = 1
"""The version `initialize` exchanges; a plugin that answers another one is refused."""

MAX_MESSAGE_BYTES = 1_000_000
"""The default bound on one message, in bytes."""

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


def request(method: str, params: Any, id: int) -> dict[str, Any]:
    """A JSON-RPC request."""
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params}


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a line of UTF-8 JSON (compact, no newlines inside)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes | str, limit: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Parse one message; raises `ProtocolError` when it is not a JSON object."""
    if len(line) > limit:
        raise ProtocolError(f"a message of {len(line)} bytes is over the {limit}-byte limit")
    try:
        message = json.loads(line)
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


def load_payload(spec: HookSpec[Any], data: Any) -> Any:
    """A payload from JSON data, validated and frozen; `ProtocolError` when it does not fit."""
    try:
        return _adapter(spec.payload_type).validate_python(data)
    except (pydantic.ValidationError, TypeError, ValueError) as error:
        raise ProtocolError(
            f"a {spec.payload_type.__name__} that does not fit: {_errors(error)}"
        ) from None


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


def _errors(error: Exception) -> str:
    if isinstance(error, pydantic.ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                         for e in error.errors()[:3])  # fmt: skip
    return str(error)


def _brief(text: bytes | str, limit: int = 80) -> str:
    shown = text.decode(errors="replace") if isinstance(text, bytes) else text
    return repr(shown if len(shown) <= limit else shown[:limit] + "...")
