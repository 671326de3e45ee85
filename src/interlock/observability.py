"""OpenTelemetry spans and metrics for a `PluginManager` and the agent it serves.

    from interlock.observability import instrument

    manager = PluginManager()
    instrument(manager)            # before registering plugins
    manager.register(...)

Needs `pip install 'interlock[otel]'`; nothing here is imported unless you call it, and a
manager that is not instrumented pays nothing. What you get, through the global providers
or the ones you pass:

- a span per `invoke` (`interlock <hook>`), and a child span per handler call
  (`interlock.handler <plugin>`) with the hook, plugin, mode and outcome: `continued`,
  `modified`, `blocked`, `responded`, `asked`, `error` (the exception recorded on the
  span) or `timeout`;
- spans for the agent, following the OpenTelemetry GenAI conventions: `invoke_agent`
  around a session, `chat <model>` per model call (`gen_ai.request.model`, token usage,
  finish reasons) and `execute_tool <tool>` per tool call, timed from the hooks around them;
- histograms `interlock.invoke.duration` and `interlock.handler.duration` (seconds), and
  counters read from `manager.stats()` when metrics are collected: calls, errors,
  timeouts, blocks and skipped calls (conditions not met, breaker open) per registration.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import (
    Ask,
    Block,
    HookContext,
    HookResult,
    InterlockError,
    LLMRequest,
    LLMResponse,
    Modify,
    Plugin,
    PluginManager,
    Registration,
    Respond,
    SessionEnd,
    SessionStart,
    ToolCall,
    ToolResult,
    __version__,
    hook,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["GenAISpans", "instrument"]

_LAST = 1_000_000_000
_FIRST = -_LAST


def instrument(
    manager: PluginManager,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    agent_spans: bool = True,
) -> None:
    """Give `manager` spans and metrics (see the module documentation).

    Call it before registering plugins: handlers are wrapped as they are registered.
    With `agent_spans`, a `GenAISpans` plugin is registered to trace sessions, model calls
    and tool calls. Raises `ImportError` without the `otel` extra, and `InterlockError`
    for a manager that already has registrations or instrumentation.
    """
    try:
        from opentelemetry import metrics, trace
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(
            "observability needs OpenTelemetry: pip install 'interlock[otel]'"
        ) from None
    if manager._wrap is not None:
        raise InterlockError("this manager is instrumented already")
    if manager.registrations():
        raise InterlockError(
            "instrument the manager before registering plugins: handlers are wrapped as "
            "they are registered"
        )
    tracer = trace.get_tracer("interlock", __version__, tracer_provider=tracer_provider)
    meter = metrics.get_meter("interlock", __version__, meter_provider=meter_provider)
    observer = _Observer(tracer, meter, manager)
    if agent_spans:  # registered first, so that its own handlers are not traced
        manager.register(GenAISpans(tracer_provider=tracer_provider))
    manager._wrap = observer.wrap
    # Instance attributes: only this manager's calls go through the observer.
    setattr(manager, "invoke", observer.invoke(manager.invoke))  # noqa: B010
    setattr(manager, "invoke_sync", observer.invoke_sync(manager.invoke_sync))  # noqa: B010


class _Observer:
    """Makes the spans and records the metrics of one manager."""

    def __init__(self, tracer: Any, meter: Any, manager: PluginManager) -> None:
        self.tracer = tracer
        self.invoke_duration = meter.create_histogram(
            "interlock.invoke.duration", unit="s", description="Time of one hook invocation."
        )
        self.handler_duration = meter.create_histogram(
            "interlock.handler.duration", unit="s", description="Time of one handler call."
        )
        for counter, field, description in _COUNTERS:
            meter.create_observable_counter(
                counter,
                callbacks=[_reader(manager, field)],
                description=description,
            )

    # -- invocations ------------------------------------------------------------------

    def invoke(self, invoke: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(invoke)
        async def traced(hook: Any, payload: Any, **options: Any) -> HookResult[Any]:
            name = getattr(hook, "name", hook)
            with self.tracer.start_as_current_span(f"interlock {name}") as span:
                start = time.perf_counter()
                result: HookResult[Any] = await invoke(hook, payload, **options)
                self._invoked(span, name, result, time.perf_counter() - start)
                return result

        return traced

    def invoke_sync(self, invoke_sync: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(invoke_sync)
        def traced(hook: Any, payload: Any, **options: Any) -> HookResult[Any]:
            name = getattr(hook, "name", hook)
            with self.tracer.start_as_current_span(f"interlock {name}") as span:
                start = time.perf_counter()
                result: HookResult[Any] = invoke_sync(hook, payload, **options)
                self._invoked(span, name, result, time.perf_counter() - start)
                return result

        return traced

    def _invoked(self, span: Span, hook: str, result: HookResult[Any], seconds: float) -> None:
        outcome = _result_outcome(result)
        span.set_attribute("interlock.hook", hook)
        span.set_attribute("interlock.outcome", outcome)
        if result.blocked_by is not None:
            span.set_attribute("interlock.blocked_by", result.blocked_by)
        if result.errors:
            span.set_attribute("interlock.errors", len(result.errors))
        self.invoke_duration.record(seconds, {"interlock.hook": hook, "interlock.outcome": outcome})

    # -- handlers -----------------------------------------------------------------------

    def wrap(self, reg: Registration) -> Callable[..., Any]:
        """`reg`'s handler, with a span and a duration per call."""
        fn = reg.fn
        attributes = {
            "interlock.hook": reg.hook.name,
            "interlock.plugin": reg.plugin,
            "interlock.mode": reg.mode,
        }
        name = f"interlock.handler {reg.plugin}"

        if reg.is_async:

            async def traced_async(payload: Any, ctx: HookContext) -> Any:
                with self._span(name, attributes) as span:
                    start = time.perf_counter()
                    try:
                        action = await fn(payload, ctx)
                    except BaseException as error:
                        self._failed(span, error, attributes, time.perf_counter() - start)
                        raise
                    self._answered(span, action, attributes, time.perf_counter() - start)
                    return action

            return traced_async

        def traced(payload: Any, ctx: HookContext) -> Any:
            with self._span(name, attributes) as span:
                start = time.perf_counter()
                try:
                    action = fn(payload, ctx)
                except BaseException as error:
                    self._failed(span, error, attributes, time.perf_counter() - start)
                    raise
                self._answered(span, action, attributes, time.perf_counter() - start)
                return action

        return traced

    def _span(self, name: str, attributes: dict[str, str]) -> Any:
        # Exceptions are recorded by `_failed`, which knows a timeout from an error.
        return self.tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        )

    def _answered(
        self, span: Span, action: Any, attributes: dict[str, str], seconds: float
    ) -> None:
        outcome = _action_outcome(action)
        span.set_attribute("interlock.outcome", outcome)
        self.handler_duration.record(seconds, {**attributes, "interlock.outcome": outcome})

    def _failed(
        self, span: Span, error: BaseException, attributes: dict[str, str], seconds: float
    ) -> None:
        from opentelemetry.trace import Status, StatusCode

        outcome = "timeout" if isinstance(error, asyncio.CancelledError) else "error"
        span.set_attribute("interlock.outcome", outcome)
        if outcome == "error":
            span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self.handler_duration.record(seconds, {**attributes, "interlock.outcome": outcome})


_COUNTERS = (
    ("interlock.handler.calls", "calls", "Handler calls that ran."),
    ("interlock.handler.errors", "errors", "Handler calls that failed."),
    ("interlock.handler.timeouts", "timeouts", "Handler calls past their timeout."),
    ("interlock.handler.blocks", "blocks", "Events a handler blocked."),
    ("interlock.handler.skipped", "skipped", "Calls the open circuit breaker turned away."),
)


def _reader(manager: PluginManager, field: str) -> Callable[[Any], Iterable[Any]]:
    """An observable-counter callback: one value per registration, from `stats()`."""

    def read(options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        for stats in manager.stats().registrations:
            yield Observation(
                getattr(stats, field),
                {"interlock.plugin": stats.plugin, "interlock.hook": stats.hook},
            )

    return read


def _action_outcome(action: Any) -> str:
    if isinstance(action, Modify):
        return "modified"
    if isinstance(action, Block):
        return "blocked"
    if isinstance(action, Respond):
        return "responded"
    if isinstance(action, Ask):
        return "asked"
    return "continued"


def _result_outcome(result: HookResult[Any]) -> str:
    if result.blocked:
        return "blocked"
    if result.responded:
        return "responded"
    if result.asked:
        return "asked"
    if result.modified:
        return "modified"
    return "error" if result.errors else "continued"


class GenAISpans(Plugin):
    """Spans for the agent, after the OpenTelemetry GenAI semantic conventions, timed from
    the hooks around each model and tool call (so any host firing the catalog gets them):
    `invoke_agent` per session, `chat <model>` per model call, `execute_tool <name>` per
    tool call. `instrument` registers it; register it yourself to trace only the agent."""

    name = "otel-genai"

    def __init__(self, *, tracer_provider: TracerProvider | None = None) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = trace.get_tracer("interlock.genai", __version__,
                                        tracer_provider=tracer_provider)  # fmt: skip

    def on_session_start(self, event: SessionStart, ctx: HookContext) -> None:
        span = self._tracer.start_span(
            "invoke_agent",
            attributes={"gen_ai.operation.name": "invoke_agent",
                        "gen_ai.conversation.id": event.session_id},
        )  # fmt: skip
        ctx.state["agent_span"] = span

    def on_session_end(self, event: SessionEnd, ctx: HookContext) -> None:
        span = ctx.state.pop("agent_span", None)
        if span is not None:
            span.set_attribute("interlock.session.turns", event.turns)
            span.end()

    @hook("pre_llm_call", priority=_LAST)
    def chat_starts(self, request: LLMRequest, ctx: HookContext) -> None:
        span = self._tracer.start_span(
            f"chat {request.model}",
            context=self._parent(ctx),
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": request.model},
        )
        ctx.state["chat_span"] = span

    @hook("post_llm_call", priority=_FIRST)
    def chat_ends(self, response: LLMResponse, ctx: HookContext) -> None:
        span = ctx.state.pop("chat_span", None)
        if span is None:
            return
        span.set_attribute("gen_ai.response.model", response.model)
        span.set_attribute("gen_ai.usage.input_tokens", response.usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", response.usage.output_tokens)
        span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
        span.end()

    @hook("pre_tool_call", priority=_LAST)
    def tool_starts(self, call: ToolCall, ctx: HookContext) -> None:
        span = self._tracer.start_span(
            f"execute_tool {call.tool_name}",
            context=self._parent(ctx),
            attributes={"gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": call.tool_name,
                        "gen_ai.tool.call.id": call.call_id},
        )  # fmt: skip
        ctx.state.setdefault("tool_spans", {})[call.call_id] = span

    @hook("post_tool_call", priority=_FIRST)
    def tool_ends(self, result: ToolResult, ctx: HookContext) -> None:
        span = ctx.state.get("tool_spans", {}).pop(result.call_id, None)
        if span is None:
            return
        if result.is_error:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", "tool_error")
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def _parent(self, ctx: HookContext) -> Any:
        agent = ctx.state.get("agent_span")
        return None if agent is None else self._trace.set_span_in_context(agent)
