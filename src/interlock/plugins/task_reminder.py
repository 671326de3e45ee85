"""`task_reminder`: keep the model on task with reminders in its context.

Watches the tool calls of a session. When the model keeps a todo list through a tool (like
Claude Code's `TodoWrite`) and, `every` tool calls later, items are still open, it appends
a reminder listing them as a system item: the durable path, written to the session log
first, then part of the model's context on its next call, and listed by `interlock log`.

    plugins:
      - name: task-reminder
        use: task-reminder
        capabilities: [system_items]          # required: reminders are system items
        config:
          every: 5                            # tool calls between reminders
          todo_tools: ["todo*", "TodoWrite"]  # tools whose arguments hold the list

A todo tool's arguments hold a list under `todos` or `items`: text items, or objects with
`content` / `text` / `title` and `status` (`completed` is done) or `done`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .. import HookContext, JsonValue, Plugin, ToolResult
from ._globs import Globs


class TaskReminderConfig(BaseModel):
    """How often to remind, and which tools keep the todo list."""

    model_config = ConfigDict(extra="forbid")

    every: int = Field(default=5, gt=0)
    todo_tools: list[str] = Field(default_factory=lambda: ["todo*", "TodoWrite"])
    kind: str = Field(default="reminder", min_length=1)
    """The system item's kind, as `interlock log` shows it."""


class TaskReminder(Plugin):
    """Reminds the model of open todo items; see the module documentation."""

    name = "task-reminder"
    version = "1.0"
    config_model = TaskReminderConfig

    def __init__(self, config: TaskReminderConfig | None = None) -> None:
        self.config = config or TaskReminderConfig()
        self._todo_tools = Globs(self.config.todo_tools)

    def on_post_tool_call(self, result: ToolResult, ctx: HookContext) -> None:
        if ctx.recheck:  # the same tool call, already counted
            return
        state = ctx.state
        if self._todo_tools.match(result.tool_name):
            if not result.is_error:
                state["open"] = open_items(result.arguments)
                state["since"] = 0
            return
        state["since"] = state.get("since", 0) + 1
        todo: list[str] = state.get("open", [])
        if not todo or state["since"] < self.config.every or ctx.system_items is None:
            return
        state["since"] = 0
        listed = "\n".join(f"- {item}" for item in todo)
        ctx.system_items.append(
            self.config.kind,
            f"Still open on your todo list after {self.config.every} tool calls:\n{listed}",
        )


def open_items(arguments: Any) -> list[str]:
    """The items of a todo tool's arguments that are not done yet, as text."""
    raw = arguments.get("todos", arguments.get("items", ()))
    items: list[str] = []
    for item in raw if isinstance(raw, list | tuple) else ():
        text = _text(item)
        if text and not _done(item):
            items.append(text)
    return items


def _text(item: JsonValue) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("content", "text", "title"):
            if isinstance(item.get(key), str):
                return str(item[key])
    return ""


def _done(item: JsonValue) -> bool:
    if not isinstance(item, dict):
        return False
    return item.get("status") == "completed" or item.get("done") is True
