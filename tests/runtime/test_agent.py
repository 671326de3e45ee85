"""The agent loop honours every hook semantic the design lists."""

from __future__ import annotations

from typing import Any

import pytest

from interlock import (
    Ask,
    Block,
    LLMRequest,
    LLMResponse,
    Modify,
    PluginManager,
    Respond,
    ToolCall,
    hook,
)
from interlock.runtime import Agent, ScriptedBackend, Step, TraceEvent

from .helpers import Recorder

RAN: list[str] = []


def shell(command: str) -> str:
    """Run a command (recorded, not run)."""
    RAN.append(command)
    return f"ran {command}"


def tool_step(command: str) -> Step:
    return Step(tool_calls=(("shell", {"command": command}),))


@pytest.fixture(autouse=True)
def _clear_ran() -> None:
    RAN.clear()


def agent(script: list[Step | str], *plugins: Any, **options: Any) -> tuple[Agent, Recorder]:
    manager = PluginManager()
    recorder = Recorder()
    manager.register(recorder)
    for plugin in plugins:
        manager.register(plugin)
    return Agent(ScriptedBackend(script), tools=[shell], manager=manager, **options), recorder


def tool_messages(request: LLMRequest) -> list[str]:
    return [m.content for m in request.messages if m.role == "tool"]


async def test_a_blocked_tool_is_not_run_and_the_model_gets_the_reason() -> None:
    @hook("pre_tool_call")
    def guard(payload: ToolCall, ctx: Any) -> Block | None:
        return Block("no deleting") if "rm" in payload.arguments["command"] else None

    @hook("pre_tool_call", name="silent")
    def silent(payload: ToolCall, ctx: Any) -> Block | None:
        return Block() if payload.arguments["command"] == "reboot" else None

    a, recorder = agent([tool_step("rm -rf /"), tool_step("reboot"), tool_step("ls"), "done"],
                        guard, silent)  # fmt: skip
    result = await a.run("go")
    assert RAN == ["ls"]
    assert result.reply == "done" and result.tool_calls == 3
    final_request = [p for n, p in recorder.events if n == "pre_llm_call"][-1]
    assert tool_messages(final_request) == [
        "tool 'shell' was blocked by plugin 'guard': no deleting",
        "tool 'shell' was blocked by plugin 'silent': blocked by plugin 'silent' at hook "
        "'pre_tool_call'",
        "ran ls",
    ]


async def test_tool_arguments_reach_plugins_as_a_mapping_and_can_be_rewritten() -> None:
    @hook("pre_tool_call")
    def dry_run(payload: ToolCall, ctx: Any) -> Modify[ToolCall]:
        return Modify(payload.replace(arguments={"command": payload.arguments["command"] + " -n"}))

    script = [Step(tool_calls=(("shell", None),)), tool_step("make"), "ok"]  # type: ignore[arg-type]
    a, recorder = agent(script, dry_run)
    await a.run("go")
    gates = [p for n, p in recorder.events if n == "pre_tool_call"]
    assert gates[0].arguments == {}  # never None
    assert RAN == ["make -n"]


async def test_respond_answers_instead_of_the_model() -> None:
    class Model(ScriptedBackend):
        calls = 0

        async def complete(self, request: LLMRequest) -> LLMResponse:
            Model.calls += 1
            return await super().complete(request)

    @hook("pre_llm_call")
    def cache(payload: LLMRequest, ctx: Any) -> Respond[LLMResponse]:
        return Respond(LLMResponse("cache", "cached answer"))

    manager = PluginManager()
    manager.register(cache)
    recorder = Recorder()
    manager.register(recorder)
    result = await Agent(Model(["model answer"]), manager=manager).run("hi")
    assert result.reply == "cached answer"
    assert Model.calls == 0
    assert "post_llm_call" in recorder.names()  # the response flows on like any other


@pytest.mark.parametrize(
    ("approver", "ran", "output"),
    [
        (None, [], "tool 'shell' needs approval (run ls?) and no one can approve"),
        (lambda call, question: False, [], "tool 'shell' was not approved: run ls?"),
        (lambda call, question: True, ["ls"], "ran ls"),
    ],
)
async def test_ask_goes_to_the_approver(approver: Any, ran: list[str], output: str) -> None:
    @hook("pre_tool_call")
    def ask(payload: ToolCall, ctx: Any) -> Ask:
        return Ask(f"run {payload.arguments['command']}?")

    a, recorder = agent([tool_step("ls"), "done"], ask, approver=approver)
    await a.run("go")
    assert ran == RAN
    assert tool_messages([p for n, p in recorder.events if n == "pre_llm_call"][-1]) == [output]


async def test_an_async_approver_is_awaited() -> None:
    @hook("pre_tool_call")
    def ask(payload: ToolCall, ctx: Any) -> Ask:
        return Ask("ok?")

    async def approve(call: ToolCall, question: str) -> bool:
        return call.tool_name == "shell"

    a, _ = agent([tool_step("ls"), "done"], ask, approver=approve)
    await a.run("go")
    assert RAN == ["ls"]


async def test_a_blocked_reply_is_not_delivered_and_the_caller_learns_why() -> None:
    @hook("message_sending")
    def no_secrets(payload: Any, ctx: Any) -> Block | None:
        return Block("contains a secret") if "sk-" in payload.content else None

    a, _ = agent(["the key is sk-123"], no_secrets)
    async with a.session("s") as session:
        result = await session.send("key?")
        assert (result.delivered, result.reply, result.reason) == (False, "", "contains a secret")
        kinds = [r.kind for r in session.records()]
    assert "undelivered" in kinds and "delivered" not in kinds


async def test_a_blocked_inbound_message_never_reaches_the_model_or_the_log() -> None:
    @hook("message_received")
    def refuse(payload: Any, ctx: Any) -> Block:
        return Block("no passwords here")

    a, recorder = agent(["should not be said"], refuse)
    async with a.session("s") as session:
        result = await session.send("my password is hunter2")
        records = session.records()
    assert result.stopped == "blocked" and result.reply == "[blocked] no passwords here"
    assert "pre_llm_call" not in recorder.names()
    assert "hunter2" not in str([r.data for r in records])


async def test_model_failures_are_reported_not_raised() -> None:
    class Down(ScriptedBackend):
        async def complete(self, request: LLMRequest) -> LLMResponse:
            raise ConnectionError("model server down")

    manager = PluginManager()
    recorder = Recorder()
    manager.register(recorder)
    result = await Agent(Down(), manager=manager).run("hi")
    assert result.stopped == "failed"
    assert "model call failed: ConnectionError: model server down" in (result.reason or "")
    [(_, error)] = [e for e in recorder.events if e[0] == "error"]
    assert (error.error_type, error.stage) == ("ConnectionError", "llm_call")
    assert recorder.names()[-2:] == ["turn_end", "session_end"]


async def test_tool_failures_become_error_results_and_error_events() -> None:
    def flaky(path: str) -> str:
        raise OSError("disk gone")

    manager = PluginManager()
    recorder = Recorder()
    manager.register(recorder)
    script = [Step(tool_calls=(("flaky", {"path": "x"}),)), "sorry"]
    result = await Agent(ScriptedBackend(script), tools=[flaky], manager=manager).run("go")
    assert result.reply == "sorry"
    errors = [p for n, p in recorder.events if n == "error"]
    assert [e.stage for e in errors] == ["tool_call"]
    results = [p for n, p in recorder.events if n == "post_tool_call"]
    assert results[0].is_error and "OSError: disk gone" in results[0].output


async def test_plugin_failures_fire_the_error_hook() -> None:
    @hook("turn_end")
    def broken(payload: Any, ctx: Any) -> None:
        raise ValueError("plugin bug")

    a, recorder = agent(["hi"], broken)
    await a.run("x")
    [error] = [p for n, p in recorder.events if n == "error"]
    assert (error.plugin, error.stage, error.error_type) == ("broken", "turn_end", "exception")


async def test_max_iterations_ends_the_turn() -> None:
    a, recorder = agent([tool_step("a"), tool_step("b"), tool_step("c")], max_iterations=2)
    result = await a.run("loop")
    assert result.stopped == "iterations"
    assert RAN == ["a", "b"]
    assert [p.stage for n, p in recorder.events if n == "error"] == ["turn"]


async def test_streaming_fires_chunks_and_both_llm_hooks() -> None:
    a, recorder = agent(["one two three"], stream=True)
    result = await a.run("go")
    names = recorder.names()
    chunks = [p.delta for n, p in recorder.events if n == "llm_stream_chunk"]
    assert "".join(chunks) == "one two three" == result.reply
    first, last = (
        names.index("llm_stream_chunk"),
        len(names) - 1 - names[::-1].index("llm_stream_chunk"),
    )
    assert names.index("pre_llm_call") < first and last < names.index("post_llm_call")


async def test_non_streaming_fires_no_chunks() -> None:
    a, recorder = agent(["one two three"])
    await a.run("go")
    assert "llm_stream_chunk" not in recorder.names()
    assert {"pre_llm_call", "post_llm_call"} <= set(recorder.names())


async def test_a_reopened_session_continues_from_its_log() -> None:
    a, recorder = agent(["first answer", "second answer"])
    async with a.session("s") as session:
        await session.send("one")
    async with a.session("s") as session:
        result = await session.send("two")
    assert result.turn == 2
    request = [p for n, p in recorder.events if n == "pre_llm_call"][-1]
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "one"),
        ("assistant", "first answer"),
        ("user", "two"),
    ]


async def test_trace_events_report_each_step() -> None:
    events: list[TraceEvent] = []
    a, _ = agent([tool_step("ls"), "done"], on_event=events.append)
    await a.run("go")
    kinds = [(e.kind, e.name) for e in events if e.kind != "hook"]
    assert kinds == [
        ("model", "scripted"), ("model", "scripted"), ("tool", "shell"), ("tool", "shell"),
        ("model", "scripted"), ("model", "scripted"), ("reply", "delivered"),
    ]  # fmt: skip


def test_agent_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_iterations must be at least 1"):
        Agent(ScriptedBackend(), max_iterations=0)
