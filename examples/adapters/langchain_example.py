"""interlock plugins on a LangChain v1 agent, offline (LangChain's own fake chat model).

The agent, its tools and its model are LangChain's; the one interlock line is the
middleware. The built-in tool-guard refuses `rm -rf`, content-policy redacts the e-mail
address before the model sees it, and the model reads the refusal as the tool's error.

    python examples/adapters/langchain_example.py
"""

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from interlock import PluginManager
from interlock.adapters.langchain import InterlockMiddleware
from interlock.plugins.content_policy import ContentPolicy
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig


class ScriptedModel(GenericFakeChatModel):
    """LangChain's fake chat model, answering from a script; tools need no binding."""

    def bind_tools(self, tools, **kwargs):
        return self


@tool
def shell(command: str) -> str:
    """Run a shell command."""
    return f"(would run {command!r})"


manager = PluginManager()
manager.register(ToolGuard(ToolGuardConfig(destructive="deny")))
manager.register(ContentPolicy())

model = ScriptedModel(
    messages=iter(
        [
            AIMessage(
                "", tool_calls=[{"name": "shell", "args": {"command": "rm -rf /"}, "id": "c1"}]
            ),
            AIMessage("I was not allowed to clean up; nothing was deleted."),
        ]
    )
)
agent = create_agent(
    model,
    [shell],
    middleware=[InterlockMiddleware(manager)],
    checkpointer=InMemorySaver(),
)
result = agent.invoke(
    {"messages": [("user", "clean up my disk, then mail ada@example.com")]},
    {"configurable": {"thread_id": "demo"}},
)
for message in result["messages"]:
    status = f" ({message.status})" if message.type == "tool" else ""
    print(f"{message.type}{status}: {message.content or message.tool_calls}")
