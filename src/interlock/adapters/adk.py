"""interlock plugins governing Google ADK agents: one ADK plugin, given to the runner.

    from interlock.adapters.adk import InterlockPlugin

    app = App(name="app", root_agent=agent, plugins=[InterlockPlugin(manager)])
    runner = Runner(app=app, session_service=sessions)

The plugin turns ADK's own plugin callbacks into catalog hooks:

- `on_user_message_callback`: `message_received` (a `Modify` replaces the user's text
  before it is stored in the ADK session; a `Block` stores a placeholder instead, and the
  run ends with the reason, the model not called).
- `before_run_callback` / `after_run_callback`: the session opens on first use
  (`session_start`); each run ends with `turn_end`.
- `before_model_callback`: `pre_llm_call` (a `Modify` of the messages or params changes
  this request; `Respond` answers with an `LlmResponse`, the model not called).
- `after_model_callback`: under streaming it runs for every partial response; each
  partial's text goes through `llm_stream_chunk` (one chunk behind, so the last one says
  `done`), and `post_llm_call` fires once, on the final response.
- `before_tool_callback`: `pre_tool_call` (a `Modify` changes `tool_args` in place, so the
  tool runs with them; a `Block` is the tool's result `{"error": reason}`, the tool not
  run; an `Ask` goes to the approver, without one it is a block).
- `after_tool_callback` / `on_tool_error_callback`: `post_tool_call` with the tool's
  result or error (also for a refused call).

Sessions are keyed by the ADK session (`app_name/user_id/session_id`), so every run of
one conversation shares per-plugin session state; an `AgentTool` sub-agent's run belongs
to its caller's session. They end after `idle_ttl` seconds unused, at `end_session`, or
when the runner closes its plugins (`await runner.close()`). What no gate can see (a
code executor, Gemini built-in tools) is refused with `UngovernedToolError` before it
runs, unless `hosted_tools="warn"`. Otherwise this plugin never raises (ADK would abort
the run): what goes wrong while judging an event is a visible block. google-adk is
imported here, so this module needs `pip install 'interlock[adk]'`.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .. import (
    Level,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    PluginManager,
    StreamChunk,
    ToolCall,
    ToolResult,
    ToolSchema,
    TurnEnd,
    Usage,
    hooks,
)
from ._bridge import (
    Approver,
    Bridge,
    Session,
    UngovernedToolError,
    arguments,
    describe,
    json_data,
    missing_extra,
    plain,
    text,
    tool_call,
    unjudged,
)

try:
    from google.adk.models.llm_request import LlmRequest
    from google.adk.models.llm_response import LlmResponse
    from google.adk.plugins.base_plugin import BasePlugin
    from google.genai import types
except ImportError as error:  # pragma: no cover - exercised without the extra installed
    raise missing_extra("interlock.adapters.adk", "Google ADK", "adk") from error

if TYPE_CHECKING:
    from google.adk.agents.callback_context import CallbackContext
    from google.adk.agents.invocation_context import InvocationContext
    from google.adk.tools.base_tool import BaseTool
    from google.adk.tools.tool_context import ToolContext

__all__ = ["InterlockPlugin", "UngovernedToolError"]

logger = logging.getLogger("interlock.adapters.adk")

HOST = "google-adk"

CLAIMS = (
    "session_start",
    "session_end",
    "message_received",
    "pre_llm_call",
    "post_llm_call",
    "llm_stream_chunk",
    "pre_tool_call",
    "post_tool_call",
    "turn_end",
)
"""The catalog hooks this adapter fires."""

# GenerateContentConfig fields shown to plugins as `LLMRequest.params`.
_PARAMS = (
    "temperature",
    "top_p",
    "top_k",
    "max_output_tokens",
    "stop_sequences",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "candidate_count",
)


# Built-in tools that only add a Gemini-side tool to the request: the model provider runs
# them, no callback sees them. (module, class) under google.adk.tools; absent ones skipped.
_BUILT_IN_TOOLS = (
    ("google_search_tool", "GoogleSearchTool"),
    ("url_context_tool", "UrlContextTool"),
    ("enterprise_search_tool", "EnterpriseWebSearchTool"),
    ("google_maps_grounding_tool", "GoogleMapsGroundingTool"),
    ("vertex_ai_search_tool", "VertexAiSearchTool"),
)


@dataclasses.dataclass
class _Stream:
    """One streamed model answer: its text parts through `llm_stream_chunk`, one partial
    response behind the model, so that the last chunk can carry `done=True`."""

    model: str
    pending: str | None = None
    index: int = 0
    stopped: bool = False
    altered: bool = False
    shown: str = ""


@dataclasses.dataclass
class _Run:
    """What one ADK invocation (a run) needs between callbacks."""

    session: Session
    # The run whose tool started this one (an `AgentTool` sub-agent): its session,
    # its turn; this run's tool calls and tokens count toward it.
    parent: _Run | None = None
    models: dict[str, str] = dataclasses.field(default_factory=dict)  # agent -> model
    streams: dict[str, _Stream] = dataclasses.field(default_factory=dict)  # agent -> stream
    calls: dict[str, tuple[ToolCall, str | None]] = dataclasses.field(default_factory=dict)
    answer: str = ""
    tool_calls: int = 0
    usage: Usage = dataclasses.field(default_factory=Usage)


class InterlockPlugin(BasePlugin):
    """An interlock `PluginManager` as a Google ADK plugin.

    `App(..., plugins=[InterlockPlugin(manager)])`. List it first among the app's
    plugins: ADK stops at the first plugin that answers a callback, and an answer given
    before interlock's is one its gates never see. One instance serves any number of
    concurrent runs and sessions.

    `approver` decides `Ask` answers (`(call, question) -> bool`); without one an `Ask` is
    a block. `tags`, `idle_ttl`, `notify`: the sessions' tags, idle timeout (seconds) and
    the sink of `ctx.notify` messages `(session key, text, level, plugin)` (logged without
    one). `hosted_tools`: what happens to an agent that can act ungated (a
    `code_executor`, Gemini built-in tools such as `google_search`) — `"refuse"` (the run
    raises `UngovernedToolError` before anything ungated runs) or `"warn"` (logged once
    per agent and tool, run as it is).
    """

    def __init__(
        self,
        manager: PluginManager,
        *,
        name: str = "interlock",
        approver: Approver | None = None,
        tags: Sequence[str] = (),
        idle_ttl: float | None = 3600.0,
        notify: Callable[[str, str, Level, str], None] | None = None,
        hosted_tools: Literal["refuse", "warn"] = "refuse",
    ) -> None:
        if hosted_tools not in ("refuse", "warn"):
            raise ValueError(f"hosted_tools must be 'refuse' or 'warn', got {hosted_tools!r}")
        super().__init__(name)
        self.hosted_tools = hosted_tools
        self._warned: set[tuple[str, str, str]] = set()
        self.bridge = Bridge(
            manager, host=HOST, tags=tuple(tags), idle_ttl=idle_ttl, approver=approver,
            notify=notify,
        )  # fmt: skip
        self._runs: dict[str, _Run] = {}  # by invocation id
        # Invocations whose user message was withheld (by a plugin, or a failure): why.
        self._refused: dict[str, str] = {}
        self._turns: weakref.WeakKeyDictionary[Session, int] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"InterlockPlugin({self.bridge.manager!r})"

    @property
    def manager(self) -> PluginManager:
        """The manager whose plugins govern the agents."""
        return self.bridge.manager

    @staticmethod
    def session_key(app_name: str, user_id: str, session_id: str) -> str:
        """The interlock session key of an ADK session (what `SessionStart.session_id`
        and `ctx.session` show plugins)."""
        return f"{app_name}/{user_id}/{session_id}"

    async def end_session(
        self, app_name: str, user_id: str, session_id: str, reason: str = "completed"
    ) -> None:
        """End the interlock session of an ADK session now (`session_end` fires)."""
        session = self.bridge.find(self.session_key(app_name, user_id, session_id))
        if session is not None:
            await self.bridge.end(session, reason)

    async def close(self) -> None:
        """End every open session (ADK calls this when the runner closes)."""
        await self.bridge.aclose()

    # -- runs and user messages -------------------------------------------------------

    async def on_user_message_callback(
        self, *, invocation_context: InvocationContext, user_message: types.Content
    ) -> types.Content | None:
        """`message_received`: what the plugins leave of the message is what ADK stores."""
        try:
            return await self._received(invocation_context, user_message)
        except Exception as error:
            reason = self._failed(hooks.MESSAGE_RECEIVED.name, error)
            self._refused[invocation_context.invocation_id] = reason
            return _user_content(f"[message withheld: {reason}]")

    async def before_run_callback(
        self, *, invocation_context: InvocationContext
    ) -> types.Content | None:
        """Open the session; end the run at once when its user message was blocked.

        Raises `UngovernedToolError` (under `hosted_tools="refuse"`) when an agent of the
        app can act in a way no gate sees, before any model call or tool of the run (the
        user message, judged by `message_received`, is already stored)."""
        refused = self._refused.pop(invocation_context.invocation_id, None)
        for found in _ungated_agents(invocation_context):
            self._ungoverned(invocation_context.invocation_id, *found)
        try:
            await self._run(invocation_context)
        except Exception as error:
            return _model_content(f"[blocked] {self._failed('session_start', error)}")
        if refused is not None:
            return _model_content(f"[blocked] {refused}")
        return None

    async def after_run_callback(self, *, invocation_context: InvocationContext) -> None:
        """`turn_end` for the run (a sub-agent's run counts toward its caller's); its
        bookkeeping is dropped."""
        run = self._runs.pop(invocation_context.invocation_id, None)
        if run is None:
            return
        if run.parent is not None:  # a sub-agent's run is part of its caller's turn
            run.parent.tool_calls += run.tool_calls
            run.parent.usage = Usage(
                run.parent.usage.input_tokens + run.usage.input_tokens,
                run.parent.usage.output_tokens + run.usage.output_tokens,
            )
            return
        try:
            turn = self._turns.get(run.session, 0) + 1
            self._turns[run.session] = turn
            end = TurnEnd(turn, run.answer, run.tool_calls, run.usage)
            await self.bridge.fire(hooks.TURN_END, end, run.session)
        except Exception as error:
            self._failed(hooks.TURN_END.name, error)

    async def on_run_error_callback(
        self, *, invocation_context: InvocationContext, error: Exception
    ) -> None:
        """The run failed (not because of interlock): its bookkeeping is dropped."""
        self._runs.pop(invocation_context.invocation_id, None)

    # -- model calls ------------------------------------------------------------------

    async def before_model_callback(
        self, *, callback_context: CallbackContext, llm_request: LlmRequest
    ) -> LlmResponse | None:
        """`pre_llm_call`: a `Modify` changes `llm_request`; `Respond` (or a block) is the
        model's answer, the model not called. Raises `UngovernedToolError` (under
        `hosted_tools="refuse"`) when the request offers the model a Gemini built-in tool,
        before the model is called."""
        for found in _ungated_request(callback_context.agent_name, llm_request):
            self._ungoverned(callback_context.invocation_id, *found)
        try:
            return await self._before_model(callback_context, llm_request)
        except Exception as error:
            return _blocked_response(self._failed(hooks.PRE_LLM_CALL.name, error))

    async def after_model_callback(
        self, *, callback_context: CallbackContext, llm_response: LlmResponse
    ) -> LlmResponse | None:
        """`llm_stream_chunk` for a partial response, `post_llm_call` for the final one."""
        try:
            run = await self._run(callback_context.get_invocation_context())
            if llm_response.partial:
                return await self._chunk(run, callback_context.agent_name, llm_response)
            return await self._after_model(run, callback_context.agent_name, llm_response)
        except Exception as error:
            reason = self._failed(hooks.POST_LLM_CALL.name, error)
            if llm_response.partial:
                return _with_text(llm_response, "")
            return _blocked_response(reason, llm_response)

    # -- tool calls -------------------------------------------------------------------

    async def before_tool_callback(
        self, *, tool: BaseTool, tool_args: dict[str, Any], tool_context: ToolContext
    ) -> dict[str, Any] | None:
        """`pre_tool_call`: a `Modify` changes `tool_args` in place; a refusal is the
        tool's result `{"error": reason}`."""
        try:
            return await self._before_tool(tool, tool_args, tool_context)
        except Exception as error:
            reason = self._failed(hooks.PRE_TOOL_CALL.name, error)
            return {"error": f"tool {tool.name!r} was not run: {reason}"}

    async def after_tool_callback(
        self,
        *,
        tool: BaseTool,
        tool_args: dict[str, Any],
        tool_context: ToolContext,
        result: Any,
    ) -> dict[str, Any] | None:
        """`post_tool_call` with the tool's result: a `Modify` is what the model sees."""
        try:
            return await self._after_tool(tool, tool_args, tool_context, result, None)
        except Exception as error:
            reason = self._failed(hooks.POST_TOOL_CALL.name, error)
            return {"error": f"the result of tool {tool.name!r} was withheld: {reason}"}

    async def on_tool_error_callback(
        self,
        *,
        tool: BaseTool,
        tool_args: dict[str, Any],
        tool_context: ToolContext,
        error: Exception,
    ) -> dict[str, Any] | None:
        """`post_tool_call` for a tool that raised; ADK's own handling goes on unless a
        plugin changed or withheld the result."""
        try:
            return await self._after_tool(tool, tool_args, tool_context, None, error)
        except Exception as failure:
            reason = self._failed(hooks.POST_TOOL_CALL.name, failure)
            return {"error": f"the result of tool {tool.name!r} was withheld: {reason}"}

    # -- private ----------------------------------------------------------------------

    async def _run(self, ic: InvocationContext) -> _Run:
        run = self._runs.get(ic.invocation_id)
        if run is None:
            parent = self._parent(ic)
            if parent is not None:
                return self._runs.setdefault(ic.invocation_id, _Run(parent.session, parent))
            adk = ic.session
            key = self.session_key(adk.app_name, adk.user_id, adk.id)
            session = await self.bridge.session(key)
            run = self._runs.setdefault(ic.invocation_id, _Run(session))
        return run

    def _parent(self, ic: InvocationContext) -> _Run | None:
        """The run whose `AgentTool` call started this one, if it is one of ours.

        ADK runs an `AgentTool` agent with a runner of its own, in a throwaway session;
        what links it to the calling run is the artifact service it is given, which
        forwards to the calling tool's context."""
        tool_context = getattr(ic.artifact_service, "tool_context", None)
        caller = getattr(tool_context, "_invocation_context", None)
        invocation = getattr(caller, "invocation_id", None)
        if not isinstance(invocation, str) or invocation == ic.invocation_id:
            return None
        return self._runs.get(invocation)

    def _ungoverned(self, invocation: str, agent: str, tool: str, kind: str) -> None:
        if self.hosted_tools == "refuse":
            self._runs.pop(invocation, None)  # ADK ends the run without after_run
            raise UngovernedToolError(
                agent,
                tool,
                kind,
                why="it does not run through ADK's tool callbacks, so pre_tool_call never sees it",
                fix="InterlockPlugin(manager, hosted_tools='warn')",
            )
        if (agent, tool, kind) not in self._warned:
            self._warned.add((agent, tool, kind))
            logger.warning(
                "agent %r: the %s %r runs ungoverned (hosted_tools='warn')", agent, kind, tool
            )

    def _failed(self, hook: str, error: Exception) -> str:
        logger.exception("interlock could not judge %s for %s", hook, HOST)
        return unjudged(hook, error)

    async def _received(
        self, ic: InvocationContext, message: types.Content
    ) -> types.Content | None:
        run = await self._run(ic)
        parts = message.parts or []
        if any(p.function_response is not None for p in parts):
            return None  # a tool's answer resuming a run, not a user message
        if not self.bridge.manager.has(hooks.MESSAGE_RECEIVED):
            return None
        event = MessageEvent(_text_of(parts, thoughts=True), channel=HOST)
        verdict = await self.bridge.fire(hooks.MESSAGE_RECEIVED, event, run.session)
        if verdict.blocked:
            refused = verdict.refusal("message blocked")
            self._refused[ic.invocation_id] = refused
            return _user_content(f"[message withheld: {refused}]")
        if verdict.changed:
            new = _with_parts_text(parts, verdict.payload.content, thoughts=True)
            return types.Content(role=message.role or "user", parts=new)
        return None

    async def _before_model(
        self, cc: CallbackContext, llm_request: LlmRequest
    ) -> LlmResponse | None:
        ic = cc.get_invocation_context()
        run = await self._run(ic)
        model = llm_request.model or ""
        run.models[cc.agent_name] = model
        _deliver(run.session, llm_request)
        mode = getattr(ic.run_config, "streaming_mode", None)
        stream = getattr(mode, "name", None) == "SSE"  # server-sent events: partial responses
        if stream and self.bridge.manager.has(hooks.LLM_STREAM_CHUNK):
            run.streams[cc.agent_name] = _Stream(model)
        else:
            run.streams.pop(cc.agent_name, None)
        if not self.bridge.manager.has(hooks.PRE_LLM_CALL):
            return None
        request, places = _llm_request(llm_request, stream)
        verdict = await self.bridge.fire(hooks.PRE_LLM_CALL, request, run.session)
        _deliver(run.session, llm_request)  # appended during pre_llm_call: for this call too
        if verdict.blocked:
            return _blocked_response(verdict.refusal("model call blocked"))
        if verdict.response is not None:
            run.streams.pop(cc.agent_name, None)
            answer = _as_llm_response(verdict.response, model)
            after = await self.bridge.fire(hooks.POST_LLM_CALL, answer, run.session)
            if after.blocked:
                return _blocked_response(after.refusal("the answer was withheld"))
            _note(run, after.payload)
            return _to_llm_response(after.payload, None)
        if verdict.changed:
            _apply_request(llm_request, request, verdict.payload, places)
        return None

    async def _chunk(self, run: _Run, agent: str, response: LlmResponse) -> LlmResponse | None:
        stream = run.streams.get(agent)
        parts = response.content.parts if response.content is not None else None
        if stream is None or not parts or not any(_is_text(p) for p in parts):
            return None
        delta = _text_of(parts)
        pending, stream.pending = stream.pending, delta
        shown = "" if pending is None else await self._fire_chunk(run, stream, pending, False)
        return _with_text(response, shown)

    async def _fire_chunk(self, run: _Run, stream: _Stream, delta: str, done: bool) -> str:
        chunk = StreamChunk(stream.model, stream.index, delta, done)
        stream.index += 1
        verdict = await self.bridge.fire(hooks.LLM_STREAM_CHUNK, chunk, run.session)
        if verdict.blocked:
            stream.stopped = True
        shown = "" if stream.stopped else verdict.payload.delta
        stream.altered = stream.altered or shown != delta
        stream.shown += shown
        return shown

    async def _after_model(
        self, run: _Run, agent: str, response: LlmResponse
    ) -> LlmResponse | None:
        stream = run.streams.pop(agent, None)
        original = response
        if stream is not None:
            if stream.pending is not None:
                await self._fire_chunk(run, stream, stream.pending, True)
            if stream.altered:  # the final response repeats the text: what was shown
                response = _with_text(response, stream.shown)
        payload = _llm_response(response, run.models.get(agent, ""))
        verdict = await self.bridge.fire(hooks.POST_LLM_CALL, payload, run.session)
        if verdict.blocked:
            return _blocked_response(verdict.refusal("the answer was withheld"), response)
        _note(run, verdict.payload)
        if verdict.changed:
            return _to_llm_response(verdict.payload, response)
        return None if response is original else response

    async def _before_tool(
        self, tool: BaseTool, tool_args: dict[str, Any], tool_context: ToolContext
    ) -> dict[str, Any] | None:
        run = await self._run(tool_context.get_invocation_context())
        call_id = tool_context.function_call_id or ""
        call = tool_call(tool.name, tool_args, call_id)
        run.tool_calls += 1
        verdict = await self.bridge.fire(hooks.PRE_TOOL_CALL, call, run.session)
        gated = verdict.payload
        refusal: str | None = None
        if verdict.blocked:
            refusal = verdict.refusal(f"tool {tool.name!r} was blocked")
        elif verdict.question is not None:
            denied = self.bridge.denied(gated, verdict.question)
            refusal = None if denied is None else f"tool {tool.name!r} was {denied}"
        run.calls[call_id] = (gated, refusal)
        if refusal is not None:
            return {"error": refusal}
        if verdict.changed:  # ADK runs the tool with this very dict
            tool_args.clear()
            tool_args.update(plain(gated.arguments))
        return None

    async def _after_tool(
        self,
        tool: BaseTool,
        tool_args: dict[str, Any],
        tool_context: ToolContext,
        result: Any,
        error: BaseException | None,
    ) -> dict[str, Any] | None:
        run = await self._run(tool_context.get_invocation_context())
        call_id = tool_context.function_call_id or ""
        gated, refusal = run.calls.pop(call_id, (tool_call(tool.name, tool_args, call_id), None))
        if refusal is not None:
            output, is_error = refusal, True
        elif error is not None:
            output, is_error = describe(error), True
        else:
            output, is_error = _result_text(result), _is_error(result)
            if arguments(tool_args) != gated.arguments:
                # An agent callback (ADK runs them after the plugins) changed the
                # arguments after pre_tool_call judged them: the tool has run; say so.
                logger.warning(
                    "tool %r ran with arguments other than those pre_tool_call judged "
                    "(changed after the gate, e.g. by the agent's before_tool_callback)",
                    tool.name,
                )
        payload = ToolResult(gated.tool_name, gated.arguments, gated.call_id, output, is_error)
        verdict = await self.bridge.fire(hooks.POST_TOOL_CALL, payload, run.session)
        if verdict.blocked:
            return {"error": verdict.refusal(f"the result of tool {tool.name!r} was withheld")}
        if verdict.changed:
            key = "error" if is_error else "result"
            return {key: verdict.payload.output}
        return None


# -- what no gate sees -------------------------------------------------------------------


def _ungated_agents(ic: InvocationContext) -> list[tuple[str, str, str]]:
    """(agent, tool, kind) for every way an agent of the app acts ungated: a code
    executor (it runs model-written code after the model answers, outside every tool
    callback) or a Gemini built-in tool; sub-agents and `AgentTool` agents included."""
    from google.adk.agents import BaseAgent
    from google.adk.tools.base_tool import BaseTool

    if not isinstance(ic.agent, BaseAgent):  # a workflow node: `_ungated_request` only
        return []
    built_in = _built_in_tools()
    root = ic.agent.root_agent
    found: list[tuple[str, str, str]] = []
    run_config = ic.run_config
    if run_config is not None and run_config.support_cfc:  # ADK gives the root one
        found.append((root.name, "BuiltInCodeExecutor", "code executor (RunConfig.support_cfc)"))
    seen: set[int] = set()
    todo: list[BaseAgent] = [root]
    while todo:
        agent = todo.pop()
        if id(agent) in seen:
            continue
        seen.add(id(agent))
        executor = getattr(agent, "code_executor", None)
        if executor is not None:
            found.append((agent.name, type(executor).__name__, "code executor"))
        for tool in getattr(agent, "tools", None) or ():
            if isinstance(tool, built_in):
                name = str(getattr(tool, "name", type(tool).__name__))
                found.append((agent.name, name, "Gemini built-in tool"))
            inner = getattr(tool, "agent", None) if isinstance(tool, BaseTool) else None
            if isinstance(inner, BaseAgent):  # an AgentTool
                todo.append(inner)
        todo.extend(agent.sub_agents)
    return found


def _built_in_tools() -> tuple[type, ...]:
    import importlib

    found: list[type] = []
    for module, name in _BUILT_IN_TOOLS:
        try:
            found.append(getattr(importlib.import_module(f"google.adk.tools.{module}"), name))
        except (ImportError, AttributeError):  # not in this ADK version
            continue
    return tuple(found)


def _ungated_request(agent: str, llm_request: LlmRequest) -> list[tuple[str, str, str]]:
    """(agent, tool, kind) for each Gemini-side tool this request offers the model (any
    `types.Tool` field but function declarations: search, code execution, retrieval...),
    whichever ADK tool, toolset or processor put it there."""
    found: list[tuple[str, str, str]] = []
    for tool in llm_request.config.tools or ():
        if not isinstance(tool, types.Tool):
            continue
        for field in type(tool).model_fields:
            if field != "function_declarations" and getattr(tool, field) is not None:
                found.append((agent, field, "Gemini built-in tool"))
    return found


# -- conversions ------------------------------------------------------------------------


def _is_text(part: types.Part, thoughts: bool = False) -> bool:
    """A text part; a thought only with `thoughts` (the model's own thoughts are not its
    answer, but a user's part marked `thought` is what the user wrote all the same)."""
    return part.text is not None and (thoughts or not part.thought)


def _text_of(parts: Sequence[types.Part], thoughts: bool = False) -> str:
    return "".join(part.text or "" for part in parts if _is_text(part, thoughts))


def _with_parts_text(
    parts: Sequence[types.Part], new: str, thoughts: bool = False
) -> list[types.Part]:
    """`parts` with their text (thoughts too, with `thoughts`) replaced by `new`, where
    the first text part was; the rest (images, files, calls, other thoughts) kept."""
    kept: list[types.Part] = []
    placed = False
    for part in parts:
        if not _is_text(part, thoughts):
            kept.append(part)
        elif not placed:
            kept.append(types.Part(text=new))
            placed = True
    if not placed:
        kept.insert(0, types.Part(text=new))
    return kept


def _user_content(message: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=message)])


def _model_content(message: str) -> types.Content:
    return types.Content(role="model", parts=[types.Part(text=message)])


def _with_text(response: LlmResponse, new: str) -> LlmResponse:
    parts = response.content.parts if response.content is not None else None
    content = types.Content(role="model", parts=_with_parts_text(parts or [], new))
    return response.model_copy(update={"content": content})


def _blocked_response(reason: str, original: LlmResponse | None = None) -> LlmResponse:
    """The model's turn when a plugin stopped it: the reason, as the model's text."""
    content = _model_content(f"[blocked] {reason}")
    if original is None:
        return LlmResponse(content=content)
    return original.model_copy(update={"content": content})


def _deliver(session: Session, llm_request: LlmRequest) -> None:
    """System items plugins appended, into this request's system instruction."""
    items = session.take_system_items()
    if items:
        llm_request.append_instructions([f"[{kind}] {item}" for kind, item, _ in items])


def _system_text(instruction: Any) -> str:
    if instruction is None:
        return ""
    if isinstance(instruction, str):
        return instruction
    if isinstance(instruction, types.Content):
        return _text_of(instruction.parts or [])
    if isinstance(instruction, types.Part):
        return instruction.text or ""
    if isinstance(instruction, Sequence):
        return "\n\n".join(_system_text(item) for item in instruction)
    return text(instruction)


# Where each converted message came from: (content index, part index or -1 for the text).
_Place = tuple[int, int]


def _llm_request(llm_request: LlmRequest, stream: bool) -> tuple[LLMRequest, list[_Place]]:
    """The request in the catalog's terms, and where each non-system message came from."""
    config = llm_request.config
    messages: list[Message] = []
    system = _system_text(config.system_instruction)
    if system:
        messages.append(Message("system", system))
    places: list[_Place] = []
    for ci, content in enumerate(llm_request.contents):
        for message, pi in _from_content(content):
            messages.append(message)
            places.append((ci, pi))
    tools: list[ToolSchema] = []
    for tool in config.tools or ():
        for fd in getattr(tool, "function_declarations", None) or ():
            schema = fd.parameters_json_schema
            if schema is None and fd.parameters is not None:
                schema = fd.parameters.model_dump(mode="json", exclude_none=True)
            parameters = json_data(schema or {})
            tools.append(
                ToolSchema(
                    fd.name or "",
                    fd.description or "",
                    parameters if isinstance(parameters, Mapping) else {},
                )
            )
    params = {
        name: json_data(getattr(config, name))
        for name in _PARAMS
        if getattr(config, name, None) is not None
    }
    request = LLMRequest(llm_request.model or "", tuple(messages), tuple(tools), params, stream)
    return request, places


def _from_content(content: types.Content) -> list[tuple[Message, int]]:
    """One content as catalog messages: its text (and, for the model, its calls) as one
    message, each function response as a tool message."""
    parts = content.parts or []
    found: list[tuple[Message, int]] = []
    if content.role == "model":
        calls = tuple(
            tool_call(p.function_call.name or "", p.function_call.args, p.function_call.id)
            for p in parts
            if p.function_call is not None
        )
        found.append((Message("assistant", _text_of(parts), tool_calls=calls), -1))
        return found
    if any(_is_text(p, thoughts=True) for p in parts):  # a user's "thought" is user text
        found.append((Message("user", _text_of(parts, thoughts=True)), -1))
    for pi, part in enumerate(parts):
        fr = part.function_response
        if fr is not None:
            output = _result_text(fr.response)
            found.append((Message("tool", output, name=fr.name, tool_call_id=fr.id), pi))
    return found


def _apply_request(
    llm_request: LlmRequest, before: LLMRequest, after: LLMRequest, places: Sequence[_Place]
) -> None:
    """Put a `pre_llm_call` `Modify` into this request (new contents, never the session's
    own objects edited in place)."""
    config = llm_request.config
    if after.params != before.params:
        for name in _PARAMS:
            setattr(config, name, plain(after.params.get(name)))
        unknown = sorted(set(after.params) - set(_PARAMS))
        if unknown:
            logger.warning("pre_llm_call: params %s have no GenerateContentConfig field", unknown)
    old_system = [m for m in before.messages if m.role == "system"]
    new_system = [m for m in after.messages if m.role == "system"]
    if new_system != old_system:  # only with a `writable=` grant
        config.system_instruction = "\n\n".join(m.content for m in new_system) or None
    old = [m for m in before.messages if m.role != "system"]
    new = [m for m in after.messages if m.role != "system"]
    if old == new:
        return
    if len(old) != len(new):
        llm_request.contents = _rebuilt(new)
        return
    contents = list(llm_request.contents)
    for (ci, pi), was, now in zip(places, old, new, strict=True):
        if was == now:
            continue
        content = contents[ci]
        parts = list(content.parts or [])
        if pi >= 0:
            fr = parts[pi].function_response
            if fr is None:  # places were taken from these very parts
                continue
            response = fr.model_copy(update={"response": {"result": now.content}})
            parts[pi] = parts[pi].model_copy(update={"function_response": response})
        else:
            if now.content != was.content:
                parts = _with_parts_text(parts, now.content, thoughts=content.role != "model")
            if now.tool_calls != was.tool_calls:
                parts = [p for p in parts if p.function_call is None] + _call_parts(now.tool_calls)
        contents[ci] = content.model_copy(update={"parts": parts})
    llm_request.contents = contents


def _rebuilt(messages: Sequence[Message]) -> list[types.Content]:
    """A plugin's message list as ADK contents (used when it added or removed some)."""
    contents: list[types.Content] = []
    for message in messages:
        if message.role == "assistant":
            parts = ([types.Part(text=message.content)] if message.content else []) + _call_parts(
                message.tool_calls
            )
            contents.append(types.Content(role="model", parts=parts))
        elif message.role == "tool":
            response = types.FunctionResponse(
                id=message.tool_call_id, name=message.name, response={"result": message.content}
            )
            contents.append(
                types.Content(role="user", parts=[types.Part(function_response=response)])
            )
        else:
            contents.append(_user_content(message.content))
    return contents


def _call_parts(calls: Sequence[ToolCall]) -> list[types.Part]:
    return [
        types.Part(
            function_call=types.FunctionCall(
                id=call.call_id or None, name=call.tool_name, args=plain(call.arguments)
            )
        )
        for call in calls
    ]


def _llm_response(response: LlmResponse, model: str) -> LLMResponse:
    parts = response.content.parts if response.content is not None else None
    parts = parts or []
    calls = tuple(
        tool_call(p.function_call.name or "", p.function_call.args, p.function_call.id)
        for p in parts
        if p.function_call is not None
    )
    meta = response.usage_metadata
    usage = Usage(
        (meta.prompt_token_count or 0) if meta else 0,
        (meta.candidates_token_count or 0) if meta else 0,
    )
    if calls:
        finish = "tool_calls"
    elif response.finish_reason is not None:
        finish = str(response.finish_reason.value).lower()
    else:
        finish = "stop"
    return LLMResponse(response.model_version or model, _text_of(parts), calls, usage, finish)


def _as_llm_response(value: Any, model: str) -> LLMResponse:
    """A `Respond` answer as an `LLMResponse` (plugins may answer with plain text)."""
    if isinstance(value, LLMResponse):
        return value
    return LLMResponse(model, text(value))


def _to_llm_response(response: LLMResponse, original: LlmResponse | None) -> LlmResponse:
    """`response` as ADK's, keeping what the catalog does not describe (thoughts, files,
    usage) from `original`."""
    kept: list[types.Part] = []
    if original is not None and original.content is not None:
        kept = [
            p for p in original.content.parts or [] if not _is_text(p) and p.function_call is None
        ]
    parts = kept + ([types.Part(text=response.content)] if response.content else [])
    parts += _call_parts(response.tool_calls)
    content = types.Content(role="model", parts=parts)
    if original is None:
        return LlmResponse(content=content, model_version=response.model or None)
    return original.model_copy(update={"content": content})


def _note(run: _Run, response: LLMResponse) -> None:
    """What `turn_end` reports: the last answer's text and the tokens used."""
    if response.content:
        run.answer = response.content
    run.usage = Usage(
        run.usage.input_tokens + response.usage.input_tokens,
        run.usage.output_tokens + response.usage.output_tokens,
    )


def _result_text(result: Any) -> str:
    """A tool's result as text: ADK wraps a plain return value as `{"result": value}`."""
    if isinstance(result, Mapping) and set(result) == {"result"}:
        return text(result["result"])
    return text(result)


def _is_error(result: Any) -> bool:
    return isinstance(result, Mapping) and set(result) == {"error"}
