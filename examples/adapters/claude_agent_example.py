"""interlock plugins governing a Claude Agent SDK agent: one import, one line of setup.

Runs offline: `ScriptedClaude` stands in for the Claude Code CLI the SDK drives, playing
two tool calls and calling the hooks as the CLI would. With the real CLI, drop the
`transport=` argument.

    python examples/adapters/claude_agent_example.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, query

from interlock.adapters.claude_agent import ScriptedClaude, hooks
from interlock.config import load_config_text

CONFIG = """
plugins:
  - name: tool-guard
    use: tool-guard
    on_error: block
    config: {destructive: deny}
"""


def bash(tool_input: dict[str, Any]) -> str:
    """A pretend Bash tool."""
    return f"(pretend output of {tool_input['command']})"


async def main() -> None:
    manager = load_config_text(CONFIG)
    agent_hooks = hooks(manager)
    options = ClaudeAgentOptions(hooks=agent_hooks)  # the one line of setup
    claude = ScriptedClaude(
        [("Bash", {"command": "rm -rf ~/"}), ("Bash", {"command": "ls -la"})],
        tools={"Bash": bash},
        reply="I listed the files instead.",
    )
    async for message in query(prompt="clean up", options=options, transport=claude.transport()):
        print(type(message).__name__)
    for name, tool_input in claude.ran:
        print(f"ran: {[name, tool_input]}")
    for text in claude.model_saw:
        print(f"the model saw: {text}")
    await agent_hooks.aclose()  # the sessions end: session_end fires
    await manager.aclose()


if __name__ == "__main__":
    asyncio.run(main())
