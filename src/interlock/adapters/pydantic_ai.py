"""interlock plugins governing pydantic-ai agents: one capability, added to the agent.

    from interlock.adapters.pydantic_ai import InterlockCapability

    agent = Agent(model, tools=[shell], capabilities=[InterlockCapability(manager)])

The capability turns pydantic-ai's own seams into catalog hooks:

- `before_model_request`: `message_received` for each user prompt new in the run (a
  `Modify` rewrites the prompt in the run's history, so neither the model nor
  `result.all_messages()` ever holds the original), then `pre_llm_call` (`Respond` answers
  through `SkipModelRequest`, the model is not called).
- `after_model_request`: `post_llm_call` (also for a `Respond` answer).
- `wrap_tool_validate`: `pre_tool_call` with the model's arguments, before validation, so a
  `Modify` is validated like the model's own; a `Block` is a `ToolFailed` result the model
  sees; an `Ask` goes to the approver, or becomes `ApprovalRequired` (deferred tools).
- `wrap_tool_execute`: `post_tool_call` with the tool's output (also for a refused call).
- `wrap_output_process`: `pre_tool_call` before an output *function* runs (`ToolOutput(f)`,
  a function as output type, `TextOutput(f)`, prompted or native output of a function); a
  `Block` is a `ModelRetry` (the model reads the reason; the function does not run). A
  plain structured output (a model or type, no function) is the agent's answer and passes.
- `wrap_run`: a run without a conversation id ends its own session when it ends.

Sessions are keyed by the run's conversation id, so runs continuing one conversation share
per-plugin session state; system items reach the model through `ctx.enqueue`. pydantic-ai
is imported here, so this module needs `pip install 'interlock[pydantic-ai]'`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import (
    Level,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    PluginManager,
    ToolCall,
    ToolResult,
    ToolSchema,
    Usage,
    hooks,
)
from ._bridge import (
    Approver,
    Bridge,
    Session,
    arguments,
    describe,
    json_data,
    missing_extra,
    plain,
    text,
    tool_call,
)

try:
    from pydantic_ai import messages as pai
    from pydantic_ai.capabilities import AbstractCapability
    from pydantic_ai.durable_exec import conversation_id_from_run_id
    from pydantic_ai.exceptions import (
        ApprovalRequired,
        ModelRetry,
        SkipModelRequest,
        ToolFailed,
        UserError,
    )
except ImportError as error:  # pragma: no cover - exercised without the extra installed
    raise missing_extra("interlock.adapters.pydantic_ai", "pydantic-ai", "pydantic-ai") from error

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from pydantic_ai.capabilities.abstract import WrapOutputProcessHandler, WrapRunHandler
    from pydantic_ai.models import ModelRequestContext
    from pydantic_ai.output import OutputContext
    from pydantic_ai.run import AgentRunResult
    from pydantic_ai.tools import RunContext, ToolDefinition

__all__ = ["InterlockCapability"]

logger = logging.getLogger("interlock.adapters")

HOST = "pydantic-ai"

CLAIMS = (
    "session_start",
    "session_end",
    "message_received",
    "pre_llm_call",
    "post_llm_call",
    "pre_tool_call",
    "post_tool_call",
)
"""The catalog hooks this adapter fires."""


class InterlockCapability(AbstractCapability[Any]):
    """An interlock `PluginManager` as a pydantic-ai capability.

    `Agent(model, capabilities=[InterlockCapability(manager)])`. List it after the agent's
    other capabilities, so its `pre_llm_call` sees the request as they leave it. One instance
    serves any number of agents and concurrent runs (each run gets its own copy through
    `for_run`; sessions are shared by conversation id).

    `approver` decides `Ask` answers (`(call, question) -> bool`); without one an `Ask` is
    a block, unless `defer_asks=True`: then the call is deferred with `ApprovalRequired`
    (metadata `{"question": ...}`) for the application to approve through pydantic-ai's
    deferred tools. A run without a conversation id ends its session when it ends; other
    sessions end after `idle_ttl` seconds unused, or on `aclose()`/`close()`.
    `notify` receives `ctx.notify` messages `(session key, text, level, plugin)`; without it
    they are logged.
    """

    # Identity, not the dataclass field comparison the base class would give.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __init__(
        self,
        manager: PluginManager,
        *,
        approver: Approver | None = None,
        defer_asks: bool = False,
        tags: Sequence[str] = (),
        idle_ttl: float | None = 3600.0,
        notify: Callable[[str, str, Level, str], None] | None = None,
        id: str | None = None,
    ) -> None:
        self.id = id
        self.description = None
        self.defer_loading = False
        self.bridge = Bridge(
            manager,
            host=HOST,
            tags=tuple(tags),
            idle_ttl=idle_ttl,
            approver=approver,
            notify=notify,
        )
        self.defer_asks = defer_asks
        # Per run (see `for_run`): the user prompts judged, the gated calls by call id.
        self._judged: dict[int, pai.UserPromptPart] = {}
        self._calls: dict[str, ToolCall] = {}

    def __repr__(self) -> str:
        return f"InterlockCapability({self.bridge.manager!r})"

    @property
    def manager(self) -> PluginManager:
        """The manager whose plugins govern the agent."""
        return self.bridge.manager

    async def for_run(self, ctx: RunContext[Any]) -> InterlockCapability:
        """A copy for one run: shares the bridge (sessions), keeps its own bookkeeping."""
        run = copy.copy(self)
        run._judged = {}
        run._calls = {}
        return run

    async def aclose(self) -> None:
        """End every open session (`session_end` fires for each)."""
        await self.bridge.aclose()

    def close(self) -> None:
        """`aclose` for sync code."""
        self.bridge.close()

    # -- the run ----------------------------------------------------------------------

    def get_default_conversation_id(self, run_id: str) -> str | None:
        """The id pydantic-ai gives a run that has no conversation id: derived from the run
        id (as its durable capabilities derive it), so `wrap_run` can tell such a run."""
        return conversation_id_from_run_id(run_id)

    async def wrap_run(
        self, ctx: RunContext[Any], *, handler: WrapRunHandler
    ) -> AgentRunResult[Any]:
        """A run without a conversation id ends its own session when it ends (however it
        ends), so such runs never pile up open sessions."""
        try:
            return await handler()
        finally:
            if ctx.run_id and ctx.conversation_id == conversation_id_from_run_id(ctx.run_id):
                session = self.bridge.find(ctx.conversation_id)
                if session is not None:
                    await self.bridge.end(session)

    # -- model requests ---------------------------------------------------------------

    async def before_model_request(
        self, ctx: RunContext[Any], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        """`message_received` for new user prompts, then `pre_llm_call`."""
        session = await self.bridge.session(ctx.conversation_id)
        refusal = await self._received(ctx, session)
        if refusal is not None:
            self._deliver(ctx, session)
            raise SkipModelRequest(_blocked_response(refusal))
        request = _llm_request(ctx, request_context)
        verdict = await self.bridge.fire(hooks.PRE_LLM_CALL, request, session)
        if verdict.blocked:
            self._deliver(ctx, session)
            raise SkipModelRequest(_blocked_response(verdict.reason or "blocked"))
        if verdict.response is not None:
            answer = _llm_response(verdict.response, request.model)
            after = await self.bridge.fire(hooks.POST_LLM_CALL, answer, session)
            self._deliver(ctx, session)
            if after.blocked:
                raise SkipModelRequest(_blocked_response(after.reason or "blocked"))
            raise SkipModelRequest(_model_response(after.payload, None))
        if verdict.changed:
            _apply_request(request_context, request, verdict.payload)
        self._deliver(ctx, session)
        return request_context

    async def after_model_request(
        self,
        ctx: RunContext[Any],
        *,
        request_context: ModelRequestContext,
        response: pai.ModelResponse,
    ) -> pai.ModelResponse:
        """`post_llm_call`: a `Modify` is what the agent goes on with; a `Block` ends the
        step with the reason as the answer."""
        session = await self.bridge.session(ctx.conversation_id)
        model = response.model_name or _model_name(ctx, request_context)
        payload = _from_response(response, model)
        verdict = await self.bridge.fire(hooks.POST_LLM_CALL, payload, session)
        self._deliver(ctx, session)
        if verdict.blocked:
            return _blocked_response(verdict.reason or "blocked", response)
        if verdict.changed:
            return _model_response(verdict.payload, response)
        return response

    # -- tool calls -------------------------------------------------------------------

    async def wrap_tool_validate(
        self,
        ctx: RunContext[Any],
        *,
        call: pai.ToolCallPart,
        tool_def: ToolDefinition,
        args: str | dict[str, Any],
        handler: Callable[[str | dict[str, Any]], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """`pre_tool_call`, before the arguments are validated."""
        if tool_def.kind == "output":
            return await handler(args)
        session = await self.bridge.session(ctx.conversation_id)
        payload = tool_call(call.tool_name, args, call.tool_call_id)
        verdict = await self.bridge.fire(hooks.PRE_TOOL_CALL, payload, session)
        self._deliver(ctx, session)
        gated = verdict.payload
        if verdict.blocked:
            await self._refuse(ctx, session, gated, verdict.refusal("blocked"))
        ask = None if ctx.tool_call_approved else verdict.question
        if ask is not None and not self.defer_asks:
            denied = self.bridge.denied(gated, ask)
            if denied is not None:
                await self._refuse(ctx, session, gated, denied)
        new_args: str | dict[str, Any] = plain(gated.arguments) if verdict.changed else args
        try:
            validated = await handler(new_args)
        except (ModelRetry, ToolFailed, ValueError) as error:
            # Not run: the model is told why; post_tool_call sees that as the result.
            await self._after(ctx, session, gated, _error_text(error), is_error=True)
            raise
        if ask is not None and self.defer_asks:
            raise ApprovalRequired({"question": ask})
        self._calls[call.tool_call_id] = gated
        return validated

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: pai.ToolCallPart,
        tool_def: ToolDefinition,
        args: dict[str, Any],
        handler: Callable[[dict[str, Any]], Awaitable[Any]],
    ) -> Any:
        """`post_tool_call` with the tool's output; a `Modify` is what the model sees."""
        if tool_def.kind == "output":
            return await handler(args)
        session = await self.bridge.session(ctx.conversation_id)
        gated = self._calls.pop(call.tool_call_id, None)
        if gated is None:
            gated = tool_call(call.tool_name, args, call.tool_call_id)
        try:
            result = await handler(args)
        except (ModelRetry, ToolFailed) as error:
            output = await self._after(ctx, session, gated, _error_text(error), is_error=True)
            if output is None:
                raise
            raise ToolFailed(output) from error
        except (ApprovalRequired, SkipModelRequest, UserError):
            raise
        except Exception as error:
            await self._after(ctx, session, gated, _error_text(error), is_error=True)
            raise
        output = await self._after(ctx, session, gated, text(result), is_error=False)
        return result if output is None else output

    # -- output functions -------------------------------------------------------------

    async def wrap_output_process(
        self,
        ctx: RunContext[Any],
        *,
        output_context: OutputContext,
        output: Any,
        handler: WrapOutputProcessHandler,
    ) -> Any:
        """`pre_tool_call` before an output function runs on the model's arguments.

        A `Block` (or an `Ask` the approver refuses) is a `ModelRetry`: the function does not
        run and the model reads the reason (the run fails when it keeps trying); a `Modify`
        is validated against the arguments' types, then the function gets it. Structured
        output without a function passes untouched.
        """
        if not output_context.has_function:
            return await handler(output)
        name = _output_function(output_context)
        session = await self.bridge.session(ctx.conversation_id)
        call = output_context.tool_call
        payload = tool_call(name, _output_arguments(output), call.tool_call_id if call else None)
        verdict = await self.bridge.fire(hooks.PRE_TOOL_CALL, payload, session)
        self._deliver(ctx, session)
        if verdict.blocked:
            raise ModelRetry(verdict.refusal(f"output function {name!r} was blocked"))
        if verdict.question is not None:
            denied = self.bridge.denied(verdict.payload, verdict.question)
            if denied is not None:
                raise ModelRetry(f"output function {name!r} was {denied}")
        if verdict.changed:
            output = _modified_output(name, output, verdict.payload.arguments)
        return await handler(output)

    # -- private ----------------------------------------------------------------------

    async def _received(self, ctx: RunContext[Any], session: Session) -> str | None:
        """Fire `message_received` once for each user prompt new in this run; apply a
        `Modify` to the prompt in place (the run's history holds the same part); return
        the reason when a plugin blocked one."""
        for part in _new_prompts(ctx, self._judged):
            self._judged[id(part)] = part
            event = MessageEvent(_prompt_text(part.content), metadata={"host": HOST})
            verdict = await self.bridge.fire(hooks.MESSAGE_RECEIVED, event, session)
            if verdict.blocked:
                reason = verdict.refusal("message blocked")
                part.content = f"[withheld: {reason}]"  # never sent, never stored
                return reason
            if verdict.changed:
                part.content = _with_text(part.content, verdict.payload.content)
        return None

    async def _refuse(
        self, ctx: RunContext[Any], session: Session, call: ToolCall, why: str
    ) -> None:
        refusal = f"tool {call.tool_name!r} was {why}"
        output = await self._after(ctx, session, call, refusal, is_error=True)
        raise ToolFailed(refusal if output is None else output)

    async def _after(
        self, ctx: RunContext[Any], session: Session, call: ToolCall, output: str, *, is_error: bool
    ) -> str | None:
        """Fire `post_tool_call`; the output the model should see instead, if any."""
        result = ToolResult(call.tool_name, call.arguments, call.call_id, output, is_error)
        verdict = await self.bridge.fire(hooks.POST_TOOL_CALL, result, session)
        self._deliver(ctx, session)
        if verdict.blocked:
            raise ToolFailed(verdict.refusal(f"the result of tool {call.tool_name!r} was withheld"))
        return verdict.payload.output if verdict.changed else None

    def _deliver(self, ctx: RunContext[Any], session: Session) -> None:
        """System items appended by plugins, into the conversation via `ctx.enqueue`."""
        items = session.take_system_items()
        if not items:
            return
        parts = [pai.SystemPromptPart(f"[{kind}] {item}") for kind, item, _ in items]
        try:
            ctx.enqueue(*parts)
        except UserError:  # no run to deliver to (they stay in `session.items`)
            logger.warning(
                "system items of session %r could not reach the model: the run has ended",
                session.key,
            )


def _new_prompts(
    ctx: RunContext[Any], judged: Mapping[int, pai.UserPromptPart]
) -> list[pai.UserPromptPart]:
    """User prompts of this run's requests not judged yet (earlier runs judged theirs)."""
    found: list[pai.UserPromptPart] = []
    for message in ctx.messages:
        if not isinstance(message, pai.ModelRequest):
            continue
        if message.run_id is not None and message.run_id != ctx.run_id:
            continue
        found += [
            part
            for part in message.parts
            if isinstance(part, pai.UserPromptPart) and judged.get(id(part)) is not part
        ]
    return found


def _prompt_text(content: str | Sequence[Any]) -> str:
    """Every text the model reads in a user prompt: strings and `TextContent` items."""
    if isinstance(content, str):
        return content
    return "\n".join(_item_text(item) for item in content if _is_text(item))


def _is_text(item: Any) -> bool:
    return isinstance(item, str | pai.TextContent)


def _item_text(item: str | pai.TextContent) -> str:
    return item if isinstance(item, str) else item.content


def _with_text(content: str | Sequence[Any], new: str) -> str | list[Any]:
    """`content` with its text (strings and `TextContent` items, whose application-only
    metadata goes with them) replaced by `new`; other items (images, files) kept."""
    if isinstance(content, str):
        return new
    return [new, *(item for item in content if not _is_text(item))]


def _output_function(output_context: OutputContext) -> str:
    """The name plugins see for an output function: the function's, else the output tool's."""
    if output_context.function_name:
        return output_context.function_name
    if output_context.tool_def is not None:
        return output_context.tool_def.name
    return "output"


def _output_arguments(output: Any) -> Mapping[str, Any]:
    """An output function's input as tool arguments: a multi-argument function's mapping,
    an object's fields, else the single value under `"input"` (text as it is)."""
    if isinstance(output, str):
        return {"input": output}
    return arguments(output)


def _modified_output(name: str, output: Any, new: Mapping[str, Any]) -> Any:
    """A `pre_tool_call` Modify of an output function's input, validated against the types
    of what the model produced (`ModelRetry` when it does not fit, as for the model's own)."""
    from pydantic import TypeAdapter, ValidationError

    try:
        if isinstance(output, Mapping):
            return {
                key: TypeAdapter(type(output[key])).validate_python(plain(value))
                if key in output
                else plain(value)
                for key, value in new.items()
            }
        whole = not isinstance(output, str) and isinstance(json_data(output), Mapping)
        value = plain(new) if whole else plain(new.get("input"))
        return TypeAdapter(type(output)).validate_python(value)
    except ValidationError as error:
        raise ModelRetry(
            f"the arguments a plugin gave output function {name!r} are invalid: {error}"
        ) from error


def _model_name(ctx: RunContext[Any], request_context: ModelRequestContext) -> str:
    return str(getattr(request_context.model, "model_name", None) or ctx.model.model_name)


def _llm_request(ctx: RunContext[Any], request_context: ModelRequestContext) -> LLMRequest:
    params = request_context.model_request_parameters
    system = tuple(
        Message("system", part.content) for part in params.instruction_parts or () if part.content
    )
    tools = tuple(
        ToolSchema(tool.name, tool.description or "", _schema(tool.parameters_json_schema))
        for tool in params.function_tools
    )
    settings = json_data(dict(request_context.model_settings or {}))
    return LLMRequest(
        _model_name(ctx, request_context),
        (*system, *_messages(request_context.messages)),
        tools,
        settings if isinstance(settings, Mapping) else {},
        bool(request_context.streaming),
    )


def _schema(schema: Any) -> Mapping[str, Any]:
    data = json_data(schema)
    return data if isinstance(data, Mapping) else {}


def _messages(history: Sequence[pai.ModelMessage]) -> list[Message]:
    """The conversation in the catalog's terms: one `Message` per request part the model
    reads, one per response."""
    converted: list[Message] = []
    for message in history:
        if isinstance(message, pai.ModelResponse):
            response = _from_response(message, message.model_name or "")
            converted.append(Message("assistant", response.content, tool_calls=response.tool_calls))
            continue
        for part in message.parts:
            item = _from_part(part)
            if item is not None:
                converted.append(item)
    return converted


def _from_part(part: Any) -> Message | None:
    if isinstance(part, pai.SystemPromptPart):
        return Message("system", part.content)
    if isinstance(part, pai.UserPromptPart):
        return Message("user", _prompt_text(part.content))
    if isinstance(part, pai.BaseToolReturnPart):
        return Message(
            "tool", part.model_response_str(), name=part.tool_name, tool_call_id=part.tool_call_id
        )
    if isinstance(part, pai.RetryPromptPart | pai.RetryFeedbackPart):
        return Message("user", part.model_response())
    return None


def _from_response(response: pai.ModelResponse, model: str) -> LLMResponse:
    content = "".join(part.content for part in response.parts if isinstance(part, pai.TextPart))
    calls = tuple(
        tool_call(part.tool_name, part.args, part.tool_call_id)
        for part in response.parts
        if isinstance(part, pai.ToolCallPart)
    )
    usage = Usage(response.usage.input_tokens, response.usage.output_tokens)
    finish = response.finish_reason or ("tool_calls" if calls else "stop")
    return LLMResponse(model, content, calls, usage, finish)


def _llm_response(value: Any, model: str) -> LLMResponse:
    """A `Respond` answer as an `LLMResponse` (plugins may answer with plain text)."""
    if isinstance(value, LLMResponse):
        return value
    return LLMResponse(model, text(value))


def _model_response(response: LLMResponse, original: pai.ModelResponse | None) -> pai.ModelResponse:
    """`response` as pydantic-ai's, keeping what the catalog does not describe (thinking,
    metadata) from `original`."""
    parts: list[Any] = []
    if original is not None:
        parts += [p for p in original.parts if not isinstance(p, pai.TextPart | pai.ToolCallPart)]
    if response.content:
        parts.append(pai.TextPart(response.content))
    parts += [
        pai.ToolCallPart(call.tool_name, plain(call.arguments), call.call_id or _new_call_id())
        for call in response.tool_calls
    ]
    if original is None:
        return pai.ModelResponse(parts=parts, model_name=response.model)
    return dataclasses.replace(original, parts=parts)


def _blocked_response(reason: str, original: pai.ModelResponse | None = None) -> pai.ModelResponse:
    """The step's answer when a plugin stopped it: the reason, as the model's text."""
    parts = [pai.TextPart(f"[blocked] {reason}")]
    if original is None:
        return pai.ModelResponse(parts=parts)
    return dataclasses.replace(original, parts=parts)


def _apply_request(
    request_context: ModelRequestContext, before: LLMRequest, after: LLMRequest
) -> None:
    """Put a `pre_llm_call` `Modify` into this request only (the history keeps the
    conversation as it was, as in the reference runtime)."""
    if after.params != before.params:
        request_context.model_settings = plain(after.params)  # type: ignore[assignment]
    if after.messages == before.messages:
        return
    system = sum(1 for m in before.messages if m.role == "system") - sum(
        1 for m in _messages(request_context.messages) if m.role == "system"
    )
    old, new = before.messages[system:], after.messages[system:]
    if len(old) == len(new):
        request_context.messages = _edited(request_context.messages, old, new)
    else:
        request_context.messages = _rebuilt(new)


def _edited(
    history: Sequence[pai.ModelMessage], old: Sequence[Message], new: Sequence[Message]
) -> list[pai.ModelMessage]:
    """`history` with the messages a plugin changed replaced by copies (never in place:
    the parts are shared with the run's history)."""
    edited: list[pai.ModelMessage] = []
    index = 0
    for message in history:
        if isinstance(message, pai.ModelResponse):
            if old[index] != new[index]:
                reply = LLMResponse(message.model_name or "", new[index].content)
                reply = reply.replace(tool_calls=new[index].tool_calls)
                message = _model_response(reply, message)
            index += 1
            edited.append(message)
            continue
        parts: list[Any] = []
        for part in message.parts:
            if _from_part(part) is None:
                parts.append(part)
                continue
            if old[index] != new[index]:
                part = _part_with(part, new[index])
            parts.append(part)
            index += 1
        edited.append(dataclasses.replace(message, parts=parts))
    return edited


def _part_with(part: Any, message: Message) -> Any:
    if isinstance(part, pai.UserPromptPart):
        return dataclasses.replace(part, content=_with_text(part.content, message.content))
    if isinstance(part, pai.BaseToolReturnPart | pai.SystemPromptPart):
        return dataclasses.replace(part, content=message.content)
    return _to_part(message)


def _rebuilt(messages: Sequence[Message]) -> list[pai.ModelMessage]:
    """A plugin's message list as pydantic-ai messages (used when it added or removed some)."""
    rebuilt: list[pai.ModelMessage] = []
    pending: list[Any] = []
    for message in messages:
        if message.role == "assistant":
            if pending:
                rebuilt.append(pai.ModelRequest(parts=pending))
                pending = []
            rebuilt.append(
                _model_response(LLMResponse("", message.content, message.tool_calls), None)
            )
        else:
            pending.append(_to_part(message))
    if pending:
        rebuilt.append(pai.ModelRequest(parts=pending))
    return rebuilt


def _to_part(message: Message) -> Any:
    if message.role == "system":
        return pai.SystemPromptPart(message.content)
    if message.role == "tool":
        return pai.ToolReturnPart(
            message.name or "", message.content, tool_call_id=message.tool_call_id or ""
        )
    return pai.UserPromptPart(message.content)


def _error_text(error: BaseException) -> str:
    message = getattr(error, "message", None)
    return str(message) if message is not None else describe(error)


def _new_call_id() -> str:
    return f"pyd_ai_{uuid.uuid4().hex}"
