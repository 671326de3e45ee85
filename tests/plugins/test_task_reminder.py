"""task_reminder through the reference runtime: the capability path end to end."""

from __future__ import annotations

from typing import Any

from interlock.config import load_config_text
from interlock.plugins.task_reminder import open_items
from interlock.runtime import Step

from .helpers import run, shell


def todo_write(todos: list[dict[str, Any]]) -> str:
    """Keep the todo list."""
    return f"{len(todos)} items"


TODOS = [
    {"content": "write the parser", "status": "completed"},
    {"content": "write the tests", "status": "in_progress"},
    {"content": "update the docs", "status": "pending"},
]


def step(tool: str, **arguments: Any) -> Step:
    return Step(tool_calls=((tool, arguments),))


async def test_open_items_come_back_to_the_model_as_a_logged_system_item() -> None:
    manager = load_config_text("""
plugins:
  - name: task-reminder
    use: task-reminder
    capabilities: [system_items]
    config: {every: 2, todo_tools: [todo_write]}
""")
    script = [step("todo_write", todos=TODOS), step("shell", command="make"),
              step("shell", command="make test"), step("shell", command="ls"), "done"]  # fmt: skip
    result = await run([], script, ["build it"], tools=[todo_write, shell], manager=manager)

    [item] = result.kinds("system_item")
    assert item["kind"] == "reminder" and item["plugin"] == "task-reminder"
    expected = (
        "Still open on your todo list after 2 tool calls:\n- write the tests\n- update the docs"
    )
    assert item["text"] == expected
    # the model saw it on its next call, and not before
    seen = [
        any(m.role == "system" and m.content == f"reminder: {expected}" for m in r.messages)
        for r in result.model.requests
    ]
    assert seen == [False, False, False, True, True]


async def test_no_grant_no_reminder() -> None:
    manager = load_config_text("""
plugins:
  - {name: task-reminder, use: task-reminder, config: {every: 1, todo_tools: [todo_write]}}
""")
    script = [step("todo_write", todos=TODOS), step("shell", command="make"), "done"]
    result = await run([], script, ["go"], tools=[todo_write, shell], manager=manager)
    assert result.kinds("system_item") == []


def test_todo_lists_in_the_shapes_tools_use() -> None:
    assert open_items({"items": ["a", "b"]}) == ["a", "b"]
    assert open_items({"todos": [{"text": "a", "done": True}, {"title": "b"}]}) == ["b"]
    assert open_items({"todos": "not a list"}) == [] and open_items({}) == []
