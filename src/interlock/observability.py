"""OpenTelemetry spans and metrics for a `PluginManager` and the agent it serves.

    from interlock.observability import instrument

    manager = PluginManager()
    instrument(manager, provider=backend.provider)   # before registering plugins
    manager.register(...)

Needs `pip install -e '<interlock checkout>[otel]'` (importing this module without it raises
`ImportError`); nothing here is imported unless you import it, and a manager that is not
instrumented pays nothing. What you get, through the global providers or the ones you
pass (docs/observability.md has the whole reference and an example):

- a span per `invoke` (`interlock <hook>`), and a child span per handler call
  (`interlock.handler <plugin>`) with the hook, plugin, mode and outcome: `continued`,
  `modified`, `blocked`, `responded`, `asked`, `error` (the exception recorded on the
  span) or `timeout`;
- spans for the agent, following the OpenTelemetry GenAI conventions: `invoke_agent`
  around a session, `chat <model>` per model call (a `CLIENT` span for a remote
  provider) and `execute_tool <tool>` per tool call, blocked ones included
  (`interlock.outcome` `blocked`), timed from the hooks around them; the
  `gen_ai.client.operation.duration` and `gen_ai.client.token.usage` histograms;
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

try:
    from opentelemetry import metrics, trace
except ImportError:  # pragma: no cover - depends on the installation
    from ._extras import missing_extra

    raise missing_extra("interlock.observability", "OpenTelemetry", "otel") from None

from . import (
    Ask,
    Block,
    HookContext,
    HookResult,
    InterlockError,
    Modify,
    PluginManager,
    Registration,
    Respond,
    SessionStart,
    ToolCall,
    __version__,
)
from ._otel_genai import GenAISpans

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from .runtime.backends import ModelProvider

__all__ = ["GenAISpans", "instrument"]


def instrument(
    manager: PluginManager,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    agent_spans: bool = True,
    provider: ModelProvider | None = None,
) -> None:
    """Give `manager` spans and metrics (see the module documentation).

    Call it before registering plugins: handlers are wrapped as they are registered.
    With `agent_spans`, a `GenAISpans` plugin is registered to trace sessions, model calls
    and tool calls; `provider` says who serves the model (a backend's `provider`, or
    `ModelProvider("anthropic")` for an adapter's host; `unknown` when not given).
    Raises `InterlockError` for a manager that already has registrations or
    instrumentation.
    """
    if manager._wrap is not None:
        raise InterlockError("this manager is instrumented already")
    if manager.registrations() or any(s.own_registrations() for s in manager._scopes):
        raise InterlockError(
            "instrument the manager before registering plugins: handlers are wrapped as "
            "they are registered"
        )
    tracer = trace.get_tracer("interlock", __version__, tracer_provider=tracer_provider)
    meter = metrics.get_meter("interlock", __version__, meter_provider=meter_provider)
    genai = None
    if agent_spans:
        genai = GenAISpans(
            tracer_provider=tracer_provider, meter_provider=meter_provider, provider=provider
        )
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
                started, start = time.time_ns(), time.perf_counter()
                result: HookResult[Any] = await invoke(hook, payload, **options)
                self._invoked(span, name, result, time.perf_counter() - start)
                self._blocked_tool(name, payload, result, options, started)
                return result

        return traced

    def invoke_sync(self, invoke_sync: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(invoke_sync)
        def traced(hook: Any, payload: Any, **options: Any) -> HookResult[Any]:
            name = getattr(hook, "name", hook)
            parent = self._parent(name, payload, options)
            with self.tracer.start_as_current_span(f"interlock {name}", context=parent) as span:
                started, start = time.time_ns(), time.perf_counter()
                result: HookResult[Any] = invoke_sync(hook, payload, **options)
                self._invoked(span, name, result, time.perf_counter() - start)
                self._blocked_tool(name, payload, result, options, started)
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

    def _blocked_tool(
        self, hook: str, payload: Any, result: HookResult[Any], options: dict[str, Any],
        started: int,
    ) -> None:  # fmt: skip
        """Tell the agent spans of a blocked tool call: only this wrapper sees one (no
        handler runs after the one that blocked)."""
        if self.genai is None or hook != "pre_tool_call" or not result.blocked:
            return
        if isinstance(payload, ToolCall):
            session = _session_id(self.manager, options) or ""
            self.genai.blocked(session, result.payload or payload, result, started)

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


def _session_id(manager: PluginManager, options: dict[str, Any]) -> str | None:
    session = options.get("session")
    if session is not None:
        return str(session.id)
    scope = options.get("scope") or manager._scope_var.get()
    return None if scope is None else str(scope.info.id)
