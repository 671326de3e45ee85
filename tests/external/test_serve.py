"""One plugin class, three ways: in process, `interlock serve --stdio`, `--http`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from interlock import Modify, PluginManager, ProtocolError, ToolCall, hook, hooks
from interlock.cli import app
from interlock.external import HttpTransport, PluginServer, StdioTransport, connect
from interlock.runtime import Agent, ScriptedBackend, SessionStore, Step

from .conftest import ENV, ROOT, Served, serve_command
from .served import Guard, Waiter

SCRIPT = [
    Step(tool_calls=(("shell", {"command": "ls"}),)),
    Step(tool_calls=(("shell", {"command": "cat notes"}),)),
    Step(tool_calls=(("shell", {"command": "rm -rf /"}),)),
    Step(tool_calls=(("shell", {"command": "git push"}),)),
    Step(tool_calls=(("shell", {"command": "make test"}),)),
    "done",
]


def shell(command: str, seen: int = 0) -> str:
    """Pretend to run a command."""
    return f"ran {command} (seen {seen})" + (": a secret" if "cat" in command else "")


async def session_with(plugin: object) -> tuple[Any, list[tuple[Any, ...]]]:
    manager = PluginManager()
    manager.register(plugin, name="guard", capabilities=["system_items", "notify"])
    store = SessionStore()
    agent = Agent(
        ScriptedBackend(SCRIPT),
        tools=[shell],
        manager=manager,
        store=store,
        approver=lambda call, question: False,
    )
    try:
        result = await agent.run("tidy up", session_id="s-1")
    finally:
        await agent.aclose()
    records = [(r.kind, r.turn, dict(r.data)) for r in store.records("s-1") if r.kind != "stats"]
    store.close()
    return result, records


async def test_one_plugin_in_process_over_stdio_and_over_http_gives_identical_sessions(
    serve_http: Callable[..., Served],
) -> None:
    expected = await session_with(Guard())
    over_stdio = connect(
        StdioTransport(serve_command("Guard", "--stdio"), env=ENV, cwd=ROOT), name="guard"
    )
    over_http = connect(HttpTransport([serve_http("Guard").url]), name="guard")

    assert await session_with(over_stdio) == expected
    assert await session_with(over_http) == expected

    result, records = expected  # and the session is the one the plugin should produce
    assert result.reply == "done"
    kinds = [kind for kind, _, _ in records]
    assert "system_item" in kinds and "notification" in kinds
    outputs = [d["output"] for k, _, d in records if k == "tool_result"]
    assert outputs[0] == "ran ls (seen 1)"
    assert outputs[1] == "ran cat notes (seen 2): a [hidden]"
    assert "rm -rf is not allowed" in outputs[2]
    assert outputs[4] == "ran make test (seen 3)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tests.external.served:Guard"], "give exactly one of --stdio and --http"),
        (["tests.external.served:Guard", "--stdio", "--http", "x:1"], "exactly one of"),
        (["tests.external.served:Guard", "--http", "nowhere"], "give HOST:PORT"),
        (["tests.external.served:Nothing", "--stdio"], "has no 'Nothing'"),
        (["tests.external.served:Guard", "--stdio", "--plugin-config", "{"], "not JSON"),
        (["tests.external.served:Guard", "--stdio", "--plugin-config", "[1]"], "a JSON object"),
        (["tests.external.served:Guard", "--stdio", "--token", "t"], "are for --http"),
    ],
)
def test_serve_explains_what_is_wrong(args: list[str], message: str) -> None:
    out = CliRunner().invoke(app, ["serve", *args])
    assert out.exit_code == 2
    assert message in " ".join(out.output.split()).replace("│", "")


async def test_serve_stdio_builds_the_plugin_with_the_config_the_host_sends() -> None:
    command = serve_command("Deny", "--stdio")
    manager = PluginManager()
    plugin = connect(StdioTransport(command, env=ENV, cwd=ROOT), name="deny",
                     config={"deny": ["rm -rf"]})  # fmt: skip
    manager.register(plugin, config={"deny": ["rm -rf"]})
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "rm -rf /"}))
    await manager.aclose()
    assert result.reason == "denied by config: rm -rf /"


async def test_a_served_plugin_asked_again_knows_it() -> None:
    @hook("pre_tool_call", name="later", priority=10)
    def later(call: ToolCall, ctx: Any) -> Modify[ToolCall]:
        return Modify(call.replace(arguments={"command": "ls -la"}))

    manager = PluginManager()
    plugin = connect(StdioTransport(serve_command("Rechecked", "--stdio"), env=ENV, cwd=ROOT),
                     name="rechecked", hooks=["pre_tool_call"])  # fmt: skip
    manager.register(plugin)
    manager.register(later)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    await manager.aclose()
    assert result.blocked_by == "rechecked"
    assert result.reason == "asked again about {'command': 'ls -la'}"


async def test_a_server_refuses_a_host_config_other_than_its_own(
    serve_http: Callable[..., Served],
) -> None:
    url = serve_http("Deny", "--plugin-config", '{"deny": ["sudo"]}').url
    with pytest.raises(ProtocolError, match="served with another config than the host's entry"):
        connect(HttpTransport([url]), name="deny", config={"deny": ["rm"]})
    same = connect(HttpTransport([url]), name="deny", config={"deny": ["sudo"]})
    manager = PluginManager()
    manager.register(same)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "sudo ls"}))
    await manager.aclose()
    assert result.blocked


async def test_busy_sessions_are_never_dropped_to_make_room() -> None:
    plugin = Waiter()
    server = PluginServer(plugin, max_sessions=1)

    def call(session: str, tool: str = "ls") -> Any:
        params = {"hook": "pre_tool_call", "payload": {"tool_name": tool},
                  "context": {"session": {"id": session}}}  # fmt: skip
        return server.handle({"jsonrpc": "2.0", "id": 1, "method": "invoke", "params": params})

    async def seen(session: str, tool: str = "ls") -> int:
        reply = await call(session, tool)
        return int(reply["result"]["action"]["payload"]["arguments"]["seen"])

    assert await seen("a") == 1
    waiting = asyncio.ensure_future(seen("a", "wait"))
    await plugin.waiting.wait()  # its call is running inside the plugin
    assert await seen("b") == 1  # a second session, over the bound of one
    plugin.release.set()
    assert await waiting == 2  # session a kept its state: it was busy
    assert await seen("c") == 1  # now the idle ones make room
    assert await seen("a") == 1  # a was dropped (least recently used, idle)
    await server.aclose()
