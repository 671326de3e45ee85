"""`interlock demo`: a short scripted agent session with a few plugins, traced live.

The model is the offline `ScriptedBackend` and the tools only pretend, so the demo needs no
network, no API key, and touches nothing on the machine but its session log.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from interlock import (
    Block,
    HookContext,
    LLMResponse,
    MessageEvent,
    Modify,
    Plugin,
    PluginManager,
    SessionEnd,
    ToolCall,
    TurnEnd,
    hook,
)
from interlock.runtime import Agent, ScriptedBackend, SessionStore, Step

from ._trace import Trace

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@hook("message_received", "message_sending", name="redact-email")
def redact_email(payload: MessageEvent, ctx: HookContext) -> Modify[MessageEvent] | None:
    """Replace e-mail addresses in messages, both ways."""
    text = EMAIL.sub("[email]", payload.content)
    return Modify(payload.replace(content=text)) if text != payload.content else None


@hook("pre_tool_call", name="tool-guard", when={"tool_name": "shell"})
def tool_guard(payload: ToolCall, ctx: HookContext) -> Block | None:
    """Refuse destructive shell commands."""
    if "rm -rf" in str(payload.arguments.get("command", "")):
        return Block("destructive shell command (rm -rf)")
    return None


class Reminder(Plugin):
    """After a turn with a refused tool call, leave the model a reminder (a system item)."""

    name = "reminder"

    def on_post_tool_call(self, payload: Any, ctx: HookContext) -> None:
        if payload.is_error:
            ctx.state["refused"] = ctx.state.get("refused", 0) + 1

    def on_turn_end(self, payload: TurnEnd, ctx: HookContext) -> None:
        if ctx.state.pop("refused", 0) and ctx.system_items is not None:
            ctx.system_items.append(
                "reminder", "a tool call was refused: tell the user what is left"
            )


class TokenCounter(Plugin):
    """Count the session's tokens and tell the user at the end."""

    name = "token-counter"

    def on_post_llm_call(self, payload: LLMResponse, ctx: HookContext) -> None:
        ctx.state["tokens"] = ctx.state.get("tokens", 0) + payload.usage.total_tokens

    def on_session_end(self, payload: SessionEnd, ctx: HookContext) -> None:
        if ctx.notify is not None:
            ctx.notify.notify(f"this session used {ctx.state.get('tokens', 0)} tokens")


def list_dir(path: str) -> list[str]:
    """List a directory (the demo pretends)."""
    return ["app.js", "app.js.map", "index.html"] if path.startswith("build") else []


def shell(command: str) -> str:
    """Run a shell command (the demo pretends)."""
    return f"(demo) would run: {command}"


SCRIPT = [
    Step(tool_calls=(("list_dir", {"path": "build/"}),)),
    Step(tool_calls=(("shell", {"command": "rm -rf build/"}),)),
    Step(
        "build/ holds 3 files. I could not remove it: the command was refused. "
        "I will mail the summary to ada@example.com."
    ),
    Step("Still to do: remove build/ (refused earlier)."),
]
PROMPTS = [
    "Tidy up build/ and mail a summary to ada@example.com",
    "Anything left?",
]


def plugins() -> list[tuple[object, dict[str, Any]]]:
    """The demo's plugins, each with the registration options (grants) it needs."""
    return [
        (redact_email, {}),
        (tool_guard, {}),
        (Reminder(), {"capabilities": ["system_items"]}),
        (TokenCounter(), {"capabilities": ["notify"]}),
    ]


async def run(console: Console, data_dir: Path) -> str:
    """Run the demo session; returns its id."""
    store = SessionStore(data_dir / "sessions.db")
    manager = PluginManager()
    for plugin, options in plugins():
        manager.register(plugin, **options)
    agent = Agent(
        ScriptedBackend(SCRIPT, model="scripted-demo"),
        tools=[list_dir, shell],
        system_prompt="You tidy up projects.",
        manager=manager,
        store=store,
        stream=True,
        on_event=Trace(console),
    )
    try:
        async with agent.session(tags=["demo"]) as session:
            for prompt in PROMPTS:
                console.print(Text.assemble("\n", ("user", "bold"), " ", prompt))
                await session.send(prompt)
        await agent.aclose()
    finally:
        store.close()
    console.print()
    console.print(_stats_table(manager))
    return session.id


def _stats_table(manager: PluginManager) -> Table:
    table = Table("plugin", "hook", "calls", "blocked", "modified", "errors", "mean µs",
                  title="what each plugin did")  # fmt: skip
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
    return table
