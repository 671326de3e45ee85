"""An OpenAI Agents SDK agent governed by an interlock plugin, offline (the SDK's scripted
model stands in for a real one).

    python examples/adapters/openai_agents_example.py
"""

from __future__ import annotations

from typing import Any

from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled
from agents.testing import ScriptedModel, assistant_message, function_call

import interlock
from interlock import Block, PluginManager, hook
from interlock.adapters.openai_agents import Interlock


@hook("pre_tool_call", when={"tool_name": "shell"})
def no_rm(call: interlock.ToolCall, ctx: interlock.HookContext) -> Any:
    if "rm -rf" in str(call.arguments.get("command", "")):
        return Block("blocked: rm -rf is not allowed")
    return None


@function_tool
def shell(command: str) -> str:
    """Run a shell command."""
    raise AssertionError("never reached: the plugin blocks this call")


def main() -> list[str]:
    set_tracing_disabled(True)
    model = ScriptedModel([
        [function_call("shell", {"command": "rm -rf /"}, call_id="call-1")],
        [assistant_message("I did not delete anything.")],
    ])  # fmt: skip
    agent = Agent(name="ops", instructions="You run commands.", model=model, tools=[shell])

    manager = PluginManager()
    manager.register(no_rm)
    ix = Interlock(manager)  # the one line of setup
    result = Runner.run_sync(
        ix.agent(agent), "clean up the disk", hooks=ix.hooks, run_config=ix.run_config(RunConfig())
    )
    last = model.last_call
    assert last is not None
    seen = [i["output"] for i in last.input if i.get("type") == "function_call_output"]
    lines = [f"tool output the model saw: {seen[0]}", f"final answer: {result.final_output}"]
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    main()
