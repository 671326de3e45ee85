"""interlock plugins governing a pydantic-ai agent, offline (pydantic-ai's FunctionModel).

    python examples/adapters/pydantic_ai_example.py

The model asks to run `rm -rf /tmp/cache`; tool-guard refuses it and the model reads why.
content-policy redacts the e-mail address in the user's message before the model, or the
run's history, ever holds it.
"""

from __future__ import annotations

from pydantic_ai import Agent, models
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from interlock import PluginManager
from interlock.adapters.pydantic_ai import InterlockCapability
from interlock.plugins.content_policy import ContentPolicy
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig

models.ALLOW_MODEL_REQUESTS = False  # offline: only the scripted model below answers


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Asks for the shell once, then reports what the tool said."""
    if len(messages) == 1:
        print("model read:", messages[0].parts[0].content)
        command = {"command": "rm -rf /tmp/cache"}
        return ModelResponse(parts=[ToolCallPart("shell", command, tool_call_id="call-1")])
    return ModelResponse(parts=[TextPart(f"the tool said: {messages[-1].parts[0].content}")])


manager = PluginManager()
manager.register(ToolGuard(ToolGuardConfig(destructive="deny")))
manager.register(ContentPolicy())

agent = Agent(FunctionModel(scripted), capabilities=[InterlockCapability(manager)])


@agent.tool_plain
def shell(command: str) -> str:
    """Run a shell command."""
    raise AssertionError("tool-guard lets no destructive command through")


if __name__ == "__main__":
    result = agent.run_sync("clear the cache, then mail me at jane.doe@example.com")
    print("answer:", result.output)
    manager.close()
