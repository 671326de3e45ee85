"""interlock for the OpenAI Agents SDK: the same plugins govern `agents.Agent` runs.

    from interlock.adapters.openai_agents import Interlock

    ix = Interlock(manager)
    agent = ix.agent(agent)                      # a governed clone
    result = await Runner.run(agent, "hi", hooks=ix.hooks,
                              run_config=ix.run_config(RunConfig(group_id=thread_id)))

`ix.agent` clones the agent (handoffs too): each function tool, MCP servers' tools
included, gets an input guardrail (`pre_tool_call`: a block is rejected content the model
reads as the tool's result), `needs_approval` (an `Ask` uses the SDK's approvals), and a
wrapped `on_invoke_tool` (a `Modify` of the arguments reaches the tool; `post_tool_call`
decides what the model sees). Model instances set on the agents are wrapped.
`ix.run_config` keeps every field of the config it is given and adds a model-provider
wrapper (`pre_llm_call`, `post_llm_call`, `Respond`, `llm_stream_chunk`) and a
`call_model_input_filter` (`message_received`, once per user message, re-applied on every
model call since the SDK re-sends the run's input). Hosted tools, which run where interlock
cannot see them, are refused (or, with `hosted_tools="warn"`, logged) — never silently
left ungoverned.

A run's session is its `RunConfig.group_id` when set (a conversation), else one per
`ix.run_config(...)` call; it ends when the run's last agent finishes (`ix.hooks`), at
`ix.close()`, or after `idle_ttl` seconds unused. A governed agent run without
`run_config=ix.run_config(...)` is refused (`UnmappedRunError`) at its first model or tool
call, rather than governed by half.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from .. import (
    InterlockError,
    Level,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    PluginManager,
    Role,
    StreamChunk,
    ToolResult,
    ToolSchema,
    Usage,
    hooks,
)
from ._bridge import (
    Approver,
    Bridge,
    Session,
    UngovernedToolError,
    Verdict,
    json_data,
    missing_extra,
    plain,
    text,
    tool_call,
)

try:
    from agents import (
        Agent,
        FunctionTool,
        Handoff,
        Model,
        ModelProvider,
        ModelResponse,
        ModelSettings,
        RunConfig,
        RunContextWrapper,
        RunHooks,
        ToolGuardrailFunctionOutput,
        ToolInputGuardrail,
        ToolInputGuardrailData,
    )
    from agents.run_config import CallModelData, ModelInputData
    from agents.tool_context import ToolContext
    from openai.types.responses import (
        Response,
        ResponseCompletedEvent,
        ResponseContentPartDoneEvent,
        ResponseFunctionToolCall,
        ResponseOutputItemDoneEvent,
        ResponseOutputMessage,
        ResponseOutputText,
        ResponseTextDeltaEvent,
        ResponseTextDoneEvent,
    )
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise missing_extra(
        "interlock.adapters.openai_agents", "the OpenAI Agents SDK", "openai-agents"
    ) from error

__all__ = ["Interlock", "UngovernedToolError", "UnmappedRunError"]

logger = logging.getLogger("interlock.adapters.openai_agents")

HOST = "openai-agents"
CLAIMS = (
    "session_start",
    "session_end",
    "message_received",
    "pre_llm_call",
    "post_llm_call",
    "llm_stream_chunk",
    "pre_tool_call",
    "post_tool_call",
)
"""The hooks this adapter fires."""


class UnmappedRunError(InterlockError):
    """A governed agent ran without `run_config=ix.run_config(...)`: interlock cannot tell
    which run (session) a model or tool call belongs to, so the call is refused."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"{what} in a run without run_config=ix.run_config(...): interlock cannot tell "
            "which session it belongs to, and user messages and provider models would go "
            "ungoverned; pass Runner.run(agent, ..., hooks=ix.hooks, "
            "run_config=ix.run_config(RunConfig(...))) with the same Interlock"
        )


_MAX_GATES = 4096
"""Judged, not yet finished tool calls kept at most; the oldest are forgotten first (a
forgotten call is judged again if it comes back)."""


@dataclasses.dataclass(frozen=True)
class _Gate:
    """A `pre_tool_call` verdict, valid only for the exact call it judged."""

    tool: str
    arguments: str  # the model's arguments as canonical JSON
    verdict: Verdict[Any]


@dataclasses.dataclass
class _Turns:
    """Per session: the user messages `message_received` has judged, by (position, text)."""

    seen: dict[tuple[int, str], str] = dataclasses.field(default_factory=dict)
    fresh_block: str | None = None  # a block of this call's new message: answer with it


class Interlock:
    """The adapter: governs `agents.Agent` runs with the plugins of `manager`.

    `hosted_tools`: what `agent()` does with a tool it cannot gate — `"refuse"` (raise
    `UngovernedToolError`) or `"warn"` (log a warning and leave it as it is).
    `approver` decides an `Ask` in process; without one the SDK's approvals are used (the
    run stops with an interruption for `RunState.approve`/`reject`). `tags`, `idle_ttl`,
    `notify`: the sessions' tags, idle timeout and `notify` sink.
    """

    def __init__(
        self,
        manager: PluginManager,
        *,
        hosted_tools: Literal["refuse", "warn"] = "refuse",
        approver: Approver | None = None,
        tags: tuple[str, ...] = (),
        idle_ttl: float | None = 3600.0,
        notify: Callable[[str, str, Level, str], None] | None = None,
    ) -> None:
        if hosted_tools not in ("refuse", "warn"):
            raise ValueError(f"hosted_tools must be 'refuse' or 'warn', got {hosted_tools!r}")
        self.bridge = Bridge(
            manager, host=HOST, tags=tags, idle_ttl=idle_ttl, approver=approver, notify=notify
        )
        self.hosted_tools = hosted_tools
        self.hooks: RunHooks[Any] = _Hooks(self)
        """Pass as `Runner.run(..., hooks=ix.hooks)`: ends a run's own session at its end."""
        # The run's session key, set by the input filter before each model call; tools,
        # the model wrapper and the hooks run in the run's task or tasks it starts later.
        self._run: contextvars.ContextVar[tuple[str, bool] | None] = contextvars.ContextVar(
            f"interlock_openai_agents_run_{id(self)}", default=None
        )
        self._turns: weakref.WeakKeyDictionary[Session, _Turns] = weakref.WeakKeyDictionary()
        # pre_tool_call verdicts by (session key, call id), shared by a call's three seams
        self._gates: dict[tuple[str, str], _Gate] = {}

    # -- setup ------------------------------------------------------------------------

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        """A governed clone of `agent`, handoffs recursed; the original is left as it is."""
        return self._clone(agent, {})

    def run_config(self, config: RunConfig | None = None) -> RunConfig:
        """A copy of `config` (every field kept) that governs model calls and user input.

        Make one per run (or per conversation, with `group_id`): its session is the
        `group_id` when set, else its own.
        """
        config = config if config is not None else RunConfig()
        own_key = config.group_id or self.bridge.key(None)
        grouped = bool(config.group_id)
        model = config.model
        if isinstance(model, Model) and not isinstance(model, _GovernedModel):
            model = _GovernedModel(self, model)
        provider = config.model_provider
        if not isinstance(provider, _GovernedProvider):
            provider = _GovernedProvider(self, provider)
        user_filter = config.call_model_input_filter
        run = (own_key, grouped)

        async def input_filter(data: CallModelData[Any]) -> ModelInputData:
            self._run.set(run)
            model_data = await self._receive(own_key, data.model_data)
            if user_filter is None:
                return model_data
            data = dataclasses.replace(data, model_data=model_data)
            updated = user_filter(data)
            if isinstance(updated, Awaitable):
                updated = await updated
            return updated

        # tools find their run through it too (`ToolContext.run_config`), even when resumed
        # from a `RunState` in another task, before any model call
        object.__setattr__(input_filter, "_interlock_run", (self, run))
        return dataclasses.replace(
            config, model=model, model_provider=provider, call_model_input_filter=input_filter
        )

    async def aclose(self) -> None:
        """End every open session (`session_end`)."""
        await self.bridge.aclose()

    def close(self) -> None:
        """`aclose` for sync code."""
        self.bridge.close()

    # -- sessions ---------------------------------------------------------------------

    def _run_of(self, ctx: Any) -> tuple[str, bool] | None:
        """The run `ctx` (a tool's context) belongs to, else the one the input filter set."""
        config = getattr(ctx, "run_config", None)
        mark = getattr(getattr(config, "call_model_input_filter", None), "_interlock_run", None)
        if isinstance(mark, tuple) and mark[0] is self:
            run: tuple[str, bool] = mark[1]
            return run
        return self._run.get()

    async def _session(self, what: str, ctx: Any = None) -> Session:
        run = self._run_of(ctx)
        if run is None:
            raise UnmappedRunError(what)
        return await self.bridge.session(run[0])

    async def _end_run(self) -> None:
        run = self._run.get()
        if run is None:
            return
        session = self.bridge.find(run[0])
        if session is None:
            return
        for key in [k for k in self._gates if k[0] == session.key]:
            self._gates.pop(key, None)  # judged and never run (rejected, abandoned)
        if not run[1]:  # a conversation (group_id) outlives its runs
            await self.bridge.end(session)

    # -- message_received ---------------------------------------------------------------

    async def _receive(self, key: str, data: ModelInputData) -> ModelInputData:
        if not self.bridge.manager.has(hooks.MESSAGE_RECEIVED):
            return data
        session = await self.bridge.session(key)
        turns = self._turns.setdefault(session, _Turns())
        items: list[Any] = list(data.input)
        changed = False
        for index, item in enumerate(items):
            if _get(item, "role") != "user" or _get(item, "type", "message") != "message":
                continue
            original = _content_text(_get(item, "content"))
            seen = turns.seen.get((index, original))
            if seen is None:
                verdict = await self.bridge.fire(
                    hooks.MESSAGE_RECEIVED, MessageEvent(original, channel=HOST), session
                )
                if verdict.blocked:
                    reason = verdict.reason or "the message was blocked"
                    seen = f"[message withheld: {reason}]"
                    turns.fresh_block = reason
                else:
                    seen = verdict.payload.content
                turns.seen[(index, original)] = seen
            if seen != original:
                items[index] = {**_as_dict(item), "content": seen}
                changed = True
        return ModelInputData(input=items, instructions=data.instructions) if changed else data

    # -- model calls ------------------------------------------------------------------

    async def _before_model(
        self,
        name: str,
        instructions: str | None,
        items: list[Any],
        settings: ModelSettings,
        tools: Sequence[Any],
        stream: bool,
    ) -> tuple[Session, LLMRequest, ModelResponse | None, str | None, list[Any], ModelSettings]:
        """pre_llm_call: (session, request, an answer in the model's place or None,
        instructions, input items, settings to call the model with)."""
        session = await self._session(f"the model {name!r} was called")
        turns = self._turns.get(session)
        if turns is not None and turns.fresh_block is not None:
            reason, turns.fresh_block = turns.fresh_block, None
            answer = LLMResponse(name, f"[blocked] {reason}")
            return session, LLMRequest(name), _model_response(answer), instructions, items, settings
        items = [*_system_items(session), *items]
        messages = _messages(instructions, items)
        params = _params(settings)
        request = LLMRequest(
            name, tuple(m for _, m in messages), tuple(_schema(t) for t in tools), params, stream
        )
        verdict = await self.bridge.fire(hooks.PRE_LLM_CALL, request, session)
        if verdict.blocked:
            answer = LLMResponse(name, f"[blocked] {verdict.reason}")
            return session, request, _model_response(answer), instructions, items, settings
        late = session.take_system_items()
        if late:  # appended during pre_llm_call: for this call already
            items = [*_system_item_dicts(late), *items]
        if isinstance(verdict.response, LLMResponse):
            return (
                session,
                verdict.payload,
                _model_response(verdict.response),
                instructions,
                items,
                settings,
            )
        if verdict.changed:
            instructions, items = _apply_messages(instructions, items, messages, verdict.payload)
            settings = _apply_params(settings, params, verdict.payload.params)
        return session, verdict.payload, None, instructions, items, settings

    async def _after_model(
        self, session: Session, name: str, response: ModelResponse
    ) -> ModelResponse:
        payload = _llm_response(name, response)
        verdict = await self.bridge.fire(hooks.POST_LLM_CALL, payload, session)
        if verdict.blocked:
            return _model_response(LLMResponse(name, f"[blocked] {verdict.reason}"), response)
        if verdict.changed:
            return _model_response(verdict.payload, response)
        return response

    # -- tools ------------------------------------------------------------------------

    async def _gate(
        self, name: str, raw_args: str, call_id: str, ctx: Any
    ) -> tuple[Session, Verdict[Any]]:
        """pre_tool_call once per call: the first seam to see the call fires it; a verdict
        is reused only for the same tool with the same arguments (else judged again)."""
        session = await self._session(f"the tool {name!r} was called", ctx)
        call = tool_call(name, raw_args, call_id)
        fingerprint = json.dumps(call.arguments, sort_keys=True, default=str)
        key = (session.key, call_id)
        gate = self._gates.get(key)
        if gate is None or gate.tool != name or gate.arguments != fingerprint:
            verdict = await self.bridge.fire(hooks.PRE_TOOL_CALL, call, session)
            gate = _Gate(name, fingerprint, verdict)
            self._gates.pop(key, None)
            self._gates[key] = gate
            while len(self._gates) > _MAX_GATES:
                self._gates.pop(next(iter(self._gates)))
        return session, gate.verdict

    def _answered(self, session: Session, call_id: str) -> None:
        """An asked call was approved: not asked again when it is invoked."""
        gate = self._gates.get((session.key, call_id))
        if gate is not None:
            verdict = dataclasses.replace(gate.verdict, question=None)
            self._gates[(session.key, call_id)] = dataclasses.replace(gate, verdict=verdict)

    async def _refused(self, session: Session, verdict: Verdict[Any], reason: str) -> str:
        """post_tool_call on a refusal (the model sees its result, as with any tool)."""
        self._gates.pop((session.key, verdict.payload.call_id), None)
        call = verdict.payload
        result = ToolResult(call.tool_name, call.arguments, call.call_id, reason, True)
        after = await self.bridge.fire(hooks.POST_TOOL_CALL, result, session)
        if after.blocked:
            return after.reason or reason
        return str(after.payload.output)

    def _govern_tool(self, tool: FunctionTool) -> FunctionTool:
        if getattr(tool, "_interlock_governed", None) is self:
            return tool
        original_invoke = tool.on_invoke_tool
        original_approval = tool.needs_approval
        ix = self

        async def needs_approval(
            ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str
        ) -> bool:
            if isinstance(original_approval, bool):
                wanted = original_approval
            else:
                wanted = bool(await original_approval(ctx, params, call_id))
            _, verdict = await ix._gate(tool.name, json.dumps(params), call_id, ctx)
            asks = verdict.question is not None and ix.bridge.approver is None
            return wanted or asks

        async def guard(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
            ctx = data.context
            session, verdict = await ix._gate(tool.name, ctx.tool_arguments, ctx.tool_call_id, ctx)
            reason = ix._denial(verdict)
            if reason is None:
                if verdict.question is not None:  # answered: not asked again at invoke
                    ix._answered(session, ctx.tool_call_id)
                return ToolGuardrailFunctionOutput.allow()
            message = await ix._refused(session, verdict, reason)
            return ToolGuardrailFunctionOutput.reject_content(
                message, {"blocked_by": verdict.blocked_by}
            )

        async def on_invoke_tool(ctx: ToolContext[Any], raw_args: str) -> Any:
            session, verdict = await ix._gate(tool.name, raw_args, ctx.tool_call_id, ctx)
            reason = ix._denial(verdict)
            if reason is not None:  # reached without the guardrail (e.g. a nested call)
                return await ix._refused(session, verdict, reason)
            ix._gates.pop((session.key, ctx.tool_call_id), None)
            call = verdict.payload
            if verdict.changed:
                raw_args = json.dumps(dict(call.arguments))
                # the SDK prepared the model's arguments for the approval check: re-prepare
                if hasattr(ctx, "_function_tool_arguments"):
                    ctx._function_tool_arguments = None
            output = await original_invoke(ctx, raw_args)
            result = ToolResult(call.tool_name, call.arguments, call.call_id, text(output))
            after = await ix.bridge.fire(hooks.POST_TOOL_CALL, result, session)
            if after.blocked:
                return after.reason
            return after.payload.output if after.changed else output

        guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(
            guardrail_function=guard, name="interlock"
        )
        governed = dataclasses.replace(
            tool,
            on_invoke_tool=on_invoke_tool,
            needs_approval=needs_approval,
            tool_input_guardrails=[guardrail, *(tool.tool_input_guardrails or [])],
        )
        object.__setattr__(governed, "_interlock_governed", self)
        return governed

    def _denial(self, verdict: Verdict[Any]) -> str | None:
        """Why a judged call must not run, or None."""
        if verdict.blocked:
            call = verdict.payload
            return verdict.reason or f"{call.tool_name} was blocked by {verdict.blocked_by}"
        question = verdict.question
        if (
            question is not None
            and self.bridge.approver is not None
            and not self.bridge.approve(verdict.payload, question)
        ):
            return f"not approved: {question}"
        return None

    # -- agents -----------------------------------------------------------------------

    def _clone(self, agent: Agent[Any], done: dict[int, Agent[Any]]) -> Agent[Any]:
        if id(agent) in done:
            return done[id(agent)]
        clone = agent.clone()
        done[id(agent)] = clone
        tools: list[Any] = []
        for tool in agent.tools:
            if isinstance(tool, FunctionTool):
                tools.append(self._govern_tool(tool))
                continue
            kind = type(tool).__name__
            name = str(getattr(tool, "name", kind))
            if self.hosted_tools == "refuse":
                raise UngovernedToolError(
                    agent.name,
                    name,
                    kind,
                    why="it does not run through a function tool's on_invoke_tool",
                    fix="Interlock(manager, hosted_tools='warn')",
                )
            logger.warning("agent %r: the %s %r runs ungoverned", agent.name, kind, name)
            tools.append(tool)
        clone.tools = tools
        clone.handoffs = [self._handoff(h, done) for h in agent.handoffs]
        if isinstance(agent.model, Model) and not isinstance(agent.model, _GovernedModel):
            clone.model = _GovernedModel(self, agent.model)
        if agent.mcp_servers:
            fetch = clone.get_mcp_tools

            async def get_mcp_tools(run_context: RunContextWrapper[Any]) -> list[Any]:
                found = await fetch(run_context)
                return [self._govern_tool(t) if isinstance(t, FunctionTool) else t for t in found]

            object.__setattr__(clone, "get_mcp_tools", get_mcp_tools)
        return clone

    def _handoff(self, handoff: Any, done: dict[int, Agent[Any]]) -> Any:
        if isinstance(handoff, Agent):
            return self._clone(handoff, done)
        if not isinstance(handoff, Handoff):
            return handoff
        invoke = handoff.on_invoke_handoff

        async def on_invoke_handoff(ctx: RunContextWrapper[Any], raw: str) -> Agent[Any]:
            return self._clone(await invoke(ctx, raw), done)

        return dataclasses.replace(handoff, on_invoke_handoff=on_invoke_handoff)


class _Hooks(RunHooks[Any]):
    """The run hooks `Interlock.hooks` holds."""

    def __init__(self, ix: Interlock) -> None:
        self._ix = ix

    async def on_agent_end(self, context: Any, agent: Any, output: Any) -> None:
        await self._ix._end_run()


class _GovernedProvider(ModelProvider):
    """Wraps a model provider: every model it gives out is governed."""

    def __init__(self, ix: Interlock, inner: ModelProvider) -> None:
        self._ix = ix
        self.inner = inner

    def get_model(self, model_name: str | None) -> Model:
        model = self.inner.get_model(model_name)
        if isinstance(model, _GovernedModel):
            return model
        return _GovernedModel(self._ix, model, model_name)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _GovernedModel(Model):
    """Wraps a model: pre/post_llm_call around each call, stream chunks on the way out."""

    def __init__(self, ix: Interlock, inner: Model, name: str | None = None) -> None:
        self._ix = ix
        self.inner = inner
        self.name = name or str(getattr(inner, "model", None) or type(inner).__name__)

    async def close(self) -> None:
        await self.inner.close()

    def get_retry_advice(self, request: Any) -> Any:
        return self.inner.get_retry_advice(request)

    async def get_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: ModelSettings,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        session, _, answer, instructions, items, settings = await self._ix._before_model(
            self.name, system_instructions, items, model_settings, [*tools, *handoffs], False
        )
        if answer is None:
            answer = await self.inner.get_response(
                instructions, items, settings, tools, output_schema, handoffs, tracing, **kwargs
            )
        return await self._ix._after_model(session, self.name, answer)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: ModelSettings,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        ix = self._ix
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        session, _, answer, instructions, items, settings = await ix._before_model(
            self.name, system_instructions, items, model_settings, [*tools, *handoffs], True
        )
        if answer is not None:  # answered in the model's place: no chunks
            answer = await ix._after_model(session, self.name, answer)
            yield _completed(answer, self.name)
            return
        view = _Stream(ix.bridge, session, self.name)
        events = self.inner.stream_response(
            instructions, items, settings, tools, output_schema, handoffs, tracing, **kwargs
        )
        async for event in events:
            if isinstance(event, ResponseTextDeltaEvent):
                shown = await view.delta(event)
                if shown is not None:
                    yield shown
                continue
            for flushed in await view.flush(done=True):
                yield flushed
            event = view.patch(event)
            if isinstance(event, ResponseCompletedEvent):
                response = _response_of(event.response)
                response = await ix._after_model(session, self.name, response)
                event = event.model_copy(
                    update={
                        "response": event.response.model_copy(update={"output": response.output})
                    }
                )
            yield event
        for flushed in await view.flush(done=False):
            yield flushed


class _Stream:
    """One streamed answer: each text delta goes through `llm_stream_chunk` one event behind
    the model (so the last can say `done`); what plugins removed is also taken out of the
    events that repeat the whole text (text done, item done, completed)."""

    def __init__(self, bridge: Bridge, session: Session, model: str) -> None:
        self.bridge = bridge
        self.session = session
        self.model = model
        self.listening = bridge.manager.has(hooks.LLM_STREAM_CHUNK)
        self.pending: Any = None
        self.index = 0
        self.stopped = False
        self.altered = False
        self.shown: dict[str, str] = {}

    async def delta(self, event: Any) -> Any:
        if not self.listening:
            return event
        pending, self.pending = self.pending, event
        return None if pending is None else await self._fire(pending, False)

    async def flush(self, *, done: bool) -> list[Any]:
        pending, self.pending = self.pending, None
        if pending is None:
            return []
        return [await self._fire(pending, done)]

    async def _fire(self, event: Any, done: bool) -> Any:
        chunk = StreamChunk(self.model, self.index, event.delta, done)
        self.index += 1
        verdict = await self.bridge.fire(hooks.LLM_STREAM_CHUNK, chunk, self.session)
        if verdict.blocked:
            self.stopped = True
        delta = "" if self.stopped else verdict.payload.delta
        if delta != event.delta:
            self.altered = True
        self.shown[event.item_id] = self.shown.get(event.item_id, "") + delta
        return event.model_copy(update={"delta": delta})

    def patch(self, event: Any) -> Any:
        """`event` with the text the plugins let through, where it repeats the answer."""
        if not self.altered:
            return event
        if isinstance(event, ResponseTextDoneEvent) and event.item_id in self.shown:
            return event.model_copy(update={"text": self.shown[event.item_id]})
        if isinstance(event, ResponseContentPartDoneEvent) and event.item_id in self.shown:
            part = event.part
            if isinstance(part, ResponseOutputText):
                part = part.model_copy(update={"text": self.shown[event.item_id]})
            return event.model_copy(update={"part": part})
        if isinstance(event, ResponseOutputItemDoneEvent):
            return event.model_copy(update={"item": self._item(event.item)})
        if isinstance(event, ResponseCompletedEvent):
            output = [self._item(item) for item in event.response.output]
            return event.model_copy(
                update={"response": event.response.model_copy(update={"output": output})}
            )
        return event

    def _item(self, item: Any) -> Any:
        if not isinstance(item, ResponseOutputMessage) or item.id not in self.shown:
            return item
        return _message_item(self.shown[item.id], item.id)


# -- conversions ------------------------------------------------------------------------


def _get(item: Any, key: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(key, default)
    return getattr(item, key, default)


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    dumped: dict[str, Any] = item.model_dump(exclude_none=True)
    return dumped


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            str(_get(part, "text", "") or _get(part, "refusal", "") or "") for part in content
        )
    return text(content)


def _messages(instructions: str | None, items: Sequence[Any]) -> list[tuple[int, Message]]:
    """The chat messages of a model input, each with its item's index (-1: instructions)."""
    found: list[tuple[int, Message]] = []
    if instructions:
        found.append((-1, Message("system", instructions)))
    for index, item in enumerate(items):
        kind = _get(item, "type", "message")
        role = _get(item, "role")
        if kind == "message" and role in ("user", "assistant", "system", "developer"):
            chat_role: Role = "system" if role == "developer" else role
            found.append((index, Message(chat_role, _content_text(_get(item, "content")))))
        elif kind == "function_call":
            call = tool_call(_get(item, "name", ""), _get(item, "arguments"), _get(item, "call_id"))
            found.append((index, Message("assistant", tool_calls=(call,))))
        elif kind == "function_call_output":
            output = _get(item, "output")
            found.append((index, Message("tool", text(output), tool_call_id=_get(item, "call_id"))))
    return found


def _apply_messages(
    instructions: str | None,
    items: list[Any],
    before: list[tuple[int, Message]],
    request: LLMRequest,
) -> tuple[str | None, list[Any]]:
    """Put a modified request's messages back into the model input."""
    after = request.messages
    if len(after) == len(before) and all(
        m.role == b.role for (_, b), m in zip(before, after, strict=True)
    ):
        items = list(items)
        for (index, old), new in zip(before, after, strict=True):
            if new == old:
                continue
            if index == -1:
                instructions = new.content
            elif new.role == "tool":
                items[index] = {**_as_dict(items[index]), "output": new.content}
            elif new.tool_calls:
                call = new.tool_calls[0]
                items[index] = {
                    **_as_dict(items[index]),
                    "name": call.tool_name,
                    "arguments": json.dumps(dict(call.arguments)),
                }
            else:
                items[index] = {**_as_dict(items[index]), "content": new.content}
        return instructions, items
    # messages were added or removed: the input is rebuilt from them
    rebuilt: list[Any] = []
    instructions = None
    for message in after:
        if message.role == "system" and instructions is None and not rebuilt:
            instructions = message.content
        elif message.role == "tool":
            rebuilt.append(
                {
                    "type": "function_call_output",
                    "call_id": message.tool_call_id or "",
                    "output": message.content,
                }
            )
        elif message.tool_calls:
            if message.content:
                rebuilt.append({"role": "assistant", "content": message.content})
            for call in message.tool_calls:
                rebuilt.append(
                    {
                        "type": "function_call",
                        "call_id": call.call_id,
                        "name": call.tool_name,
                        "arguments": json.dumps(dict(call.arguments)),
                    }
                )
        else:
            role = "developer" if message.role == "system" else message.role
            rebuilt.append({"role": role, "content": message.content})
    return instructions, rebuilt


def _system_item_dicts(entries: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [{"role": "developer", "content": f"[{kind}] {body}"} for kind, body, _ in entries]


def _system_items(session: Session) -> list[dict[str, Any]]:
    """Every system item plugins appended in this session: model-visible from then on."""
    session.take_system_items()
    return _system_item_dicts(session.items)


def _params(settings: ModelSettings) -> Mapping[str, Any]:
    data = json_data(settings.to_json_dict())
    if not isinstance(data, Mapping):
        return {}
    return {k: v for k, v in data.items() if v is not None}


def _apply_params(
    settings: ModelSettings, before: Mapping[str, Any], after: Mapping[str, Any]
) -> ModelSettings:
    fields = {f.name for f in dataclasses.fields(settings)}
    changes = {k: plain(v) for k, v in after.items() if k in fields and before.get(k) != v}
    changes.update({k: None for k in before if k in fields and k not in after})
    return dataclasses.replace(settings, **changes) if changes else settings


def _schema(tool: Any) -> ToolSchema:
    name = str(
        getattr(tool, "name", None) or getattr(tool, "tool_name", None) or type(tool).__name__
    )
    description = str(
        getattr(tool, "description", None) or getattr(tool, "tool_description", "") or ""
    )
    parameters = getattr(tool, "params_json_schema", None) or getattr(
        tool, "input_json_schema", None
    )
    data = json_data(parameters) if parameters else {}
    return ToolSchema(name, description, data if isinstance(data, Mapping) else {})


def _llm_response(name: str, response: ModelResponse) -> LLMResponse:
    content: list[str] = []
    calls = []
    for item in response.output:
        kind = _get(item, "type")
        if kind == "message":
            content.append(_content_text(_get(item, "content")))
        elif kind == "function_call":
            calls.append(
                tool_call(_get(item, "name", ""), _get(item, "arguments"), _get(item, "call_id"))
            )
    usage = response.usage
    return LLMResponse(
        name,
        "".join(content),
        tuple(calls),
        Usage(usage.input_tokens, usage.output_tokens),
        "tool_calls" if calls else "stop",
    )


def _message_item(content: str, item_id: str | None = None) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=item_id or f"msg_interlock_{uuid.uuid4().hex[:12]}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(text=content, type="output_text", annotations=[])],
    )


def _model_response(answer: LLMResponse, original: ModelResponse | None = None) -> ModelResponse:
    """`answer` as the SDK's model response; other output items of `original` (reasoning,
    hosted tool calls) are kept."""
    from agents.usage import Usage as SdkUsage

    output: list[Any] = []
    if original is not None:
        output = [i for i in original.output if _get(i, "type") not in ("message", "function_call")]
    if answer.content or not answer.tool_calls:
        output.append(_message_item(answer.content))
    for call in answer.tool_calls:
        call_id = call.call_id or f"call_interlock_{uuid.uuid4().hex[:12]}"
        output.append(
            ResponseFunctionToolCall(
                id=call_id,
                call_id=call_id,
                type="function_call",
                name=call.tool_name,
                arguments=json.dumps(dict(call.arguments)),
            )
        )
    if original is not None:
        return dataclasses.replace(original, output=output)
    return ModelResponse(output=output, usage=SdkUsage(), response_id=None)


def _response_of(response: Response) -> ModelResponse:
    from agents.usage import Usage as SdkUsage

    usage = SdkUsage()
    if response.usage is not None:
        usage = SdkUsage(
            requests=1,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            total_tokens=response.usage.total_tokens,
        )
    return ModelResponse(output=list(response.output), usage=usage, response_id=response.id)


def _completed(answer: ModelResponse, name: str) -> ResponseCompletedEvent:
    response = Response(
        id=answer.response_id or f"resp_interlock_{uuid.uuid4().hex[:12]}",
        created_at=0,
        model=name,
        object="response",
        output=answer.output,
        tool_choice="auto",
        tools=[],
        parallel_tool_calls=False,
        status="completed",
    )
    return ResponseCompletedEvent(type="response.completed", response=response, sequence_number=0)
