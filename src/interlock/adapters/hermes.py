"""interlock for Hermes Agent: the same plugins govern a Hermes agent, loaded as a Hermes
plugin.

Installed with `pip install 'interlock[hermes]'`, the package offers the entry point
`interlock` in Hermes' `hermes_agent.plugins` group; enable it in Hermes' config and name
the interlock config file:

    plugins:
      enabled: [interlock]
      entries:
        interlock:
          config: ~/.hermes/interlock.yaml     # or INTERLOCK_CONFIG, or HERMES_HOME/interlock.yaml

Hermes calls `register(ctx)`; it loads the config and installs `Interlock(manager)`, which
maps Hermes' seams to catalog hooks:

- `tool_request` middleware: `pre_tool_call` (a `Modify` of the arguments is what the tool
  gets); Hermes' `pre_tool_call` hook then answers the same decision: a `Block` is
  `{"action": "block", "message": reason}` (the reason is the tool result the model reads),
  an `Ask` is `{"action": "approve", ...}` (Hermes' own approval prompt);
- `transform_tool_result`: `post_tool_call` (a `Modify` of the output is what the model
  reads, a `Block` replaces it with an error);
- `pre_llm_call` (Hermes fires it once per user turn): `message_received` (a `Modify`
  redacts the user's text in every model request of the turn; a `Block` answers the turn
  with the reason and the model is not called);
- `llm_request` middleware: `pre_llm_call`, once per model request (messages and params
  may be modified; system items from plugins are added here); `llm_execution` middleware
  honours its `Respond` and `Block` without calling the model;
- `post_api_request`: `post_llm_call` (observed: Hermes has already used the response);
- `on_session_start` / `on_session_finalize`: `session_start` / `session_end` (Hermes'
  `on_session_end` fires after every turn; interlock's session outlives its turns).

Hermes swallows exceptions raised in hook callbacks and runs the tool anyway, so nothing
here raises into Hermes: a gate that fails answers with a block.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .. import (
    HookSpec,
    InterlockError,
    Level,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    PluginManager,
    Role,
    ToolCall,
    ToolResult,
    Usage,
    hooks,
)
from ._bridge import Bridge, Session, Verdict, arguments, json_data, plain, text, tool_call

__all__ = ["CLAIMS", "HermesConfigError", "Interlock", "register"]

logger = logging.getLogger("interlock.adapters.hermes")

HOST = "hermes"
CLAIMS = (
    "session_start",
    "session_end",
    "message_received",
    "pre_llm_call",
    "post_llm_call",
    "pre_tool_call",
    "post_tool_call",
)
"""The hooks this adapter fires."""

CONFIG_ENV = "INTERLOCK_CONFIG"
"""The environment variable naming the interlock config when Hermes' config does not."""

_REQUEST_KEYS = ("messages", "input")  # chat completions, responses API
_NOT_PARAMS = frozenset({"messages", "input", "tools", "model", "stream"})

P = TypeVar("P")


class HermesConfigError(InterlockError):
    """The interlock plugin for Hermes found no interlock config to load."""


def register(ctx: Any) -> None:
    """Hermes' plugin entry: load the interlock config and install the adapter.

    The config is the file named by `plugins.entries.interlock.config` in Hermes' config,
    else by `INTERLOCK_CONFIG`, else `interlock.yaml` in `HERMES_HOME`. A missing file
    raises `HermesConfigError` (Hermes reports the plugin as failed to load); a bad one
    raises interlock's `ConfigError` naming the entry.
    """
    from ..config import load_config

    manager = load_config(_config_path(ctx))
    Interlock(manager).register(ctx)


def _config_path(ctx: Any) -> Path:
    plugin = getattr(getattr(ctx, "manifest", None), "key", "") or "interlock"
    configured: Any = None
    try:
        hermes_config = importlib.import_module("hermes_cli.config").load_config
        entries = (hermes_config() or {}).get("plugins", {}).get("entries", {}) or {}
        configured = (entries.get(plugin) or {}).get("config")
    except Exception:  # Hermes' config unreadable: fall back to the environment
        logger.debug("could not read Hermes' config for plugin %r", plugin, exc_info=True)
    candidates: list[tuple[str, Any]] = [
        (f"plugins.entries.{plugin}.config in Hermes' config", configured),
        (CONFIG_ENV, os.environ.get(CONFIG_ENV)),
    ]
    home = os.environ.get("HERMES_HOME") or str(Path.home() / ".hermes")
    default = Path(home) / "interlock.yaml"
    for where, value in candidates:
        if value:
            path = Path(str(value)).expanduser()
            if not path.is_file():
                raise HermesConfigError(
                    f"the interlock plugin for Hermes: {where} names {str(path)!r}, which is "
                    "not a file; point it at your interlock.yaml"
                )
            return path
    if default.is_file():
        return default
    raise HermesConfigError(
        "the interlock plugin for Hermes found no interlock config: set "
        f"plugins.entries.{plugin}.config in Hermes' config.yaml, or {CONFIG_ENV}, or put "
        f"an interlock.yaml in {home}"
    )


@dataclasses.dataclass
class _Turn:
    """Per session: what `message_received` decided about the current user message."""

    redactions: dict[str, str] = dataclasses.field(default_factory=dict)
    blocked: str | None = None


@dataclasses.dataclass(frozen=True)
class _Gate:
    """A `pre_tool_call` decision taken in `tool_request`, for Hermes' `pre_tool_call`."""

    verdict: Verdict[ToolCall]
    args: Any  # the arguments as the tool will get them


class Interlock:
    """The adapter: governs a Hermes agent with the plugins of `manager`.

    `Interlock(manager).register(ctx)` in a Hermes plugin's own `register(ctx)` installs
    it (the `interlock` entry point does this with the config file). `tags`, `idle_ttl`,
    `notify`: the sessions' tags, idle timeout and `notify` sink. Sessions are keyed by
    Hermes' `session_id`.
    """

    def __init__(
        self,
        manager: PluginManager,
        *,
        tags: tuple[str, ...] = (),
        idle_ttl: float | None = 3600.0,
        notify: Callable[[str, str, Level, str], None] | None = None,
    ) -> None:
        self.bridge = Bridge(manager, host=HOST, tags=tags, idle_ttl=idle_ttl, notify=notify)
        self._lock = threading.Lock()
        self._gates: dict[tuple[str, str], _Gate] = {}
        self._calls: dict[tuple[str, str], Verdict[LLMRequest] | str] = {}
        self._turns: weakref.WeakKeyDictionary[Session, _Turn] = weakref.WeakKeyDictionary()

    @property
    def manager(self) -> PluginManager:
        """The plugin manager the adapter asks."""
        return self.bridge.manager

    def register(self, ctx: Any) -> None:
        """Install the adapter's hooks and middleware with Hermes' plugin context `ctx`."""
        ctx.register_middleware("tool_request", self.tool_request)
        ctx.register_middleware("llm_request", self.llm_request)
        ctx.register_middleware("llm_execution", self.llm_execution)
        ctx.register_hook("pre_tool_call", self.pre_tool_call)
        ctx.register_hook("transform_tool_result", self.transform_tool_result)
        ctx.register_hook("pre_llm_call", self.pre_llm_call)
        ctx.register_hook("post_api_request", self.post_api_request)
        ctx.register_hook("on_session_start", self.on_session_start)
        ctx.register_hook("on_session_finalize", self.on_session_finalize)

    def close(self) -> None:
        """End every open session (`session_end`)."""
        self.bridge.close()

    # -- sessions -----------------------------------------------------------------------

    def on_session_start(self, session_id: str = "", **_: Any) -> None:
        """Hermes' `on_session_start`: opens the session (`session_start`)."""
        try:
            self.bridge.session_sync(session_id or None)
        except Exception:
            logger.exception("interlock could not open session %r", session_id)

    def on_session_finalize(self, session_id: str = "", reason: str = "", **_: Any) -> None:
        """Hermes' `on_session_finalize`: ends the session (`session_end`)."""
        if not session_id:
            return
        try:
            session = self.bridge.find(session_id)
            if session is not None:
                self._forget(session_id)
                self.bridge.end_sync(session, reason or "completed")
        except Exception:
            logger.exception("interlock could not end session %r", session_id)

    def _forget(self, session_id: str) -> None:
        with self._lock:
            for key in [k for k in self._gates if k[0] == session_id]:
                del self._gates[key]
            for key in [k for k in self._calls if k[0] == session_id]:
                del self._calls[key]

    def _turn(self, session: Session) -> _Turn:
        with self._lock:
            return self._turns.setdefault(session, _Turn())

    # -- tools --------------------------------------------------------------------------

    def tool_request(
        self,
        tool_name: str = "",
        args: Any = None,
        session_id: str = "",
        tool_call_id: str = "",
        **_: Any,
    ) -> dict[str, Any] | None:
        """`tool_request` middleware: `pre_tool_call`; a `Modify` of the arguments is what
        Hermes' guardrails, approvals and the tool see."""
        try:
            session = self.bridge.session_sync(session_id or None)
            payload = tool_call(tool_name, args, tool_call_id or _call_key(tool_name, args))
            verdict = self.bridge.fire_sync(hooks.PRE_TOOL_CALL, payload, session)
        except Exception as error:  # the adapter's own failure: decided as a block
            verdict = _failed(hooks.PRE_TOOL_CALL, tool_call(tool_name, {}, tool_call_id), error)
        new_args = args
        if not verdict.blocked and verdict.changed:
            new_args = plain(verdict.payload.arguments)
        self._gates[(session_id, tool_call_id or _call_key(tool_name, new_args))] = _Gate(
            verdict, new_args
        )
        if new_args is args:
            return None
        return {"args": new_args, "source": "interlock", "reason": _by(verdict)}

    def pre_tool_call(
        self,
        tool_name: str = "",
        args: Any = None,
        session_id: str = "",
        tool_call_id: str = "",
        **_: Any,
    ) -> dict[str, Any] | None:
        """Hermes' `pre_tool_call`: the decision `tool_request` took, as Hermes' directive
        (judged here when no `tool_request` came first, or when the arguments changed
        since)."""
        try:
            key = (session_id, tool_call_id or _call_key(tool_name, args))
            gate = self._gates.pop(key, None)
            if gate is None:
                session = self.bridge.session_sync(session_id or None)
                payload = tool_call(tool_name, args, tool_call_id)
                verdict = self.bridge.fire_sync(hooks.PRE_TOOL_CALL, payload, session)
                if not verdict.blocked and verdict.changed:
                    return _block(
                        f"plugin {_by(verdict)!r} changed the arguments of {tool_name!r}, "
                        "but this Hermes call site runs no tool_request middleware to apply "
                        "the change; the call is blocked rather than run unchanged"
                    )
            elif plain(arguments(args)) != plain(arguments(gate.args)):
                verdict = self._recheck(tool_name, args, tool_call_id, session_id)
                if not verdict.blocked and verdict.changed:
                    return _block(
                        f"the arguments of {tool_name!r} changed after interlock judged them "
                        f"and plugin {_by(verdict)!r} changed them again, which Hermes can no "
                        "longer apply; the call is blocked"
                    )
            else:
                verdict = gate.verdict
            if verdict.blocked:
                return _block(_refusal(f"tool {tool_name!r}", verdict))
            if verdict.question is not None:
                return {"action": "approve", "message": verdict.question, "rule_key": tool_name}
            return None
        except Exception as error:
            logger.exception("interlock failed while judging %r", tool_name)
            return _block(
                f"interlock could not judge {tool_name!r} ({type(error).__name__}: {error}); "
                "it is blocked rather than run unjudged"
            )

    def _recheck(
        self, tool_name: str, args: Any, call_id: str, session_id: str
    ) -> Verdict[ToolCall]:
        """The changed call asked about again (`ctx.recheck`: not a new event)."""
        payload = tool_call(tool_name, args, call_id)
        try:
            session = self.bridge.session_sync(session_id or None)
            result = self.manager.invoke_sync(
                hooks.PRE_TOOL_CALL, payload, scope=session.scope, recheck=True
            )
        except Exception as error:
            return _failed(hooks.PRE_TOOL_CALL, payload, error)
        final = payload if result.payload is None else result.payload
        if result.blocked:
            return Verdict(final, True, result.reason, result.blocked_by, result=result)
        question = result.question if result.asked else None
        return Verdict(final, question=question, result=result)

    def transform_tool_result(
        self,
        tool_name: str = "",
        args: Any = None,
        result: Any = None,
        session_id: str = "",
        tool_call_id: str = "",
        status: str = "",
        **_: Any,
    ) -> str | None:
        """Hermes' `transform_tool_result`: `post_tool_call`; what it returns is what the
        model reads."""
        output = text(result) if result is not None else ""
        payload = ToolResult(
            str(tool_name),
            arguments(args),
            tool_call_id or _call_key(tool_name, args),
            output,
            is_error=status not in ("", "ok", "success"),
        )
        try:
            session = self.bridge.session_sync(session_id or None)
            verdict = self.bridge.fire_sync(hooks.POST_TOOL_CALL, payload, session)
        except Exception as error:
            verdict = _failed(hooks.POST_TOOL_CALL, payload, error)
        if verdict.blocked:
            refusal = _refusal(f"the result of tool {tool_name!r}", verdict)
            return json.dumps({"error": refusal}, ensure_ascii=False)
        if verdict.changed and verdict.payload.output != output:
            return verdict.payload.output
        return None

    # -- the model ----------------------------------------------------------------------

    def pre_llm_call(
        self, session_id: str = "", user_message: Any = None, platform: str = "", **_: Any
    ) -> None:
        """Hermes' `pre_llm_call` (once per user turn): `message_received`."""
        try:
            session = self.bridge.session_sync(session_id or None)
            turn = self._turn(session)
            turn.blocked = None
            if user_message is None:
                return
            original = text(user_message)
            event = MessageEvent(original, "user", channel=str(platform or ""))
            verdict = self.bridge.fire_sync(hooks.MESSAGE_RECEIVED, event, session)
            if verdict.blocked:
                turn.blocked = _refusal("your message", verdict)
            elif verdict.payload.content != original:
                turn.redactions[original] = verdict.payload.content
        except Exception as error:
            logger.exception("interlock failed on a user message")
            found = self.bridge.find(session_id) if session_id else None
            if found is not None:
                self._turn(found).blocked = f"interlock could not judge the message: {error}"

    def llm_request(
        self,
        request: Any = None,
        session_id: str = "",
        api_request_id: str = "",
        model: str = "",
        **_: Any,
    ) -> dict[str, Any] | None:
        """`llm_request` middleware: `pre_llm_call`, once per model request.

        The user's text as `message_received` left it and the plugins' system items go
        into the request first; a `Modify` of messages or params is what the provider gets.
        """
        if not isinstance(request, dict):
            return None
        key = (session_id, api_request_id or "")
        try:
            session = self.bridge.session_sync(session_id or None)
            turn = self._turn(session)
            new = dict(request)
            field = next((k for k in _REQUEST_KEYS if isinstance(new.get(k), list)), None)
            changed = False
            if field is not None:
                items = [dict(m) if isinstance(m, dict) else m for m in new[field]]
                changed = _redact(items, turn.redactions)
                new[field] = items
            if turn.blocked is not None:
                self._calls[key] = turn.blocked
                return None
            payload = _llm_request(new, field, str(new.get("model") or model or ""))
            verdict = self.bridge.fire_sync(hooks.PRE_LLM_CALL, payload, session)
            if verdict.blocked or verdict.response is not None:
                self._calls[key] = verdict
                return None
            if verdict.changed and verdict.payload != payload:
                _apply(new, field, payload, verdict.payload)
                changed = True
            # The session's system items (this hook's included) are durable: every request
            # from now on carries them, after the conversation.
            session.take_system_items()
            if field is not None and session.items:
                items = [{"role": "system", "content": f"[{k}] {t}"} for k, t, _ in session.items]
                new[field] = [*new[field], *items]
                changed = True
            return {"request": new, "source": "interlock"} if changed else None
        except Exception as error:
            logger.exception("interlock failed on a model request")
            self._calls[key] = f"interlock could not judge the model request: {error}"
            return None

    def llm_execution(
        self,
        request: Any = None,
        next_call: Callable[..., Any] | None = None,
        session_id: str = "",
        api_request_id: str = "",
        model: str = "",
        api_mode: str = "",
        **_: Any,
    ) -> Any:
        """`llm_execution` middleware: a `Respond` (or a block) answers in the model's place;
        otherwise the provider is called."""
        decided = self._calls.pop((session_id, api_request_id or ""), None)
        if decided is None:
            if next_call is None:
                raise TypeError("Hermes called llm_execution middleware without next_call")
            return next_call(request)
        if isinstance(decided, str):
            response = LLMResponse(model, content=decided)
        elif decided.response is not None:
            response = decided.response
        else:
            response = LLMResponse(model, content=_refusal("the model call", decided))
        if api_mode and api_mode != "chat_completions":
            logger.warning(
                "interlock answers a model call in chat-completions form, but Hermes runs "
                "api_mode %r; Hermes may reject it (the model is not called either way)",
                api_mode,
            )
        return _completion(response, model)

    def post_api_request(
        self,
        session_id: str = "",
        model: str = "",
        response_model: Any = None,
        assistant_message: Any = None,
        finish_reason: Any = None,
        usage: Any = None,
        **_: Any,
    ) -> None:
        """Hermes' `post_api_request`: `post_llm_call` (observed: a `Modify` or `Block` is
        logged, Hermes has already used the response)."""
        try:
            session = self.bridge.session_sync(session_id or None)
            payload = _llm_response(
                str(response_model or model or ""), assistant_message, finish_reason, usage
            )
            verdict = self.bridge.fire_sync(hooks.POST_LLM_CALL, payload, session)
            if verdict.blocked or verdict.changed:
                logger.warning(
                    "plugin %r answered post_llm_call with a %s, which Hermes cannot honour "
                    "(its post_api_request hook only observes); the response was used as is",
                    _by(verdict),
                    "block" if verdict.blocked else "modification",
                )
        except Exception:
            logger.exception("interlock failed on a model response")


# -- converters -----------------------------------------------------------------------


def _call_key(tool_name: str, args: Any) -> str:
    """A call id for a call Hermes gave none: the same call gets the same one."""
    return f"{tool_name}:{json.dumps(plain(arguments(args)), sort_keys=True, default=str)}"


def _by(verdict: Verdict[Any]) -> str:
    """The plugin behind a verdict: who blocked, answered, asked or last changed it."""
    result = verdict.result
    if verdict.blocked_by:
        return verdict.blocked_by
    if result is not None:
        if result.responded_by:
            return result.responded_by
        if result.asks:
            return result.asks[0][0]
        if result.modified_by:
            return result.modified_by[-1]
    return "interlock"


def _refusal(what: str, verdict: Verdict[Any]) -> str:
    """What the model (or the user) reads about a block: what, by whom, why."""
    reason = f": {verdict.reason}" if verdict.reason else ""
    return f"{what} was blocked by plugin {_by(verdict)!r}{reason}"


def _block(message: str) -> dict[str, Any]:
    return {"action": "block", "message": message}


def _failed(hook: HookSpec[P], payload: P, error: Exception) -> Verdict[P]:
    logger.exception("interlock could not judge %s for hermes", hook.name)
    reason = (
        f"interlock could not judge {hook.name} ({type(error).__name__}: {error}); "
        "it is blocked rather than let through unjudged"
    )
    return Verdict(payload, True, reason, "interlock")


def _redact(items: list[Any], redactions: Mapping[str, str]) -> bool:
    """Replace user texts `message_received` changed; True if any was."""
    if not redactions:
        return False
    changed = False
    for item in items:
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, str) and content in redactions:
            item["content"] = redactions[content]
            changed = True
        elif isinstance(content, list):
            parts = []
            for part in content:
                value = part.get("text") if isinstance(part, dict) else None
                if isinstance(value, str) and value in redactions:
                    part = {**part, "text": redactions[value]}
                    changed = True
                parts.append(part)
            item["content"] = parts
    return changed


_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


def _message(item: Any) -> Message:
    if not isinstance(item, dict):
        return Message("user", text(item))
    role = _ROLES.get(str(item.get("role") or "user"), "user")
    content = item.get("content")
    if isinstance(content, list):  # content parts: their text
        content = "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and "text" in p
        )
    calls = []
    for call in item.get("tool_calls") or ():
        function = call.get("function") or {} if isinstance(call, dict) else {}
        calls.append(
            tool_call(str(function.get("name") or ""), function.get("arguments"), call.get("id"))
        )
    return Message(
        role,
        "" if content is None else text(content),
        name=item.get("name"),
        tool_call_id=item.get("tool_call_id"),
        tool_calls=tuple(calls),
    )


def _llm_request(request: dict[str, Any], field: str | None, model: str) -> LLMRequest:
    messages = tuple(_message(m) for m in request.get(field, ())) if field else ()
    params = {k: json_data(v) for k, v in request.items() if k not in _NOT_PARAMS}
    return LLMRequest(model, messages, params=params, stream=bool(request.get("stream")))


def _apply(
    request: dict[str, Any], field: str | None, before: LLMRequest, after: LLMRequest
) -> None:
    """Write the plugins' changes of messages and params back into Hermes' request."""
    if after.params != before.params:
        for name in [k for k in request if k not in _NOT_PARAMS]:
            del request[name]
        request.update(plain(after.params))
    if field is None or after.messages == before.messages:
        return
    items: list[Any] = request[field]
    if len(after.messages) == len(before.messages):
        for index, (old, new) in enumerate(zip(before.messages, after.messages, strict=True)):
            if old != new and isinstance(items[index], dict):
                items[index] = {**items[index], **_wire(new)}
        return
    request[field] = [_wire(m) for m in after.messages]


def _wire(message: Message) -> dict[str, Any]:
    item: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name is not None:
        item["name"] = message.name
    if message.tool_call_id is not None:
        item["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        item["tool_calls"] = [_wire_call(c) for c in message.tool_calls]
    return item


def _wire_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.call_id or f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": call.tool_name, "arguments": json.dumps(plain(call.arguments))},
    }


def _llm_response(model: str, message: Any, finish_reason: Any, usage: Any) -> LLMResponse:
    content = getattr(message, "content", None) if message is not None else None
    calls = []
    for call in getattr(message, "tool_calls", None) or ():
        function = getattr(call, "function", None)
        calls.append(
            tool_call(
                str(getattr(function, "name", "") or ""),
                getattr(function, "arguments", None),
                getattr(call, "id", None),
            )
        )
    counts = usage if isinstance(usage, Mapping) else {}
    tokens = Usage(
        _int(counts.get("input_tokens", counts.get("prompt_tokens"))),
        _int(counts.get("output_tokens", counts.get("completion_tokens"))),
    )
    return LLMResponse(
        model,
        "" if content is None else text(content),
        tuple(calls),
        tokens,
        str(finish_reason or "stop"),
    )


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _completion(response: Any, model: str) -> Any:
    """An answer in the model's place, as an OpenAI chat completion (what Hermes' chat
    completions path reads)."""
    from openai.types.chat import ChatCompletion

    if not isinstance(response, LLMResponse):
        response = LLMResponse(model, content=text(response))
    calls = [_wire_call(c) for c in response.tool_calls]
    message: dict[str, Any] = {"role": "assistant", "content": response.content}
    if calls:
        message["tool_calls"] = calls
    return ChatCompletion.model_validate(
        {
            "id": f"interlock-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": response.model or model or "interlock",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls" if calls else "stop",
                    "message": message,
                }
            ],
            "usage": {
                "prompt_tokens": response.usage.input_tokens,
                "completion_tokens": response.usage.output_tokens,
                "total_tokens": response.usage.total_tokens,
            },
        }
    )
