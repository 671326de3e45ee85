"""interlock for Mellea: the same plugins govern Mellea sessions through Mellea's own hooks.

    from mellea import start_session
    from mellea.plugins import register
    from interlock.adapters.mellea import plugin

    register(plugin(manager))                    # every session, or:
    with start_session(..., plugins=[plugin(manager)]) as m:
        ...

`plugin(manager)` is a Mellea plugin (a ContextForge `Plugin`, the kind
`mellea.plugins.register` and `start_session(plugins=[...])` accept) whose handlers turn
Mellea's hooks into catalog hooks: `tool_pre_invoke`/`tool_post_invoke` into
`pre_tool_call`/`post_tool_call`, `generation_pre_call`/`generation_post_call` into
`pre_llm_call`/`post_llm_call`, `streaming_event` chunks into `llm_stream_chunk`,
`session_post_init`/`session_cleanup` into `session_start`/`session_end`, and
`generation_error`/`component_post_error` into `error`.

A blocked (or refused) tool call is not run: the call's function is swapped, through the
one field Mellea lets plugins write there, for one that returns the reason, so the
model reads it as that call's tool message. A Block of a model call is Mellea's own
`PluginViolationError`. Where Mellea's payload policy does not let a decision through
(message edits before a model call, any change of the model's output), the call is
blocked rather than let through unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .. import (
    ErrorEvent,
    HookSpec,
    Level,
    LLMRequest,
    LLMResponse,
    Message,
    PluginManager,
    Role,
    StreamChunk,
    ToolCall,
    ToolResult,
    ToolSchema,
    hooks,
)
from ._bridge import (
    Approver,
    Bridge,
    Session,
    Verdict,
    arguments,
    describe,
    json_data,
    missing_extra,
    plain,
    text,
    tool_call,
)

try:
    from cpex.framework.models import (  # type: ignore[import-untyped]
        OnError,
        PluginConfig,
        PluginMode,
        PluginResult,
    )
    from mellea.backends.model_options import ModelOption
    from mellea.core.base import AbstractMelleaTool, ModelToolCall
    from mellea.plugins import block, modify
    from mellea.plugins.base import MelleaPlugin
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise missing_extra("interlock.adapters.mellea", "Mellea with its hooks", "mellea") from error

__all__ = ["CLAIMS", "InterlockPlugin", "plugin"]

logger = logging.getLogger("interlock.adapters.mellea")

HOST = "mellea"
CLAIMS = (
    "session_start",
    "session_end",
    "pre_llm_call",
    "post_llm_call",
    "llm_stream_chunk",
    "pre_tool_call",
    "post_tool_call",
    "error",
)
"""The hooks this adapter fires."""

MELLEA_HOOKS = (
    "session_post_init",
    "session_cleanup",
    "generation_pre_call",
    "generation_post_call",
    "generation_error",
    "component_post_error",
    "streaming_event",
    "tool_pre_invoke",
    "tool_post_invoke",
)
"""The Mellea hooks the plugin handles."""

_CODE = "interlock"  # the violation code Mellea shows with a block


def plugin(
    manager: PluginManager,
    *,
    name: str = "interlock",
    priority: int = 50,
    tags: tuple[str, ...] = (),
    idle_ttl: float | None = 3600.0,
    approver: Approver | None = None,
    notify: Callable[[str, str, Level, str], None] | None = None,
    deadline: float = 4.5,
) -> InterlockPlugin:
    """A Mellea plugin that runs `manager`'s plugins at Mellea's hooks.

    Pass it to `mellea.plugins.register(...)` (every session) or to
    `start_session(..., plugins=[...])`. `name` is its name in Mellea's registry (one
    name, one registration); `priority` its place among Mellea's own plugins (lower runs
    first). `approver` decides an `Ask` (refused without one); `tags`, `idle_ttl` and
    `notify` are the sessions' tags, idle timeout and `notify` sink. `deadline` bounds
    one hook's judgement in seconds: keep it below Mellea's plugin timeout (5 s), past
    which Mellea itself would stop waiting; a gate that is not judged in time is a block.
    """
    return InterlockPlugin(
        manager,
        name=name,
        priority=priority,
        tags=tags,
        idle_ttl=idle_ttl,
        approver=approver,
        notify=notify,
        deadline=deadline,
    )


class InterlockPlugin(MelleaPlugin):
    """The Mellea plugin `plugin()` returns; see the module docstring for the mapping.

    Mellea's tool and generation hooks carry no session id: the session is the one Mellea
    runs the call in (`with start_session(...)`), else the last one `session_post_init`
    opened, else one of the plugin's own. `close()`/`await aclose()` end the sessions
    still open (`session_end`).
    """

    def __init__(
        self,
        manager: PluginManager,
        *,
        name: str = "interlock",
        priority: int = 50,
        tags: tuple[str, ...] = (),
        idle_ttl: float | None = 3600.0,
        approver: Approver | None = None,
        notify: Callable[[str, str, Level, str], None] | None = None,
        deadline: float = 4.5,
    ) -> None:
        config = PluginConfig(
            name=name,
            kind=f"{__name__}.InterlockPlugin",
            hooks=list(MELLEA_HOOKS),
            mode=PluginMode.SEQUENTIAL,
            # Our handlers never raise (a failure is a block); should Mellea's own
            # timeout fire, the call stops rather than going on unjudged.
            on_error=OnError.FAIL,
            priority=priority,
        )
        super().__init__(config)
        self.bridge = Bridge(
            manager, host=HOST, tags=tags, idle_ttl=idle_ttl, approver=approver, notify=notify
        )
        self.deadline = deadline
        self._own_key = self.bridge.key(None)
        self._latest: str | None = None
        self._models: dict[str, str] = {}
        self._errors: collections.deque[BaseException] = collections.deque(maxlen=32)

    async def initialize(self) -> None:
        """Nothing to start: sessions open on first use."""

    async def shutdown(self) -> None:
        """Mellea is shutting its plugins down: end the open sessions."""
        await self.aclose()

    def close(self) -> None:
        """End every open session (`session_end`), for sync code."""
        self.bridge.close()

    async def aclose(self) -> None:
        """End every open session (`session_end`)."""
        await self.bridge.aclose()

    # -- sessions -----------------------------------------------------------------------

    async def session_post_init(self, payload: Any, context: Any) -> Any:
        """`session_start`: a Mellea session was created."""
        key = payload.session_id or None
        if key is not None:
            self._latest = key
        await _observing("session_post_init", self.bridge.session(key or self._own_key))
        return _go()

    async def session_cleanup(self, payload: Any, context: Any) -> Any:
        """`session_end`: a Mellea session is being cleaned up."""
        key = payload.session_id or self._current()
        if self._latest == key:
            self._latest = None
        self._models.pop(key, None)
        session = self.bridge.find(key)
        if session is not None:
            reason = "completed" if payload.exception is None else "error"
            await _observing("session_cleanup", self.bridge.end(session, reason))
        return _go()

    # -- model calls ----------------------------------------------------------------------

    async def generation_pre_call(self, payload: Any, context: Any) -> Any:
        """`pre_llm_call`: Modify of params (Mellea's `model_options`), Block."""
        try:
            session = await self._session(payload)
            options = dict(payload.model_options or {})
            model = str(payload.model or "")
            self._models[session.key] = model
            request = LLMRequest(
                model,
                _messages(payload.context, payload.action),
                _tools(options.get(ModelOption.TOOLS)),
                _params(options),
                bool(options.get(ModelOption.STREAM, False)),
            )
        except Exception as error:
            return _unjudged("generation_pre_call", error)
        verdict = await self._fire(hooks.PRE_LLM_CALL, request, session)
        if verdict.blocked:
            return block(verdict.refusal("the model call was blocked", "interlock"), code=_CODE)
        if verdict.response is not None:
            return block(
                f"plugin {_who(verdict)!r} answered in the model's place (Respond), which "
                "Mellea cannot deliver at generation_pre_call; the model call is blocked",
                code=_CODE,
            )
        if not verdict.changed:
            return _go()
        after = verdict.payload
        if (after.messages, after.tools, after.stream) != (
            request.messages,
            request.tools,
            request.stream,
        ):
            return block(
                f"plugin {_who(verdict)!r} changed the messages or tools of a model call; "
                "Mellea lets plugins change only model_options, format and tool_calls at "
                "generation_pre_call, so the call is blocked rather than sent unchanged",
                code=_CODE,
            )
        if after.params == request.params:
            return _go()
        changed = {k: v for k, v in options.items() if not isinstance(k, str) or k in _KEPT}
        changed.update(plain(after.params))
        return modify(payload, model_options=changed)

    async def generation_post_call(self, payload: Any, context: Any) -> Any:
        """`post_llm_call`: Block (Mellea lets no plugin change the output there)."""
        try:
            session = await self._session(payload)
            output = payload.model_output
            response = LLMResponse(
                self._models.get(session.key, ""),
                text(getattr(output, "value", None) or ""),
                _calls(getattr(output, "tool_calls", None)),
            )
        except Exception as error:
            return _unjudged("generation_post_call", error)
        verdict = await self._fire(hooks.POST_LLM_CALL, response, session)
        if verdict.blocked:
            return block(verdict.refusal("the model's output was blocked", "interlock"), code=_CODE)
        if verdict.changed and verdict.payload != response:
            return block(
                f"plugin {_who(verdict)!r} changed the model's output; Mellea lets no plugin "
                "change it at generation_post_call, so it is withheld rather than "
                "shown unchanged",
                code=_CODE,
            )
        return _go()

    async def streaming_event(self, payload: Any, context: Any) -> Any:
        """`llm_stream_chunk` for each chunk `mellea.stdlib.streaming.stream` delivers."""
        event = payload.event
        if type(event).__name__ == "ChunkEvent":
            await _observing("streaming_event", self._chunk(payload, event))
        return _go()

    async def generation_error(self, payload: Any, context: Any) -> Any:
        """`error`: the model call failed."""
        await _observing("generation_error", self._error(payload, payload.exception, "generation"))
        return _go()

    async def component_post_error(self, payload: Any, context: Any) -> Any:
        """`error`: a component's execution failed (unless `generation_error` told it)."""
        await _observing("component_post_error", self._error(payload, payload.error, "component"))
        return _go()

    # -- tools ----------------------------------------------------------------------------

    async def tool_pre_invoke(self, payload: Any, context: Any) -> Any:
        """`pre_tool_call`: Modify of arguments, Block and Ask (a refusal is the result)."""
        tool = payload.model_tool_call
        if not isinstance(tool, ModelToolCall):
            return _go()
        call_id = tool.tool_call_id or payload.tool_invocation_id
        try:
            session = await self._session(payload)
            call = tool_call(tool.name, tool.args, call_id)
        except Exception as error:
            reason = f"interlock could not judge tool {tool.name!r} ({describe(error)})"
            return modify(payload, model_tool_call=_refused(tool, reason))
        verdict = await self._fire(hooks.PRE_TOOL_CALL, call, session)
        refusal = None
        if verdict.blocked:
            refusal = verdict.refusal(f"tool {tool.name!r} was blocked", "interlock")
        elif verdict.question is not None and not self.bridge.approve(call, verdict.question):
            refusal = f"tool {tool.name!r} needs approval ({verdict.question}) and it was refused"
        if refusal is not None:
            return modify(payload, model_tool_call=_refused(tool, refusal))
        after = verdict.payload
        if after.tool_name != tool.name:
            refusal = (
                f"plugin {_who(verdict)!r} renamed tool {tool.name!r} to {after.tool_name!r}; "
                "Mellea's call holds the tool's function, so the call is refused"
            )
            return modify(payload, model_tool_call=_refused(tool, refusal))
        if after.arguments == call.arguments:
            return _go()
        return modify(
            payload, model_tool_call=dataclasses.replace(tool, args=plain(after.arguments))
        )

    async def tool_post_invoke(self, payload: Any, context: Any) -> Any:
        """`post_tool_call`: Modify of the output (Mellea's `tool_output`), Block."""
        tool = payload.model_tool_call
        if not isinstance(tool, ModelToolCall):
            return _go()
        refused = isinstance(tool.func, _Refusal)
        output = payload.tool_output
        try:
            session = await self._session(payload)
            result = ToolResult(
                tool.name,
                arguments(tool.args),
                tool.tool_call_id or payload.tool_invocation_id,
                str(output) if isinstance(output, BaseException) else text(output),
                refused or not payload.success,
            )
        except Exception as error:
            reason = f"interlock could not judge the result of tool {tool.name!r}"
            return modify(payload, tool_output=f"{reason} ({describe(error)})")
        verdict = await self._fire(hooks.POST_TOOL_CALL, result, session)
        if verdict.blocked:
            withheld = f"the result of tool {tool.name!r} was withheld by plugin "
            return modify(payload, tool_output=withheld + f"{_who(verdict)!r}: {verdict.reason}")
        if verdict.changed and verdict.payload.output != result.output:
            return modify(payload, tool_output=verdict.payload.output)
        return _go()

    # -- private --------------------------------------------------------------------------

    def _current(self) -> str:
        return _running_session() or self._latest or self._own_key

    async def _session(self, payload: Any) -> Session:
        return await self.bridge.session(payload.session_id or self._current())

    async def _fire(self, hook: HookSpec[Any], payload: Any, session: Session) -> Verdict[Any]:
        """`Bridge.fire` within `deadline`: a judgement that takes longer is a block."""
        try:
            async with asyncio.timeout(self.deadline):
                return await self.bridge.fire(hook, payload, session)
        except TimeoutError:
            logger.error("interlock took over %ss to judge %s", self.deadline, hook.name)
            reason = (
                f"interlock did not judge {hook.name} within {self.deadline}s (Mellea's "
                "plugin timeout is near); it is blocked rather than let through unjudged"
            )
            return Verdict(payload, True, reason, "interlock")

    async def _chunk(self, payload: Any, event: Any) -> None:
        session = await self._session(payload)
        model = self._models.get(session.key, "")
        chunk = StreamChunk(model, int(event.chunk_index), str(event.text))
        await self._fire(hooks.LLM_STREAM_CHUNK, chunk, session)

    async def _error(self, payload: Any, error: Any, stage: str) -> None:
        if error is not None and any(seen is error for seen in self._errors):
            return  # one failure, told by both generation_error and component_post_error
        if isinstance(error, BaseException):
            self._errors.append(error)
        session = await self._session(payload)
        name = type(error).__name__ if error is not None else "Error"
        await self._fire(hooks.ERROR, ErrorEvent(name, str(error or ""), stage), session)


class _Refusal(AbstractMelleaTool[..., str]):
    """Stands in for a tool interlock refused: running it returns the refusal."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def run(self, *args: Any, **kwargs: Any) -> str:
        return self.reason

    @property
    def as_json_tool(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "parameters": {}}}


def _refused(tool: ModelToolCall, reason: str) -> ModelToolCall:
    return dataclasses.replace(tool, func=_Refusal(tool.name, reason))


_KEPT = frozenset({ModelOption.TOOLS})  # options that are objects, not parameters


def _params(options: Mapping[Any, Any]) -> Mapping[str, Any]:
    data = json_data({str(k): v for k, v in options.items() if k not in _KEPT})
    return data if isinstance(data, Mapping) else {}


def _tools(value: Any) -> tuple[ToolSchema, ...]:
    if not value:
        return ()
    found = value.values() if isinstance(value, Mapping) else value
    schemas = []
    for tool in found:
        schema = tool.as_json_tool  # a property in Mellea 0.8
        spec = (schema() if callable(schema) else schema).get("function", {})
        schemas.append(
            ToolSchema(
                str(spec.get("name", getattr(tool, "name", ""))),
                str(spec.get("description", "")),
                arguments(spec.get("parameters")),
            )
        )
    return tuple(schemas)


def _messages(context: Any, action: Any) -> tuple[Message, ...]:
    """The conversation as the model will read it: the context's view, then the action."""
    view = context.view_for_generation() if context is not None else None
    parts = [*(view or ()), *(() if action is None else (action,))]
    return tuple(_message(part) for part in parts)


_ROLES: dict[str, Role] = {
    "system": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


def _message(part: Any) -> Message:
    role: Role = _ROLES.get(str(getattr(part, "role", None)), "user")
    if type(part).__name__.endswith("ModelOutputThunk"):
        role = "assistant"
    content = getattr(part, "content", None)
    if content is None:
        content = getattr(part, "value", None)
    body = text(content if content is not None else str(part))
    called = getattr(part, "tool", None)  # a ToolMessage answers this call
    if role == "tool" and isinstance(called, ModelToolCall):
        return Message("tool", body, name=called.name, tool_call_id=called.tool_call_id)
    return Message(role, body, tool_calls=_calls(getattr(part, "tool_calls", None)))


def _calls(value: Any) -> tuple[ToolCall, ...]:
    if not value:
        return ()
    found = value.values() if isinstance(value, Mapping) else value
    return tuple(tool_call(c.name, c.args, c.tool_call_id) for c in found)


def _running_session() -> str | None:
    """The id of the Mellea session the current call runs in (`with start_session()`)."""
    try:
        from mellea.telemetry.context import get_current_context
    except ImportError:  # pragma: no cover - an older Mellea: no telemetry context
        return None
    value = get_current_context().get("session_id")
    return str(value) if value else None


async def _observing(hook: str, work: Awaitable[Any]) -> None:
    """Run an observing hook's work; a failure is logged, never raised into Mellea."""
    try:
        await work
    except Exception:
        logger.exception("interlock failed while observing Mellea's %s", hook)


def _go() -> Any:
    """Mellea's answer for "go on unchanged" (its plugins never answer None)."""
    return PluginResult(continue_processing=True)


def _who(verdict: Verdict[Any]) -> str:
    return verdict.blocked_by or "interlock"


def _unjudged(hook: str, error: Exception) -> Any:
    logger.exception("interlock could not judge Mellea's %s", hook)
    reason = f"interlock could not judge {hook} ({describe(error)}); it is blocked"
    return block(reason, code=_CODE)
