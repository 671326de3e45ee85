"""The Claude Agent SDK: interlock plugins as the SDK's hooks, against a scripted CLI."""

from __future__ import annotations

import asyncio
import runpy
import sys
from typing import Any

import pytest

pytest.importorskip("claude_agent_sdk")

from claude_agent_sdk import ClaudeAgentOptions, ResultMessage, query

from interlock import (
    Ask,
    Block,
    HookContext,
    MessageEvent,
    Modify,
    Plugin,
    PluginManager,
    ToolCall,
    ToolResult,
    hook,
)
from interlock.adapters.claude_agent import ScriptedClaude, hooks
from interlock.config import load_config_text
from interlock.external import StdioTransport, connect
from interlock.testing import Conformance, Expected

from .helpers import ROOT, SERVED_GUARD, Counting, broken_gate


def shell(tool_input: dict[str, Any]) -> str:
    """A pretend Bash tool: says what it would run."""
    return f"ran: {tool_input['command']}"


async def run(claude: ScriptedClaude, agent_hooks: Any, prompt: str = "tidy up") -> list[Any]:
    options = ClaudeAgentOptions(hooks=agent_hooks)
    return [m async for m in query(prompt=prompt, options=options, transport=claude.transport())]


def script(*commands: str, session_id: str = "session-1") -> ScriptedClaude:
    steps = [("Bash", {"command": command}) for command in commands]
    return ScriptedClaude(steps, tools={"Bash": shell}, session_id=session_id)


@hook("pre_tool_call", name="no-rm")
def no_rm(call: ToolCall, ctx: HookContext) -> Any:
    command = str(call.arguments.get("command", ""))
    if "rm -rf" in command:
        return Block("rm -rf is not allowed here")
    if command.startswith("git push"):
        return Ask("push to the remote?")
    return None


@hook("pre_tool_call", name="dry-run")
def dry_run(call: ToolCall, ctx: HookContext) -> Any:
    if call.arguments.get("command") == "make deploy":
        return Modify(call.replace(arguments={**call.arguments, "command": "make -n deploy"}))
    return None


@hook("post_tool_call", name="hide")
def hide(result: ToolResult, ctx: HookContext) -> Any:
    return Modify(result.replace(output=result.output.replace("secret", "[hidden]")))


class PromptPolicy(Plugin):
    name = "prompt-policy"

    def on_message_received(self, message: MessageEvent, ctx: HookContext) -> Any:
        if "forbidden" in message.content:
            return Block("that topic is not allowed")
        if "password" in message.content:
            return Modify(message.replace(content=message.content.replace("password", "***")))
        assert ctx.system_items is not None
        ctx.system_items.append("reminder", "run the tests before you commit")
        return None


async def test_a_block_stops_the_tool_and_the_model_reads_the_reason() -> None:
    manager = PluginManager()
    manager.register(no_rm)
    claude = script("rm -rf build", "ls")
    messages = await run(claude, hooks(manager))
    assert claude.ran == [("Bash", {"command": "ls"})]
    assert claude.model_saw == ["rm -rf is not allowed here", "ran: ls"]
    assert isinstance(messages[-1], ResultMessage) and messages[-1].result == "done"
    await manager.aclose()


async def test_a_modify_of_arguments_reaches_the_tool() -> None:
    manager = PluginManager()
    manager.register(dry_run)
    claude = script("make deploy")
    await run(claude, hooks(manager))
    assert claude.ran == [("Bash", {"command": "make -n deploy"})]
    assert claude.model_saw == ["ran: make -n deploy"]
    await manager.aclose()


async def test_a_post_tool_call_modify_is_what_the_model_sees() -> None:
    manager = PluginManager()
    manager.register(hide)
    claude = ScriptedClaude([("Bash", {"command": "cat .env"})], tools={"Bash": lambda _: "secret"})
    await run(claude, hooks(manager))
    assert claude.model_saw == ["[hidden]"]
    await manager.aclose()


async def test_prompts_blocked_or_changed_are_not_sent_and_context_is_added() -> None:
    manager = PluginManager()
    manager.register(PromptPolicy(), capabilities=["system_items"])
    agent_hooks = hooks(manager)
    claude = script("ls")
    await run(claude, agent_hooks, "tell me the forbidden thing")
    assert claude.blocked_prompts == ["that topic is not allowed"] and claude.ran == []
    claude = script("ls")
    await run(claude, agent_hooks, "my password is hunter2")
    assert "changed this prompt" in claude.blocked_prompts[0] and claude.ran == []
    claude = script("ls")
    await run(claude, agent_hooks, "hello")
    assert claude.model_saw == ["run the tests before you commit", "ran: ls"]
    await agent_hooks.aclose()
    await manager.aclose()


async def test_a_raising_gate_fails_closed_and_the_run_goes_on() -> None:
    manager = PluginManager()
    manager.register(broken_gate)
    claude = script("ls")
    messages = await run(claude, hooks(manager))
    assert claude.ran == []
    assert "broken-gate" in claude.model_saw[0] and "policy server down" in claude.model_saw[0]
    assert messages[-1].result == "done"
    await manager.aclose()


async def test_ask_goes_to_the_sdk_or_to_the_approver() -> None:
    manager = PluginManager()
    manager.register(no_rm)
    claude = script("git push origin main")
    await run(claude, hooks(manager))  # "ask": the SDK's permission handling decides
    assert claude.ran == [] and claude.model_saw == ["push to the remote?"]
    claude = script("git push origin main")
    await run(claude, hooks(manager, approver=lambda call, question: True))
    assert claude.ran == [("Bash", {"command": "git push origin main"})]
    claude = script("git push origin main")
    await run(claude, hooks(manager, approver=lambda call, question: False))
    assert claude.ran == [] and claude.model_saw == ["not approved: push to the remote?"]
    await manager.aclose()


async def test_concurrent_sessions_keep_their_state_apart() -> None:
    manager = PluginManager()
    manager.register(Counting())
    agent_hooks = hooks(manager)
    a, b = script("ls", "ls", "ls", session_id="a"), script("ls", session_id="b")
    await asyncio.gather(run(a, agent_hooks), run(b, agent_hooks))
    assert [args["count"] for _, args in a.ran] == [1, 2, 3]
    assert [args["count"] for _, args in b.ran] == [1]
    await agent_hooks.end("a")  # its state goes with it
    a = script("ls", session_id="a")
    await run(a, agent_hooks)
    assert [args["count"] for _, args in a.ran] == [1]
    await agent_hooks.aclose()
    await manager.aclose()


async def test_each_mapped_hook_fires_exactly_once_per_event() -> None:
    kit = Conformance(
        [
            "session_start",
            "message_received",
            "pre_tool_call",
            "post_tool_call",
            "turn_end",
            "session_end",
        ]
    )
    agent_hooks = hooks(kit.manager)

    def flaky(tool_input: dict[str, Any]) -> str:
        if tool_input["command"] == "false":
            raise RuntimeError("exit status 1")
        return "ok"

    claude = ScriptedClaude(
        [("Bash", {"command": "ls"}), ("Bash", {"command": "false"})], tools={"Bash": flaky}
    )
    await run(claude, agent_hooks)
    await agent_hooks.aclose()
    kit.check(Expected(user_messages=1, tool_calls=2))
    assert kit.recorder.names() == [
        "session_start",
        "message_received",
        "pre_tool_call",
        "post_tool_call",
        "pre_tool_call",
        "post_tool_call",
        "turn_end",
        "session_end",
    ]
    failed = kit.recorder.events[5][1]
    assert failed.is_error and failed.output == "exit status 1"
    await kit.manager.aclose()


async def test_tool_guard_and_an_out_of_process_plugin_work_unchanged() -> None:
    manager = load_config_text(
        "plugins:\n  - {name: tool-guard, use: tool-guard, config: {destructive: deny}}\n"
    )
    claude = script("rm -rf ~/", "ls")
    await run(claude, hooks(manager))
    assert claude.ran == [("Bash", {"command": "ls"})]
    assert "destructive" in claude.model_saw[0]
    await manager.aclose()

    manager = PluginManager()
    manager.register(connect(StdioTransport(SERVED_GUARD, cwd=ROOT), name="guard"))
    claude = script("rm -rf build", "ls")
    await run(claude, hooks(manager))
    assert claude.ran == [("Bash", {"command": "ls", "seen": 1})]
    assert claude.model_saw[0] == "rm -rf is not allowed"
    await manager.aclose()


def test_a_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)
    with pytest.raises(ImportError, match=r"pip install -e '<interlock checkout>\[claude-agent\]'"):
        hooks(PluginManager())


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(
        str(ROOT / "examples" / "adapters" / "claude_agent_example.py"), run_name="__main__"
    )
    out = capsys.readouterr().out
    assert "ran: ['Bash', {'command': 'ls -la'}]" in out
    assert "the model saw: tool guard" in out and "destructive" in out
