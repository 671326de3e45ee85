"""Claude Code: `interlock claude-hook` answers Claude Code's hook events as it expects."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
from interlock.adapters.claude_code import Answer, StateStore, event_payload, handle
from interlock.testing import Conformance, Expected

from .helpers import ROOT, SERVED_GUARD, Counting, broken_gate

EXAMPLE = ROOT / "examples" / "adapters" / "claude_code"
TIMEOUT = 60  # seconds any one hook process may take, however loaded the machine


def pre(command: str, session: str = "s-1", call_id: str = "toolu_1") -> dict[str, Any]:
    return {
        "hook_event_name": "PreToolUse",
        "session_id": session,
        "transcript_path": "",
        "cwd": str(ROOT),
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "run it"},
        "tool_use_id": call_id,
    }


def post(command: str, stdout: str, session: str = "s-1", call_id: str = "toolu_1") -> dict:
    event = pre(command, session, call_id)
    event["hook_event_name"] = "PostToolUse"
    event["tool_response"] = {
        "stdout": stdout,
        "stderr": "",
        "interrupted": False,
        "isImage": False,
    }
    return event


def prompt(text: str, session: str = "s-1") -> dict[str, Any]:
    return {
        "hook_event_name": "UserPromptSubmit",
        "session_id": session,
        "cwd": str(ROOT),
        "prompt": text,
    }


def event(name: str, session: str = "s-1", **fields: Any) -> dict[str, Any]:
    return {"hook_event_name": name, "session_id": session, "cwd": str(ROOT), **fields}


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state")


@pytest.fixture
def manager() -> Iterator[PluginManager]:
    manager = PluginManager()
    yield manager
    manager.close()


def ask(manager: PluginManager, store: StateStore, data: dict[str, Any]) -> dict[str, Any]:
    reply = handle(json.dumps(data), config=None, store=store, manager=manager)
    assert reply.code == 0 and reply.stderr == ""
    return reply.output or {}


def decision(output: dict[str, Any]) -> tuple[str | None, str | None]:
    specific = output.get("hookSpecificOutput", {})
    return specific.get("permissionDecision"), specific.get("permissionDecisionReason")


# -- plugins --------------------------------------------------------------------------


@hook("pre_tool_call", name="no-rm")
def no_rm(call: ToolCall, ctx: HookContext) -> Any:
    if "rm -rf" in str(call.arguments.get("command", "")):
        return Block("rm -rf is not allowed here")
    if str(call.arguments.get("command", "")).startswith("git push"):
        return Ask("push to the remote?")
    return None


@hook("pre_tool_call", name="dry-run")
def dry_run(call: ToolCall, ctx: HookContext) -> Any:
    return Modify(call.replace(arguments={**call.arguments, "command": "echo dry run"}))


class Context(Plugin):
    """Adds model context at every event it can, notifies the user, counts per session."""

    name = "context"

    def on_message_received(self, message: MessageEvent, ctx: HookContext) -> Any:
        if "password" in message.content:
            return Modify(message.replace(content=message.content.replace("password", "***")))
        if "forbidden" in message.content:
            return Block("that topic is not allowed")
        assert ctx.system_items is not None and ctx.notify is not None
        ctx.system_items.append("reminder", "run the tests before you commit")
        ctx.notify.notify("interlock added a reminder")
        return None

    def on_turn_end(self, payload: Any, ctx: HookContext) -> None:
        assert ctx.system_items is not None
        ctx.system_items.append("reminder", f"turn {payload.turn} ended: {payload.content}")

    def on_post_tool_call(self, result: ToolResult, ctx: HookContext) -> Any:
        if "secret" in result.output:
            return Modify(result.replace(output=result.output.replace("secret", "[hidden]")))
        return None


# -- PreToolUse -----------------------------------------------------------------------


def test_a_block_denies_the_tool_call_with_the_reason(manager, store) -> None:
    manager.register(no_rm)
    output = ask(manager, store, pre("rm -rf /"))
    assert output == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": "rm -rf is not allowed here",
        }
    }


def test_a_call_let_through_carries_no_permission_decision(manager, store) -> None:
    manager.register(no_rm)
    reply = handle(json.dumps(pre("ls -la")), config=None, store=store, manager=manager)
    assert reply == Answer()  # nothing printed, exit 0: Claude Code's own rules still apply


def test_an_ask_asks_the_user(manager, store) -> None:
    manager.register(no_rm)
    assert decision(ask(manager, store, pre("git push origin main"))) == (
        "ask",
        "push to the remote?",
    )


def test_a_modify_of_arguments_is_updated_input_with_the_whole_object(manager, store) -> None:
    manager.register(dry_run)
    output = ask(manager, store, pre("make deploy"))
    assert output == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "updatedInput": {"command": "echo dry run", "description": "run it"},
        }
    }
    assert "permissionDecision" not in output["hookSpecificOutput"]


def test_a_raising_gate_fails_closed(manager, store) -> None:
    manager.register(broken_gate)  # pre_tool_call gates fail closed by default
    verdict, reason = decision(ask(manager, store, pre("ls")))
    assert verdict == "deny"
    assert "broken-gate" in reason and "policy server down" in reason


def test_a_malformed_event_is_refused_never_let_through(manager, store) -> None:
    manager.register(no_rm)
    bad = pre("ls")
    del bad["tool_name"]
    verdict, reason = decision(ask(manager, store, bad))
    assert verdict == "deny" and "tool_name" in reason
    reply = handle(b"not json", config=None, store=store, manager=manager)
    assert reply.code == 2 and "not a hook event" in reply.stderr  # exit 2 stops a tool
    assert (
        handle(json.dumps(event("Notification")), config=None, store=store, manager=manager)
        == Answer()
    )  # not ours: it passes


# -- other events ---------------------------------------------------------------------


def test_prompt_block_modify_context_and_notifications(manager, store) -> None:
    manager.register(Context(), capabilities=["system_items", "notify"])
    assert ask(manager, store, prompt("tell me the forbidden thing")) == {
        "decision": "block",
        "reason": "that topic is not allowed",
    }
    changed = ask(manager, store, prompt("my password is hunter2"))
    assert changed["decision"] == "block"  # Claude Code cannot send a changed prompt
    assert "context changed this prompt" in changed["reason"]
    assert "hunter2" not in json.dumps(changed)
    assert ask(manager, store, prompt("hello")) == {
        "hookSpecificOutput": {
            "hookEventName": "UserPromptSubmit",
            "additionalContext": "run the tests before you commit",
        },
        "systemMessage": "interlock added a reminder",
    }


def test_context_added_at_stop_reaches_the_model_at_the_next_event(manager, store) -> None:
    manager.register(Context(), capabilities=["system_items"])
    ask(manager, store, prompt("hello"))
    stop = event("Stop", stop_hook_active=False, last_assistant_message="done")
    assert ask(manager, store, stop) == {}  # a Stop answer would make Claude go on
    blocked = ask(manager, store, prompt("the forbidden thing"))
    assert "hookSpecificOutput" not in blocked  # a blocked prompt carries none: it waits
    output = ask(manager, store, pre("ls"))
    assert output["hookSpecificOutput"]["additionalContext"] == "turn 1 ended: done"
    assert "additionalContext" not in ask(manager, store, pre("ls")).get("hookSpecificOutput", {})


def test_a_post_tool_call_modify_replaces_the_output_in_its_shape(manager, store) -> None:
    manager.register(Context())
    output = ask(manager, store, post("cat .env", "token=secret\n"))
    assert output["hookSpecificOutput"]["updatedToolOutput"] == {
        "stdout": "token=[hidden]\n",
        "stderr": "",
        "interrupted": False,
        "isImage": False,
    }
    assert ask(manager, store, post("ls", "a.txt\n")) == {}


def test_events_map_to_catalog_payloads() -> None:
    spec, payload = event_payload(post("ls", "a.txt"))
    assert spec.name == "post_tool_call"
    assert payload == ToolResult(
        "Bash", {"command": "ls", "description": "run it"}, "toolu_1", "a.txt"
    )
    failed = {**pre("ls"), "hook_event_name": "PostToolUseFailure", "error": "exit 1"}
    spec, payload = event_payload(failed)
    assert (spec.name, payload.output, payload.is_error) == ("post_tool_call", "exit 1", True)
    spec, payload = event_payload({**pre("ls"), "tool_input": None})
    assert payload.arguments == {}  # never None
    spec, payload = event_payload(event("SessionEnd", reason="logout"), turn=4)
    assert (spec.name, payload.reason, payload.turns) == ("session_end", "logout", 4)


def test_each_mapped_hook_fires_exactly_once_per_event(store) -> None:
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
    conversation = [
        event("SessionStart", source="startup"),
        prompt("list the files, then count them"),
        pre("ls", call_id="toolu_1"),
        post("ls", "a.txt\nb.txt\n", call_id="toolu_1"),
        pre("ls | wc -l", call_id="toolu_2"),
        {
            **pre("ls | wc -l", call_id="toolu_2"),
            "hook_event_name": "PostToolUseFailure",
            "error": "wc: not found",
        },
        event("Stop", stop_hook_active=False),
        event("SessionEnd", reason="prompt_input_exit"),
    ]
    for data in conversation:
        handle(json.dumps(data), config=None, store=store, manager=kit.manager)
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
    turn_end = kit.recorder.events[6][1]
    assert turn_end.turn == 1
    kit.manager.close()


# -- per-session state ----------------------------------------------------------------


def counts(manager: PluginManager, store: StateStore, session: str, times: int) -> list[int]:
    seen = []
    for _ in range(times):
        output = ask(manager, store, pre("ls", session=session))
        seen.append(output["hookSpecificOutput"]["updatedInput"]["count"])
    return seen


def test_state_survives_between_events_of_a_session_and_stays_apart(manager, store) -> None:
    manager.register(Counting())
    assert counts(manager, store, "session-a", 3) == [1, 2, 3]  # no SessionStart needed
    assert counts(manager, store, "session-b", 1) == [1]  # it saw 0 before
    with store.session("session-a") as state:
        assert state.states["counting"] == {"calls": 3}


def test_session_end_removes_the_state_and_age_sweeps_it(manager, store) -> None:
    manager.register(Counting())
    counts(manager, store, "ended", 2)
    counts(manager, store, "abandoned", 2)
    ask(manager, store, event("SessionEnd", session="ended", reason="logout"))
    assert counts(manager, store, "ended", 1) == [1]  # a new start
    files = {p.name for p in store.directory.glob("*.json")}
    assert len(files) == 2
    old = time.time() - store.max_age - 60
    for path in store.directory.glob("*.json"):
        os.utime(path, (old, old))
    assert store.sweep(force=True) == 2
    assert counts(manager, store, "abandoned", 1) == [1]


def test_state_that_is_not_json_is_dropped_with_a_warning(manager, store, caplog) -> None:
    @hook("pre_tool_call", name="keeps-a-set")
    def keeps_a_set(call: ToolCall, ctx: HookContext) -> None:
        ctx.state["seen"] = {call.tool_name}

    manager.register(keeps_a_set)
    with caplog.at_level(logging.WARNING, logger="interlock.adapters.claude_code"):
        assert ask(manager, store, pre("ls")) == {}
    assert "keeps-a-set" in caplog.text and "not JSON" in caplog.text
    with store.session("s-1") as state:
        assert state.states == {}


# -- deadline and locks ---------------------------------------------------------------


def test_an_event_waiting_past_the_deadline_for_its_session_is_refused(manager, store) -> None:
    manager.register(Counting())
    with store.session("s-1"):  # another event of the session holds its state
        reply = handle(json.dumps(pre("ls")), config=None, store=store, manager=manager,
                       deadline=0.2)  # fmt: skip
        verdict, reason = decision(reply.output or {})
        assert verdict == "deny" and "another event of session 's-1'" in reason
        assert "0.2 s deadline" in reason
        reply = handle(json.dumps(prompt("hi")), config=None, store=store, manager=manager,
                       deadline=0.2)  # fmt: skip
        assert (reply.output or {})["decision"] == "block"
    assert counts(manager, store, "s-1", 1) == [1]  # the refused events ran no plugin


def test_different_sessions_never_wait_for_each_other(manager, store) -> None:
    manager.register(Counting())
    # "alpha" and "beta-24" shared one of the 64 lock stripes this store used to have
    with store.session("alpha"):
        assert counts(manager, store, "beta-24", 1) == [1]
        with pytest.raises(TimeoutError, match="alpha"), store.session("alpha", timeout=0):
            pass


def test_a_gate_still_running_at_the_deadline_is_denied(manager, store) -> None:
    release = threading.Event()
    entered = threading.Event()

    @hook("pre_tool_call", name="slow-gate", timeout=None)
    def slow_gate(call: ToolCall, ctx: HookContext) -> None:
        ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        entered.set()
        release.wait(TIMEOUT)

    manager.register(slow_gate)
    try:
        reply = handle(json.dumps(pre("ls")), config=None, store=store, manager=manager,
                       deadline=0.2)  # fmt: skip
        assert entered.is_set()
        verdict, reason = decision(reply.output or {})
        assert verdict == "deny" and "slow-gate" in reason and "0.2 s deadline" in reason
        reply = handle(json.dumps(prompt("hi")), config=None, store=store, manager=manager,
                       deadline=60)  # fmt: skip
        assert reply.output is None  # the session's lock was let go
    finally:
        release.set()
    with store.session("s-1") as state:
        assert "slow-gate" not in state.states  # what the overdue event did is not kept


def test_a_lock_file_removed_while_waited_on_is_not_shared(store, monkeypatch) -> None:
    import interlock.adapters.claude_code as claude_code

    real = claude_code._flock
    removed: list[bool] = []

    def flock_after_removal(fd: int, timeout: float | None) -> bool:
        if not removed:  # the holder ended the session between this open and this lock
            removed.append(True)
            for path in (store.directory / "locks").iterdir():
                path.unlink()
        return real(fd, timeout)

    monkeypatch.setattr(claude_code, "_flock", flock_after_removal)
    with store.session("s-1"):
        assert removed
        monkeypatch.setattr(claude_code, "_flock", real)
        with pytest.raises(TimeoutError), store.session("s-1", timeout=0):
            pass


def test_session_end_and_the_sweep_remove_lock_files(manager, store) -> None:
    manager.register(Counting())
    counts(manager, store, "ended", 1)
    counts(manager, store, "abandoned", 1)
    locks = store.directory / "locks"
    assert len(list(locks.iterdir())) == 2
    ask(manager, store, event("SessionEnd", session="ended", reason="logout"))
    assert len(list(locks.iterdir())) == 1
    old = time.time() - store.max_age - 60
    for path in store.directory.glob("*.json"):
        os.utime(path, (old, old))
    orphan = locks / ("0" * 40)  # a session's first event that died before saving
    orphan.touch()
    os.utime(orphan, (old, old))
    assert store.sweep(force=True) == 1
    assert list(locks.iterdir()) == []


# -- the command ----------------------------------------------------------------------


def hook_process(
    config: Path | None, state: Path, data: dict[str, Any] | bytes, *extra: str
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "interlock", "claude-hook", "--state-dir", str(state), *extra]
    if config is not None:
        args += ["--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("INTERLOCK_CONFIG", None)
    with tempfile.TemporaryFile() as stdin:  # read at its own pace: all run at once
        stdin.write(data if isinstance(data, bytes) else json.dumps(data).encode())
        stdin.seek(0)
        return subprocess.Popen(
            args, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env
        )


def run_hook(
    config: Path | None, state: Path, data: dict[str, Any] | bytes
) -> tuple[int, Any, str]:
    process = hook_process(config, state, data)
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    text = out.decode()
    return process.returncode, json.loads(text) if text else None, err.decode()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    return path


def test_the_command_denies_with_tool_guard_and_passes_the_rest(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
version: 1
plugins:
  - name: tool-guard
    use: tool-guard
    on_error: block
    config: {destructive: deny}
""",
    )
    code, output, _ = run_hook(config, tmp_path / "state", pre("rm -rf ~/"))
    assert code == 0
    verdict, reason = decision(output)
    assert verdict == "deny" and "destructive" in reason
    assert run_hook(config, tmp_path / "state", pre("ls -la"))[:2] == (0, None)


def test_a_config_that_fails_to_load_still_denies(tmp_path: Path) -> None:
    config = write_config(tmp_path, "plugins:\n  - name: x\n    use: no.such.module:Plugin\n")
    code, output, _ = run_hook(config, tmp_path / "state", pre("ls"))
    verdict, reason = decision(output)
    assert code == 0 and verdict == "deny"
    assert "could not load its config" in reason and "no.such.module" in reason
    code, output, _ = run_hook(None, tmp_path / "state", pre("ls"))  # no config at all
    assert decision(output)[0] == "deny" and "--config" in decision(output)[1]
    code, output, _ = run_hook(config, tmp_path / "state", prompt("hi"))
    assert output["decision"] == "block"
    code, output, err = run_hook(config, tmp_path / "state", event("Stop"))
    assert (code, output) == (1, None) and "no.such.module" in err  # shown, not blocking


def test_an_out_of_process_plugin_works_unchanged(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""
version: 1
plugins:
  - name: guard
    external: {{stdio: {json.dumps(SERVED_GUARD)}}}
""",
    )
    output = run_hook(config, tmp_path / "state", pre("rm -rf build"))[1]
    assert decision(output) == ("deny", "rm -rf is not allowed")
    output = run_hook(config, tmp_path / "state", pre("ls"))[1]
    assert output["hookSpecificOutput"]["updatedInput"] == {
        "command": "ls",
        "description": "run it",
        "seen": 1,
    }


def test_stdout_holds_only_the_answer_when_a_plugin_prints(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
plugins:
  - {name: chatty, use: "tests.adapters.claude_plugins:Chatty"}
  - {name: counter, use: "tests.adapters.claude_plugins:Counter"}
""",
    )
    code, output, err = run_hook(config, tmp_path / "state", pre("ls"))
    assert code == 0 and output["hookSpecificOutput"]["updatedInput"]["count"] == 1
    assert "chatty on stdout" in err


def test_concurrent_processes_of_one_session_lose_no_update(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
plugins:
  - {name: counter, use: "tests.adapters.claude_plugins:Counter"}
""",
    )
    state = tmp_path / "state"
    processes = [hook_process(config, state, pre("ls", session="busy")) for _ in range(8)]
    seen = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, err.decode()
            seen.append(json.loads(out)["hookSpecificOutput"]["updatedInput"]["count"])
    finally:
        for process in processes:
            process.kill()
    assert sorted(seen) == list(range(1, 9))  # each saw the one before it: taken in turn
    with StateStore(state).session("busy") as stored:
        assert stored.states["counter"] == {"calls": 8}


def test_a_hung_gate_is_denied_at_the_deadline_and_the_process_ends(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
plugins:
  - {name: stuck, use: "tests.adapters.claude_plugins:Stuck", timeout: 600s}
""",
    )
    process = hook_process(config, tmp_path / "state", pre("ls"), "--deadline", "1")
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 0, err.decode()
    verdict, reason = decision(json.loads(out))
    assert verdict == "deny" and "stuck" in reason and "1 s deadline" in reason
    code, _output, err = run_hook_with(config, tmp_path, "--deadline", "0")
    assert code == 2 and "--deadline" in err


def test_parallel_events_behind_a_hung_gate_are_all_denied(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
plugins:
  - {name: stuck, use: "tests.adapters.claude_plugins:Stuck", timeout: 600s}
""",
    )
    state = tmp_path / "state"
    processes = [
        hook_process(config, state, pre(f"ls {i}", call_id=f"t{i}"), "--deadline", "2")
        for i in range(3)
    ]
    reasons = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, err.decode()
            verdict, reason = decision(json.loads(out))
            assert verdict == "deny", reason
            reasons.append(reason)
    finally:
        for process in processes:
            process.kill()
    assert all("2 s deadline" in r for r in reasons)
    assert any("stuck" in r for r in reasons)  # the first to get the lock ran the gate


def run_hook_with(config: Path, tmp_path: Path, *extra: str) -> tuple[int, Any, str]:
    process = hook_process(config, tmp_path / "state", pre("ls"), *extra)
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    return process.returncode, out.decode(), err.decode()


def test_the_example_settings_and_config(tmp_path: Path) -> None:
    settings = json.loads((EXAMPLE / "settings.json").read_text())
    commands = {
        name: [h["command"] for m in matchers for h in m["hooks"]]
        for name, matchers in settings["hooks"].items()
    }
    assert set(commands) == {
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "PostToolUseFailure",
        "Stop",
        "SessionEnd",
    }
    assert all(
        c == ['interlock claude-hook --config "$CLAUDE_PROJECT_DIR"/.claude/interlock.yaml']
        for c in commands.values()
    )
    config = EXAMPLE / "interlock.yaml"
    state = tmp_path / "state"
    assert decision(run_hook(config, state, pre("rm -rf /"))[1])[0] == "deny"
    assert decision(run_hook(config, state, pre("git push origin main"))[1])[0] == "ask"
    assert run_hook(config, state, pre("ls -la"))[:2] == (0, None)
    output = run_hook(config, state, prompt("mail me at ann@example.com"))[1]
    assert output["decision"] == "block" and "ann@example.com" not in json.dumps(output)
