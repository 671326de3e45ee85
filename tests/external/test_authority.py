"""Authority: an external plugin gets what its registration grants, and nothing it sends
is used before it is checked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock import ToolCall, hooks, load_config
from interlock.external import CommandRunner, StdioTransport, command_plugin, connect
from interlock.testing import Harness

from .conftest import NODE, PLUGINS, LogWatch, needs_node

GUARD = [str(NODE), str(PLUGINS / "guard.js")]


@pytest.fixture
def node_guard() -> Iterator[StdioTransport]:
    transport = StdioTransport(GUARD, name="guard")
    yield transport
    transport.close()


@needs_node
async def test_capability_requests_beyond_the_grant_are_refused_and_logged(
    node_guard: StdioTransport, log_watch: LogWatch
) -> None:
    plugin = connect(node_guard, name="guard", hooks=["pre_tool_call"])
    with Harness(plugin, capabilities=["notify"]) as harness:
        result = await harness.ainvoke(hooks.PRE_TOOL_CALL, ToolCall("todo"))
    assert not result.errors
    assert harness.notifications == [("todo seen", "info")]
    assert harness.system_items == []  # asked for, never granted
    assert any(
        "'guard' asked for the system_items capability, which it is not granted" in m
        for m in log_watch.messages
    )


@needs_node
async def test_granted_requests_take_effect(node_guard: StdioTransport) -> None:
    plugin = connect(node_guard, name="guard", hooks=["pre_tool_call"])
    with Harness(plugin) as harness:  # every capability the hook offers
        await harness.ainvoke(hooks.PRE_TOOL_CALL, ToolCall("todo"))
    assert harness.system_items == [("reminder", "finish the todo list")]


def answering(answer: object) -> CommandRunner:
    return CommandRunner(["/bin/sh", "-c", f"echo '{json.dumps(answer)}'"])


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        # A field the hook does not let plugins write.
        (
            {
                "action": {"type": "modify", "payload": {"tool_name": "other", "arguments": {}}},
                "requests": [{"capability": "system_items", "kind": "k", "text": "never"}],
            },
            "changed field 'tool_name'",
        ),
        # An action the hook does not accept.
        (
            {"action": {"type": "respond", "response": {"model": "m", "content": "hi"}}},
            "takes no respond action",
        ),
        # A payload that does not fit the schema.
        ({"action": {"type": "modify", "payload": {"arguments": []}}}, "does not fit"),
        # A capability request with the wrong fields.
        ({"requests": [{"capability": "system_items", "kind": 3, "text": None}]}, "kind"),
        ({"requests": "all of them"}, "'requests' must be a list"),
        # One request that does not fit: the valid one before it is not carried out either.
        (
            {
                "requests": [
                    {"capability": "system_items", "kind": "k", "text": "never"},
                    {"capability": "notify", "text": ["not", "text"]},
                ]
            },
            "notify takes a str text",
        ),
    ],
)
async def test_replies_that_do_not_fit_are_the_plugins_error(answer: object, problem: str) -> None:
    plugin = command_plugin(answering(answer), name="sly", hooks=["pre_tool_call"])
    with Harness(plugin, on_error="ignore") as harness:
        result = await harness.ainvoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    [failure] = result.errors
    assert failure.plugin == "sly" and problem in failure.message
    # Nothing of a reply that does not fit takes effect, its requests included.
    assert result.payload is None and not result.blocked and harness.system_items == []


@needs_node
def test_a_config_file_registers_external_plugins_with_their_grants(
    tmp_path: Path, log_watch: LogWatch
) -> None:
    (tmp_path / "guard.js").write_text((PLUGINS / "guard.js").read_text())
    (tmp_path / "hook.sh").write_text((PLUGINS / "claude_guard.sh").read_text())
    (tmp_path / "hook.sh").chmod(0o755)
    config = tmp_path / "interlock.yaml"
    config.write_text(f"""
plugins:
  - name: js-guard
    external:
      stdio: [{NODE}, guard.js]
    capabilities: [notify]
    timeout: 5s
  - name: claude-guard
    external:
      command: [./hook.sh]
      hooks: [pre_tool_call]
    priority: 10
""")
    manager = load_config(config)  # the stdio plugin is asked for its hooks now
    registrations = {r.plugin: r for r in manager.registrations()}
    # The -10 its handshake suggests is advisory: the config decides the order.
    assert registrations["js-guard"].priority == 0
    assert any("'js-guard' suggests priority -10" in m for m in log_watch.messages)
    assert registrations["js-guard"].capabilities == frozenset({"notify"})
    assert any("asks for capabilities system_items" in m for m in log_watch.messages)

    blocked = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "rm -rf /"}))
    changed = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("Bash", {"command": "ls"}))
    manager.close()

    assert blocked.blocked_by == "js-guard"  # it runs first (first in the file), and blocks
    # They disagree: js-guard tags the arguments, the Claude Code hook replaces them whole
    # (its updatedInput) and so drops the tag. Asked again, each redoes its change, so the
    # call is blocked rather than run with arguments one of them would change.
    assert changed.modified_by[:2] == ("js-guard", "claude-guard")
    assert changed.blocked and "kept changing the payload" in (changed.reason or "")
    assert any("'claude-guard' asked for the notify capability" in m for m in log_watch.messages)
