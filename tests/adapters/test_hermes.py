"""The Hermes Agent adapter: real Hermes agent turns (`AIAgent.run_conversation`) through
Hermes' own plugin manager, middleware and hook dispatch; only the model's HTTP client is
scripted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest

pytest.importorskip("hermes_cli")

import hermes_cli.plugins as hermes_plugins
from hermes_cli.plugins import PluginContext, PluginManifest, get_plugin_manager, invoke_hook
from openai.types.chat import ChatCompletion
from run_agent import AIAgent
from tools.registry import registry

from interlock import (
    Ask,
    Block,
    HookContext,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    Modify,
    PluginManager,
    Respond,
    ToolCall,
    ToolResult,
    hook,
)
from interlock.adapters.hermes import CLAIMS, HermesConfigError, Interlock, register
from interlock.external import CommandRunner, command_plugin
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig
from interlock.testing import Conformance, Expected

from .helpers import ROOT

TOOLSET = "interlock-test"
RAN: list[dict[str, Any]] = []


def _shell(args: dict[str, Any], **_: Any) -> str:
    RAN.append(dict(args))
    return json.dumps({"output": f"ran {args.get('command')}"})


registry.register(
    name="shell",
    toolset=TOOLSET,
    schema={
        "name": "shell",
        "description": "Run a shell command.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
    handler=_shell,
)


def completion(message: dict[str, Any]) -> ChatCompletion:
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return ChatCompletion.model_validate(
        {
            "id": "scripted",
            "object": "chat.completion",
            "created": 0,
            "model": "scripted",
            "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )


class Model:
    """The scripted model: calls `shell` once with `command`, then answers with what the
    tool returned; keeps every request's messages in `requests`."""

    def __init__(self, command: str = "ls", barrier: threading.Barrier | None = None) -> None:
        self.command = command
        self.barrier = barrier
        self.requests: list[list[dict[str, Any]]] = []

    def create(self, **request: Any) -> ChatCompletion:
        messages = [dict(m) for m in request["messages"]]
        self.requests.append(messages)
        if self.barrier is not None:
            self.barrier.wait()
        last = next(m for m in reversed(messages) if m["role"] != "system")
        if last["role"] != "tool":
            call = {
                "id": f"call-{len(self.requests)}",
                "type": "function",
                "function": {"name": "shell", "arguments": json.dumps({"command": self.command})},
            }
            return completion({"role": "assistant", "content": None, "tool_calls": [call]})
        return completion({"role": "assistant", "content": f"tool said: {last['content']}"})

    def tool_result(self, index: int = -1) -> str:
        """The tool message the model received in request `index`."""
        last = next(m for m in reversed(self.requests[index]) if m["role"] != "system")
        assert last["role"] == "tool"
        return str(last["content"])


@pytest.fixture(autouse=True)
def hermes_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A Hermes home of its own and a fresh Hermes plugin manager for each test."""
    home = tmp_path / "hermes"
    home.mkdir()
    monkeypatch.setenv("HERMES_HOME", str(home))
    monkeypatch.delenv("INTERLOCK_CONFIG", raising=False)
    monkeypatch.setattr(hermes_plugins, "_plugin_manager", None)
    RAN.clear()
    yield home
    RAN.clear()


def install(manager: PluginManager) -> Interlock:
    """The adapter registered with Hermes' plugin manager, as a Hermes plugin would."""
    hermes = get_plugin_manager()
    hermes._discovered = True  # nothing else is discovered in these tests
    adapter = Interlock(manager)
    adapter.register(PluginContext(PluginManifest(name="interlock"), hermes))
    return adapter


def agent(model: Model, session_id: str | None = None) -> AIAgent:
    hermes_agent = AIAgent(
        base_url="http://127.0.0.1:9/v1",
        api_key="offline",
        model="scripted",
        quiet_mode=True,
        enabled_toolsets=[TOOLSET],
        skip_context_files=True,
        skip_memory=True,
        max_iterations=4,
        session_id=session_id,
    )
    hermes_agent.client = MagicMock()
    hermes_agent.client.chat.completions.create.side_effect = model.create
    return hermes_agent


def run(prompt: str, model: Model, session_id: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = agent(model, session_id).run_conversation(prompt)
    return result


@hook("pre_tool_call")
def no_rm(call: ToolCall, ctx: HookContext) -> Block | None:
    if "rm -rf" in str(call.arguments.get("command", "")):
        return Block("destructive shell command")
    return None


# -- tools ------------------------------------------------------------------------------


def test_a_block_stops_the_tool_and_the_model_reads_the_reason(manager: PluginManager) -> None:
    manager.register(no_rm)
    install(manager)
    model = Model("rm -rf /")
    result = run("clean up", model)

    assert RAN == []
    refusal = "tool 'shell' was blocked by plugin 'no_rm': destructive shell command"
    assert json.loads(model.tool_result()) == {"error": refusal}
    assert result["final_response"] == "tool said: " + json.dumps({"error": refusal})


def test_a_modify_of_the_arguments_reaches_the_tool(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    def dry_run(call: ToolCall, ctx: HookContext) -> Modify[ToolCall]:
        command = f"echo {call.arguments['command']}"
        return Modify(ToolCall(call.tool_name, {"command": command}, call.call_id))

    manager.register(dry_run)
    install(manager)
    model = Model("ls /tmp")
    run("list", model)

    assert RAN == [{"command": "echo ls /tmp"}]
    assert json.loads(model.tool_result()) == {"output": "ran echo ls /tmp"}


def test_a_post_tool_call_modify_is_what_the_model_reads(manager: PluginManager) -> None:
    seen: list[ToolResult] = []

    @hook("post_tool_call")
    def redact(result: ToolResult, ctx: HookContext) -> Modify[ToolResult]:
        seen.append(result)
        return Modify(ToolResult(result.tool_name, result.arguments, result.call_id, "[hidden]"))

    manager.register(redact)
    install(manager)
    model = Model("cat secrets")
    run("show", model)

    assert RAN == [{"command": "cat secrets"}]
    assert model.tool_result() == "[hidden]"
    assert seen[0].call_id == "call-1" and "ran cat secrets" in seen[0].output


def test_an_ask_uses_hermes_approval_and_a_refusal_blocks(
    manager: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str]] = []

    def request_tool_approval(tool: str, message: str, **_: Any) -> dict[str, Any]:
        asked.append((tool, message))
        return {"approved": False, "message": "the user said no"}

    monkeypatch.setattr("tools.approval.request_tool_approval", request_tool_approval)

    @hook("pre_tool_call")
    def ask(call: ToolCall, ctx: HookContext) -> Ask:
        return Ask(f"run {call.arguments['command']}?")

    manager.register(ask)
    install(manager)
    model = Model("make deploy")
    run("ship it", model)

    assert asked == [("shell", "run make deploy?")]
    assert RAN == []
    assert json.loads(model.tool_result()) == {"error": "the user said no"}


def test_a_raising_gate_fails_closed_and_the_run_goes_on(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    def broken(call: ToolCall, ctx: HookContext) -> None:
        raise RuntimeError("policy store down")

    manager.register(broken)
    install(manager)
    model = Model("ls")
    result = run("list", model)

    assert RAN == []
    error = json.loads(model.tool_result())["error"]
    assert "broken" in error and "policy store down" in error
    assert result["final_response"].startswith("tool said:")


def test_an_arguments_change_after_the_judgement_is_judged_again(
    manager: PluginManager,
) -> None:
    """Another plugin's tool_request middleware registered after interlock's rewrites the
    call: the gate sees the final arguments before the tool runs."""
    manager.register(no_rm)
    install(manager)
    rewrites = {"args": {"command": "rm -rf /"}}
    ctx = PluginContext(PluginManifest(name="rewriter"), get_plugin_manager())
    ctx.register_middleware("tool_request", lambda **_: rewrites)
    model = Model("ls")
    run("list", model)

    assert RAN == []
    assert json.loads(model.tool_result()) == {
        "error": "tool 'shell' was blocked by plugin 'no_rm': destructive shell command"
    }


# -- the model --------------------------------------------------------------------------


def test_respond_answers_without_calling_the_model(manager: PluginManager) -> None:
    @hook("pre_llm_call")
    def cached(request: LLMRequest, ctx: HookContext) -> Respond:
        return Respond(LLMResponse(request.model, content="from the cache"))

    manager.register(cached)
    install(manager)
    model = Model()
    result = run("hello", model)

    assert model.requests == []
    assert result["final_response"] == "from the cache"


def test_message_received_redacts_the_user_text_in_every_request(
    manager: PluginManager,
) -> None:
    @hook("message_received")
    def redact(event: MessageEvent, ctx: HookContext) -> Modify[MessageEvent]:
        return Modify(MessageEvent(event.content.replace("hunter2", "[secret]"), event.role))

    manager.register(redact)
    install(manager)
    model = Model()
    run("my password is hunter2, list files", model)

    assert len(model.requests) == 2
    assert "hunter2" not in json.dumps(model.requests)
    assert any("my password is [secret]" in str(m["content"]) for m in model.requests[0])


def test_a_blocked_message_is_answered_without_the_model(manager: PluginManager) -> None:
    @hook("message_received")
    def refuse(event: MessageEvent, ctx: HookContext) -> Block:
        return Block("not on this channel")

    manager.register(refuse)
    install(manager)
    model = Model()
    result = run("hello", model)

    assert model.requests == []
    assert result["final_response"] == (
        "your message was blocked by plugin 'refuse': not on this channel"
    )


def test_a_pre_llm_call_modify_and_system_items_reach_the_model(
    manager: PluginManager,
) -> None:
    @hook("pre_llm_call")
    def remind(request: LLMRequest, ctx: HookContext) -> Modify[LLMRequest]:
        if ctx.system_items is not None and not ctx.state.get("reminded"):
            ctx.state["reminded"] = True
            ctx.system_items.append("reminder", "keep answers short")
        messages = tuple(
            Message("user", f"{m.content} (answer in English)") if m.role == "user" else m
            for m in request.messages
        )
        return Modify(LLMRequest(request.model, messages, request.tools, request.params))

    manager.register(remind, capabilities=["system_items"])
    install(manager)
    model = Model()
    run("list", model)

    first, second = model.requests
    assert [m["content"] for m in first if m["role"] == "user"] == ["list (answer in English)"]
    assert first[-1] == {"role": "system", "content": "[reminder] keep answers short"}
    # Durable: the next request carries it too, after the tool's result.
    assert [m["role"] for m in second[-2:]] == ["tool", "system"]
    assert second[-1] == first[-1]


# -- sessions and conformance -------------------------------------------------------------


def test_each_mapped_hook_fires_once_per_event() -> None:
    kit = Conformance(CLAIMS)
    install(kit.manager)
    model = Model("ls")
    hermes_agent = agent(model, "conv-1")
    hermes_agent.run_conversation("list the files")
    kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1))
    assert kit.recorder.names().count("session_start") == 1
    assert "session_end" not in kit.recorder.names()

    kit.reset()  # a second turn: the same session goes on, nothing restarts
    hermes_agent.run_conversation("again")
    kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1))
    assert "session_start" not in kit.recorder.names()

    invoke_hook("on_session_finalize", session_id="conv-1", platform="cli", reason="exit")
    assert kit.recorder.names().count("session_end") == 1
    (call,) = [p for n, p in kit.recorder.events if n == "pre_tool_call"]
    assert call.call_id == "call-3" and dict(call.arguments) == {"command": "ls"}


def test_session_state_survives_turns_and_sessions_stay_apart(
    manager: PluginManager,
) -> None:
    counts: dict[str, list[int]] = {}

    @hook("pre_tool_call")
    def count(call: ToolCall, ctx: HookContext) -> None:
        seen = ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        counts.setdefault(ctx.session.id if ctx.session else "", []).append(seen)

    manager.register(count)
    install(manager)
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def conversation(session_id: str) -> None:
        try:
            hermes_agent = agent(Model("ls", barrier), session_id)
            hermes_agent.run_conversation("one")
            hermes_agent.run_conversation("two")
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=conversation, args=(k,)) for k in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert counts == {"a": [1, 2], "b": [1, 2]}


# -- built-ins, out-of-process plugins, the entry point -------------------------------------


def test_tool_guard_denies_a_destructive_command(manager: PluginManager) -> None:
    manager.register(ToolGuard(ToolGuardConfig(destructive="deny")))
    install(manager)
    model = Model("rm -rf /")
    run("clean up", model)

    assert RAN == []
    assert "tool-guard" in json.loads(model.tool_result())["error"]


def test_a_command_hook_blocks_through_the_adapter(manager: PluginManager) -> None:
    script = 'case "$(cat)" in *"rm -rf"*) echo "no deleting here" >&2; exit 2;; esac'
    guard = command_plugin(
        CommandRunner(["/bin/sh", "-c", script]), name="sh-guard", hooks=["pre_tool_call"]
    )
    manager.register(guard)
    install(manager)
    model = Model("rm -rf /")
    run("clean up", model)

    assert RAN == []
    assert json.loads(model.tool_result()) == {
        "error": "tool 'shell' was blocked by plugin 'sh-guard': no deleting here"
    }


def write_config(home: Path, tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "interlock.yaml"
    config.write_text(
        "plugins:\n  - name: tool-guard\n    use: tool-guard\n    config: {destructive: deny}\n"
    )
    (home / "config.yaml").write_text(
        f"plugins:\n  enabled: [interlock]\n  entries:\n    interlock:\n      config: {config}\n"
        + extra
    )
    return config


def test_hermes_loads_the_entry_point_with_its_config(hermes_home: Path, tmp_path: Path) -> None:
    write_config(hermes_home, tmp_path)
    hermes = get_plugin_manager()
    hermes.discover_and_load(force=True)

    loaded = hermes._plugins["interlock"]
    assert loaded.enabled and loaded.error is None
    assert set(loaded.middleware_registered) == {"tool_request", "llm_request", "llm_execution"}
    assert "pre_tool_call" in loaded.hooks_registered

    model = Model("rm -rf /")
    run("clean up", model)
    assert RAN == []
    assert "tool-guard" in json.loads(model.tool_result())["error"]


def test_without_a_config_hermes_reports_the_plugin_as_failed(hermes_home: Path) -> None:
    (hermes_home / "config.yaml").write_text("plugins:\n  enabled: [interlock]\n")
    hermes = get_plugin_manager()
    hermes.discover_and_load(force=True)

    loaded = hermes._plugins["interlock"]
    assert not loaded.enabled
    assert loaded.error is not None and "INTERLOCK_CONFIG" in loaded.error
    with pytest.raises(HermesConfigError, match=r"interlock\.yaml"):
        register(PluginContext(PluginManifest(name="interlock"), hermes))


def test_the_example_runs(hermes_home: Path) -> None:
    env = {**os.environ, "HERMES_HOME": str(hermes_home)}
    env.pop("INTERLOCK_CONFIG", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "adapters" / "hermes" / "example.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "the model read: tool 'shell' was blocked by plugin 'tool-guard'" in done.stdout
    assert "ran: []" in done.stdout
