"""LangChain v1 / LangGraph: interlock plugins as agent middleware.

One import, one line of setup; the user's agent is otherwise unchanged:

    from interlock.adapters.langchain import InterlockMiddleware

    agent = create_agent(model, tools, middleware=[InterlockMiddleware(manager)])

What LangChain does, and the hooks it fires (every hook with a sync and an async method,
so `invoke`, `ainvoke`, `stream` and `astream` all pass through the plugins):

- `before_agent`: the session for the run's `thread_id` (opened on first use:
  `session_start`), `message_received` for each new user message. A redaction is written
  into the graph state (the human message replaced by id), so neither this model call
  nor any later one sees the original text; a block removes the message and ends the run
  with the reason as the agent's answer.
- `before_model`: system items the plugins appended go into the state's messages.
- `wrap_model_call`: `pre_llm_call` (Modify of messages and model settings; Respond
  answers with an `AIMessage` without calling the model; Block answers with the reason),
  then `post_llm_call` on the model's `AIMessage` (Modify, Block).
- `wrap_tool_call`: `pre_tool_call` with the host's tool call id (Modify of arguments;
  Block or a refused Ask becomes `ToolMessage(status="error")` carrying the reason), then
  `post_tool_call` on every result the model will see (Modify, Block).
- `after_agent`: `message_sending` on the final answer (Modify and Block rewrite it in
  the state), `turn_end`; a run without a `thread_id` ends its session here.

`InterlockCallbackHandler` (optional, passed in the run's `callbacks`) fires
`llm_stream_chunk` for the tokens a streaming model produces.

Needs `pip install 'interlock[langchain]'`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, NotRequired

from .. import (
    ErrorEvent,
    Level,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    PluginManager,
    Role,
    StreamChunk,
    ToolCall,
    ToolResult,
    ToolSchema,
    TurnEnd,
    Usage,
    hooks,
)
from ._bridge import Approver, Bridge, Session, Verdict, arguments, json_data, text, tool_call

try:
    from langchain.agents.middleware import (
        AgentMiddleware,
        AgentState,
        ExtendedModelResponse,
        ModelRequest,
        ModelResponse,
        hook_config,
    )
    from langchain.agents.middleware.types import PrivateStateAttr
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import (
        AIMessage,
        AnyMessage,
        BaseMessage,
        HumanMessage,
        RemoveMessage,
        SystemMessage,
        ToolMessage,
    )
    from langgraph.config import get_config
    from langgraph.prebuilt.tool_node import ToolCallRequest
    from langgraph.types import Command
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "interlock.adapters.langchain needs LangChain 1.x and LangGraph: "
        "pip install 'interlock[langchain]'"
    ) from error

__all__ = ["InterlockCallbackHandler", "InterlockMiddleware", "InterlockState"]

logger = logging.getLogger("interlock.adapters.langchain")

_HOST = "langchain"
_ROLES: dict[object, Role] = {"system": "system", "assistant": "assistant", "tool": "tool"}
_SESSION_KEY = "interlock_session"

ToolOutput = ToolMessage | Command[Any]


class InterlockState(AgentState[Any]):
    """The agent state with the one field the middleware keeps: the session key of a run
    that has no `thread_id` (private: neither input nor output of the agent)."""

    interlock_session: NotRequired[Annotated[str, PrivateStateAttr]]


class InterlockMiddleware(AgentMiddleware[InterlockState, Any, Any]):
    """LangChain agent middleware that runs a `PluginManager`'s plugins on the agent.

    Sessions are keyed by the run's `thread_id` (`config={"configurable": {"thread_id":
    ...}}`) and stay open across invocations of that thread; a run without one is a
    session of its own, ended when the run ends. `close()` / `aclose()` end the sessions
    still open (or they end after `idle_ttl` seconds unused).

    `approver` decides an `Ask` (True runs the tool); without one an `Ask` is refused.
    `notify` receives what plugins tell the user: `(session key, text, level, plugin)`;
    without it notifications are logged.

        agent = create_agent(model, tools, middleware=[InterlockMiddleware(manager)])
        agent.invoke({"messages": [("user", "list the files")]},
                     {"configurable": {"thread_id": "t-1"}})
    """

    state_schema = InterlockState

    def __init__(
        self,
        manager: PluginManager,
        *,
        tags: Iterable[str] = (),
        idle_ttl: float | None = 3600.0,
        approver: Approver | None = None,
        notify: Callable[[str, str, Level, str], None] | None = None,
    ) -> None:
        super().__init__()
        self.manager = manager
        self.bridge = Bridge(
            manager,
            host=_HOST,
            tags=tuple(tags),
            idle_ttl=idle_ttl,
            approver=approver,
            notify=notify,
        )

    def callback_handler(self) -> InterlockCallbackHandler:
        """A callback handler firing `llm_stream_chunk` in this middleware's sessions;
        pass it in the run's config: `config={"callbacks": [handler]}`."""
        return InterlockCallbackHandler(self)

    def close(self) -> None:
        """End every session still open (`session_end`)."""
        self.bridge.close()

    async def aclose(self) -> None:
        """`close` for async code."""
        await self.bridge.aclose()

    # -- before_agent: the session and the user's new messages ------------------------

    @hook_config(can_jump_to=["end"])
    def before_agent(self, state: InterlockState, runtime: Any) -> dict[str, Any] | None:
        """Open the session; `message_received` for each new user message."""
        anonymous, host_id = self._host_id(state, new=True)
        session = self.bridge.session_sync(host_id)
        verdicts = [
            (message, self.bridge.fire_sync(hooks.MESSAGE_RECEIVED, event, session))
            for message, event in self._inbound(state)
        ]
        return _inbound_update(verdicts, session.key if anonymous else None)

    @hook_config(can_jump_to=["end"])
    async def abefore_agent(self, state: InterlockState, runtime: Any) -> dict[str, Any] | None:
        """`before_agent` for async runs."""
        anonymous, host_id = self._host_id(state, new=True)
        session = await self.bridge.session(host_id)
        verdicts = [
            (message, await self.bridge.fire(hooks.MESSAGE_RECEIVED, event, session))
            for message, event in self._inbound(state)
        ]
        return _inbound_update(verdicts, session.key if anonymous else None)

    # -- before_model: system items into the state -----------------------------------

    def before_model(self, state: InterlockState, runtime: Any) -> dict[str, Any] | None:
        """Put the system items plugins appended into the state's messages."""
        return _items_update(self.bridge.session_sync(self._host_id(state)[1]))

    async def abefore_model(self, state: InterlockState, runtime: Any) -> dict[str, Any] | None:
        """`before_model` for async runs."""
        return _items_update(await self.bridge.session(self._host_id(state)[1]))

    # -- wrap_model_call: pre_llm_call and post_llm_call ------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """`pre_llm_call` before the model, `post_llm_call` on its answer."""
        bridge = self.bridge
        session = bridge.session_sync(self._host_id(request.state)[1])
        payload = _llm_request(request) if self.manager.has(hooks.PRE_LLM_CALL) else None
        before = None
        if payload is not None:
            before = bridge.fire_sync(hooks.PRE_LLM_CALL, payload, session)
            if before.blocked:
                return AIMessage(content=f"[blocked] {before.reason}")
            request = _apply_request(request, payload, before)
        request, late = _late_items(request, session)
        if before is not None and before.response is not None:
            response = _responded(before.response)
        else:
            try:
                response = _model_response(handler(request))
            except Exception as error:
                bridge.fire_sync(hooks.ERROR, _error(error, "llm_call"), session)
                raise
        if self.manager.has(hooks.POST_LLM_CALL):
            answer = _answer(response)
            if answer is not None:
                event = _llm_response(answer, _model_name(request.model))
                after = bridge.fire_sync(hooks.POST_LLM_CALL, event, session)
                response = _apply_answer(response, answer, after)
        return _with_items(response, late)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """`wrap_model_call` for async runs."""
        bridge = self.bridge
        session = await bridge.session(self._host_id(request.state)[1])
        payload = _llm_request(request) if self.manager.has(hooks.PRE_LLM_CALL) else None
        before = None
        if payload is not None:
            before = await bridge.fire(hooks.PRE_LLM_CALL, payload, session)
            if before.blocked:
                return AIMessage(content=f"[blocked] {before.reason}")
            request = _apply_request(request, payload, before)
        request, late = _late_items(request, session)
        if before is not None and before.response is not None:
            response = _responded(before.response)
        else:
            try:
                response = _model_response(await handler(request))
            except Exception as error:
                await bridge.fire(hooks.ERROR, _error(error, "llm_call"), session)
                raise
        if self.manager.has(hooks.POST_LLM_CALL):
            answer = _answer(response)
            if answer is not None:
                event = _llm_response(answer, _model_name(request.model))
                after = await bridge.fire(hooks.POST_LLM_CALL, event, session)
                response = _apply_answer(response, answer, after)
        return _with_items(response, late)

    # -- wrap_tool_call: pre_tool_call and post_tool_call ----------------------------

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolOutput],
    ) -> ToolOutput:
        """`pre_tool_call` before the tool (a refusal is the tool's error result),
        `post_tool_call` on every result the model will see."""
        bridge = self.bridge
        session = bridge.session_sync(self._host_id(request.state)[1])
        call = tool_call(request.tool_call["name"], request.tool_call.get("args"), _id(request))
        gate = bridge.fire_sync(hooks.PRE_TOOL_CALL, call, session)
        call = gate.payload
        refusal = _refusal(gate)
        if refusal is None and gate.question is not None:
            refusal = _unapproved(call, gate.question, bridge.approve(call, gate.question))
        output: ToolOutput | None = None
        if refusal is None:
            try:
                output = handler(_apply_call(request, gate))
            except Exception as error:
                bridge.fire_sync(hooks.ERROR, _error(error, "tool_call"), session)
                raise
        result = _tool_result(call, output, refusal)
        after = bridge.fire_sync(hooks.POST_TOOL_CALL, result, session)
        return _tool_output(output, _final_result(result, after))

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolOutput]],
    ) -> ToolOutput:
        """`wrap_tool_call` for async runs (the approver runs in a worker thread)."""
        bridge = self.bridge
        session = await bridge.session(self._host_id(request.state)[1])
        call = tool_call(request.tool_call["name"], request.tool_call.get("args"), _id(request))
        gate = await bridge.fire(hooks.PRE_TOOL_CALL, call, session)
        call = gate.payload
        refusal = _refusal(gate)
        if refusal is None and gate.question is not None:
            allowed = await asyncio.to_thread(bridge.approve, call, gate.question)
            refusal = _unapproved(call, gate.question, allowed)
        output: ToolOutput | None = None
        if refusal is None:
            try:
                output = await handler(_apply_call(request, gate))
            except Exception as error:
                await bridge.fire(hooks.ERROR, _error(error, "tool_call"), session)
                raise
        result = _tool_result(call, output, refusal)
        after = await bridge.fire(hooks.POST_TOOL_CALL, result, session)
        return _tool_output(output, _final_result(result, after))

    # -- after_agent: the answer delivered, the turn ended ----------------------------

    def after_agent(self, state: InterlockState, runtime: Any) -> dict[str, Any] | None:
        """`message_sending` on the final answer, `turn_end`; a run without a
        `thread_id` ends its session."""
        bridge = self.bridge
        anonymous, host_id = self._host_id(state)
        session = bridge.session_sync(host_id)
        answer = _final_answer(state)
        sending = None
        if answer is not None and self.manager.has(hooks.MESSAGE_SENDING):
            event = MessageEvent(str(answer.text), role="assistant", channel=_HOST)
            sending = bridge.fire_sync(hooks.MESSAGE_SENDING, event, session)
        update, turn = _outbound(state, answer, sending)
        if self.manager.has(hooks.TURN_END):
            bridge.fire_sync(hooks.TURN_END, turn, session)
        update = _merge(update, _items_update(session))
        if anonymous:
            bridge.end_sync(session)
        return update

    async def aafter_agent(self, state: InterlockState, runtime: Any) -> dict[str, Any] | None:
        """`after_agent` for async runs."""
        bridge = self.bridge
        anonymous, host_id = self._host_id(state)
        session = await bridge.session(host_id)
        answer = _final_answer(state)
        sending = None
        if answer is not None and self.manager.has(hooks.MESSAGE_SENDING):
            event = MessageEvent(str(answer.text), role="assistant", channel=_HOST)
            sending = await bridge.fire(hooks.MESSAGE_SENDING, event, session)
        update, turn = _outbound(state, answer, sending)
        if self.manager.has(hooks.TURN_END):
            await bridge.fire(hooks.TURN_END, turn, session)
        update = _merge(update, _items_update(session))
        if anonymous:
            await bridge.end(session)
        return update

    # -- private ----------------------------------------------------------------------

    def _host_id(self, state: Mapping[str, Any], *, new: bool = False) -> tuple[bool, str]:
        """(anonymous, key): the run's `thread_id`, else the key this run keeps in its
        state (a fresh one when `new`, at the start of the run)."""
        thread = _thread_id()
        if thread is not None:
            return False, thread
        kept = state.get(_SESSION_KEY)
        if isinstance(kept, str) and kept:
            return True, kept
        if not new:
            logger.warning("a LangChain run without a thread_id or session key; one is made")
        return True, self.bridge.key(None)

    def _inbound(self, state: Mapping[str, Any]) -> list[tuple[HumanMessage, MessageEvent]]:
        """The user's new messages: those after the agent's last message."""
        if not self.manager.has(hooks.MESSAGE_RECEIVED):
            return []
        messages: Sequence[AnyMessage] = state.get("messages", ())
        new: list[HumanMessage] = []
        for message in reversed(messages):
            if not isinstance(message, HumanMessage):
                break
            new.append(message)
        return [(m, MessageEvent(str(m.text), role="user", channel=_HOST)) for m in reversed(new)]


class InterlockCallbackHandler(BaseCallbackHandler):
    """Fires `llm_stream_chunk` for each token a streaming chat model produces.

    Each chunk fires one token behind the model, so that the last one carries
    `done=True`. LangChain hands tokens to every callback handler at once, so a chunk's
    Modify or Block cannot change what other stream consumers get: it is logged as not
    honoured (redact the stored answer at `post_llm_call` or `message_sending`).

        handler = middleware.callback_handler()
        for token, meta in agent.stream(inputs, {"callbacks": [handler]},
                                        stream_mode="messages"):
            ...
    """

    def __init__(self, middleware: InterlockMiddleware) -> None:
        super().__init__()
        self.middleware = middleware
        self._runs: dict[uuid.UUID, _Stream] = {}
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Note the model and the session of a model call that may stream."""
        params = kwargs.get("invocation_params") or {}
        model = params.get("model") or params.get("model_name") or params.get("_type")
        thread = (metadata or {}).get("thread_id")
        with self._lock:
            self._runs[run_id] = _Stream(str(model or _HOST), None if thread is None else thread)

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: Any = None,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Fire the previous chunk of this call; hold this one until the next."""
        with self._lock:
            stream = self._runs.setdefault(run_id, _Stream(_HOST, None))
            held, stream.held = stream.held, StreamChunk(stream.model, stream.count, text(token))
            stream.count += 1
        if held is not None:
            self._fire(stream, held)

    def on_llm_end(self, response: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        """Fire the held chunk as the last one."""
        self._end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        """Fire the held chunk as the last one: every chunk that came fires once."""
        self._end(run_id)

    def _end(self, run_id: uuid.UUID) -> None:
        with self._lock:
            stream = self._runs.pop(run_id, None)
        if stream is not None and stream.held is not None:
            self._fire(stream, dataclasses.replace(stream.held, done=True))

    def _fire(self, stream: _Stream, chunk: StreamChunk) -> None:
        bridge = self.middleware.bridge
        if not bridge.manager.has(hooks.LLM_STREAM_CHUNK):
            return
        session = None if stream.thread is None else bridge.session_sync(stream.thread)
        verdict = bridge.fire_sync(hooks.LLM_STREAM_CHUNK, chunk, session)
        if verdict.blocked or verdict.changed:
            logger.warning(
                "llm_stream_chunk: %s by %s is not honoured on LangChain's token stream "
                "(every stream consumer gets the model's tokens); the stored answer is "
                "judged at post_llm_call and message_sending",
                "a block" if verdict.blocked else "a change",
                verdict.blocked_by or ", ".join(_modified_by(verdict)),
            )


@dataclasses.dataclass(slots=True)
class _Stream:
    model: str
    thread: object | None
    count: int = 0
    held: StreamChunk | None = None


# -- sessions and state updates ---------------------------------------------------------


def _thread_id() -> str | None:
    try:
        config = get_config()
    except RuntimeError:  # outside a graph run
        return None
    thread = (config.get("configurable") or {}).get("thread_id")
    return None if thread is None or thread == "" else str(thread)


def _inbound_update(
    verdicts: list[tuple[HumanMessage, Verdict[MessageEvent]]], anonymous_key: str | None
) -> dict[str, Any] | None:
    """The state update for the judged user messages: redactions replace the message by
    id, a blocked message is removed and the run ends with the reason as the answer."""
    update: dict[str, Any] = {}
    if anonymous_key is not None:
        update[_SESSION_KEY] = anonymous_key
    messages: list[BaseMessage] = []
    reasons: list[str] = []
    for message, verdict in verdicts:
        if verdict.blocked:
            messages.append(RemoveMessage(id=str(message.id)))
            reasons.append(str(verdict.reason))
        elif verdict.changed:
            messages.append(_with_text(message, verdict.payload.content))
    if reasons:
        messages.append(AIMessage(content="[blocked] " + "; ".join(reasons)))
        update["jump_to"] = "end"
    if messages:
        update["messages"] = messages
    return update or None


def _items_update(session: Session) -> dict[str, Any] | None:
    items = _system_messages(session.take_system_items())
    return {"messages": items} if items else None


def _system_messages(items: list[tuple[str, str, str]]) -> list[AnyMessage]:
    """System items as the model sees them (as the reference runtime shows them)."""
    return [SystemMessage(content=f"{kind}: {body}") for kind, body, _plugin in items]


def _merge(first: dict[str, Any] | None, second: dict[str, Any] | None) -> dict[str, Any] | None:
    if first is None or second is None:
        return first or second
    merged = dict(first)
    merged["messages"] = [*first.get("messages", ()), *second.get("messages", ())]
    return merged


def _final_answer(state: Mapping[str, Any]) -> AIMessage | None:
    messages: Sequence[AnyMessage] = state.get("messages", ())
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and not last.tool_calls:
        return last
    return None


def _outbound(
    state: Mapping[str, Any],
    answer: AIMessage | None,
    sending: Verdict[MessageEvent] | None,
) -> tuple[dict[str, Any] | None, TurnEnd]:
    """The state update for the delivered answer, and the `turn_end` payload."""
    update = None
    reply = "" if answer is None else str(answer.text)
    if answer is not None and sending is not None:
        if sending.blocked:
            note = f"[your reply was not delivered: {sending.reason}]"
            update = {"messages": [answer.model_copy(update={"content": note})]}
            reply = ""
        elif sending.changed:
            reply = sending.payload.content
            update = {"messages": [answer.model_copy(update={"content": reply})]}
    messages: Sequence[AnyMessage] = state.get("messages", ())
    humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    this_turn = messages[humans[-1] + 1 :] if humans else messages
    usage = Usage()
    for message in this_turn:
        if isinstance(message, AIMessage) and message.usage_metadata:
            usage = Usage(
                usage.input_tokens + message.usage_metadata.get("input_tokens", 0),
                usage.output_tokens + message.usage_metadata.get("output_tokens", 0),
            )
    tools = sum(isinstance(m, ToolMessage) for m in this_turn)
    return update, TurnEnd(len(humans), reply, tools, usage)


# -- model calls ------------------------------------------------------------------------


def _llm_request(request: ModelRequest[Any]) -> LLMRequest:
    originals = _request_messages(request)
    return LLMRequest(
        _model_name(request.model),
        tuple(_message(m) for m in originals),
        tuple(_tool_schema(t) for t in request.tools),
        _params(request.model_settings),
    )


def _request_messages(request: ModelRequest[Any]) -> list[BaseMessage]:
    system = request.system_message
    return [*([system] if system is not None else []), *request.messages]


def _apply_request(
    request: ModelRequest[Any], payload: LLMRequest, verdict: Verdict[LLMRequest]
) -> ModelRequest[Any]:
    """The request as the plugins left it: messages, model settings, and the tools a
    registration allowed to change them kept."""
    if not verdict.changed:
        return request
    final = verdict.payload
    changes: dict[str, Any] = {}
    if final.messages != payload.messages:
        messages = _lc_messages(final.messages, _request_messages(request), payload.messages)
        system = request.system_message
        if messages and isinstance(messages[0], SystemMessage) and system is not None:
            system, messages = messages[0], messages[1:]
        elif system is not None:
            system = None
        changes["system_message"] = system
        changes["messages"] = messages
    if final.params != payload.params:
        changes["model_settings"] = _plain(final.params)
    if final.tools != payload.tools:
        names = {tool.name for tool in final.tools}
        changes["tools"] = [t for t in request.tools if _tool_schema(t).name in names]
    return request.override(**changes) if changes else request


def _late_items(
    request: ModelRequest[Any], session: Session
) -> tuple[ModelRequest[Any], list[AnyMessage]]:
    """System items appended while `pre_llm_call` ran: for this call already."""
    late = _system_messages(session.take_system_items())
    if not late:
        return request, late
    return request.override(messages=[*request.messages, *late]), late


def _with_items(
    response: ModelResponse[Any], late: list[AnyMessage]
) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
    """The response, with the items this call saw kept in the state's messages."""
    if not late:
        return response
    return ExtendedModelResponse(
        model_response=response, command=Command(update={"messages": late})
    )


def _model_response(value: Any) -> ModelResponse[Any]:
    if isinstance(value, ModelResponse):
        return value
    if isinstance(value, ExtendedModelResponse):
        inner: ModelResponse[Any] = value.model_response
        return inner
    return ModelResponse(result=[value])


def _responded(response: Any) -> ModelResponse[Any]:
    """A `Respond` answer as the model's `AIMessage`."""
    if isinstance(response, LLMResponse):
        return ModelResponse(result=[_ai_message(response)])
    return ModelResponse(result=[AIMessage(content=text(response))])


def _answer(response: ModelResponse[Any]) -> AIMessage | None:
    return next((m for m in response.result if isinstance(m, AIMessage)), None)


def _apply_answer(
    response: ModelResponse[Any], answer: AIMessage, verdict: Verdict[LLMResponse]
) -> ModelResponse[Any]:
    if verdict.blocked:
        update: dict[str, Any] = {"content": f"[blocked] {verdict.reason}", "tool_calls": []}
        replacement = answer.model_copy(update=update)
    elif verdict.changed:
        final = verdict.payload
        tool_calls = _lc_tool_calls(final.tool_calls)
        replacement = answer.model_copy(update={"content": final.content, "tool_calls": tool_calls})
    else:
        return response
    result = [replacement if m is answer else m for m in response.result]
    return dataclasses.replace(response, result=result)


def _llm_response(message: AIMessage, model: str) -> LLMResponse:
    usage: Mapping[str, Any] = message.usage_metadata or {}
    calls = tuple(tool_call(c["name"], c.get("args"), c.get("id")) for c in message.tool_calls)
    finish = message.response_metadata.get("finish_reason")
    return LLMResponse(
        model,
        str(message.text),
        calls,
        Usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
        str(finish) if finish else ("tool_calls" if calls else "stop"),
    )


def _ai_message(response: LLMResponse) -> AIMessage:
    message = AIMessage(content=response.content, tool_calls=_lc_tool_calls(response.tool_calls))
    if response.usage.total_tokens:
        message.usage_metadata = {
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
            "total_tokens": response.usage.total_tokens,
        }
    return message


def _lc_tool_calls(calls: Iterable[ToolCall]) -> list[Any]:
    return [
        {
            "name": call.tool_name,
            "args": _plain(call.arguments),
            "id": call.call_id or f"call_{uuid.uuid4().hex[:24]}",
            "type": "tool_call",
        }
        for call in calls
    ]


def _model_name(model: Any) -> str:
    for attribute in ("model_name", "model", "model_id"):
        name = getattr(model, attribute, None)
        if isinstance(name, str) and name:
            return name
    llm_type = getattr(model, "_llm_type", None)
    return llm_type if isinstance(llm_type, str) else type(model).__name__


def _params(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    data = json_data(dict(settings))
    return data if isinstance(data, Mapping) else {}


def _tool_schema(tool: Any) -> ToolSchema:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    try:
        spec = convert_to_openai_tool(tool)["function"]
    except Exception:  # a provider's own tool dict: named as it names itself
        name = tool.get("name", "") if isinstance(tool, Mapping) else getattr(tool, "name", "")
        return ToolSchema(str(name or type(tool).__name__))
    return ToolSchema(
        str(spec.get("name", "")),
        str(spec.get("description", "")),
        arguments(spec.get("parameters")),
    )


# -- messages ---------------------------------------------------------------------------


def _message(message: BaseMessage) -> Message:
    """A LangChain message as the `Message` plugins see."""
    body = str(message.text)
    if isinstance(message, SystemMessage):
        return Message("system", body)
    if isinstance(message, AIMessage):
        calls = tuple(tool_call(c["name"], c.get("args"), c.get("id")) for c in message.tool_calls)
        return Message("assistant", body, tool_calls=calls)
    if isinstance(message, ToolMessage):
        return Message("tool", body, name=message.name, tool_call_id=message.tool_call_id)
    role = getattr(message, "role", "user")
    return Message(_ROLES.get(role, "user"), body)


def _lc_messages(
    final: Sequence[Message], originals: Sequence[BaseMessage], seen: Sequence[Message]
) -> list[AnyMessage]:
    """The plugins' messages in LangChain's terms: a message a plugin left as it was is
    the host's own object (ids, metadata and content blocks kept); a changed or new one is
    rebuilt, keeping the id and kind of the message it replaced."""
    result: list[AnyMessage] = []
    start = 0
    for position, message in enumerate(final):
        match = next((i for i in range(start, len(seen)) if seen[i] == message), None)
        if match is not None:
            result.append(originals[match])  # type: ignore[arg-type]
            start = match + 1
            continue
        replaced = originals[position] if position < len(originals) else None
        result.append(_lc_message(message, replaced))
    return result


def _lc_message(message: Message, replaced: BaseMessage | None) -> AnyMessage:
    role, body = message.role, message.content
    if replaced is not None and _message(replaced).role == role:
        update: dict[str, Any] = {"content": body}
        if role == "assistant":
            update["tool_calls"] = _lc_tool_calls(message.tool_calls)
        copy: AnyMessage = replaced.model_copy(update=update)  # type: ignore[assignment]
        return copy
    if role == "system":
        return SystemMessage(content=body)
    if role == "assistant":
        return AIMessage(content=body, tool_calls=_lc_tool_calls(message.tool_calls))
    if role == "tool":
        return ToolMessage(content=body, tool_call_id=message.tool_call_id or "", name=message.name)
    return HumanMessage(content=body)


def _with_text(message: HumanMessage, body: str) -> HumanMessage:
    """`message` (same id) with its text replaced; images and other blocks are kept."""
    content = message.content
    if isinstance(content, str):
        return message.model_copy(update={"content": body})
    blocks: list[Any] = [{"type": "text", "text": body}]
    blocks += [b for b in content if isinstance(b, dict) and b.get("type") != "text"]
    return message.model_copy(update={"content": blocks})


# -- tool calls -------------------------------------------------------------------------


def _id(request: ToolCallRequest) -> str | None:
    call_id = request.tool_call.get("id")
    return None if call_id is None else str(call_id)


def _refusal(gate: Verdict[ToolCall]) -> str | None:
    if not gate.blocked:
        return None
    call = gate.payload
    return f"tool {call.tool_name!r} was blocked by plugin {gate.blocked_by!r}: {gate.reason}"


def _unapproved(call: ToolCall, question: str, allowed: bool) -> str | None:
    return None if allowed else f"tool {call.tool_name!r} was not approved: {question}"


def _apply_call(request: ToolCallRequest, gate: Verdict[ToolCall]) -> ToolCallRequest:
    if not gate.changed:
        return request
    call = request.tool_call.copy()
    call["args"] = _plain(gate.payload.arguments)
    return request.override(tool_call=call)


def _tool_message(output: ToolOutput | None, call_id: str) -> ToolMessage | None:
    """The `ToolMessage` answering `call_id` in what the tool returned."""
    if isinstance(output, ToolMessage):
        return output
    if isinstance(output, Command) and isinstance(output.update, Mapping):
        for message in output.update.get("messages") or ():
            if isinstance(message, ToolMessage) and message.tool_call_id == call_id:
                return message
    return None


def _tool_result(call: ToolCall, output: ToolOutput | None, refusal: str | None) -> ToolResult:
    if refusal is not None:
        return ToolResult(call.tool_name, call.arguments, call.call_id, refusal, True)
    message = _tool_message(output, call.call_id)
    body = "" if message is None else text(message.content)
    failed = message is not None and message.status == "error"
    return ToolResult(call.tool_name, call.arguments, call.call_id, body, failed)


def _final_result(result: ToolResult, after: Verdict[ToolResult]) -> ToolResult:
    if after.blocked:
        withheld = f"the result of tool {result.tool_name!r} was withheld by plugin "
        return result.replace(
            output=f"{withheld}{after.blocked_by!r}: {after.reason}", is_error=True
        )
    return after.payload


def _tool_output(output: ToolOutput | None, result: ToolResult) -> ToolOutput:
    """What the tool node returns: the host's own result when the plugins left it, else
    the result as they left it, under the host's tool call id."""
    status = "error" if result.is_error else "success"
    message = _tool_message(output, result.call_id)
    if message is None:
        if isinstance(output, Command):  # a Command without a result message: as it is
            return output
        return ToolMessage(
            content=result.output, tool_call_id=result.call_id, name=result.tool_name, status=status
        )
    if text(message.content) == result.output and message.status == status:
        return output if output is not None else message
    replacement = message.model_copy(update={"content": result.output, "status": status})
    if isinstance(output, Command) and isinstance(output.update, Mapping):
        update = dict(output.update)
        update["messages"] = [replacement if m is message else m for m in update["messages"]]
        return dataclasses.replace(output, update=update)
    return replacement


def _error(error: Exception, stage: str) -> ErrorEvent:
    return ErrorEvent(type(error).__name__, str(error), stage)


def _modified_by(verdict: Verdict[Any]) -> tuple[str, ...]:
    return () if verdict.result is None else verdict.result.modified_by


def _plain(value: Any) -> Any:
    """Frozen payload data as the plain dicts and lists LangChain stores and serialises."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
