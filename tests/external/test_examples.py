"""The examples in docs/protocol.md are the files in examples/external, and they work."""

from __future__ import annotations

import re
import subprocess
import sys

from interlock import ToolCall, hooks
from interlock.external import StdioTransport, connect
from interlock.testing import Harness

from .conftest import NODE, ROOT, needs_node

EXAMPLES = ROOT / "examples" / "external"
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()


def block(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", PROTOCOL, re.S)


def test_the_page_shows_the_example_files() -> None:
    assert (EXAMPLES / "guard.js").read_text() in block("js")
    assert (EXAMPLES / "claude_guard.sh").read_text() in block("sh")


def test_the_command_hook_example_prints_what_the_page_says() -> None:
    [code] = block("python")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=True)  # fmt: skip
    assert out.stdout == block("text")[0]


@needs_node
async def test_the_javascript_example_plugin_works() -> None:
    transport = StdioTransport([str(NODE), str(EXAMPLES / "guard.js")])
    plugin = connect(transport, name="guard-js")  # initialize: hooks and capabilities
    assert plugin.requested == ("system_items",)
    with Harness(plugin) as harness:
        rm = ToolCall("shell", {"command": "rm -rf ~"})
        blocked = await harness.ainvoke(hooks.PRE_TOOL_CALL, rm)
        tagged = await harness.ainvoke(
            hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}, "c1")
        )
    assert blocked.reason == "rm -rf is not allowed"
    assert tagged.payload == ToolCall("shell", {"command": "ls", "checked_by": "guard.js"}, "c1")
    assert harness.system_items == [("reminder", "run the tests")]
    assert transport.pid is None  # the harness closed the manager, which closed the plugin
