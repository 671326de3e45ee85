"""`interlock demo`: a short scripted agent session with the built-in plugins, traced live.

The model is the offline `ScriptedBackend` and the tools only pretend, so the demo needs no
network, no API key, and touches nothing on the machine but its data folder (the session
log and the audit log).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from interlock import Plugin, PluginManager
from interlock.plugins.audit_log import AuditLog, AuditLogConfig
from interlock.plugins.content_policy import ContentPolicy
from interlock.plugins.profiler import Profiler
from interlock.plugins.task_reminder import TaskReminder, TaskReminderConfig
from interlock.plugins.token_budget import TokenBudget, TokenBudgetConfig
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig
from interlock.runtime import Agent, ScriptedBackend, SessionLog, Step

from ._trace import Trace


def todo_write(todos: list[dict[str, str]]) -> str:
    """Keep the todo list (the demo just counts it)."""
    return f"{len(todos)} items on the list"


def list_dir(path: str) -> list[str]:
    """List a directory (the demo pretends)."""
    return ["app.js", "app.js.map", "index.html"] if path.startswith("build") else []


def shell(command: str) -> str:
    """Run a shell command (the demo pretends)."""
    return f"(demo) would run: {command}"


TODOS = [
    {"content": "look into build/", "status": "completed"},
    {"content": "remove build/", "status": "pending"},
    {"content": "mail the summary", "status": "pending"},
]
SCRIPT = [
    Step(tool_calls=(("todo_write", {"todos": TODOS}),)),
    Step(tool_calls=(("list_dir", {"path": "build/"}),)),
    Step(tool_calls=(("shell", {"command": "rm -rf build/"}),)),
    Step(
        "build/ holds 3 files. I could not remove it: the command was refused. "
        "I will mail the summary to ada@example.com."
    ),
    Step("Still to do: remove build/ (refused earlier), then mail the summary."),
]
PROMPTS = [
    "Tidy up build/ and mail a summary to ada@example.com",
    "Anything left?",
]


def plugins(data_dir: Path) -> list[tuple[Plugin, dict[str, Any]]]:
    """The demo's built-in plugins, each with the registration options (grants) it needs."""
    guard = ToolGuardConfig.model_validate(
        {"destructive": "deny"}  # shell commands parsed; the built-in destructive set
    )
    budget = TokenBudgetConfig.model_validate({"session": {"tokens": 400}, "warn_at": 0.5})
    return [
        (ContentPolicy(), {"capabilities": ["notify"]}),
        (ToolGuard(guard), {}),
        (TaskReminder(TaskReminderConfig(every=2)), {"capabilities": ["system_items"]}),
        (TokenBudget(budget), {"capabilities": ["notify"]}),
        (AuditLog(AuditLogConfig(path=str(data_dir / "audit.jsonl"))), {}),
        (Profiler(), {"capabilities": ["notify", "stats"]}),
    ]


async def run(
    console: Console, data_dir: Path, store: SessionLog, manager: PluginManager | None = None
) -> str:
    """Run the demo session, logged in `store` (the audit log goes to `data_dir`); returns
    its id.

    `manager` holds the user's plugins, if any: the built-ins join them, each unless a
    plugin of its name is there already. The agent closes it.
    """
    manager = manager if manager is not None else PluginManager()
    taken = {registration.plugin for registration in manager.registrations()}
    for plugin, options in plugins(data_dir):
        if plugin.name not in taken:
            manager.register(plugin, **options)
    agent = Agent(
        ScriptedBackend(SCRIPT, model="scripted-demo"),
        tools=[todo_write, list_dir, shell],
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
    finally:  # also when the output closed: the user's plugins may hold processes
        await agent.aclose()
    return session.id
