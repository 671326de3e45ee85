"""The OpenAI Agents SDK adapter, offline with the SDK's `ScriptedModel`."""

from __future__ import annotations

import asyncio
import contextvars
import json
import subprocess
import sys
import threading
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import (
    Agent,
    RunConfig,
    Runner,
    ToolGuardrailFunctionOutput,
    WebSearchTool,
    function_tool,
    set_tracing_disabled,
    tool_input_guardrail,
)
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from openai.types.responses import ResponseTextDeltaEvent

import interlock
from interlock import Block, LLMResponse, Modify, PluginManager, Respond, hook
from interlock.adapters.openai_agents import (
    CLAIMS,
    Interlock,
    UngovernedToolError,
    UnmappedRunError,
)
from interlock.external import StdioTransport, connect
from interlock.plugins.content_policy import ContentPolicy
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig
from interlock.testing import Conformance, Expected

from .helpers import ROOT, SERVED_GUARD

set_tracing_disabled(True)


def _shell_agent(model: ScriptedModel, ran: list[str]) -> Agent[Any]:
    @function_tool
    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(command)
        return f"ran {command}; the secret is 42"

    return Agent(name="ops", instructions="You run commands.", model=model, tools=[shell])


def _tool_then_answer(command: str, call_id: str = "call-1") -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("shell", {"command": command}, call_id=call_id)],
            [assistant_message("done")],
        ]
    )


def _tool_outputs(model: ScriptedModel) -> list[str]:
    last = model.last_call
    assert last is not None
    return [str(i["output"]) for i in last.input if i.get("type") == "function_call_output"]


def _user_texts(call: Any) -> list[str]:
    return [str(i["content"]) for i in call.input if i.get("role") == "user"]


async def _run(ix: Interlock, agent: Agent[Any], text: str, **config: Any) -> Any:
    return await Runner.run(
        ix.agent(agent), text, hooks=ix.hooks, run_config=ix.run_config(RunConfig(**config))
    )


@hook("pre_tool_call")
def no_rm(call: interlock.ToolCall, ctx: interlock.HookContext) -> Any:
    if "rm -rf" in str(call.arguments.get("command", "")):
        return Block("rm -rf is not allowed here")
    return None


async def test_block_stops_the_tool_and_the_model_reads_the_reason() -> None:
    manager = PluginManager()
    manager.register(no_rm)
    model, ran = _tool_then_answer("rm -rf /"), []
    result = await _run(Interlock(manager), _shell_agent(model, ran), "clean up")
    assert ran == []
    assert _tool_outputs(model) == ["rm -rf is not allowed here"]
    assert result.final_output == "done"


async def test_modified_arguments_reach_the_tool() -> None:
    @hook("pre_tool_call")
    def safer(call: interlock.ToolCall, ctx: interlock.HookContext) -> Any:
        return Modify(call.replace(arguments={"command": "ls -la"}))

    manager = PluginManager()
    manager.register(safer)
    model, ran = _tool_then_answer("ls"), []
    await _run(Interlock(manager), _shell_agent(model, ran), "list")
    assert ran == ["ls -la"]


async def test_post_tool_call_modify_is_what_the_model_sees() -> None:
    @hook("post_tool_call")
    def hide(result: interlock.ToolResult, ctx: interlock.HookContext) -> Any:
        return Modify(result.replace(output=result.output.replace("42", "[hidden]")))

    manager = PluginManager()
    manager.register(hide)
    model, ran = _tool_then_answer("ls"), []
    await _run(Interlock(manager), _shell_agent(model, ran), "list")
    assert ran == ["ls"]
    assert _tool_outputs(model) == ["ran ls; the secret is [hidden]"]


async def test_respond_answers_without_calling_the_model() -> None:
    @hook("pre_llm_call")
    def canned(request: interlock.LLMRequest, ctx: interlock.HookContext) -> Any:
        return Respond(LLMResponse(request.model, "from the cache"))

    manager = PluginManager()
    manager.register(canned)
    model = ScriptedModel([])  # any call to it raises
    result = await _run(Interlock(manager), _shell_agent(model, []), "hello")
    assert result.final_output == "from the cache"
    assert model.calls == ()


async def test_message_received_redacts_on_every_model_call_and_fires_once() -> None:
    seen: list[str] = []

    @hook("message_received")
    def redact(message: interlock.MessageEvent, ctx: interlock.HookContext) -> Any:
        seen.append(message.content)
        return Modify(message.replace(content=message.content.replace("hunter2", "[pw]")))

    manager = PluginManager()
    manager.register(redact)
    model, ran = _tool_then_answer("ls"), []
    await _run(Interlock(manager), _shell_agent(model, ran), "my password is hunter2")
    assert seen == ["my password is hunter2"]
    assert [_user_texts(c) for c in model.calls] == [["my password is [pw]"]] * 2


async def test_a_blocked_message_never_reaches_the_model() -> None:
    @hook("message_received")
    def refuse(message: interlock.MessageEvent, ctx: interlock.HookContext) -> Any:
        return Block("no such requests")

    manager = PluginManager()
    manager.register(refuse)
    model = ScriptedModel([])
    result = await _run(Interlock(manager), _shell_agent(model, []), "do bad things")
    assert result.final_output == "[blocked] no such requests"
    assert model.calls == ()


async def test_a_raising_gate_fails_closed_and_the_run_goes_on() -> None:
    @hook("pre_tool_call")
    def broken(call: interlock.ToolCall, ctx: interlock.HookContext) -> Any:
        raise RuntimeError("policy store down")

    manager = PluginManager()
    manager.register(broken)
    model, ran = _tool_then_answer("ls"), []
    result = await _run(Interlock(manager), _shell_agent(model, ran), "list")
    assert ran == []
    (output,) = _tool_outputs(model)
    assert "broken" in output
    assert result.final_output == "done"


class Counter(interlock.Plugin):
    """Numbers each tool call within its session."""

    name = "counter"

    def on_pre_tool_call(self, call: interlock.ToolCall, ctx: interlock.HookContext) -> Any:
        n = ctx.state["n"] = ctx.state.get("n", 0) + 1
        return Modify(call.replace(arguments={"command": f"{call.arguments['command']} #{n}"}))


async def test_concurrent_runs_keep_session_state_apart() -> None:
    manager = PluginManager()
    manager.register(Counter())
    ix = Interlock(manager)
    both = threading.Barrier(2)

    def two_calls(tag: str) -> ScriptedModel:
        def first(call: Any) -> Any:
            return [function_call("shell", {"command": tag}, call_id="c1")]

        async def second(call: Any) -> Any:
            await asyncio.to_thread(both.wait, 5)  # both runs are mid-conversation
            return [function_call("shell", {"command": tag}, call_id="c2")]

        return ScriptedModel(
            [ModelStep.respond(first), ModelStep.respond(second), [assistant_message("ok")]]
        )

    ran_a: list[str] = []
    ran_b: list[str] = []
    await asyncio.gather(
        _run(ix, _shell_agent(two_calls("a"), ran_a), "go", group_id="thread-a"),
        _run(ix, _shell_agent(two_calls("b"), ran_b), "go", group_id="thread-b"),
    )
    assert ran_a == ["a #1", "a #2"]
    assert ran_b == ["b #1", "b #2"]
    await ix.aclose()


def test_run_sync_from_two_threads() -> None:
    manager = PluginManager()
    manager.register(Counter())

    @hook("post_tool_call")
    async def note(result: interlock.ToolResult, ctx: interlock.HookContext) -> Any:
        return Modify(result.replace(output=result.output + " (checked)"))

    manager.register(note)
    ix = Interlock(manager)
    models = {tag: _tool_then_answer(tag) for tag in ("a", "b")}
    ran: dict[str, list[str]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def work(tag: str) -> None:
        try:
            agent = ix.agent(_shell_agent(models[tag], ran[tag]))
            _run_sync(agent, "go", ix, ix.run_config(RunConfig()))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(tag,)) for tag in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert ran == {"a": ["a #1"], "b": ["b #1"]}
    assert _tool_outputs(models["a"]) == ["ran a #1; the secret is 42 (checked)"]


def _run_sync(agent: Agent[Any], text: str, ix: Interlock, config: RunConfig) -> Any:
    """`Runner.run_sync` on this thread, closing the event loop the SDK leaves open here."""
    try:
        return Runner.run_sync(agent, text, hooks=ix.hooks, run_config=config)
    finally:
        asyncio.get_event_loop_policy().get_event_loop().close()
        asyncio.set_event_loop(None)


def _in_thread(work: Any) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as error:  # reported below
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert errors == []


def _conformance_run(kit: Conformance, path: str) -> int | None:
    ix = Interlock(kit.manager)
    model, ran = _tool_then_answer("ls"), []
    agent = ix.agent(_shell_agent(model, ran))
    config = ix.run_config(RunConfig())
    if path == "sync":
        _in_thread(lambda: _run_sync(agent, "list the files", ix, config))
        return None

    async def main() -> int | None:
        if path == "async":
            await Runner.run(agent, "list the files", hooks=ix.hooks, run_config=config)
            return None
        streamed = Runner.run_streamed(agent, "list the files", hooks=ix.hooks, run_config=config)
        deltas = 0
        async for event in streamed.stream_events():
            if event.type == "raw_response_event" and isinstance(
                event.data, ResponseTextDeltaEvent
            ):
                deltas += 1
        return deltas

    return asyncio.run(main())


@pytest.mark.parametrize("path", ["sync", "async", "streaming"])
def test_conformance(path: str) -> None:
    kit = Conformance(CLAIMS)
    deltas = _conformance_run(kit, path)
    chunks = None if deltas is None else deltas
    if path == "streaming":
        assert deltas
    kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1, chunks=chunks))
    names = kit.recorder.names()
    assert names[0] == "session_start" and names[-1] == "session_end"


async def test_stream_chunk_modify_is_what_is_streamed_and_stored() -> None:
    @hook("llm_stream_chunk")
    def shout(chunk: interlock.StreamChunk, ctx: interlock.HookContext) -> Any:
        return Modify(chunk.replace(delta=chunk.delta.upper()))

    manager = PluginManager()
    manager.register(shout)
    ix = Interlock(manager)
    model = ScriptedModel([[assistant_message("quiet words")]])
    agent = ix.agent(Agent(name="a", model=model))
    streamed = Runner.run_streamed(agent, "hi", hooks=ix.hooks, run_config=ix.run_config())
    shown = ""
    async for event in streamed.stream_events():
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            shown += event.data.delta
    assert shown == "QUIET WORDS"
    assert streamed.final_output == "QUIET WORDS"


async def test_a_builtin_guard_and_content_policy_work_unchanged() -> None:
    manager = PluginManager()
    manager.register(ToolGuard(ToolGuardConfig.model_validate({"destructive": "deny"})))
    manager.register(ContentPolicy())
    model, ran = _tool_then_answer("echo hi; rm -fr /"), []
    await _run(Interlock(manager), _shell_agent(model, ran), "mail me at ann@example.com")
    assert ran == []
    assert "destructive" in _tool_outputs(model)[0]
    first = model.first_call
    assert first is not None
    assert "ann@example.com" not in json.dumps(first.input)


async def test_an_out_of_process_plugin_works_unchanged() -> None:
    guard = connect(
        StdioTransport(SERVED_GUARD, env={"PYTHONPATH": str(ROOT)}, cwd=ROOT), name="guard"
    )
    manager = PluginManager()
    manager.register(guard, capabilities=["system_items", "notify"])
    try:
        model, ran = _tool_then_answer("rm -rf /tmp/x"), []
        await _run(Interlock(manager), _shell_agent(model, ran), "clean")
        assert ran == []
        assert _tool_outputs(model) == ["rm -rf is not allowed"]
        model, ran = _tool_then_answer("ls"), []
        await _run(Interlock(manager), _shell_agent(model, ran), "list")
        assert ran == ["ls"]
        assert _tool_outputs(model) == ["ran ls; the [hidden] is 42"]  # its post_tool_call
    finally:
        await manager.aclose()


async def test_ask_uses_the_sdk_approvals() -> None:
    @hook("pre_tool_call")
    def ask(call: interlock.ToolCall, ctx: interlock.HookContext) -> Any:
        return interlock.Ask("run it?")

    manager = PluginManager()
    manager.register(ask)
    ix = Interlock(manager)
    model, ran = _tool_then_answer("deploy"), []
    agent = ix.agent(_shell_agent(model, ran))
    config = ix.run_config(RunConfig(group_id="t"))
    result = await Runner.run(agent, "ship", hooks=ix.hooks, run_config=config)
    assert ran == [] and len(result.interruptions) == 1
    state = result.to_state()
    state.approve(result.interruptions[0])
    result = await Runner.run(agent, state, hooks=ix.hooks, run_config=config)
    assert ran == ["deploy"]
    assert result.final_output == "done"


def test_hosted_tools_are_refused_or_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    agent = Agent(name="researcher", tools=[WebSearchTool()])
    with pytest.raises(UngovernedToolError, match=r"researcher.*WebSearchTool"):
        Interlock(PluginManager()).agent(agent)
    clone = Interlock(PluginManager(), hosted_tools="warn").agent(agent)
    assert isinstance(clone.tools[0], WebSearchTool)
    assert "runs ungoverned" in caplog.text


async def test_handoffs_and_model_instances_are_governed() -> None:
    manager = PluginManager()
    manager.register(no_rm)
    model, ran = _tool_then_answer("rm -rf /"), []
    helper = _shell_agent(model, ran)
    triage = Agent(name="triage", handoffs=[helper], model=ScriptedModel([]))
    governed = Interlock(manager).agent(triage)
    target = governed.handoffs[0]
    assert isinstance(target, Agent) and target is not helper
    assert type(target.model).__name__ == "_GovernedModel"
    await _run(Interlock(manager), helper, "clean")
    assert ran == []


def test_the_example_runs() -> None:
    path = ROOT / "examples" / "adapters" / "openai_agents_example.py"
    # a process of its own: `Runner.run_sync` leaves its thread's event loop open
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == [
        "tool output the model saw: blocked: rm -rf is not allowed",
        "final answer: I did not delete anything.",
    ]


async def test_an_in_process_approver_is_asked_once_per_call() -> None:
    @hook("pre_tool_call")
    def ask(call: interlock.ToolCall, ctx: interlock.HookContext) -> Any:
        return interlock.Ask(f"run {call.arguments['command']}?")

    questions: list[str] = []

    def approver(call: interlock.ToolCall, question: str) -> bool:
        questions.append(question)
        return "ls" in question

    manager = PluginManager()
    manager.register(ask)
    ix = Interlock(manager, approver=approver)
    model, ran = _tool_then_answer("ls"), []
    await _run(ix, _shell_agent(model, ran), "list")
    model2, ran2 = _tool_then_answer("deploy"), []
    await _run(ix, _shell_agent(model2, ran2), "ship")
    assert questions == ["run ls?", "run deploy?"]
    assert ran == ["ls"] and ran2 == []
    assert _tool_outputs(model2) == ["not approved: run deploy?"]


def _judging(judged: list[tuple[str, str, str]]) -> Any:
    @hook("pre_tool_call")
    def judge(call: interlock.ToolCall, ctx: interlock.HookContext) -> Any:
        judged.append((call.tool_name, str(call.arguments.get("command")), ctx.session.id))
        if "rm -rf" in str(call.arguments.get("command", "")):
            return Block("rm -rf is not allowed here")
        return None

    return judge


async def test_a_verdict_is_not_reused_for_another_call_with_the_same_id() -> None:
    judged: list[tuple[str, str, str]] = []
    manager = PluginManager()
    manager.register(_judging(judged))
    ix = Interlock(manager)
    ran: list[str] = []

    @function_tool(needs_approval=True)
    def deploy(command: str) -> str:
        """Deploy (a human approves)."""
        ran.append(f"deploy {command}")
        return "deployed"

    @function_tool
    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(f"shell {command}")
        return "ok"

    model = ScriptedModel(
        [
            [function_call("deploy", {"command": "v1"}, call_id="call_0")],
            [function_call("shell", {"command": "rm -rf /"}, call_id="call_0")],
            [assistant_message("done")],
        ]
    )
    agent = ix.agent(Agent(name="ops", model=model, tools=[deploy, shell]))
    config = ix.run_config(RunConfig(group_id="conv-1"))
    first = await Runner.run(agent, "deploy", hooks=ix.hooks, run_config=config)
    assert [i.name for i in first.interruptions] == ["deploy"]  # the approval is abandoned
    items = [*first.to_input_list(), {"role": "user", "content": "forget it, clean up"}]
    await Runner.run(agent, items, hooks=ix.hooks, run_config=config)
    assert ran == []
    assert judged == [("deploy", "v1", "conv-1"), ("shell", "rm -rf /", "conv-1")]
    assert _tool_outputs(model) == ["rm -rf is not allowed here"]
    await ix.aclose()


async def test_a_call_that_never_ran_is_judged_again_in_a_later_run() -> None:
    judged: list[tuple[str, str, str]] = []
    manager = PluginManager()
    manager.register(_judging(judged))
    ix = Interlock(manager)
    rejections: list[str] = []

    @tool_input_guardrail
    def first_time_no(data: Any) -> ToolGuardrailFunctionOutput:
        if not rejections:
            rejections.append(data.context.tool_call_id)
            return ToolGuardrailFunctionOutput.reject_content("not now")
        return ToolGuardrailFunctionOutput.allow()

    ran: list[str] = []

    @function_tool(tool_input_guardrails=[first_time_no])
    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(command)
        return "ok"

    step = [function_call("shell", {"command": "ls"}, call_id="c1")]
    model = ScriptedModel([step, [assistant_message("later")], step, [assistant_message("ok")]])
    agent = ix.agent(Agent(name="ops", model=model, tools=[shell]))
    config = ix.run_config(RunConfig(group_id="conv-2"))
    await Runner.run(agent, "list", hooks=ix.hooks, run_config=config)
    assert rejections == ["c1"] and ran == []
    await Runner.run(agent, "list again", hooks=ix.hooks, run_config=config)
    assert ran == ["ls"]
    assert judged == [("shell", "ls", "conv-2"), ("shell", "ls", "conv-2")]
    await ix.aclose()


async def test_a_run_without_run_config_is_refused() -> None:
    judged: list[tuple[str, str, str]] = []
    started: list[str] = []

    @hook("session_start")
    def start(event: interlock.SessionStart, ctx: interlock.HookContext) -> None:
        started.append(event.session_id)

    manager = PluginManager()
    manager.register(_judging(judged))
    manager.register(start)
    ix = Interlock(manager)
    model, ran = _tool_then_answer("ls"), []
    with pytest.raises(UnmappedRunError, match=r"'ScriptedModel'.*run_config=ix\.run_config"):
        await Runner.run(ix.agent(_shell_agent(model, ran)), "list", hooks=ix.hooks)
    assert ran == [] and judged == [] and started == []
    assert model.calls == ()


async def test_an_approval_resumed_in_another_task_keeps_its_session() -> None:
    judged: list[tuple[str, str, str]] = []

    @hook("pre_tool_call")
    def ask(call: interlock.ToolCall, ctx: interlock.HookContext) -> Any:
        judged.append((call.tool_name, str(call.arguments.get("command")), ctx.session.id))
        return interlock.Ask("run it?")

    manager = PluginManager()
    manager.register(ask)
    ix = Interlock(manager)
    model, ran = _tool_then_answer("deploy"), []
    agent = ix.agent(_shell_agent(model, ran))
    config = ix.run_config(RunConfig(group_id="t"))

    async def run(start: Any) -> Any:  # each in a task with a fresh context, as a server would
        work = Runner.run(agent, start, hooks=ix.hooks, run_config=config)
        return await asyncio.create_task(work, context=contextvars.Context())

    result = await run("ship")
    state = result.to_state()
    state.approve(result.interruptions[0])
    result = await run(state)
    assert ran == ["deploy"]
    assert judged == [("shell", "deploy", "t")]
    assert result.final_output == "done"
    await ix.aclose()
