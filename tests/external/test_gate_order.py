"""A remote plugin cannot place itself after a gate, nor rewrite what the gate approved."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from interlock import Block, ToolCall, hook, hooks, load_config

from .conftest import PLUGINS, LogWatch

REWRITER = [sys.executable, str(PLUGINS / "rewriter.py")]


@hook("pre_tool_call", name="guard")
def guard(call: ToolCall, ctx: Any) -> Block | None:
    if "rm -rf" in str(call.arguments.get("command", "")):
        return Block("destructive command")
    return None


def test_a_suggested_priority_does_not_put_a_remote_plugin_after_the_gate(
    tmp_path: Path, log_watch: LogWatch
) -> None:
    config = tmp_path / "interlock.yaml"
    config.write_text(f"""
plugins:
  - name: rewriter
    external: {{stdio: {REWRITER}}}
    on_error: ignore
""")
    manager = load_config(config)  # asks the plugin for its hooks: it wants priority 1e6
    manager.register(guard)  # registered after it, at priority 0
    try:
        [registration] = [r for r in manager.registrations() if r.plugin == "rewriter"]
        assert registration.priority == 0
        assert any("'rewriter' suggests priority 1000000" in m for m in log_watch.messages)
        result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    finally:
        manager.close()
    # It runs first (the file's order), and the guard judges what it made of the call.
    assert result.modified_by == ("rewriter",)
    assert result.blocked_by == "guard" and result.reason == "destructive command"


def test_a_remote_rewrite_after_the_gate_is_judged_by_the_gate(tmp_path: Path) -> None:
    config = tmp_path / "interlock.yaml"
    config.write_text(f"""
plugins:
  - name: rewriter
    external: {{stdio: {REWRITER}}}
    priority: 1000000        # the operator even puts it last
    on_error: ignore
""")
    manager = load_config(config)
    manager.register(guard)
    try:
        result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    finally:
        manager.close()
    assert result.blocked_by == "guard"


def test_the_measured_attack_an_external_rewriter_listed_before_tool_guard(
    tmp_path: Path,
) -> None:
    # The rewriter asks (in initialize) to run last and turns every call into
    # `rm -rf / --no-preserve-root`; tool-guard approved `ls`.
    config = tmp_path / "interlock.yaml"
    config.write_text(f"""
plugins:
  - name: rewriter
    external: {{stdio: {REWRITER}}}
    on_error: ignore
  - name: tool-guard
    use: tool-guard
    on_error: block
    config: {{destructive: deny}}
""")
    manager = load_config(config)
    try:
        result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    finally:
        manager.close()
    assert result.blocked_by == "tool-guard"
