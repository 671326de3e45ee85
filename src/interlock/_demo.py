"""`interlock demo`: a short, offline walk through one agent turn's hooks.

Every plugin here is a plain handler; the trace shows each hook as the host fires it and
what every plugin did there. No model and no network: the host's side is scripted.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from interlock import (
    Block,
    HookContext,
    HookResult,
    HookSpec,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    Modify,
    Plugin,
    PluginManager,
    SessionEnd,
    SessionStart,
    ToolCall,
    ToolResult,
    TurnEnd,
    Usage,
    hook,
    hooks,
)

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


@hook("message_received")
def redact_email(payload: MessageEvent, ctx: HookContext) -> Modify[MessageEvent] | None:
    """Replace e-mail addresses before the agent sees them."""
    text = EMAIL.sub("[email]", payload.content)
    return Modify(payload.replace(content=text)) if text != payload.content else None


@hook("pre_tool_call", when={"tool_name": "shell"})
def no_rm(payload: ToolCall, ctx: HookContext) -> Block | None:
    """Refuse destructive shell commands."""
    if "rm -rf" in str(payload.arguments.get("command", "")):
        return Block("destructive shell command")
    return None


@hook("turn_end")
def remind(payload: TurnEnd, ctx: HookContext) -> None:
    """Leave a reminder for the model through the durable system-item log."""
    if ctx.system_items is not None:
        ctx.system_items.append("reminder", "summarise what you changed before you finish")


class TokenCounter(Plugin):
    """Count tokens per session from the model's usage reports."""

    name = "token-counter"

    def on_post_llm_call(self, payload: LLMResponse, ctx: HookContext) -> None:
        ctx.state["tokens"] = ctx.state.get("tokens", 0) + payload.usage.total_tokens

    def on_session_end(self, payload: SessionEnd, ctx: HookContext) -> None:
        if ctx.notify is not None:
            ctx.notify.notify(f"session used {ctx.state.get('tokens', 0)} tokens")


class _Log:
    """The demo host's capability handles: both just print."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def write_system_item(self, kind: str, text: str, *, plugin: str) -> None:
        self.console.print(f"    [magenta]system item[/] ({escape(kind)}): {escape(text)}")

    def write_notification(self, text: str, *, level: str, plugin: str) -> None:
        self.console.print(f"    [cyan]notify[/]: {escape(text)}")


def _show(console: Console, spec: HookSpec[Any], result: HookResult[Any]) -> None:
    parts = []
    if result.modified_by:
        parts.append(f"[yellow]modified by {escape(', '.join(result.modified_by))}[/]")
    if result.blocked:
        parts.append(f"[red]blocked by {escape(f'{result.blocked_by}: {result.reason}')}[/]")
    parts.extend(f"[red]error in {escape(f.plugin)}: {escape(f.message)}[/]" for f in result.errors)
    console.print(f"  [bold]{spec.name}[/] " + ("; ".join(parts) or "[green]continued[/]"))


async def _turn(manager: PluginManager, console: Console, handles: dict[str, object]) -> None:
    async def fire(spec: Any, payload: Any) -> HookResult[Any]:
        result = await manager.invoke(spec, payload, turn=1, capabilities=handles)
        _show(console, spec, result)
        return result

    await fire(hooks.SESSION_START, SessionStart("demo"))
    received = await fire(
        hooks.MESSAGE_RECEIVED, MessageEvent("clean up, then mail ada@example.com")
    )
    text = (received.payload or MessageEvent("")).content
    console.print(f"    the agent sees: {escape(repr(text))}")
    await fire(hooks.PRE_LLM_CALL, LLMRequest("scripted", (Message("user", text),)))
    await fire(hooks.POST_LLM_CALL, LLMResponse("scripted", usage=Usage(42, 17)))
    for command in ("ls build/", "rm -rf /"):
        call = ToolCall("shell", {"command": command}, call_id=command)
        gate = await fire(hooks.PRE_TOOL_CALL, call)
        output = f"refused: {gate.reason}" if gate.blocked else "ok"
        await fire(hooks.POST_TOOL_CALL, ToolResult("shell", call.arguments, command, output))
    await fire(hooks.MESSAGE_SENDING, MessageEvent("Done.", role="assistant"))
    await fire(hooks.TURN_END, TurnEnd(1, "Done.", tool_calls=2, usage=Usage(42, 17)))
    await fire(hooks.SESSION_END, SessionEnd("demo", turns=1))


def main() -> None:
    """Run the demo and print its trace and the per-plugin statistics."""
    console = Console()
    manager = PluginManager()
    manager.register(redact_email)
    manager.register(no_rm)
    manager.register(remind, capabilities=["system_items"])
    manager.register(TokenCounter(), capabilities=["notify"])
    log = _Log(console)
    handles: dict[str, object] = {"system_items": log, "notify": log}
    console.print("[bold]interlock demo[/]: one scripted agent turn, four plugins\n")

    async def run() -> None:
        async with manager.session("demo"):
            await _turn(manager, console, handles)
        await manager.aclose()

    asyncio.run(run())
    table = Table("plugin", "hook", "calls", "blocks", "modified", "errors", "mean µs")
    for stats in manager.stats().registrations:
        table.add_row(
            stats.plugin,
            stats.hook,
            str(stats.calls),
            str(stats.blocks),
            str(stats.modifications),
            str(stats.errors),
            f"{stats.time_mean * 1e6:.1f}",
        )
    console.print(table)
