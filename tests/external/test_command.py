"""Command hooks: a process per event; Claude Code hook scripts work unchanged."""

from __future__ import annotations

import asyncio
import json
import math
import os
import select
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock import (
    LLMRequest,
    LLMResponse,
    MessageEvent,
    PluginManager,
    SessionStart,
    ToolCall,
    ToolResult,
    hooks,
)
from interlock.external import CommandRunner, command_plugin
from interlock.runtime import Agent, ScriptedBackend, SessionStore, Step
from interlock.testing import Harness

from .conftest import PLUGINS, LogWatch

CLAUDE_GUARD = [str(PLUGINS / "claude_guard.sh")]


@pytest.fixture
def guard() -> Iterator[Harness]:
    plugin = command_plugin(
        CommandRunner(CLAUDE_GUARD, name="claude-guard"), name="claude-guard",
        hooks=["pre_tool_call"],
    )  # fmt: skip
    with Harness(plugin) as harness:
        yield harness


def bash(command: str) -> ToolCall:
    return ToolCall("Bash", {"command": command}, call_id="c1")


async def test_claude_code_deny_blocks_with_its_reason(guard: Harness) -> None:
    result = await guard.ainvoke(hooks.PRE_TOOL_CALL, bash("rm -rf /"))
    assert result.blocked and result.blocked_by == "claude-guard"
    assert result.reason == "Destructive command blocked by claude_guard.sh"


async def test_claude_code_ask_goes_to_the_approver(guard: Harness) -> None:
    result = await guard.ainvoke(hooks.PRE_TOOL_CALL, bash("git push origin main"))
    assert not result.blocked
    assert result.asks == (("claude-guard", "Pushing changes: are you sure?"),)


async def test_claude_code_updated_input_rewrites_the_arguments(guard: Harness) -> None:
    result = await guard.ainvoke(hooks.PRE_TOOL_CALL, bash("ls"))
    assert result.payload == ToolCall("Bash", {"command": "ls --color=never"}, call_id="c1")
    assert guard.notifications == [("rewrote ls", "info")]  # its systemMessage


async def test_exit_code_2_blocks_with_stderr_as_the_reason(guard: Harness) -> None:
    result = await guard.ainvoke(hooks.PRE_TOOL_CALL, bash("curl example.com"))
    assert result.blocked
    assert result.reason == "network access is not allowed from this project"


async def test_the_older_decision_shape_blocks_too(guard: Harness) -> None:
    result = await guard.ainvoke(hooks.PRE_TOOL_CALL, bash("legacy thing"))
    assert result.blocked and result.reason == "legacy decision shape"


async def test_other_exit_codes_are_failures_attributed_to_the_hook(guard: Harness) -> None:
    result = await guard.ainvoke(hooks.PRE_TOOL_CALL, bash("broken"))
    [failure] = result.errors
    assert failure.plugin == "claude-guard"
    assert "exit code 1" in failure.message and "internal failure in the hook" in failure.message
    assert result.blocked  # pre_tool_call fails closed


async def test_no_output_lets_the_event_pass(guard: Harness) -> None:
    result = await guard.ainvoke(hooks.PRE_TOOL_CALL, ToolCall("Read", {"path": "x"}))
    assert result.empty


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


async def test_interlock_shaped_answers_and_events_for_any_hook() -> None:
    # The event has interlock's own fields; the answer can be interlock's action shape.
    script = sh(
        'event=$(cat); case "$event" in *\'"hook": "post_tool_call"\'*) ;; *) exit 1;; esac;'
        ' echo \'{"action": {"type": "modify", "payload": {"tool_name": "t",'
        ' "output": "[redacted]"}}, "requests": [{"capability": "system_items",'
        ' "kind": "note", "text": "redacted one result"}]}\''
    )
    plugin = command_plugin(CommandRunner(script), name="redact", hooks=["post_tool_call"])
    with Harness(plugin) as harness:
        result = await harness.ainvoke(hooks.POST_TOOL_CALL, ToolResult("t", output="secret"))
    assert result.payload is not None and result.payload.output == "[redacted]"
    assert harness.system_items == [("note", "redacted one result")]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ('{"action": {"type": "explode"}}', "an action must be an object with a type among"),
        ('{"hookSpecificOutput": {"permissionDecision": "maybe"}}', "unknown decision"),
        ('{"hookSpecificOutput": {"updatedInput": "rm"}}', "updatedInput is an object"),
        ("[1, 2]", "must be an object"),
    ],
)
async def test_answers_that_do_not_fit_are_the_hooks_failure(answer: str, problem: str) -> None:
    plugin = command_plugin(
        CommandRunner(sh(f"echo '{answer}'")), name="odd", hooks=["pre_tool_call"]
    )
    with Harness(plugin, on_error="ignore") as harness:
        result = await harness.ainvoke(hooks.PRE_TOOL_CALL, bash("ls"))
    [failure] = result.errors
    assert failure.plugin == "odd" and problem in failure.message
    assert not result.blocked and result.payload is None


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux)")
async def test_a_command_given_up_on_is_killed_with_its_whole_process_group(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "child.pid"
    os.mkfifo(fifo)
    runner = CommandRunner(CLAUDE_GUARD, env={"HOOK_CHILD_PID_FILE": str(fifo)})
    plugin = command_plugin(runner, name="slow", hooks=["pre_tool_call"])
    with Harness(plugin, timeout=math.inf, on_error="ignore") as harness:
        task = asyncio.ensure_future(harness.ainvoke(hooks.PRE_TOOL_CALL, bash("sleep")))
        # The script writes its background child's pid into the fifo: the hook is running.
        child = int(await asyncio.to_thread(fifo.read_text))
        pidfd = os.pidfd_open(child)
        try:
            task.cancel()  # what a timeout does
            with pytest.raises(asyncio.CancelledError):
                await task
            ended, _, _ = await asyncio.to_thread(select.select, [pidfd], [], [], 30)
            assert ended == [pidfd]  # the grandchild is gone too
        finally:
            os.close(pidfd)


async def test_a_claude_code_script_guards_the_reference_runtime(tmp_path: Path) -> None:
    plugin = command_plugin(CommandRunner(CLAUDE_GUARD), name="claude-guard",
                            hooks=["pre_tool_call"])  # fmt: skip
    questions: list[str] = []

    def Bash(command: str) -> str:
        """Pretend to run a shell command."""
        return f"ran: {command}"

    def approver(call: ToolCall, question: str) -> bool:
        questions.append(question)
        return False

    manager = PluginManager()
    manager.register(plugin)
    store = SessionStore()
    script = [Step(tool_calls=(("Bash", {"command": c}),)) for c in ("ls", "rm -rf /", "git push")]
    agent = Agent(ScriptedBackend([*script, "done"]), tools=[Bash], manager=manager,
                  store=store, approver=approver)  # fmt: skip
    result = await agent.run("clean up", session_id="s")
    await agent.aclose()
    outputs = [dict(r.data)["output"] for r in store.records("s") if r.kind == "tool_result"]
    store.close()

    assert result.reply == "done"
    assert outputs[0] == "ran: ls --color=never"
    assert "Destructive command blocked by claude_guard.sh" in outputs[1]
    assert questions == ["Pushing changes: are you sure?"] and "ran:" not in outputs[2]


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux)")
async def test_what_a_command_leaves_running_is_ended_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "child"
    script = sh(f"sleep 600 >/dev/null 2>&1 & echo $! > {pid_file}; exit 0")
    plugin = command_plugin(CommandRunner(script), name="leaky", hooks=["pre_tool_call"])
    with Harness(plugin) as harness:
        result = await harness.ainvoke(hooks.PRE_TOOL_CALL, bash("ls"))
    assert result.empty
    pidfd = os.pidfd_open(int(pid_file.read_text()))
    try:
        ended, _, _ = await asyncio.to_thread(select.select, [pidfd], [], [], 30)
        assert ended == [pidfd]
    finally:
        os.close(pidfd)


async def test_output_over_the_limit_is_a_failure_not_a_memory_bill() -> None:
    runner = CommandRunner(sh("head -c 50000000 /dev/zero"), limit=1000)
    plugin = command_plugin(runner, name="chatty", hooks=["pre_tool_call"])
    with Harness(plugin, on_error="ignore") as harness:
        result = await harness.ainvoke(hooks.PRE_TOOL_CALL, bash("ls"))
    [failure] = result.errors
    assert "wrote more than 1000 bytes" in failure.message


async def test_output_that_means_to_be_json_but_is_not_is_a_failure() -> None:
    plugin = command_plugin(CommandRunner(sh("echo '{\"decision\": '")), name="broken",
                            hooks=["pre_tool_call"])  # fmt: skip
    with Harness(plugin) as harness:
        result = await harness.ainvoke(hooks.PRE_TOOL_CALL, bash("rm -rf /"))
    assert result.blocked and "not valid JSON" in result.errors[0].message  # fails closed


# -- Claude Code fidelity: what scripts read, and what their plain output means ----------

NPM_TEST_REPORT = [sys.executable, str(PLUGINS / "npm_test_report.py")]
PROMPT_CONTEXT = [str(PLUGINS / "prompt_context.sh")]


def npm_test(output: str, *, is_error: bool = False) -> ToolResult:
    return ToolResult("Bash", {"command": "npm test"}, "c7", output=output, is_error=is_error)


async def test_the_event_has_claude_codes_fields_and_tool_response_shape(tmp_path: Path) -> None:
    seen = tmp_path / "event.json"
    plugin = command_plugin(CommandRunner(sh(f"cat > {seen}")), name="spy",
                            hooks=["post_tool_call"])  # fmt: skip
    with Harness(plugin) as harness:
        await harness.ainvoke(hooks.POST_TOOL_CALL, npm_test("  3 passing (12ms)\n"))
    event = json.loads(seen.read_text())
    assert event["hook_event_name"] == "PostToolUse"
    assert (event["tool_name"], event["tool_input"]) == ("Bash", {"command": "npm test"})
    assert event["tool_use_id"] == "c7"
    assert event["session_id"] == "test-session" and event["transcript_path"] == ""
    assert event["tool_response"] == {
        "stdout": "  3 passing (12ms)\n", "stderr": "", "interrupted": False, "isImage": False,
    }  # fmt: skip


async def test_a_script_reading_tool_response_stdout_sees_a_green_npm_test() -> None:
    plugin = command_plugin(CommandRunner(NPM_TEST_REPORT), name="npm-report",
                            hooks=["post_tool_call"])  # fmt: skip
    with Harness(plugin) as harness:
        green = await harness.ainvoke(hooks.POST_TOOL_CALL, npm_test("\n  3 passing (12ms)\n"))
        red = await harness.ainvoke(
            hooks.POST_TOOL_CALL, npm_test("1 failing: expected 2, got 3", is_error=True)
        )
    assert green.errors == () and not green.blocked
    assert harness.system_items == [("context", "npm test passed (3 passing (12ms))")]
    # A failed tool's output is its stderr, as Claude Code reports a failing command.
    assert red.blocked and red.reason == "npm test failed: 1 failing: expected 2, got 3"


async def test_plain_output_of_prompt_and_session_start_hooks_is_model_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the project: the host's current directory
    plugin = command_plugin(CommandRunner(PROMPT_CONTEXT), name="context",
                            hooks=["session_start", "message_received"])  # fmt: skip
    with Harness(plugin) as harness:
        started = await harness.ainvoke(hooks.SESSION_START, SessionStart("test-session"))
        prompted = await harness.ainvoke(hooks.MESSAGE_RECEIVED, MessageEvent("hello"))
    assert started.errors == () and prompted.errors == () and not prompted.blocked
    assert harness.system_items == [
        ("context", "Open issues: 3"),
        ("context", f"Project folder: {tmp_path}. Answer in English."),  # $CLAUDE_PROJECT_DIR
    ]


async def test_the_operator_can_set_the_project_folder() -> None:
    runner = CommandRunner(PROMPT_CONTEXT, env={"CLAUDE_PROJECT_DIR": "/srv/project"})
    plugin = command_plugin(runner, name="context", hooks=["message_received"])
    with Harness(plugin) as harness:
        await harness.ainvoke(hooks.MESSAGE_RECEIVED, MessageEvent("hello"))
    assert harness.system_items == [("context", "Project folder: /srv/project. Answer in English.")]


async def test_plain_output_becomes_context_only_with_the_system_items_grant(
    log_watch: LogWatch,
) -> None:
    plugin = command_plugin(CommandRunner(PROMPT_CONTEXT), name="context",
                            hooks=["message_received"])  # fmt: skip
    with Harness(plugin, capabilities=[]) as harness:
        result = await harness.ainvoke(hooks.MESSAGE_RECEIVED, MessageEvent("hello"))
    assert harness.system_items == [] and result.errors == () and not result.blocked
    assert any("'context' asked for the system_items capability" in m for m in log_watch.messages)


async def test_plain_output_of_other_hooks_is_only_logged() -> None:
    plugin = command_plugin(CommandRunner(sh("cat >/dev/null; echo checked")), name="chatty",
                            hooks=["pre_tool_call"])  # fmt: skip
    with Harness(plugin) as harness:
        result = await harness.ainvoke(hooks.PRE_TOOL_CALL, bash("ls"))
    assert result.empty and harness.system_items == []


class RecordingBackend(ScriptedBackend):
    """A scripted model that keeps every request it was sent."""

    def __init__(self, script: list[Step | str]) -> None:
        super().__init__(script)
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        return await super().complete(request)


async def test_the_model_sees_what_a_prompt_hook_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    plugin = command_plugin(CommandRunner(PROMPT_CONTEXT), name="context",
                            hooks=["session_start", "message_received"])  # fmt: skip
    manager = PluginManager()
    manager.register(plugin, capabilities=["system_items"])
    backend = RecordingBackend(["done"])
    store = SessionStore()
    agent = Agent(backend, manager=manager, store=store)
    result = await agent.run("hello", session_id="s")
    await agent.aclose()
    items = [dict(r.data)["text"] for r in store.records("s") if r.kind == "system_item"]
    store.close()

    assert result.reply == "done"
    [request] = backend.requests
    assert [(m.role, m.content) for m in request.messages if m.role != "system"][-1] == (
        "user", "hello",
    )  # fmt: skip
    seen = [m.content for m in request.messages if m.role == "system"]
    assert "context: Open issues: 3" in seen
    assert f"context: Project folder: {tmp_path}. Answer in English." in seen
    assert items == ["Open issues: 3", f"Project folder: {tmp_path}. Answer in English."]
