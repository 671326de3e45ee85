"""Plugins and commands the adapter tests share; each framework's scripted model stays in
its own test module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from interlock import Block, HookContext, Modify, Plugin, ToolCall, hook
from interlock.external import CommandPlugin, CommandRunner, command_plugin

ROOT = Path(__file__).resolve().parents[2]

SERVED_GUARD = [
    sys.executable,
    "-m",
    "interlock",
    "serve",
    "tests.external.served:Guard",
    "--stdio",
]
"""The command that serves `tests.external.served:Guard` over stdio."""


@hook("pre_tool_call")
def no_rm(call: ToolCall, ctx: HookContext) -> Block | None:
    """Blocks a shell command holding `rm -rf`."""
    if "rm -rf" in str(call.arguments.get("command", "")):
        return Block("destructive shell command")
    return None


@hook("pre_tool_call", name="broken-gate")
def broken_gate(call: ToolCall, ctx: HookContext) -> None:
    """A gate that always fails: the adapter must fail closed."""
    raise RuntimeError("policy server down")


class Counting(Plugin):
    """Counts the session's tool calls in `ctx.state` and shows the count to the tool (its
    arguments gain `count`)."""

    name = "counting"

    def on_pre_tool_call(self, call: ToolCall, ctx: HookContext) -> Any:
        count = ctx.state["calls"] = ctx.state.get("calls", 0) + 1
        return Modify(call.replace(arguments={**call.arguments, "count": count}))


def sh_guard() -> CommandPlugin:
    """A command hook (`/bin/sh`) that blocks `rm -rf` with "no deleting here" (exit 2)."""
    script_text = 'case "$(cat)" in *"rm -rf"*) echo "no deleting here" >&2; exit 2;; esac'
    return command_plugin(
        CommandRunner(["/bin/sh", "-c", script_text]), name="sh-guard", hooks=["pre_tool_call"]
    )


def import_error_without(hidden: str, module: str) -> str:
    """What importing `module` says, in a fresh interpreter where `hidden` is missing."""
    code = (
        f"import sys; sys.modules[{hidden!r}] = None\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    return done.stdout
