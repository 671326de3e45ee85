"""The agent's spans and metrics against the OpenTelemetry GenAI semantic conventions.

One scripted session (two model calls; a tool that works, one that raises, one a plugin
blocks), exported to the SDK's in-memory exporter and metric reader, checked against the
`opentelemetry-semantic-conventions` constants.
"""

from __future__ import annotations

import ast
import inspect
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, StatusCode

from interlock import (
    Ask,
    Block,
    ErrorEvent,
    LLMRequest,
    LLMResponse,
    PluginManager,
    SessionEnd,
    SessionInfo,
    SessionStart,
    ToolCall,
    hook,
    hooks,
)
from interlock.observability import instrument
from interlock.runtime import Agent, OpenAIBackend, ScriptedBackend, Step
from interlock.runtime.backends import ModelBackend

from .runtime.chat_server import ChatServer, Reply
from .test_docs import ROOT, blocks, run

DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
CALLS = (("read", {"path": "a"}), ("explode", {"path": "b"}), ("wipe", {"path": "c"}))


def read(path: str) -> str:
    """Read a file."""
    return f"contents of {path}"


def explode(path: str) -> str:
    """A tool that fails."""
    raise PermissionError(f"{path}: denied")


def wipe(path: str) -> str:
    """A tool the guard never lets run."""
    raise AssertionError("the guard blocks this tool")


@hook("pre_tool_call", name="guard")
def guard(call: ToolCall, ctx: Any) -> Block | None:
    return Block("no wiping") if call.tool_name == "wipe" else None


class Session:
    """One instrumented agent session's exported spans and metrics."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    async def run(self, model: ModelBackend, *plugins: Any, **agent: Any) -> None:
        manager = PluginManager()
        provider = getattr(model, "provider", None)
        instrument(manager, tracer_provider=self.tracer_provider,
                   meter_provider=self.meter_provider, provider=provider)  # fmt: skip
        for plugin in plugins:
            manager.register(plugin)
        agent_ = Agent(model, tools=[read, explode, wipe], manager=manager, **agent)
        await agent_.run("do it", session_id="s-1")
        await agent_.aclose()

    def spans(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def span(self, name: str) -> ReadableSpan:
        [span] = self.spans(name)
        return span

    def metric(self, name: str) -> Any:
        data = self.reader.get_metrics_data()
        assert data is not None
        [metric] = [m for r in data.resource_metrics for s in r.scope_metrics
                    for m in s.metrics if m.name == name]  # fmt: skip
        return metric

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def session() -> Iterator[Session]:
    s = Session()
    yield s
    s.close()


async def scripted(session: Session) -> None:
    await session.run(ScriptedBackend([Step(tool_calls=CALLS), "done"]), guard)


async def test_names_kinds_and_parentage_make_one_trace(session: Session) -> None:
    await scripted(session)
    agent = session.span("invoke_agent")
    chats = session.spans("chat ")
    tools = session.spans("execute_tool ")
    assert [c.name for c in chats] == ["chat scripted", "chat scripted"]
    assert sorted(t.name for t in tools) == [
        "execute_tool explode", "execute_tool read", "execute_tool wipe"]  # fmt: skip
    assert {s.context.trace_id for s in [agent, *chats, *tools]} == {agent.context.trace_id}
    assert agent.parent is None and agent.kind is SpanKind.INTERNAL
    for span in [*chats, *tools]:
        assert span.parent is not None and span.parent.span_id == agent.context.span_id
        assert span.kind is SpanKind.INTERNAL  # the scripted model runs in process
    assert agent.attributes[gen_ai.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert chats[0].attributes[gen_ai.GEN_AI_OPERATION_NAME] == "chat"
    assert chats[0].attributes[gen_ai.GEN_AI_REQUEST_MODEL] == "scripted"
    assert chats[0].attributes[gen_ai.GEN_AI_RESPONSE_MODEL] == "scripted"
    assert tuple(chats[1].attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)
    for span in chats:
        for key in (gen_ai.GEN_AI_USAGE_INPUT_TOKENS, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS):
            assert type(span.attributes[key]) is int
    read_span = session.span("execute_tool read")
    assert read_span.attributes[gen_ai.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert read_span.attributes[gen_ai.GEN_AI_TOOL_NAME] == "read"
    assert read_span.attributes[gen_ai.GEN_AI_TOOL_CALL_ID] == "call_1"
    assert read_span.status.status_code is StatusCode.UNSET
    assert chats[0].end_time <= read_span.start_time <= read_span.end_time <= chats[1].start_time
    # The hooks' own spans keep their outcomes.
    gates = session.spans("interlock pre_tool_call")
    assert [g.attributes["interlock.outcome"] for g in gates] == [
        "continued", "continued", "blocked"]  # fmt: skip


async def test_1_chat_spans_are_client_spans_for_a_remote_backend(session: Session) -> None:
    with ChatServer([Reply("hello", usage=(6, 1))]) as server:
        model = OpenAIBackend("local-model", base_url=server.url)
        await session.run(model)
    assert session.span("chat local-model").kind is SpanKind.CLIENT
    assert session.span("invoke_agent").kind is SpanKind.INTERNAL


async def test_2_every_chat_and_agent_span_names_the_provider(session: Session) -> None:
    with ChatServer([Reply("hello")]) as server:
        await session.run(OpenAIBackend("m", base_url=server.url, provider="groq"))
    await scripted(session)
    [remote, local] = session.spans("invoke_agent")
    assert remote.attributes[gen_ai.GEN_AI_PROVIDER_NAME] == "groq"
    assert local.attributes[gen_ai.GEN_AI_PROVIDER_NAME] == "interlock.scripted"
    providers = [c.attributes[gen_ai.GEN_AI_PROVIDER_NAME] for c in session.spans("chat ")]
    assert providers == ["groq", "interlock.scripted", "interlock.scripted"]
    assert OpenAIBackend("m", base_url="http://127.0.0.1:9/v1").provider.name == "openai"


async def test_3_chat_spans_carry_the_conversation_id(session: Session) -> None:
    await scripted(session)
    for span in [*session.spans("chat "), session.span("invoke_agent")]:
        assert span.attributes[gen_ai.GEN_AI_CONVERSATION_ID] == "s-1"


async def test_4_a_blocked_tool_call_has_its_span_marked_blocked(session: Session) -> None:
    await scripted(session)
    blocked = session.span("execute_tool wipe")
    assert blocked.attributes["interlock.outcome"] == "blocked"
    assert blocked.attributes["interlock.blocked_by"] == "guard"
    assert blocked.attributes[gen_ai.GEN_AI_TOOL_CALL_ID] == "call_3"
    # Not a failure: the tool never ran, a plugin decided.
    assert ERROR_TYPE not in blocked.attributes
    assert blocked.status.status_code is StatusCode.UNSET
    assert blocked.parent is not None
    assert blocked.parent.span_id == session.span("invoke_agent").context.span_id
    for span in session.spans("execute_tool "):
        if span is not blocked:
            assert "interlock.outcome" not in span.attributes


async def test_4_a_call_a_plugin_asked_about_and_the_host_approved_has_its_span(
    session: Session,
) -> None:
    @hook("pre_tool_call", name="asker")
    def asker(call: ToolCall, ctx: Any) -> Ask:
        return Ask("sure?")

    script = ScriptedBackend([Step(tool_calls=(("read", {"path": "a"}),)), "done"])
    await session.run(script, asker, approver=lambda call, question: True)
    span = session.span("execute_tool read")
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is not None


async def test_5_client_duration_and_token_usage_histograms(session: Session) -> None:
    await scripted(session)
    chats = session.spans("chat ")
    duration = session.metric(gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION)
    assert duration.unit == "s"
    [point] = duration.data.data_points
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    assert point.count == 2
    assert point.attributes == {
        gen_ai.GEN_AI_OPERATION_NAME: "chat",
        gen_ai.GEN_AI_PROVIDER_NAME: "interlock.scripted",
        gen_ai.GEN_AI_REQUEST_MODEL: "scripted",
        gen_ai.GEN_AI_RESPONSE_MODEL: "scripted",
    }
    usage = session.metric(gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE)
    assert usage.unit == "{token}"
    sums = {}
    for p in usage.data.data_points:
        assert tuple(p.explicit_bounds) == TOKEN_BUCKETS
        assert p.count == 2
        sums[p.attributes[gen_ai.GEN_AI_TOKEN_TYPE]] = p.sum
    assert sums == {
        "input": sum(c.attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] for c in chats),
        "output": sum(c.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] for c in chats),
    }
    assert sums["output"] == 3 + 1  # three tool calls, then the one-word answer


async def test_6_error_type_names_the_cause(session: Session) -> None:
    script = [Step(tool_calls=(*CALLS, ("missing", {}))), "done"]
    await session.run(ScriptedBackend(script), guard)
    failed = session.span("execute_tool explode")
    assert failed.attributes[ERROR_TYPE] == "PermissionError"
    assert failed.status.status_code is StatusCode.ERROR
    assert session.span("execute_tool missing").attributes[ERROR_TYPE] == "unknown_tool"
    assert ERROR_TYPE not in session.span("execute_tool read").attributes


async def test_6_a_failed_model_call_is_measured_with_its_error_type(session: Session) -> None:
    class Down(ScriptedBackend):
        async def complete(self, request: LLMRequest) -> LLMResponse:
            raise ConnectionRefusedError("model server down")

    await session.run(Down())
    failed = session.span("chat scripted")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes[ERROR_TYPE] == "ConnectionRefusedError"
    [point] = session.metric(gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION).data.data_points
    assert point.attributes[ERROR_TYPE] == "ConnectionRefusedError"
    assert point.count == 1


def _replaced_keys() -> set[str]:
    """The GenAI attribute keys the semconv package marks as replaced by others."""
    tree = ast.parse(inspect.getsource(gen_ai))
    body = tree.body
    replaced = set()
    for node, after in itertools.pairwise(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)):
            continue
        doc = after.value
        if isinstance(doc, ast.Constant) and "Replaced by" in str(doc.value):
            assert isinstance(node.value, ast.Constant)
            replaced.add(str(node.value.value))
    return replaced


async def test_no_attribute_is_one_the_conventions_replaced(session: Session) -> None:
    await scripted(session)
    replaced = _replaced_keys()
    assert {"gen_ai.system", "gen_ai.usage.prompt_tokens"} <= replaced
    used = {key for span in session.exporter.get_finished_spans() for key in span.attributes}
    assert used and not used & replaced


def test_the_example_on_the_observability_page_prints_what_the_page_says() -> None:
    page = ROOT / "docs" / "observability.md"
    [code], [output] = blocks(page, "python"), blocks(page, "text")
    assert run(code) == output


async def test_a_host_whose_tool_raises_before_any_result_gets_the_same_span(
    session: Session,
) -> None:
    # Adapters (LangChain) fire `error` for a tool that raised, with no post_tool_call;
    # Hermes asks about a changed call again (recheck), which is not a second call.
    manager = PluginManager()
    instrument(manager, tracer_provider=session.tracer_provider,
               meter_provider=session.meter_provider)  # fmt: skip
    info = SessionInfo("s-2")
    call = ToolCall("explode", {"path": "b"}, "c-1")
    await manager.invoke(hooks.SESSION_START, SessionStart("s-2"), session=info)
    await manager.invoke(hooks.PRE_TOOL_CALL, call, session=info)
    await manager.invoke(hooks.PRE_TOOL_CALL, call, session=info, recheck=True)
    error = ErrorEvent("PermissionError", "b: denied", "tool_call")
    await manager.invoke(hooks.ERROR, error, session=info)
    await manager.invoke(hooks.SESSION_END, SessionEnd("s-2", 1), session=info)
    span = session.span("execute_tool explode")
    assert span.attributes[ERROR_TYPE] == "PermissionError"
    assert span.parent is not None
    assert span.parent.span_id == session.span("invoke_agent").context.span_id
    assert session.span("invoke_agent").attributes[gen_ai.GEN_AI_PROVIDER_NAME] == "unknown"
