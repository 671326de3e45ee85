"""Python plugins the tests serve out of process (`interlock serve tests.external.served:...`)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import interlock
from interlock import Ask, Block, Modify, ToolCall


class Guard(interlock.Plugin):
    """Blocks rm -rf, asks before git push, counts calls per session, uses both capabilities."""

    name = "guard"
    version = "2.0"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        command = str(call.arguments.get("command", ""))
        if "rm -rf" in command:
            return Block("rm -rf is not allowed")
        if command.startswith("git push"):
            return Ask(f"push with {command!r}?")
        seen = ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        if ctx.system_items is not None and seen == 2:
            ctx.system_items.append("reminder", "two tool calls so far: run the tests")
        if ctx.notify is not None:
            ctx.notify.notify(f"tool call {seen}: {call.tool_name}")
        return Modify(call.replace(arguments={**call.arguments, "seen": seen}))

    def on_post_tool_call(self, result: interlock.ToolResult, ctx: interlock.HookContext) -> Any:
        if "secret" in result.output:
            return Modify(result.replace(output=result.output.replace("secret", "[hidden]")))
        return None


class Replica(interlock.Plugin):
    """Says which process served it, and when it is closed; tool "hang" is never answered."""

    name = "replica"

    async def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        if call.tool_name == "hang":
            print(f"hanging in {os.getpid()}", file=sys.stderr, flush=True)
            await asyncio.Event().wait()
        return Modify(call.replace(arguments={**call.arguments, "served_by": os.getpid()}))

    async def aclose(self) -> None:
        print(f"closed in {os.getpid()}", file=sys.stderr, flush=True)


class Noisy(interlock.Plugin):
    """Prints to stdout, which `serve --stdio` must keep off the protocol pipe."""

    name = "noisy"

    def on_turn_end(self, payload: Any, ctx: interlock.HookContext) -> None:
        print("noise on stdout")


class Failing(interlock.Plugin):
    """Raises: the host must see a failure attributed to it."""

    name = "failing"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> None:
        raise RuntimeError("the policy service is down")


class Deny(interlock.Plugin):
    """Blocks commands its config lists: `Deny(deny=[...])`, which it cannot do without."""

    name = "deny"

    def __init__(self, deny: list[str]) -> None:
        self.deny = deny

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        command = str(call.arguments.get("command", ""))
        if any(word in command for word in self.deny):
            return Block(f"denied by config: {command}")
        return None


class Waiter(interlock.Plugin):
    """Counts calls per session; tool "wait" waits until `release` is set."""

    name = "waiter"

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        if call.tool_name == "wait":
            self.waiting.set()
            await self.release.wait()
        seen = ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        return Modify(call.replace(arguments={"seen": seen}))


class Counter(interlock.Plugin):
    """Counts calls per session in `ctx.state`; handles session_end, so the server ends it."""

    name = "counter"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        seen = ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        return Modify(call.replace(arguments={"seen": seen}))

    def on_session_end(self, payload: Any, ctx: interlock.HookContext) -> None:
        return None


class Rechecked(interlock.Plugin):
    """Blocks a tool call it is asked about again (`ctx.recheck`), to show the flag arrives."""

    name = "rechecked"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        return Block(f"asked again about {dict(call.arguments)}") if ctx.recheck else None


class Tally(interlock.Plugin):
    """Counts calls per session in `ctx.state` and says which process served each one."""

    name = "tally"

    def on_pre_tool_call(self, call: ToolCall, ctx: interlock.HookContext) -> Any:
        seen = ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        return Modify(call.replace(arguments={"seen": seen, "served_by": os.getpid()}))

    def on_session_end(self, payload: Any, ctx: interlock.HookContext) -> None:
        return None
