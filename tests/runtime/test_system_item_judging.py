"""System items pass through `message_received` (role `system`) before they are logged:
plugins written for the user's messages keep working."""

from __future__ import annotations

import sys
from pathlib import Path

from interlock.config import load_config_text
from interlock.runtime import Agent, ScriptedBackend

CONTEXT_COMMAND = """\
import json, sys
event = json.load(sys.stdin)
print("remember: " + event["prompt"][:20])
"""


async def test_a_prompt_command_adds_context_for_the_users_message_only(tmp_path: Path) -> None:
    # Claude Code's UserPromptSubmit: plain output is context. The command also judges the
    # item it made (it may change or block it), but adds no context for it, and nothing
    # fails.
    script = tmp_path / "context.py"
    script.write_text(CONTEXT_COMMAND)
    config = f"""
version: 1
plugins:
  - name: ctx
    external: {{command: [{sys.executable!r}, {str(script)!r}], hooks: [message_received]}}
    capabilities: [system_items]
"""
    manager = load_config_text(config, file="interlock.yaml")
    agent = Agent(ScriptedBackend(["ok"]), manager=manager)
    async with agent.session("s") as session:
        result = await session.send("hello there")
        records = session.records()
    manager.close()
    assert result.delivered
    assert [r.kind for r in records if r.kind in ("error", "system_item", "user")] == [
        "system_item",
        "user",
    ]
    [item] = [r.data for r in records if r.kind == "system_item"]
    assert item["text"] == "remember: hello there"
