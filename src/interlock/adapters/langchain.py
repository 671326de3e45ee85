"""LangChain v1 / LangGraph: interlock plugins as agent middleware.

One import, one line of setup; the user's agent is otherwise unchanged:

    from interlock.adapters.langchain import InterlockMiddleware

    agent = create_agent(model, tools, middleware=[InterlockMiddleware(manager)])

What LangChain does, and the hooks it fires (every hook with a sync and an async method,
so `invoke`, `ainvoke`, `stream` and `astream` all pass through the plugins):

- `before_agent`: the session for the run's `thread_id` (opened on first use:
  `session_start`), `message_received` for each new user message (all its text blocks,
  `text-plain` too; a block whose text is not inline is refused unjudged). A redaction is
  written into the graph state (the human message replaced by id), so neither this model
  call nor any later one sees the original text; a block removes the message and ends
  the run with the reason as the agent's answer. LangGraph has already checkpointed the
  input by then: a warning says so (`durability="exit"` keeps it out of the checkpointer).
- `before_model`: system items the plugins appended go into the state's messages.
- `wrap_model_call`: `pre_llm_call` (Modify of messages and model settings; Respond
  answers with an `AIMessage` without calling the model; Block answers with the reason),
  then `post_llm_call` on the model's `AIMessage` (Modify, Block).
- `wrap_tool_call`: `pre_tool_call` with the host's tool call id (Modify of arguments;
  Block or a refused Ask becomes `ToolMessage(status="error")` carrying the reason), then
  `post_tool_call` on every result the model will see (Modify, Block).
- `after_agent`: `message_sending` on the final answer (Modify and Block rewrite it in
  the state), `turn_end`; a run without a `thread_id` ends its session here, or where the
  model or a tool raised; one abandoned before either (a stream not read to its end) is
  ended once `max_run_sessions` newer ones are open.

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
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, NotRequired

from .. import (
    Level,
    MessageEvent,
    PluginManager,
    StreamChunk,
    hooks,
)
from ._bridge import Approver, Bridge, Session, Verdict, missing_extra, text, tool_call

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
    from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
    from langgraph.config import get_config
    from langgraph.prebuilt.tool_node import ToolCallRequest
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise missing_extra(
        "interlock.adapters.langchain", "LangChain 1.x and LangGraph", "langchain"
    ) from error

# The private modules import the framework as well: only after the check above.
from ._langchain_convert import (
    ToolOutput,
    _answer,
    _apply_answer,
    _apply_call,
    _apply_request,
    _content_text,
    _error,
    _final_result,
    _id,
    _llm_request,
    _llm_response,
    _model_name,
    _model_response,
    _refusal,
    _request_messages,
    _responded,
    _tool_output,
    _tool_result,
    _unapproved,
    _unjudged,
)
from ._langchain_state import (
    _SESSION_KEY,
    _final_answer,
    _inbound_update,
    _items_update,
    _late_items,
    _merge,
    _outbound,
    _with_items,
)

__all__ = ["InterlockCallbackHandler", "InterlockMiddleware", "InterlockState"]

logger = logging.getLogger("interlock.adapters.langchain")

_HOST = "langchain"


class InterlockState(AgentState[Any]):
    """The agent state with the one field the middleware keeps: the session key of a run
    that has no `thread_id` (private: neither input nor output of the agent)."""

    interlock_session: NotRequired[Annotated[str, PrivateStateAttr]]


class InterlockMiddleware(AgentMiddleware[InterlockState, Any, Any]):
    """LangChain agent middleware that runs a `PluginManager`'s plugins on the agent.

    Sessions are keyed by the run's `thread_id` (`config={"configurable": {"thread_id":
    ...}}`) and stay open across invocations of that thread; a run without one is a
    session of its own, ended when the run ends (also when its model or a tool raised);
    of those a run abandoned (a stream not read to its end) left open, the oldest is ended
    (`"abandoned"`) when more than `max_run_sessions` are open. `close()` / `aclose()`
    end the sessions still open (or they end after `idle_ttl` seconds unused).

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
        max_run_sessions: int = 256,
    ) -> None:
        super().__init__()
        if max_run_sessions < 1:
            raise ValueError(f"max_run_sessions must be at least 1, not {max_run_sessions}")
        self.manager = manager
        self.max_run_sessions = max_run_sessions
        # The open sessions of runs without a thread_id, oldest first: bounded, so that
        # runs that never reach after_agent cannot keep sessions open without limit.
        self._run_sessions: OrderedDict[str, None] = OrderedDict()
        self._run_lock = threading.Lock()
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
        if anonymous:
            for stale in self._own(session):
                self.bridge.end_sync(stale, "abandoned")
        verdicts = [
            (message, refused or self.bridge.fire_sync(hooks.MESSAGE_RECEIVED, event, session))
            for message, event, refused in self._inbound(state)
        ]
        _warn_stored(verdicts)
        return _inbound_update(verdicts, session.key if anonymous else None)

    @hook_config(can_jump_to=["end"])
    async def abefore_agent(self, state: InterlockState, runtime: Any) -> dict[str, Any] | None:
        """`before_agent` for async runs."""
        anonymous, host_id = self._host_id(state, new=True)
        session = await self.bridge.session(host_id)
        if anonymous:
            for stale in self._own(session):
                await self.bridge.end(stale, "abandoned")
        verdicts = [
            (message, refused or await self.bridge.fire(hooks.MESSAGE_RECEIVED, event, session))
            for message, event, refused in self._inbound(state)
        ]
        _warn_stored(verdicts)
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
        anonymous, host_id = self._host_id(request.state)
        session = bridge.session_sync(host_id)
        payload = _llm_request(request) if self.manager.has(hooks.PRE_LLM_CALL) else None
        before = None
        if payload is not None:
            refused = _unjudged(_request_messages(request), "pre_llm_call")
            if refused is not None:
                return AIMessage(content=f"[blocked] {refused}")
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
                if anonymous:
                    self._disown(session)
                    bridge.end_sync(session, "error")
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
        anonymous, host_id = self._host_id(request.state)
        session = await bridge.session(host_id)
        payload = _llm_request(request) if self.manager.has(hooks.PRE_LLM_CALL) else None
        before = None
        if payload is not None:
            refused = _unjudged(_request_messages(request), "pre_llm_call")
            if refused is not None:
                return AIMessage(content=f"[blocked] {refused}")
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
                if anonymous:
                    self._disown(session)
                    await bridge.end(session, "error")
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
        anonymous, host_id = self._host_id(request.state)
        session = bridge.session_sync(host_id)
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
                if anonymous:
                    self._disown(session)
                    bridge.end_sync(session, "error")
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
        anonymous, host_id = self._host_id(request.state)
        session = await bridge.session(host_id)
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
                if anonymous:
                    self._disown(session)
                    await bridge.end(session, "error")
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
            self._disown(session)
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
            self._disown(session)
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

    def _own(self, session: Session) -> list[Session]:
        """Note `session` as a run's own; the oldest such sessions beyond
        `max_run_sessions`, forgotten here, for the caller to end."""
        with self._run_lock:
            self._run_sessions[session.key] = None
            self._run_sessions.move_to_end(session.key)
            stale: list[str] = []
            while len(self._run_sessions) > self.max_run_sessions:
                stale.append(self._run_sessions.popitem(last=False)[0])
        found = [self.bridge.find(key) for key in stale]
        return [s for s in found if s is not None]

    def _disown(self, session: Session) -> None:
        """Forget a run's own session (it is ending)."""
        with self._run_lock:
            self._run_sessions.pop(session.key, None)

    def _inbound(
        self, state: Mapping[str, Any]
    ) -> list[tuple[HumanMessage, MessageEvent, Verdict[MessageEvent] | None]]:
        """The user's new messages (those after the agent's last message), each with a
        refusal when it holds text no plugin can read."""
        if not self.manager.has(hooks.MESSAGE_RECEIVED):
            return []
        messages: Sequence[AnyMessage] = state.get("messages", ())
        new: list[HumanMessage] = []
        for message in reversed(messages):
            if not isinstance(message, HumanMessage):
                break
            new.append(message)
        inbound = []
        for message in reversed(new):
            event = MessageEvent(_content_text(message)[0], role="user", channel=_HOST)
            reason = _unjudged([message], "message_received")
            refused = None if reason is None else Verdict(event, True, reason, "interlock")
            inbound.append((message, event, refused))
        return inbound


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


# -- sessions ---------------------------------------------------------------------------


def _thread_id() -> str | None:
    try:
        config = get_config()
    except RuntimeError:  # outside a graph run
        return None
    thread = (config.get("configurable") or {}).get("thread_id")
    return None if thread is None or thread == "" else str(thread)


def _warn_stored(verdicts: list[tuple[HumanMessage, Verdict[MessageEvent]]]) -> None:
    """LangGraph checkpoints a run's input before any middleware runs: say so loudly
    when a plugin removed or rewrote what may already be stored."""
    judged = [v for _, v in verdicts if v.blocked or v.changed]
    if not judged:
        return
    try:
        configurable = get_config().get("configurable") or {}
    except RuntimeError:  # outside a graph run: nothing was checkpointed
        return
    # LangGraph's own config keys: the run's checkpointer and when it writes.
    stored = configurable.get("__pregel_checkpointer") is not None
    if not stored or configurable.get("__pregel_durability") == "exit":
        return
    by = sorted({v.blocked_by or ", ".join(_modified_by(v)) for v in judged})
    logger.warning(
        "message_received: %s by %s, but LangGraph checkpointed the run's input before "
        "any middleware ran, so the original is in this thread's checkpoint history; run "
        'the agent with durability="exit" to store only the judged final state',
        "a user message was blocked" if judged[0].blocked else "a user message was changed",
        ", ".join(by),
    )


def _modified_by(verdict: Verdict[Any]) -> tuple[str, ...]:
    return () if verdict.result is None else verdict.result.modified_by
