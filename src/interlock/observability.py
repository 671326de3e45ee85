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
  timeouts, blocks and calls the open breaker skipped, per global registration (a
  session's own registrations are in the histograms; as counters they would run
  backwards when the session ends).
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
    ErrorEvent,
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
    if manager.registrations() or any(s.own_registrations() for s in manager._scopes):
        raise InterlockError(
            "instrument the manager before registering plugins: handlers are wrapped as "
            "they are registered"
        )
    tracer = trace.get_tracer("interlock", __version__, tracer_provider=tracer_provider)
    meter = metrics.get_meter("interlock", __version__, meter_provider=meter_provider)
    genai = GenAISpans(tracer_provider=tracer_provider) if agent_spans else None
    observer = _Observer(tracer, meter, manager, genai)
    if genai is not None:  # registered first, so that its own handlers are not traced
        manager.register(genai)
    manager._wrap = observer.wrap
    # Instance attributes: only this manager's calls go through the observer.
    setattr(manager, "invoke", observer.invoke(manager.invoke))  # noqa: B010
    setattr(manager, "invoke_sync", observer.invoke_sync(manager.invoke_sync))  # noqa: B010


class _Observer:
    """Makes the spans and records the metrics of one manager."""

    def __init__(
        self, tracer: Any, meter: Any, manager: PluginManager, genai: GenAISpans | None
    ) -> None:
        self.tracer = tracer
        self.manager = manager
        self.genai = genai
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
            parent = self._parent(name, payload, options)
            with self.tracer.start_as_current_span(f"interlock {name}", context=parent) as span:
                start = time.perf_counter()
                result: HookResult[Any] = await invoke(hook, payload, **options)
                self._invoked(span, name, result, time.perf_counter() - start)
                return result

        return traced

    def invoke_sync(self, invoke_sync: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(invoke_sync)
        def traced(hook: Any, payload: Any, **options: Any) -> HookResult[Any]:
            name = getattr(hook, "name", hook)
            parent = self._parent(name, payload, options)
            with self.tracer.start_as_current_span(f"interlock {name}", context=parent) as span:
                start = time.perf_counter()
                result: HookResult[Any] = invoke_sync(hook, payload, **options)
                self._invoked(span, name, result, time.perf_counter() - start)
                return result

        return traced

    def _parent(self, hook: str, payload: Any, options: dict[str, Any]) -> Any:
        """The context an invocation's span goes in: its session's agent span, if any
        (opened here at `session_start`, so that the session's hooks all nest in it)."""
        if self.genai is None:
            return None
        session = _session_id(self.manager, options)
        if session is None:
            return None
        if hook == "session_start" and isinstance(payload, SessionStart):
            self.genai.open(payload.session_id)
        return self.genai.context(session)

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
                # Not made current: handlers of an observe hook run side by side in one
                # task, and a span left current while one waits would adopt the others.
                span = self.tracer.start_span(name, attributes=attributes)
                start = time.perf_counter()
                try:
                    action = await fn(payload, ctx)
                except BaseException as error:
                    self._failed(span, error, attributes, time.perf_counter() - start)
                    span.end()
                    raise
                self._answered(span, action, attributes, time.perf_counter() - start)
                span.end()
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

        # Global registrations only: a session's go when it ends, and a counter summed
        # over them would run backwards.
        for stats in manager.stats().registrations:
            if stats.scope is not None:
                continue
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
    tool call. `instrument` registers it (and nests each invocation's span in its session's
    `invoke_agent`); register it yourself to trace only the agent. A model or tool call
    that fails ends its span with an error status at the `error` hook."""

    name = "otel-genai"

    def __init__(self, *, tracer_provider: TracerProvider | None = None) -> None:
        from opentelemetry import context, trace

        self._trace = trace
        self._root = context.Context()  # sessions are traces of their own
        self._tracer = trace.get_tracer("interlock.genai", __version__,
                                        tracer_provider=tracer_provider)  # fmt: skip
        # By session id, not in `ctx.state`: a host without session scopes still gets one
        # span per session.
        self._agents: dict[str, Span] = {}
        self._calls: dict[tuple[str, str], Span | int] = {}

    def open(self, session_id: str) -> None:
        """Start the session's `invoke_agent` span (once)."""
        if session_id not in self._agents:
            self._agents[session_id] = self._tracer.start_span(
                "invoke_agent",
                context=self._root,
                attributes={"gen_ai.operation.name": "invoke_agent",
                            "gen_ai.conversation.id": session_id},
            )  # fmt: skip

    def context(self, session_id: str) -> Any:
        """A context whose current span is the session's agent span (None: no such span)."""
        span = self._agents.get(session_id)
        return None if span is None else self._trace.set_span_in_context(span)

    def on_session_start(self, event: SessionStart, ctx: HookContext) -> None:
        self.open(event.session_id)

    def on_session_end(self, event: SessionEnd, ctx: HookContext) -> None:
        for key in [k for k in self._calls if k[0] == event.session_id]:
            self._end(self._calls.pop(key), "the session ended first")
        span = self._agents.pop(event.session_id, None)
        if span is not None:
            span.set_attribute("interlock.session.turns", event.turns)
            span.end()

    @hook("pre_llm_call", priority=_FIRST)
    def chat_may_start(self, request: LLMRequest, ctx: HookContext) -> None:
        # A call a plugin answers (Respond) never reaches the last handler: its span
        # starts here, when the post_llm_call hook finds no other.
        self._calls[(_session(ctx), "chat")] = time.time_ns()

    @hook("pre_llm_call", priority=_LAST)
    def chat_starts(self, request: LLMRequest, ctx: HookContext) -> None:
        self._calls[(_session(ctx), "chat")] = self._start(
            f"chat {request.model}", ctx,
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": request.model},
        )  # fmt: skip

    @hook("post_llm_call", priority=_FIRST)
    def chat_ends(self, response: LLMResponse, ctx: HookContext) -> None:
        started = self._calls.pop((_session(ctx), "chat"), None)
        if started is None:
            return
        if isinstance(started, int):  # answered by a plugin: the span starts from then
            attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": response.model}
            span = self._start(f"chat {response.model}", ctx, attributes, start=started)
        else:
            span = started
        span.set_attribute("gen_ai.response.model", response.model)
        span.set_attribute("gen_ai.usage.input_tokens", response.usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", response.usage.output_tokens)
        span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
        span.end()

    @hook("pre_tool_call", priority=_LAST)
    def tool_starts(self, call: ToolCall, ctx: HookContext) -> None:
        self._calls[(_session(ctx), f"tool:{call.call_id}")] = self._start(
            f"execute_tool {call.tool_name}", ctx,
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.tool_name,
             "gen_ai.tool.call.id": call.call_id},
        )  # fmt: skip

    @hook("post_tool_call", priority=_FIRST)
    def tool_ends(self, result: ToolResult, ctx: HookContext) -> None:
        span = self._calls.pop((_session(ctx), f"tool:{result.call_id}"), None)
        if span is None:
            return
        self._end(span, "the tool failed" if result.is_error else None)

    def on_error(self, event: ErrorEvent, ctx: HookContext) -> None:
        if event.stage == "llm_call":
            span = self._calls.pop((_session(ctx), "chat"), None)
            if span is not None:
                self._end(span, f"{event.error_type}: {event.message}", event.error_type)

    def _start(
        self, name: str, ctx: HookContext, attributes: dict[str, Any], start: int | None = None
    ) -> Span:
        parent = self.context(_session(ctx))
        return self._tracer.start_span(name, context=parent, attributes=attributes,
                                       start_time=start)  # fmt: skip

    def _end(self, span: Span | int, problem: str | None, kind: str = "tool_error") -> None:
        if isinstance(span, int):
            return  # a call that never started its span
        if problem is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, problem))
        span.end()


def _session(ctx: HookContext) -> str:
    return ctx.session.id if ctx.session is not None else ""


def _session_id(manager: PluginManager, options: dict[str, Any]) -> str | None:
    session = options.get("session")
    if session is not None:
        return str(session.id)
    scope = options.get("scope") or manager._scope_var.get()
    return None if scope is None else str(scope.info.id)
