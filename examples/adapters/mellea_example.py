"""interlock plugins governing a Mellea session, offline (Mellea's DummyBackend).

    python examples/adapters/mellea_example.py

A model's request to run `rm -rf /tmp/cache` goes through Mellea's own `call_tools`,
where tool-guard refuses it: the tool does not run, and the tool message (what the model
reads next) carries the reason. (DummyBackend makes no tool calls, so the example hands
`call_tools` the call a model would have made.)
"""

from __future__ import annotations

from mellea import MelleaSession
from mellea.backends.dummy import DummyBackend
from mellea.backends.tools import MelleaTool
from mellea.core.base import ModelOutputThunk, ModelToolCall
from mellea.plugins import plugin_scope
from mellea.stdlib.context import ChatContext
from mellea.stdlib.functional import call_tools

from interlock import PluginManager
from interlock.adapters.mellea import plugin
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig

ran: list[str] = []


def shell(command: str) -> str:
    """Run a shell command."""
    ran.append(command)
    return f"ran {command}"


def main() -> None:
    manager = PluginManager()
    manager.register(ToolGuard(ToolGuardConfig(destructive="deny")))

    backend = DummyBackend(None)
    with plugin_scope(plugin(manager)), MelleaSession(backend, ChatContext()):
        # The model's tool call, as Mellea's OpenAI backend hands it over:
        call = ModelToolCall(
            "shell", MelleaTool.from_callable(shell), {"command": "rm -rf /tmp/cache"}, "call-1"
        )
        for message in call_tools(ModelOutputThunk("", tool_calls=[call]), backend):
            print("the model reads:", message.content)
    print("ran:", ran)


if __name__ == "__main__":
    main()
