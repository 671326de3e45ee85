"""Plugins the Claude Code tests load by import path in `interlock claude-hook` processes."""

from __future__ import annotations

import sys
import threading
from typing import Any

import interlock
from interlock import Modify, ToolCall


class Counter(interlock.Plugin):
    """Counts the session's tool calls in `ctx.state` and shows the count to the tool
    (its arguments gain `count`), so the answer tells what this event saw."""

    name = "counter"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        count = ctx.state["calls"] = ctx.state.get("calls", 0) + 1
        return Modify(call.replace(arguments={**call.arguments, "count": count}))


class Chatty(interlock.Plugin):
    """Prints to stdout, which must never reach Claude Code's stdout."""

    name = "chatty"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> None:
        print("chatty on stdout")
        sys.stdout.flush()


class Stuck(interlock.Plugin):
    """A gate that never answers (a remote check that hangs)."""

    name = "stuck"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> None:
        ctx.state["started"] = True
        threading.Event().wait()  # never set
