"""The LangChain v1 / LangGraph adapter, offline, with LangChain's own fake chat model."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import runpy
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

import interlock

pytest.importorskip("langchain")
pytest.importorskip("langgraph")

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from interlock import (
    Ask,
    Block,
    HookContext,
    LLMRequest,
    LLMResponse,
    MessageEvent,
    Modify,
    PluginManager,
    Respond,
    ToolCall,
    ToolResult,
    hook,
)
from interlock.adapters.langchain import InterlockMiddleware
from interlock.external import StdioTransport, connect
from interlock.plugins.content_policy import ContentPolicy
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig
from interlock.testing import Conformance, Expected

from ..external.conftest import ENV, ROOT, serve_command
from .helpers import no_rm

CLAIMS = [
    "session_start",
    "session_end",
    "message_received",
    "message_sending",
    "pre_llm_call",
    "post_llm_call",
    "llm_stream_chunk",
    "pre_tool_call",
    "post_tool_call",
    "turn_end",
    "error",
]


_OPEN: list[PluginManager] = []


def managed(manager: PluginManager) -> PluginManager:
    """`manager`, closed after the test (its helper thread and loop with it)."""
    _OPEN.append(manager)
    return manager


def conformance() -> Conformance:
    kit = Conformance(CLAIMS)
    managed(kit.manager)
    return kit


@pytest.fixture(autouse=True)
def _close_managers() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


class ScriptedModel(GenericFakeChatModel):
    """LangChain's fake chat model; remembers what it was asked, tools need no binding."""

    asked: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.asked.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Word by word, then the tool calls (LangChain's fake streams only the text)."""
        reply = self._generate(messages).generations[0].message
        assert isinstance(reply, AIMessage)
        words = re.split(r"(\s)", str(reply.content)) if reply.content else []
        pieces = [AIMessageChunk(content=word, id=reply.id) for word in words]
        if reply.tool_calls:
            calls = [
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                for i, c in enumerate(reply.tool_calls)
            ]
            pieces.append(AIMessageChunk(content="", id=reply.id, tool_call_chunks=calls))
        for piece in pieces:
            chunk = ChatGenerationChunk(message=piece)
            if run_manager is not None:
                run_manager.on_llm_new_token(str(piece.content), chunk=chunk)
            yield chunk


def model(*replies: AIMessage | str) -> ScriptedModel:
    return ScriptedModel(messages=iter(replies), asked=[])


def call(command: str, call_id: str = "call-1") -> AIMessage:
    return AIMessage(
        "", tool_calls=[{"name": "shell", "args": {"command": command}, "id": call_id}]
    )


class Shell:
    """The agent's `shell` tool, recording what it ran."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.ran: list[dict[str, Any]] = []
        self.barrier = barrier

        @tool
        def shell(command: str, seen: int = 0) -> str:
            """Run a shell command."""
            if self.barrier is not None:
                self.barrier.wait(timeout=30)  # both runs are inside a tool call at once
            self.ran.append({"command": command, "seen": seen})
            return f"ran {command} (secret output)"

        self.tool = shell


def agent(
    middleware: InterlockMiddleware, llm: ScriptedModel, shell: Shell, *, saver: bool = True
) -> Any:
    checkpointer = InMemorySaver() if saver else None
    return create_agent(llm, [shell.tool], middleware=[middleware], checkpointer=checkpointer)


def thread(name: str) -> Any:
    return {"configurable": {"thread_id": name}}


def ask(text: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


async def run(graph: Any, inputs: Any, config: Any, path: str) -> dict[str, Any]:
    """One agent run on the sync or the async path."""
    if path == "sync":
        result: dict[str, Any] = await asyncio.to_thread(graph.invoke, inputs, config)
        return result
    return dict(await graph.ainvoke(inputs, config))


def kinds(messages: Sequence[BaseMessage]) -> list[tuple[str, Any]]:
    return [(m.type, m.content) for m in messages]


PATHS = pytest.mark.parametrize("path", ["sync", "async"])


# -- the gate, and what the model sees -------------------------------------------------


@PATHS
async def test_a_blocked_tool_never_runs_and_the_model_reads_the_reason(path: str) -> None:
    manager = managed(PluginManager())
    manager.register(no_rm)
    llm, shell = model(call("rm -rf /"), "I will not."), Shell()
    result = await run(
        agent(InterlockMiddleware(manager), llm, shell), ask("clean"), thread("t"), path
    )

    assert shell.ran == []
    refusal = result["messages"][2]
    assert isinstance(refusal, ToolMessage)
    assert refusal.status == "error" and refusal.tool_call_id == "call-1"
    expected = "tool 'shell' was blocked by plugin 'no_rm': destructive shell command"
    assert refusal.content == expected
    assert llm.asked[1][-1].content == expected  # what the model received next
    assert result["messages"][-1].content == "I will not."


@PATHS
async def test_modified_arguments_reach_the_tool_and_the_call_id_is_the_hosts(path: str) -> None:
    ids: list[str] = []

    @hook("pre_tool_call")
    def safer(payload: ToolCall, ctx: HookContext) -> Any:
        ids.append(payload.call_id)
        return Modify(payload.replace(arguments={"command": "ls -la"}))

    @hook("post_tool_call")
    def after(payload: ToolResult, ctx: HookContext) -> None:
        ids.append(payload.call_id)

    manager = managed(PluginManager())
    manager.register(safer)
    manager.register(after)
    shell = Shell()
    graph = agent(InterlockMiddleware(manager), model(call("ls", "abc"), "done"), shell)
    await run(graph, ask("list"), thread("t"), path)

    assert shell.ran == [{"command": "ls -la", "seen": 0}]
    assert ids == ["abc", "abc"]


@PATHS
async def test_a_modified_tool_result_is_what_the_model_sees(path: str) -> None:
    @hook("post_tool_call")
    def hide(payload: ToolResult, ctx: HookContext) -> Any:
        return Modify(payload.replace(output=payload.output.replace("secret", "[hidden]")))

    manager = managed(PluginManager())
    manager.register(hide)
    llm = model(call("ls"), "done")
    result = await run(
        agent(InterlockMiddleware(manager), llm, Shell()), ask("go"), thread("t"), path
    )

    assert llm.asked[1][-1].content == "ran ls ([hidden] output)"
    assert result["messages"][2].content == "ran ls ([hidden] output)"
    assert result["messages"][2].status == "success"


@PATHS
async def test_respond_answers_without_calling_the_model(path: str) -> None:
    @hook("pre_llm_call")
    def cached(payload: LLMRequest, ctx: HookContext) -> Any:
        return Respond(LLMResponse(payload.model, "from the cache"))

    manager = managed(PluginManager())
    manager.register(cached)
    llm = model()  # an empty script: calling it would fail the run
    result = await run(
        agent(InterlockMiddleware(manager), llm, Shell()), ask("hi"), thread("t"), path
    )

    assert llm.asked == []
    assert kinds(result["messages"]) == [("human", "hi"), ("ai", "from the cache")]


@PATHS
async def test_a_redaction_is_written_into_the_state_before_the_model_sees_it(path: str) -> None:
    @hook("message_received")
    def redact(payload: MessageEvent, ctx: HookContext) -> Any:
        return Modify(payload.replace(content=payload.content.replace("hunter2", "[password]")))

    manager = managed(PluginManager())
    manager.register(redact)
    llm = model("noted", "still noted")
    graph = agent(InterlockMiddleware(manager), llm, Shell())
    await run(graph, ask("my password is hunter2"), thread("t"), path)
    result = await run(graph, ask("and again"), thread("t"), path)

    assert [m.content for m in llm.asked[0]] == ["my password is [password]"]
    assert "hunter2" not in repr(llm.asked[1]) and "hunter2" not in repr(result["messages"])
    assert result["messages"][0].content == "my password is [password]"


@PATHS
async def test_a_blocked_message_never_reaches_the_model_nor_the_state(path: str) -> None:
    @hook("message_received")
    def refuse(payload: MessageEvent, ctx: HookContext) -> Any:
        return Block("no secrets here") if "hunter2" in payload.content else None

    manager = managed(PluginManager())
    manager.register(refuse)
    llm = model("fine")
    graph = agent(InterlockMiddleware(manager), llm, Shell())
    result = await run(graph, ask("hunter2"), thread("t"), path)

    assert llm.asked == []
    assert kinds(result["messages"]) == [("ai", "[blocked] no secrets here")]
    result = await run(graph, ask("hello"), thread("t"), path)
    assert "hunter2" not in repr(llm.asked[0])
    assert result["messages"][-1].content == "fine"


@PATHS
async def test_a_raising_gate_is_a_visible_block_and_the_run_does_not_raise(path: str) -> None:
    @hook("pre_tool_call")
    def broken(payload: ToolCall, ctx: HookContext) -> Any:
        raise RuntimeError("policy store unreachable")

    manager = managed(PluginManager())
    manager.register(broken)
    shell = Shell()
    llm = model(call("ls"), "ok")
    result = await run(
        agent(InterlockMiddleware(manager), llm, shell), ask("go"), thread("t"), path
    )

    assert shell.ran == []
    refusal = result["messages"][2]
    assert refusal.status == "error" and "broken" in refusal.content
    assert result["messages"][-1].content == "ok"


@PATHS
async def test_a_model_answer_is_blocked_or_rewritten_at_post_llm_call(path: str) -> None:
    @hook("post_llm_call")
    def judge(payload: LLMResponse, ctx: HookContext) -> Any:
        if "forbidden" in payload.content:
            return Block("the answer quoted a forbidden text")
        return Modify(payload.replace(content=payload.content.upper()))

    manager = managed(PluginManager())
    manager.register(judge)
    graph = agent(InterlockMiddleware(manager), model("quiet", "forbidden words"), Shell())
    first = await run(graph, ask("a"), thread("t"), path)
    second = await run(graph, ask("b"), thread("t"), path)

    assert first["messages"][-1].content == "QUIET"
    assert second["messages"][-1].content == "[blocked] the answer quoted a forbidden text"


@PATHS
async def test_message_sending_rewrites_the_delivered_answer(path: str) -> None:
    @hook("message_sending")
    def sign(payload: MessageEvent, ctx: HookContext) -> Any:
        return Modify(payload.replace(content=payload.content + " -- checked"))

    manager = managed(PluginManager())
    manager.register(sign)
    result = await run(
        agent(InterlockMiddleware(manager), model("hello"), Shell()), ask("hi"), thread("t"), path
    )
    assert kinds(result["messages"]) == [("human", "hi"), ("ai", "hello -- checked")]


@PATHS
async def test_a_model_modify_of_messages_changes_only_that_request(path: str) -> None:
    @hook("pre_llm_call")
    def shorten(payload: LLMRequest, ctx: HookContext) -> Any:
        messages = tuple(m.replace(content=m.content[:4]) for m in payload.messages)
        return Modify(payload.replace(messages=messages))

    manager = managed(PluginManager())
    manager.register(shorten)
    llm = model("ok")
    result = await run(
        agent(InterlockMiddleware(manager), llm, Shell()), ask("abcdefgh"), thread("t"), path
    )
    assert [m.content for m in llm.asked[0]] == ["abcd"]
    assert llm.asked[0][0].id == result["messages"][0].id  # the host's message, edited
    assert result["messages"][0].content == "abcdefgh"


@PATHS
async def test_system_items_go_into_the_state_and_reach_the_model(path: str) -> None:
    @hook("pre_tool_call")
    def remind(payload: ToolCall, ctx: HookContext) -> None:
        assert ctx.system_items is not None
        ctx.system_items.append("reminder", "run the tests")

    manager = managed(PluginManager())
    manager.register(remind, capabilities=["system_items"])
    llm = model(call("ls"), "done")
    result = await run(
        agent(InterlockMiddleware(manager), llm, Shell()), ask("go"), thread("t"), path
    )

    items = [m for m in result["messages"] if isinstance(m, SystemMessage)]
    assert [m.content for m in items] == ["reminder: run the tests"]
    assert llm.asked[1][-1].content == "reminder: run the tests"


@PATHS
async def test_items_appended_at_pre_llm_call_reach_that_call_and_the_state(path: str) -> None:
    @hook("pre_llm_call")
    def remind(payload: LLMRequest, ctx: HookContext) -> None:
        if len(payload.messages) == 1 and ctx.system_items is not None:
            ctx.system_items.append("note", "be brief")

    manager = managed(PluginManager())
    manager.register(remind, capabilities=["system_items"])
    llm = model("ok")
    result = await run(
        agent(InterlockMiddleware(manager), llm, Shell()), ask("hi"), thread("t"), path
    )

    assert kinds(llm.asked[0]) == [("human", "hi"), ("system", "note: be brief")]
    assert ("system", "note: be brief") in kinds(result["messages"])


@PATHS
async def test_ask_goes_to_the_approver(path: str) -> None:
    @hook("pre_tool_call")
    def confirm(payload: ToolCall, ctx: HookContext) -> Any:
        return Ask(f"run {payload.arguments['command']}?")

    manager = managed(PluginManager())
    manager.register(confirm)
    questions: list[str] = []

    def approver(call: ToolCall, question: str) -> bool:
        questions.append(question)
        return call.arguments["command"] == "ls"

    shell = Shell()
    middleware = InterlockMiddleware(manager, approver=approver)
    llm = model(call("ls", "a"), call("rm x", "b"), "done")
    result = await run(agent(middleware, llm, shell), ask("go"), thread("t"), path)

    assert [r["command"] for r in shell.ran] == ["ls"]
    assert questions == ["run ls?", "run rm x?"]
    assert result["messages"][4].content == "tool 'shell' was not approved: run rm x?"
    assert result["messages"][4].status == "error"


async def test_async_plugin_handlers_run_on_the_sync_path() -> None:
    @hook("pre_tool_call")
    async def tag(payload: ToolCall, ctx: HookContext) -> Any:
        await asyncio.sleep(0)
        return Modify(payload.replace(arguments={**payload.arguments, "seen": 7}))

    manager = managed(PluginManager())
    manager.register(tag)
    shell = Shell()
    graph = agent(InterlockMiddleware(manager), model(call("ls"), "done"), shell)
    await asyncio.to_thread(graph.invoke, ask("go"), thread("t"))
    assert shell.ran == [{"command": "ls", "seen": 7}]


# -- sessions ---------------------------------------------------------------------------


class Counter(interlock.Plugin):
    """Counts tool calls in `ctx.state`, so per-session state shows in the arguments."""

    name = "counter"

    def on_pre_tool_call(self, payload: ToolCall, ctx: HookContext) -> Any:
        seen = ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        return Modify(payload.replace(arguments={**payload.arguments, "seen": seen}))


def two_calls() -> ScriptedModel:
    return model(call("a", "1"), call("b", "2"), "done")


def test_two_threads_at_once_keep_their_session_state_apart() -> None:
    manager = managed(PluginManager())
    manager.register(Counter())
    middleware = InterlockMiddleware(manager)
    barrier = threading.Barrier(2)
    shells = [Shell(barrier), Shell(barrier)]
    graphs = [agent(middleware, two_calls(), shell) for shell in shells]
    errors: list[BaseException] = []

    def go(index: int) -> None:
        try:
            graphs[index].invoke(ask("go"), thread(f"thread-{index}"))
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    workers = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert [[r["seen"] for r in shell.ran] for shell in shells] == [[1, 2], [1, 2]]


async def test_two_async_runs_at_once_keep_their_session_state_apart() -> None:
    manager = managed(PluginManager())
    manager.register(Counter())
    middleware = InterlockMiddleware(manager)
    shells = [Shell(), Shell()]
    graphs = [agent(middleware, two_calls(), shell) for shell in shells]
    await asyncio.gather(*(g.ainvoke(ask("go"), thread(f"a-{i}")) for i, g in enumerate(graphs)))
    assert [[r["seen"] for r in shell.ran] for shell in shells] == [[1, 2], [1, 2]]


@PATHS
async def test_a_thread_stays_open_across_invocations_until_closed(path: str) -> None:
    kit = conformance()
    kit.manager.register(Counter())
    middleware = InterlockMiddleware(kit.manager)
    shell = Shell()
    graph = agent(middleware, model(call("a"), "one", call("b"), "two"), shell)
    await run(graph, ask("first"), thread("t"), path)
    await run(graph, ask("second"), thread("t"), path)

    assert [r["seen"] for r in shell.ran] == [1, 2]  # one session's state
    names = kit.recorder.names()
    assert names.count("session_start") == 1 and "session_end" not in names
    if path == "sync":
        middleware.close()
    else:
        await middleware.aclose()
    assert kit.recorder.names().count("session_end") == 1


@PATHS
async def test_a_run_without_a_thread_id_is_a_session_of_its_own(path: str) -> None:
    kit = conformance()
    kit.manager.register(Counter())
    middleware = InterlockMiddleware(kit.manager)
    shells = [Shell(), Shell()]
    for shell in shells:
        graph = agent(middleware, model(call("a"), "one"), shell, saver=False)
        await run(graph, ask("go"), None, path)

    assert [[r["seen"] for r in s.ran] for s in shells] == [[1], [1]]
    names = kit.recorder.names()
    assert names.count("session_start") == 2 and names.count("session_end") == 2
    starts = [p.session_id for n, p in kit.recorder.events if n == "session_start"]
    assert len(set(starts)) == 2
    assert names.count("message_received") == 2


# -- content blocks, stored input, and the sessions of runs without a thread -------------


def blocks(*extra: dict[str, Any]) -> dict[str, Any]:
    """A user message of content blocks: a text block, then `extra`."""
    return {"messages": [HumanMessage(content=[{"type": "text", "text": "hi "}, *extra])]}


@hook("message_received")
def redact(payload: MessageEvent, ctx: HookContext) -> Any:
    """Replaces the password `hunter2`."""
    return Modify(payload.replace(content=payload.content.replace("hunter2", "[password]")))


@PATHS
async def test_a_text_plain_block_is_judged_and_its_redaction_reaches_the_model(
    path: str,
) -> None:
    seen: list[str] = []

    @hook("pre_llm_call")
    def look(payload: LLMRequest, ctx: HookContext) -> None:
        seen.extend(m.content for m in payload.messages)

    manager = managed(PluginManager())
    manager.register(redact)
    manager.register(look)
    llm = model("noted")
    image = {"type": "image", "url": "https://example.com/a.png"}
    plain = {"type": "text-plain", "text": "pw hunter2", "mime_type": "text/plain"}
    result = await run(
        agent(InterlockMiddleware(manager), llm, Shell()), blocks(plain, image), thread("t"), path
    )

    assert "hunter2" not in repr(llm.asked) and "hunter2" not in repr(result["messages"])
    assert seen == ["hi pw [password]"]  # pre_llm_call saw the text-plain block's text
    assert llm.asked[0][0].content == [{"type": "text", "text": "hi pw [password]"}, image]


@PATHS
async def test_a_text_plain_block_is_seen_at_pre_llm_call_without_message_received(
    path: str,
) -> None:
    @hook("pre_llm_call")
    def refuse(payload: LLMRequest, ctx: HookContext) -> Any:
        return Block("no passwords") if "hunter2" in repr(payload.messages) else None

    manager = managed(PluginManager())
    manager.register(refuse)
    llm = model("noted")
    plain = {"type": "text-plain", "text": "pw hunter2", "mime_type": "text/plain"}
    result = await run(
        agent(InterlockMiddleware(manager), llm, Shell()), blocks(plain), thread("t"), path
    )

    assert llm.asked == []
    assert result["messages"][-1].content == "[blocked] no passwords"


@PATHS
@pytest.mark.parametrize("hook_name", ["message_received", "pre_llm_call"])
async def test_a_block_whose_text_is_not_inline_is_refused_unjudged(
    path: str, hook_name: str
) -> None:
    manager = managed(PluginManager())
    manager.register(hook(hook_name)(lambda payload, ctx: None))
    llm = model("noted")
    hidden = {"type": "text-plain", "data": "aHVudGVyMg==", "mime_type": "text/plain"}
    result = await run(
        agent(InterlockMiddleware(manager), llm, Shell()), blocks(hidden), thread("t"), path
    )

    assert llm.asked == []
    answer = result["messages"][-1].content
    assert answer.startswith("[blocked] interlock cannot judge the 'text-plain' content block")
    assert hook_name in answer and '{"type": "text"}' in answer


@PATHS
async def test_a_redaction_warns_that_langgraph_checkpointed_the_original(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    manager = managed(PluginManager())
    manager.register(redact)
    graph = agent(InterlockMiddleware(manager), model("noted", "again"), Shell())
    with caplog.at_level("WARNING", logger="interlock.adapters.langchain"):
        await run(graph, ask("pw hunter2"), thread("t"), path)
    stored = [r.getMessage() for r in caplog.records if "checkpoint" in r.getMessage()]
    assert len(stored) == 1 and "redact" in stored[0] and 'durability="exit"' in stored[0]
    history = [h.values for h in graph.get_state_history(thread("t"))]
    assert any("hunter2" in repr(values) for values in history)  # the gap, as documented

    caplog.clear()
    with caplog.at_level("WARNING", logger="interlock.adapters.langchain"):
        if path == "sync":
            await asyncio.to_thread(graph.invoke, ask("pw hunter2"), thread("u"), durability="exit")
        else:
            await graph.ainvoke(ask("pw hunter2"), thread("u"), durability="exit")
    assert not [r for r in caplog.records if "checkpoint" in r.getMessage()]
    history = [h.values for h in graph.get_state_history(thread("u"))]
    assert history and not any("hunter2" in repr(values) for values in history)


class Failing(ScriptedModel):
    """A model whose provider is down."""

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("provider down")


@PATHS
async def test_fifty_failing_runs_without_a_thread_leave_no_session_open(path: str) -> None:
    kit = conformance()
    middleware = InterlockMiddleware(kit.manager)
    graph = agent(middleware, Failing(messages=iter(()), asked=[]), Shell(), saver=False)
    for _ in range(50):
        with pytest.raises(RuntimeError, match="provider down"):
            await run(graph, ask("hi"), None, path)

    assert middleware.bridge._sessions == {}
    ends = [p for n, p in kit.recorder.events if n == "session_end"]
    assert len(ends) == 50 and {p.reason for p in ends} == {"error"}
    assert kit.recorder.names().count("session_start") == 50


@PATHS
async def test_a_failing_tool_ends_the_session_of_a_run_without_a_thread(path: str) -> None:
    @tool
    def shell(command: str) -> str:
        """Run a shell command."""
        raise OSError("disk gone")

    kit = conformance()
    middleware = InterlockMiddleware(kit.manager)
    llm = model(call("ls"), "unreached")
    graph = create_agent(llm, [shell], middleware=[middleware])
    with pytest.raises(OSError, match="disk gone"):
        await run(graph, ask("go"), None, path)

    assert middleware.bridge._sessions == {}
    ends = [p.reason for n, p in kit.recorder.events if n == "session_end"]
    assert ends == ["error"]


def test_abandoned_streams_keep_at_most_max_run_sessions_open() -> None:
    kit = conformance()
    middleware = InterlockMiddleware(kit.manager, max_run_sessions=3)
    for _ in range(5):
        graph = agent(middleware, model(call("ls"), "done"), Shell(), saver=False)
        stream = graph.stream(ask("go"), stream_mode="updates")
        next(stream)  # the consumer stops reading: after_agent never runs
        stream.close()

    assert len(middleware.bridge._sessions) == 3
    ends = [p.reason for n, p in kit.recorder.events if n == "session_end"]
    assert ends == ["abandoned", "abandoned"]
    middleware.close()
    assert middleware.bridge._sessions == {}


def test_max_run_sessions_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_run_sessions must be at least 1, not 0"):
        InterlockMiddleware(managed(PluginManager()), max_run_sessions=0)


# -- conformance --------------------------------------------------------------------------


@PATHS
async def test_conformance(path: str) -> None:
    kit = conformance()
    graph = agent(InterlockMiddleware(kit.manager), model(call("ls"), "done"), Shell())
    await run(graph, ask("list the files"), thread("t"), path)
    kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1))
    order = [n for n in kit.recorder.names() if n not in ("session_start",)]
    assert order == [
        "message_received",
        "pre_llm_call",
        "post_llm_call",
        "pre_tool_call",
        "post_tool_call",
        "pre_llm_call",
        "post_llm_call",
        "message_sending",
        "turn_end",
    ]


@PATHS
async def test_conformance_streaming(path: str) -> None:
    kit = conformance()
    middleware = InterlockMiddleware(kit.manager)
    replies = (AIMessage("let me look", tool_calls=call("ls").tool_calls), "all files listed")
    graph = agent(middleware, model(*replies), Shell())
    config = {**thread("t"), "callbacks": [middleware.callback_handler()]}
    streamed: list[AIMessageChunk] = []
    if path == "sync":

        def stream() -> None:
            for token, _meta in graph.stream(ask("list"), config, stream_mode="messages"):
                if isinstance(token, AIMessageChunk):
                    streamed.append(token)

        await asyncio.to_thread(stream)
    else:
        async for token, _meta in graph.astream(ask("list"), config, stream_mode="messages"):
            if isinstance(token, AIMessageChunk):
                streamed.append(token)

    chunks = [p for n, p in kit.recorder.events if n == "llm_stream_chunk"]
    assert "".join(c.delta for c in chunks) == "let me lookall files listed"
    assert "".join(str(t.content) for t in streamed) == "let me lookall files listed"
    # one stream per model call: indexes count from 0, its last chunk marked done
    assert sum(c.done for c in chunks) == 2 and chunks[-1].done
    for before, chunk in zip([None, *chunks], chunks, strict=False):
        assert chunk.index == (0 if before is None or before.done else before.index + 1)
    kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1, chunks=len(streamed)))


# -- built-in and out-of-process plugins, unchanged ---------------------------------------


@PATHS
async def test_builtin_tool_guard_and_content_policy(path: str) -> None:
    manager = managed(PluginManager())
    manager.register(ToolGuard(ToolGuardConfig(destructive="deny")))
    manager.register(ContentPolicy())
    shell = Shell()
    llm = model(call("rm -rf /", "x"), call("ls", "y"), "done")
    graph = agent(InterlockMiddleware(manager), llm, shell)
    result = await run(graph, ask("mail ada@example.com"), thread("t"), path)

    assert [r["command"] for r in shell.ran] == ["ls"]
    assert llm.asked[0][0].content == "mail [email]"
    refusal = result["messages"][2]
    assert refusal.status == "error" and "tool-guard" in refusal.content
    assert "destructive" in refusal.content


@pytest.fixture
def served_guard() -> Iterator[StdioTransport]:
    argv = serve_command("Guard", "--stdio")
    transport = StdioTransport(argv, name="guard", env=ENV, cwd=ROOT, backoff=(0, 0))
    yield transport
    transport.close()


@PATHS
async def test_an_out_of_process_plugin(path: str, served_guard: StdioTransport) -> None:
    manager = PluginManager()
    manager.register(connect(served_guard, name="guard"))
    shell = Shell()
    llm = model(call("rm -rf /", "x"), call("ls", "y"), "done")
    result = await run(
        agent(InterlockMiddleware(manager), llm, shell), ask("go"), thread("t"), path
    )

    assert shell.ran == [{"command": "ls", "seen": 1}]  # its Modify reached the tool
    assert result["messages"][2].content.endswith("rm -rf is not allowed")
    assert result["messages"][4].content == "ran ls ([hidden] output)"  # post_tool_call
    await manager.aclose()


# -- packaging, the example -----------------------------------------------------------------


def test_a_missing_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain.agents.middleware", None)
    monkeypatch.delitem(sys.modules, "interlock.adapters.langchain")
    with pytest.raises(ImportError, match=r"pip install -e '<interlock checkout>\[langchain\]'"):
        importlib.import_module("interlock.adapters.langchain")


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).parents[2] / "examples" / "adapters" / "langchain_example.py"
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    lines = out.splitlines()
    section = (ROOT / "docs" / "adapters.md").read_text().split("## LangChain / LangGraph")[1]
    assert out == section.split("```text\n")[1].split("```")[0]  # the docs show real output
    assert lines[0] == "human: clean up my disk, then mail [email]"
    assert lines[2].startswith("tool (error): tool 'shell' was blocked by plugin 'tool-guard'")
    assert lines[3] == "ai: I was not allowed to clean up; nothing was deleted."
