"""interlock governing a Hermes agent, offline.

Hermes loads interlock through its `hermes_agent.plugins` entry point, with the config
named in Hermes' own config (hermes-config.yaml here). The model is scripted (it asks for
`rm -rf build`, then repeats what the tool said); the agent, its plugin manager, tools and
hooks are Hermes' own. Needs `pip install 'interlock[hermes]'`.

    python examples/adapters/hermes/example.py
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

HERE = Path(__file__).resolve().parent


def main() -> None:
    home = Path(os.environ.setdefault("HERMES_HOME", tempfile.mkdtemp(prefix="hermes-")))
    # Hermes' config: the snippet from hermes-config.yaml, pointing at this interlock.yaml.
    (home / "config.yaml").write_text(
        "plugins:\n  enabled: [interlock]\n  entries:\n    interlock:\n"
        f"      config: {HERE / 'interlock.yaml'}\n"
    )

    from hermes_cli.plugins import discover_plugins
    from openai.types.chat import ChatCompletion
    from run_agent import AIAgent
    from tools.registry import registry

    discover_plugins()  # Hermes finds interlock and calls its register(ctx)

    ran: list[str] = []

    def shell(args: dict[str, Any], **_: Any) -> str:
        ran.append(args["command"])
        return json.dumps({"output": "done"})

    registry.register(
        name="shell",
        toolset="example",
        schema={
            "name": "shell",
            "description": "Run a shell command.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
        handler=shell,
    )

    def model(**request: Any) -> ChatCompletion:
        last = request["messages"][-1]
        if last["role"] == "tool":
            message: dict[str, Any] = {"role": "assistant", "content": last["content"]}
        else:
            arguments = json.dumps({"command": "rm -rf build"})
            call = {"id": "call-1", "type": "function"}
            call["function"] = {"name": "shell", "arguments": arguments}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return ChatCompletion.model_validate(
            {
                "id": "scripted",
                "object": "chat.completion",
                "created": 0,
                "model": "scripted",
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            }
        )

    agent = AIAgent(
        base_url="http://127.0.0.1:9/v1",
        api_key="offline",
        model="scripted",
        quiet_mode=True,
        enabled_toolsets=["example"],
        skip_context_files=True,
        skip_memory=True,
        max_iterations=3,
    )
    agent.client = MagicMock()  # the scripted model stands in for the provider
    agent.client.chat.completions.create.side_effect = model
    result = agent.run_conversation("clean up the build directory")

    print("the model read:", json.loads(result["final_response"])["error"])
    print("ran:", ran)


if __name__ == "__main__":
    main()
