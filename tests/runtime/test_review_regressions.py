"""Regression tests for problems a review of the runtime found."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from interlock import (
    Block,
    HookContext,
    LLMRequest,
    Modify,
    PluginManager,
    SystemItemSink,
    ToolResult,
    hook,
)
from interlock.runtime import Agent, ScriptedBackend, SessionStore, Step

from .helpers import Recorder


def shell(command: str) -> str:
    """Pretend to run a command."""
    return f"ran {command}"


def requests(recorder: Recorder) -> list[LLMRequest]:
    return [p for n, p in recorder.events if n == "pre_llm_call"]


async def test_a_capability_reaches_a_bound_handle_never_the_session() -> None:
    seen: list[object] = []

    @hook("message_received")
    def spy(payload: Any, ctx: HookContext) -> None:
        seen.extend([ctx.capability("system_items"), ctx.system_items])

    manager = PluginManager()
    manager.register(spy, capabilities=["system_items"])
    await Agent(ScriptedBackend(["a"]), manager=manager).run("x")
    assert all(isinstance(handle, SystemItemSink) for handle in seen)
    assert not any(hasattr(handle, attr) for handle in seen for attr in ("history", "store"))


async def test_two_sessions_in_one_task_keep_their_own_items_and_state() -> None:
    @hook("message_received")
    def note(payload: Any, ctx: HookContext) -> None:
        ctx.state["n"] = ctx.state.get("n", 0) + 1
        assert ctx.system_items is not None
        ctx.system_items.append("about", f"{payload.content} #{ctx.state['n']} in {ctx.session.id}")

    manager = PluginManager()
    # The user's messages only: system items pass through message_received too.
    manager.register(note, capabilities=["system_items"], when={"role": "user"})
    agent = Agent(ScriptedBackend(["a"] * 4), manager=manager)
    async with agent.session("A") as a, agent.session("B") as b:
        await asyncio.gather(a.send("for A"), b.send("for B"))
        await a.send("again A")
        items = {
            s.id: [r.data["text"] for r in s.records() if r.kind == "system_item"] for s in (a, b)
        }
    assert items == {"A": ["for A #1 in A", "again A #2 in A"], "B": ["for B #1 in B"]}


async def test_items_written_during_tool_calls_follow_the_tool_results() -> None:
    @hook("pre_tool_call", "post_tool_call")
    def remind(payload: Any, ctx: HookContext) -> None:
        assert ctx.system_items is not None
        ctx.system_items.append("reminder", f"{ctx.hook.name} {payload.call_id}")

    manager = PluginManager()
    recorder = Recorder()
    manager.register(recorder)
    manager.register(remind, capabilities=["system_items"])
    calls = Step(tool_calls=(("shell", {"command": "a"}), ("shell", {"command": "b"})))
    await Agent(ScriptedBackend([calls, "done"]), tools=[shell], manager=manager).run("go")
    roles = [m.role for m in requests(recorder)[-1].messages]
    assert roles == ["user", "assistant", "tool", "tool", "system", "system", "system", "system"]


async def test_an_item_written_in_pre_llm_call_reaches_that_very_call() -> None:
    @hook("pre_llm_call")
    def remind(payload: LLMRequest, ctx: HookContext) -> None:
        if ctx.system_items is not None:
            ctx.system_items.append("reminder", "answer in French")

    seen: list[LLMRequest] = []

    class Model(ScriptedBackend):
        async def complete(self, request: LLMRequest) -> Any:
            seen.append(request)
            return await super().complete(request)

    manager = PluginManager()
    manager.register(remind, capabilities=["system_items"])
    await Agent(Model(["bonjour"]), manager=manager).run("hello")
    assert [(m.role, m.content) for m in seen[0].messages] == [
        ("user", "hello"),
        ("system", "reminder: answer in French"),
    ]


async def test_a_turn_killed_mid_tool_leaves_a_session_that_still_works(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "s.db")
    store.open_session("s")
    store.append("s", "user", {"content": "deploy"}, turn=1)
    calls = [{"tool_name": "shell", "arguments": {"command": "deploy"}, "call_id": "call_1"}]
    store.append("s", "assistant", {"content": "", "tool_calls": calls}, turn=1)
    # ...and the process died before the tool returned.
    manager = PluginManager()
    recorder = Recorder()
    manager.register(recorder)
    agent = Agent(ScriptedBackend(["it was interrupted"]), manager=manager, store=store)
    async with agent.session("s") as session:
        result = await session.send("what happened?")
    assert result.turn == 2
    roles = [(m.role, m.tool_call_id) for m in requests(recorder)[0].messages]
    assert roles == [("user", None), ("assistant", None), ("tool", "call_1"), ("user", None)]
    store.close()


async def test_text_that_is_not_utf8_is_logged_not_fatal() -> None:
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")

    def list_dir(path: str) -> list[str]:
        return [name]

    agent = Agent(ScriptedBackend([Step(tool_calls=(("list_dir", {"path": "."}),)), "ok"]),
                  tools=[list_dir])  # fmt: skip
    async with agent.session("s") as session:
        result = await session.send(f"look at {name}")
        records = session.records()
    assert result.reply == "ok"
    assert [r.data["content"] for r in records if r.kind == "user"] == [f"look at {name}"]
    assert any(r.kind == "tool_result" and name in r.data["output"] for r in records)
    with pytest.raises(ValueError, match="not valid UTF-8 text"):
        agent.session(name).store.open_session(name)


async def test_a_failing_trace_callback_does_not_stop_the_agent() -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("terminal gone")

    agent = Agent(ScriptedBackend(["fine"]), on_event=broken)
    result = await agent.run("x")
    assert (result.reply, result.delivered) == ("fine", True)
    assert agent.manager.stats().registrations == ()


async def test_tool_errors_are_reported_as_post_tool_call_left_them() -> None:
    def login(user: str) -> str:
        raise RuntimeError("auth failed for token sk-SECRET-123")

    @hook("post_tool_call")
    def redact(payload: ToolResult, ctx: HookContext) -> Modify[ToolResult]:
        return Modify(payload.replace(output=payload.output.replace("sk-SECRET-123", "[key]")))

    manager = PluginManager()
    recorder = Recorder()
    manager.register(recorder)
    manager.register(redact)
    script = [Step(tool_calls=(("login", {"user": "ada"}),)), "sorry"]
    agent = Agent(ScriptedBackend(script), tools=[login], manager=manager)
    async with agent.session("s") as session:
        await session.send("log in")
        records = session.records()
    assert "sk-SECRET" not in str([r.data for r in records])
    [error] = [p for n, p in recorder.events if n == "error"]
    assert "[key]" in error.message


async def test_withheld_and_redacted_replies_stay_out_of_log_and_context() -> None:
    @hook("message_sending")
    def gate(payload: Any, ctx: HookContext) -> Any:
        if "hunter2" in payload.content:
            return Block("contains a password")
        return Modify(payload.replace(content=payload.content.replace("ada@x.org", "[email]")))

    manager = PluginManager()
    recorder = Recorder()
    manager.register(recorder)
    manager.register(gate)
    agent = Agent(ScriptedBackend(["the password is hunter2", "mail ada@x.org", "ok"]),
                  manager=manager)  # fmt: skip
    async with agent.session("s") as session:
        await session.send("password?")
        await session.send("who?")
        await session.send("and now?")
        records = session.records()
    logged = str([r.data for r in records])
    assert "hunter2" not in logged and "ada@x.org" not in logged
    context = [(m.role, m.content) for m in requests(recorder)[-1].messages]
    assert ("assistant", "[your reply was not delivered: contains a password]") in context
    assert ("assistant", "mail [email]") in context


async def test_sending_outside_the_session_block_is_an_error() -> None:
    agent = Agent(ScriptedBackend(["a"]))
    session = agent.session("s")
    with pytest.raises(RuntimeError, match="session 's' is not open"):
        await session.send("x")
    async with session:
        await session.send("x")
    with pytest.raises(RuntimeError, match="not open"):
        await session.send("y")


def test_model_scripts_must_have_the_right_shape(tmp_path: Path) -> None:
    cases = {'"hello"': "a JSON list of steps", "[null]": "a step is a string or",
             '[{"txt": "hi"}]': "a step is a string or",
             '[{"tool_calls": [{"arguments": {}}]}]': "a tool call is"}  # fmt: skip
    for text, message in cases.items():
        path = tmp_path / "script.json"
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            ScriptedBackend.from_file(path)


async def test_a_session_interrupted_while_it_starts_ends_as_interrupted(tmp_path: Path) -> None:
    """A command line whose reader went away during `session_start` (`interlock demo |
    head -1`) stops as on Ctrl-C: the session ends `interrupted`, not as an error."""

    def gone(payload: Any, ctx: Any) -> None:
        raise KeyboardInterrupt  # what the CLI raises when its stdout closed

    manager = PluginManager()
    manager.register(gone, hook="session_start")
    store = SessionStore(tmp_path / "s.db")
    agent = Agent(ScriptedBackend(["hi"]), manager=manager, store=store)
    with pytest.raises(KeyboardInterrupt):
        async with agent.session("s-1"):
            pass
    [summary] = store.sessions()
    assert summary.end_reason == "interrupted"
