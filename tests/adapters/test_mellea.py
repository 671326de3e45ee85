"""The Mellea adapter: a Mellea plugin, run offline against Mellea's OpenAI backend and a
loopback chat-completions server (Mellea's DummyBackend serves no tool calls)."""

from __future__ import annotations

import asyncio
import dataclasses
import runpy
from typing import Any

import pytest

pytest.importorskip("mellea")
pytest.importorskip("cpex")

from mellea import start_session
from mellea.backends.model_options import ModelOption
from mellea.backends.tools import MelleaTool
from mellea.plugins import PluginViolationError
from mellea.stdlib.context import ChatContext
from mellea.stdlib.functional import call_tools

from interlock import (
    Ask,
    Block,
    HookContext,
    LLMRequest,
    LLMResponse,
    Modify,
    PluginManager,
    ToolCall,
    ToolResult,
    hook,
)
from interlock.adapters.mellea import CLAIMS, plugin
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig
from interlock.testing import Conformance, Expected, RecordingPlugin
from tests.runtime.chat_server import ChatServer, Reply

from .helpers import ROOT, sh_guard


@dataclasses.dataclass
class Outcome:
    ran: list[str]  # the commands the tool really ran
    requests: list[dict[str, Any]]  # what the model server received
    answer: str

    def tool_message(self) -> dict[str, Any]:
        """The tool result the model read on its second call."""
        (message,) = [m for m in self.requests[1]["messages"] if m["role"] == "tool"]
        return message


def converse(manager: PluginManager, command: str = "ls", **options: Any) -> Outcome:
    """One Mellea session: the model calls `shell` with `command`, the tool calls run
    (`call_tools`), the model is asked again and answers."""
    ran: list[str] = []

    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(command)
        return f"ran {command}"

    replies = [Reply(tool_calls=[("shell", {"command": command})]), Reply(text="all done")]
    with ChatServer(replies) as server:
        ctx = ChatContext()
        with start_session(
            "openai", "test-model", ctx=ctx, base_url=server.url, api_key="test",
            plugins=[plugin(manager, **options)],
        ) as m:  # fmt: skip
            tools = {ModelOption.TOOLS: [MelleaTool.from_callable(shell)]}
            m.chat("clean up", model_options=tools, tool_calls=True)
            for message in call_tools(m.ctx.last_output(), m.backend):
                m.ctx = m.ctx.add(message)
            answer = m.chat("what happened?")
    return Outcome(ran, server.requests, str(answer.content))


def mellea_session(manager: PluginManager, server: ChatServer) -> Any:
    """A Mellea session on the loopback server, governed by `manager`."""
    return start_session(
        "openai", "test-model", base_url=server.url, api_key="test", plugins=[plugin(manager)]
    )


@pytest.fixture
def manager() -> PluginManager:
    return PluginManager()


# -- tools ----------------------------------------------------------------------------------


def test_a_block_stops_the_tool_and_the_model_reads_the_reason(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    def no_rm(payload: ToolCall, ctx: HookContext) -> Block | None:
        if "rm -rf" in str(payload.arguments.get("command", "")):
            return Block("destructive shell command")
        return None

    manager.register(no_rm)
    outcome = converse(manager, "rm -rf /")

    assert outcome.ran == []
    message = outcome.tool_message()
    assert (
        message["content"]
        == "tool 'shell' was blocked by plugin 'no_rm': destructive shell command"
    )
    assert message["tool_call_id"] == "call_0"
    assert outcome.answer == "all done"


def test_a_modify_of_the_arguments_reaches_the_tool(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    async def safer(payload: ToolCall, ctx: HookContext) -> Modify[ToolCall]:  # async works
        return Modify(payload.replace(arguments={"command": "ls -la"}))

    manager.register(safer)
    outcome = converse(manager, "ls")

    assert outcome.ran == ["ls -la"]
    assert outcome.tool_message()["content"] == "ran ls -la"


def test_a_post_tool_call_modify_is_what_the_model_reads(manager: PluginManager) -> None:
    @hook("post_tool_call")
    def redact(payload: ToolResult, ctx: HookContext) -> Modify[ToolResult]:
        return Modify(payload.replace(output="[redacted]"))

    manager.register(redact)
    outcome = converse(manager, "cat secrets")

    assert outcome.ran == ["cat secrets"]
    assert outcome.tool_message()["content"] == "[redacted]"


def test_a_raising_gate_fails_closed_and_the_session_goes_on(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    def broken(payload: ToolCall, ctx: HookContext) -> None:
        raise RuntimeError("policy store unreachable")

    manager.register(broken)
    outcome = converse(manager, "ls")

    assert outcome.ran == []
    content = outcome.tool_message()["content"]
    assert content.startswith("tool 'shell' was blocked by plugin 'broken'")
    assert "RuntimeError" in content or "policy store unreachable" in content
    assert outcome.answer == "all done"


@pytest.mark.parametrize("allowed", [True, False])
def test_an_ask_goes_to_the_approver(allowed: bool) -> None:
    asked: list[tuple[str, str]] = []

    def approver(call: ToolCall, question: str) -> bool:
        asked.append((call.tool_name, question))
        return allowed

    manager = PluginManager()
    manager.register(hook("pre_tool_call")(lambda p, ctx: Ask("delete the cache?")))
    outcome = converse(manager, "rm -rf cache", approver=approver)

    assert asked == [("shell", "delete the cache?")]
    assert outcome.ran == (["rm -rf cache"] if allowed else [])
    if not allowed:
        assert "needs approval (delete the cache?)" in outcome.tool_message()["content"]


def test_the_tool_call_ids_are_mellea_s_own(manager: PluginManager) -> None:
    recorder = RecordingPlugin()
    manager.register(recorder)
    converse(manager, "ls")

    calls = [p for name, p in recorder.events if name in ("pre_tool_call", "post_tool_call")]
    assert [c.call_id for c in calls] == ["call_0", "call_0"]
    assert calls[0].arguments == {"command": "ls"}
    assert calls[1].output == "ran ls" and not calls[1].is_error


# -- model calls ----------------------------------------------------------------------------


def test_a_pre_llm_call_block_is_mellea_s_violation_and_the_model_is_not_called(
    manager: PluginManager,
) -> None:
    manager.register(hook("pre_llm_call")(lambda p, ctx: Block("over budget")))
    with (
        ChatServer([Reply(text="never")]) as server,
        mellea_session(manager, server) as m,
        pytest.raises(PluginViolationError, match="over budget"),
    ):
        m.chat("hello")
    assert server.requests == []


def test_a_params_modify_reaches_the_model_and_a_message_edit_is_refused(
    manager: PluginManager,
) -> None:
    @hook("pre_llm_call")
    def tune(payload: LLMRequest, ctx: HookContext) -> Modify[LLMRequest]:
        if "secret" in payload.messages[-1].content:  # a redactor Mellea cannot honour
            edited = payload.messages[-1].replace(content="[redacted]")
            return Modify(payload.replace(messages=(*payload.messages[:-1], edited)))
        return Modify(payload.replace(params={**payload.params, "temperature": 0.25}))

    manager.register(tune)
    with ChatServer([Reply(text="hi")]) as server, mellea_session(manager, server) as m:
        m.chat("hello")
        with pytest.raises(PluginViolationError, match="changed the messages"):
            m.chat("my secret is 42")
    (request,) = server.requests  # the edited call never reached the model
    assert request["temperature"] == 0.25


def test_a_post_llm_call_modify_withholds_the_output(manager: PluginManager) -> None:
    @hook("post_llm_call")
    def rewrite(payload: LLMResponse, ctx: HookContext) -> Modify[LLMResponse]:
        return Modify(payload.replace(content="something else"))

    manager.register(rewrite)
    with (
        ChatServer([Reply(text="the original")]) as server,
        mellea_session(manager, server) as m,
        pytest.raises(PluginViolationError, match="changed the model's output"),
    ):
        m.chat("hello")


# -- conformance ----------------------------------------------------------------------------


def test_each_claimed_hook_fires_once_per_event() -> None:
    kit = Conformance(CLAIMS)
    converse(kit.manager, "ls")

    kit.check(Expected(model_calls=2, tool_calls=1))
    names = kit.recorder.names()
    assert names[0] == "session_start" and names[-1] == "session_end"
    assert names.count("session_start") == names.count("session_end") == 1
    assert "llm_stream_chunk" not in names and "error" not in names


def test_the_streaming_path_fires_a_chunk_hook_per_delivered_chunk() -> None:
    from mellea.stdlib.components import Message
    from mellea.stdlib.streaming import stream

    kit = Conformance(CLAIMS)
    with ChatServer([Reply(text="one two three")]) as server:
        options = {ModelOption.STREAM: True}
        with start_session(
            "openai", "test-model", base_url=server.url, api_key="test",
            model_options=options, plugins=[plugin(kit.manager)],
        ) as m:  # fmt: skip

            async def consume() -> list[str]:
                async with await stream(Message("user", "count"), m.backend, m.ctx) as chunks:
                    return [chunk async for chunk in chunks]

            delivered = asyncio.run(consume())

    assert "".join(delivered).strip() == "one two three"
    kit.check(Expected(model_calls=1, chunks=len(delivered)))
    streamed = [p.delta for name, p in kit.recorder.events if name == "llm_stream_chunk"]
    assert streamed == delivered


def test_sessions_are_mellea_s_and_keep_state_apart(manager: PluginManager) -> None:
    seen: list[tuple[str, int]] = []

    @hook("pre_tool_call")
    def count(payload: ToolCall, ctx: HookContext) -> None:
        ctx.state["calls"] = ctx.state.get("calls", 0) + 1
        seen.append((ctx.session.id if ctx.session else "", ctx.state["calls"]))

    manager.register(count)
    converse(manager)
    converse(manager)

    assert [n for _, n in seen] == [1, 1]
    assert seen[0][0] != seen[1][0]


# -- built-in and out-of-process plugins, unchanged -----------------------------------------


def test_tool_guard_denies_destructive_commands(manager: PluginManager) -> None:
    manager.register(ToolGuard(ToolGuardConfig(destructive="deny")))
    outcome = converse(manager, "rm -rf /")

    assert outcome.ran == []
    assert "tool-guard" in outcome.tool_message()["content"]


def test_a_command_hook_blocks_through_the_adapter(manager: PluginManager) -> None:
    manager.register(sh_guard())
    outcome = converse(manager, "rm -rf /")

    assert outcome.ran == []
    assert (
        outcome.tool_message()["content"]
        == "tool 'shell' was blocked by plugin 'sh-guard': no deleting here"
    )


# -- the example ----------------------------------------------------------------------------


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "adapters" / "mellea_example.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "tool 'shell' was blocked by plugin 'tool-guard'" in out
    assert "ran: []" in out
