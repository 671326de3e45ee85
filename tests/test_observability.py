"""OpenTelemetry spans and metrics, read back from the SDK's in-memory exporters."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from interlock import Block, InterlockError, Modify, PluginManager, ToolCall, hook, hooks
from interlock.observability import instrument
from interlock.runtime import Agent, ScriptedBackend, Step


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def instrument(self, manager: PluginManager, **options: Any) -> None:
        instrument(manager, tracer_provider=self.tracer_provider,
                   meter_provider=self.meter_provider, **options)  # fmt: skip

    def finished(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def points(self, metric: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for m in scope.metrics
            if m.name == metric
            for point in m.data.data_points
        ]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.tracer_provider.shutdown()
    t.meter_provider.shutdown()


@hook("pre_tool_call", priority=1)
def tag(call: ToolCall, ctx: Any) -> Modify[ToolCall]:
    return Modify(call.replace(arguments={**call.arguments, "tagged": True}))


@hook("pre_tool_call", priority=2)
def broken(call: ToolCall, ctx: Any) -> None:
    raise RuntimeError("policy service down")


@hook("pre_tool_call", priority=3)
async def slow(call: ToolCall, ctx: Any) -> None:
    await asyncio.Event().wait()  # never set: its timeout ends it


@hook("pre_tool_call", priority=4)
def gate(call: ToolCall, ctx: Any) -> Block:
    return Block("no")


async def test_a_span_per_invocation_and_per_handler_with_outcomes(telemetry: Telemetry) -> None:
    manager = PluginManager()
    telemetry.instrument(manager, agent_spans=False)
    manager.register(tag)
    manager.register(broken, on_error="ignore")
    manager.register(slow, timeout=0.01, on_error="ignore")
    manager.register(gate)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert result.blocked

    spans = {span.name: span for span in telemetry.finished()}
    invocation = spans["interlock pre_tool_call"]
    assert invocation.attributes["interlock.outcome"] == "blocked"
    assert invocation.attributes["interlock.blocked_by"] == "gate"
    outcomes = {
        span.attributes["interlock.plugin"]: span.attributes["interlock.outcome"]
        for span in telemetry.finished() if span.name.startswith("interlock.handler")
    }  # fmt: skip
    assert outcomes == {"tag": "modified", "broken": "error", "slow": "timeout", "gate": "blocked"}
    handler = spans["interlock.handler broken"]
    assert handler.parent is not None and handler.parent.span_id == invocation.context.span_id
    assert handler.status.status_code is StatusCode.ERROR
    [event] = handler.events
    assert event.name == "exception"
    assert event.attributes["exception.message"] == "policy service down"
    assert spans["interlock.handler tag"].attributes["interlock.mode"] == "enforce"

    durations = telemetry.points("interlock.handler.duration")
    assert {p.attributes["interlock.outcome"] for p in durations} >= {"modified", "error"}
    calls = {p.attributes["interlock.plugin"]: p.value
             for p in telemetry.points("interlock.handler.calls")}  # fmt: skip
    errors = {p.attributes["interlock.plugin"]: p.value
              for p in telemetry.points("interlock.handler.errors")}  # fmt: skip
    assert calls == {"tag": 1, "broken": 1, "slow": 1, "gate": 1}
    assert errors["broken"] == 1 and errors["tag"] == 0


def shell(command: str) -> str:
    """Pretend to run a command."""
    return f"ran {command}"


async def test_agent_spans_follow_the_genai_conventions(telemetry: Telemetry) -> None:
    manager = PluginManager()
    telemetry.instrument(manager)
    script = [Step(tool_calls=(("shell", {"command": "ls"}),)), "done"]
    agent = Agent(ScriptedBackend(script), tools=[shell], manager=manager)
    await agent.run("list it", session_id="s-9")
    await agent.aclose()

    spans = telemetry.finished()
    [session] = [s for s in spans if s.name == "invoke_agent"]
    chats = [s for s in spans if s.name == "chat scripted"]
    [tool] = [s for s in spans if s.name == "execute_tool shell"]
    assert session.attributes["gen_ai.conversation.id"] == "s-9"
    assert len(chats) == 2
    assert all(c.parent is not None and c.parent.span_id == session.context.span_id
               for c in [*chats, tool])  # fmt: skip
    assert chats[0].attributes["gen_ai.operation.name"] == "chat"
    assert chats[0].attributes["gen_ai.usage.output_tokens"] == 1
    assert tuple(chats[1].attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1"
    assert chats[0].end_time <= tool.start_time <= tool.end_time <= chats[1].start_time


def test_sync_hosts_get_spans_too(telemetry: Telemetry) -> None:
    manager = PluginManager()
    telemetry.instrument(manager, agent_spans=False)
    manager.register(gate)
    assert manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell")).blocked
    names = [s.name for s in telemetry.finished()]
    assert names == ["interlock.handler gate", "interlock pre_tool_call"]
    manager.close()


def test_instrument_comes_first() -> None:
    manager = PluginManager()
    manager.register(gate)
    with pytest.raises(InterlockError, match="before registering plugins"):
        instrument(manager)


def test_without_instrumentation_opentelemetry_is_never_imported() -> None:
    code = (
        "import sys, asyncio, interlock, interlock.runtime, interlock.config\n"
        "from interlock.cli import app\n"
        "from interlock.runtime import Agent, ScriptedBackend\n"
        "asyncio.run(Agent(ScriptedBackend(['hi'])).run('hello'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    assert out.stdout.strip() == "[]"


async def test_a_session_is_one_trace_and_every_call_ends_its_span(telemetry: Telemetry) -> None:
    from interlock import LLMRequest, LLMResponse, Respond

    @hook("pre_llm_call")
    def cache(request: LLMRequest, ctx: Any) -> Respond[LLMResponse] | None:
        if request.messages[-1].content == "cached?":
            return Respond(LLMResponse("cache", "from the cache"))
        return None

    class Broken(ScriptedBackend):
        async def complete(self, request: LLMRequest) -> LLMResponse:
            raise ConnectionError("model server down")

    manager = PluginManager()
    telemetry.instrument(manager)
    manager.register(cache)
    agent = Agent(Broken(), manager=manager)
    async with agent.session("s-1") as session:
        await session.send("cached?")
        await session.send("anything")  # the model call fails
    await agent.aclose()

    spans = telemetry.finished()
    [agent_span] = [s for s in spans if s.name == "invoke_agent"]
    hooks_ = [s for s in spans if s.name.startswith("interlock ") and "handler" not in s.name]
    assert {s.context.trace_id for s in spans} == {agent_span.context.trace_id}
    assert all(s.parent is not None and s.parent.span_id == agent_span.context.span_id
               for s in hooks_)  # fmt: skip
    answered, failed = [s for s in spans if s.name.startswith("chat ")]
    assert answered.name == "chat cache" and answered.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "ConnectionError"


async def test_handlers_of_an_observe_hook_are_siblings(telemetry: Telemetry) -> None:
    from interlock import TurnEnd

    go = asyncio.Event()

    @hook("turn_end", name="waits")
    async def waits(event: TurnEnd, ctx: Any) -> None:
        await go.wait()  # suspends while the other handler runs

    @hook("turn_end", name="releases")
    async def releases(event: TurnEnd, ctx: Any) -> None:
        go.set()

    manager = PluginManager()
    telemetry.instrument(manager, agent_spans=False)
    manager.register(waits)
    manager.register(releases)
    await manager.invoke(hooks.TURN_END, TurnEnd(1))
    spans = {s.name: s for s in telemetry.finished()}
    invocation = spans["interlock turn_end"].context.span_id
    assert spans["interlock.handler waits"].parent.span_id == invocation
    assert spans["interlock.handler releases"].parent.span_id == invocation
