"""The agent's spans and metrics after the OpenTelemetry GenAI semantic conventions.

Private to `interlock.observability`, which documents them (and docs/observability.md
lists every attribute and the `error.type` values). Imports OpenTelemetry at the top: only
`interlock.observability` imports this module.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context, metrics, trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import (
    ErrorEvent,
    HookContext,
    HookResult,
    LLMRequest,
    LLMResponse,
    Plugin,
    SessionEnd,
    SessionStart,
    ToolCall,
    ToolResult,
    __version__,
    hook,
)
from .runtime.backends import ModelProvider

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

_LAST = 1_000_000_000
_FIRST = -_LAST

_CHAT = gen_ai.GenAiOperationNameValues.CHAT.value
_EXECUTE_TOOL = gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value
_INVOKE_AGENT = gen_ai.GenAiOperationNameValues.INVOKE_AGENT.value
_INPUT = gen_ai.GenAiTokenTypeValues.INPUT.value
_OUTPUT = gen_ai.GenAiTokenTypeValues.OUTPUT.value

# The buckets the conventions advise for the two client metrics.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                    20.48, 40.96, 81.92)  # fmt: skip
TOKEN_BUCKETS = tuple(4**power for power in range(14))  # 1, 4, 16, ... 67108864

UNKNOWN_PROVIDER = ModelProvider("unknown")
"""Reported when the host did not say who serves the model."""

# `error.type` values besides the ones hosts pass in their `error` events.
TOOL_ERROR = "tool_error"  # an error result no `error` event explained
SESSION_ENDED = "session_ended"  # the session ended with the call still open


@dataclass(slots=True)
class _Chat:
    """A model call in flight: its span and when it started (ns since the epoch)."""

    span: Span
    started: int
    model: str


class GenAISpans(Plugin):
    """Spans and metrics for the agent, after the OpenTelemetry GenAI semantic conventions,
    timed from the hooks around each model and tool call (so any host firing the catalog
    gets them): `invoke_agent` per session, `chat <model>` per model call, `execute_tool
    <name>` per tool call, and the `gen_ai.client.operation.duration` and
    `gen_ai.client.token.usage` histograms per model call.

    `provider` is who serves the model (a backend's `provider`): its name goes on every
    span, and a remote one makes chat spans `CLIENT` spans (`INTERNAL` otherwise).
    `instrument` registers this plugin, nests each invocation's span in its session's
    `invoke_agent`, and reports tool calls a plugin blocked (see `blocked`); register it
    yourself to trace only the agent. A call that fails ends its span with an error status
    and `error.type` at the `error` hook.
    """

    name = "otel-genai"

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        provider: ModelProvider | None = None,
    ) -> None:
        self._root = context.Context()  # sessions are traces of their own
        self._tracer = trace.get_tracer("interlock.genai", __version__,
                                        tracer_provider=tracer_provider)  # fmt: skip
        meter = metrics.get_meter("interlock.genai", __version__, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._provider = provider or UNKNOWN_PROVIDER
        self._chat_kind = SpanKind.CLIENT if self._provider.remote else SpanKind.INTERNAL
        # By session id, not in `ctx.state`: a host without session scopes still gets one
        # span per session.
        self._agents: dict[str, Span] = {}
        self._calls: dict[tuple[str, str], _Chat | Span | int] = {}
        # Failed tool calls waiting for the `error` event that names the cause, with
        # when they ended.
        self._failing: dict[str, list[tuple[Span, int]]] = {}

    # -- sessions -----------------------------------------------------------------------

    def open(self, session_id: str) -> None:
        """Start the session's `invoke_agent` span (once)."""
        if session_id not in self._agents:
            self._agents[session_id] = self._tracer.start_span(
                _INVOKE_AGENT,
                context=self._root,
                kind=SpanKind.INTERNAL,  # the agent runs in this process
                attributes={gen_ai.GEN_AI_OPERATION_NAME: _INVOKE_AGENT,
                            gen_ai.GEN_AI_PROVIDER_NAME: self._provider.name,
                            gen_ai.GEN_AI_CONVERSATION_ID: session_id},
            )  # fmt: skip

    def context(self, session_id: str) -> Any:
        """A context whose current span is the session's agent span (None: no such span)."""
        span = self._agents.get(session_id)
        return None if span is None else trace.set_span_in_context(span)

    def on_session_start(self, event: SessionStart, ctx: HookContext) -> None:
        self.open(event.session_id)

    def on_session_end(self, event: SessionEnd, ctx: HookContext) -> None:
        self._settle(event.session_id)
        for key in [k for k in self._calls if k[0] == event.session_id]:
            self._abandon(self._calls.pop(key))
        span = self._agents.pop(event.session_id, None)
        if span is not None:
            span.set_attribute("interlock.session.turns", event.turns)
            span.end()

    # -- model calls --------------------------------------------------------------------

    @hook("pre_llm_call", priority=_FIRST)
    def chat_may_start(self, request: LLMRequest, ctx: HookContext) -> None:
        # A call a plugin answers (Respond) never reaches the last handler: its span
        # starts here, when the post_llm_call hook finds no other.
        session = _session(ctx)
        self._settle(session)
        self._calls[(session, "chat")] = time.time_ns()

    @hook("pre_llm_call", priority=_LAST)
    def chat_starts(self, request: LLMRequest, ctx: HookContext) -> None:
        session = _session(ctx)
        started = time.time_ns()
        span = self._start(f"chat {request.model}", session, self._chat(request.model, session),
                           kind=self._chat_kind, start=started)  # fmt: skip
        self._calls[(session, "chat")] = _Chat(span, started, request.model)

    @hook("post_llm_call", priority=_FIRST)
    def chat_ends(self, response: LLMResponse, ctx: HookContext) -> None:
        session = _session(ctx)
        call = self._calls.pop((session, "chat"), None)
        if isinstance(call, int):  # answered by a plugin, in process: the span starts then
            attributes = self._chat(response.model, session)
            span = self._start(f"chat {response.model}", session, attributes,
                               kind=SpanKind.INTERNAL, start=call)  # fmt: skip
            call = _Chat(span, call, response.model)
        if not isinstance(call, _Chat):
            return
        span = call.span
        span.set_attribute(gen_ai.GEN_AI_RESPONSE_MODEL, response.model)
        span.set_attribute(gen_ai.GEN_AI_USAGE_INPUT_TOKENS, response.usage.input_tokens)
        span.set_attribute(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, response.usage.output_tokens)
        span.set_attribute(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS, [response.finish_reason])
        span.end()
        measured = self._measured(call.model, response.model)
        self._duration.record(_seconds_since(call.started), measured)
        self._tokens.record(response.usage.input_tokens,
                            {**measured, gen_ai.GEN_AI_TOKEN_TYPE: _INPUT})  # fmt: skip
        self._tokens.record(response.usage.output_tokens,
                            {**measured, gen_ai.GEN_AI_TOKEN_TYPE: _OUTPUT})  # fmt: skip

    # -- tool calls ---------------------------------------------------------------------

    @hook("pre_tool_call", priority=_LAST)
    def tool_starts(self, call: ToolCall, ctx: HookContext) -> None:
        if ctx.recheck:  # a changed call asked about again: not a new call
            return
        session = _session(ctx)
        self._calls[(session, f"tool:{call.call_id}")] = self._tool_span(
            session, call, time.time_ns()
        )

    @hook("post_tool_call", priority=_FIRST)
    def tool_ends(self, result: ToolResult, ctx: HookContext) -> None:
        session = _session(ctx)
        span = self._calls.pop((session, f"tool:{result.call_id}"), None)
        if span is None or isinstance(span, int | _Chat):
            return
        if result.is_error:  # the `error` event that follows names the cause
            self._failing.setdefault(session, []).append((span, time.time_ns()))
        else:
            span.end()

    def blocked(
        self, session_id: str, call: ToolCall, result: HookResult[Any], started: int
    ) -> None:
        """Told that a plugin blocked a tool call (by `instrument`, which sees each
        invocation's result; no handler runs after the one that blocks): the call gets
        its `execute_tool` span from `started`, marked `interlock.outcome` `blocked` and
        `interlock.blocked_by`."""
        span = self._calls.pop((session_id, f"tool:{call.call_id}"), None)
        if span is None or isinstance(span, int | _Chat):
            span = self._tool_span(session_id, call, started)
        span.set_attribute("interlock.outcome", "blocked")
        if result.blocked_by is not None:
            span.set_attribute("interlock.blocked_by", result.blocked_by)
        span.end()

    # -- failures -----------------------------------------------------------------------

    def on_error(self, event: ErrorEvent, ctx: HookContext) -> None:
        session = _session(ctx)
        if event.stage == "llm_call":
            call = self._calls.pop((session, "chat"), None)
            if isinstance(call, _Chat):
                _failed(call.span, event.error_type, f"{event.error_type}: {event.message}")
                call.span.end()
                measured = {**self._measured(call.model), ERROR_TYPE: event.error_type}
                self._duration.record(_seconds_since(call.started), measured)
        elif event.stage == "tool_call":
            self._tool_failed(session, event.error_type)

    def _tool_failed(self, session: str, error_type: str) -> None:
        """End the tool call an `error` event reports: the first failed one, or, for a
        host whose tool raised before any result (no `post_tool_call`), the first open."""
        if self._failing.get(session):
            span, ended = self._failing[session].pop(0)
        else:
            key = next((k for k in self._calls if k[0] == session and k[1][:5] == "tool:"), None)
            open_span = None if key is None else self._calls.pop(key)
            if open_span is None or isinstance(open_span, int | _Chat):
                return
            span, ended = open_span, time.time_ns()
        _failed(span, error_type, "the tool failed")
        span.end(end_time=ended)

    def _settle(self, session: str) -> None:
        """End the failed tool calls no `error` event explained (a refused approval, a
        host that reports none) with the generic `tool_error`."""
        for span, ended in self._failing.pop(session, ()):
            _failed(span, TOOL_ERROR, "the tool's result is an error")
            span.end(end_time=ended)

    def _abandon(self, call: _Chat | Span | int) -> None:
        if isinstance(call, int):
            return  # a call that never started its span
        span = call.span if isinstance(call, _Chat) else call
        _failed(span, SESSION_ENDED, "the session ended first")
        span.end()

    # -- spans --------------------------------------------------------------------------

    def _chat(self, model: str, session: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {gen_ai.GEN_AI_OPERATION_NAME: _CHAT,
                                      gen_ai.GEN_AI_PROVIDER_NAME: self._provider.name,
                                      gen_ai.GEN_AI_REQUEST_MODEL: model}  # fmt: skip
        if session:
            attributes[gen_ai.GEN_AI_CONVERSATION_ID] = session
        return attributes

    def _measured(self, model: str, response_model: str | None = None) -> dict[str, str]:
        """The attributes of the client metrics for a model call."""
        attributes = {gen_ai.GEN_AI_OPERATION_NAME: _CHAT,
                      gen_ai.GEN_AI_PROVIDER_NAME: self._provider.name,
                      gen_ai.GEN_AI_REQUEST_MODEL: model}  # fmt: skip
        if response_model is not None:
            attributes[gen_ai.GEN_AI_RESPONSE_MODEL] = response_model
        return attributes

    def _tool_span(self, session: str, call: ToolCall, started: int) -> Span:
        attributes = {gen_ai.GEN_AI_OPERATION_NAME: _EXECUTE_TOOL,
                      gen_ai.GEN_AI_TOOL_NAME: call.tool_name,
                      gen_ai.GEN_AI_TOOL_CALL_ID: call.call_id}  # fmt: skip
        return self._start(f"execute_tool {call.tool_name}", session, attributes,
                           kind=SpanKind.INTERNAL, start=started)  # fmt: skip

    def _start(
        self, name: str, session: str, attributes: Mapping[str, Any], *, kind: SpanKind,
        start: int,
    ) -> Span:  # fmt: skip
        return self._tracer.start_span(name, context=self.context(session), kind=kind,
                                       attributes=attributes, start_time=start)  # fmt: skip


def _failed(span: Span, error_type: str, description: str) -> None:
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, description))


def _seconds_since(started: int) -> float:
    return (time.time_ns() - started) / 1e9


def _session(ctx: HookContext) -> str:
    return ctx.session.id if ctx.session is not None else ""
