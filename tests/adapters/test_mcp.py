"""The MCP gateway: an in-process upstream server, clients over the SDK's in-memory
transports (the modern direct path and the legacy JSON-RPC stream loop), and the
`interlock mcp-gateway` command over stdio."""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import anyio
import httpx
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from interlock import (
    Ask,
    HookContext,
    Modify,
    Plugin,
    PluginManager,
    ToolCall,
    ToolResult,
    hook,
)
from interlock.adapters.mcp import gateway
from interlock.external import CommandRunner, command_plugin
from interlock.plugins.content_policy import ContentPolicy, ContentPolicyConfig
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig
from interlock.testing import Conformance, Expected, RecordingPlugin

from .helpers import ROOT, broken_gate, no_rm

SERVER_INFO = "io.modelcontextprotocol/serverInfo"
MODES = ["auto", "legacy"]  # the modern per-request path, and the stream loop stdio uses


class Person(BaseModel):
    name: str
    email: str


def upstream(ran: list[str] | None = None) -> MCPServer:
    """A server with a shell tool (plain text output) and a lookup tool (structured)."""
    server = MCPServer("upstream")

    @server.tool()
    def shell(command: str) -> str:
        """Pretends to run a command."""
        if ran is not None:
            ran.append(command)
        return f"ran {command}"

    @server.tool()
    def lookup(name: str) -> Person:
        """A person's contact."""
        return Person(name=name, email=f"{name}@example.com")

    return server


def texts(result: Any) -> list[str]:
    return [block.text for block in result.content if block.type == "text"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_block_is_an_error_result_with_the_reason_and_the_tool_never_runs(
    mode: str,
) -> None:
    ran: list[str] = []
    manager = PluginManager()
    manager.register(no_rm)
    async with Client(gateway(manager, upstream(ran)), mode=mode) as client:
        blocked = await client.call_tool("shell", {"command": "rm -rf /"})
        allowed = await client.call_tool("shell", {"command": "ls"})
    assert blocked.is_error and texts(blocked) == ["destructive shell command"]
    assert not allowed.is_error and texts(allowed) == ["ran ls"]
    assert ran == ["ls"]
    if mode == "auto":  # modern results name their server: the gateway, not the upstream
        for result in (blocked, allowed):
            assert result.meta is not None
            assert result.meta[SERVER_INFO]["name"] == "interlock-mcp-gateway"


async def test_the_upstream_tools_are_listed_unchanged() -> None:
    async with Client(upstream()) as direct:
        expected = (await direct.list_tools()).tools
    async with Client(gateway(PluginManager(), upstream())) as client:
        listed = (await client.list_tools()).tools
    assert [t.model_dump() for t in listed] == [t.model_dump() for t in expected]


@hook("pre_tool_call")
async def verbose(call: ToolCall, ctx: HookContext) -> Any:  # an async handler
    return Modify(call.replace(arguments={**call.arguments, "command": "ls -la"}))


async def test_modified_arguments_reach_the_upstream_tool() -> None:
    ran: list[str] = []
    manager = PluginManager()
    manager.register(verbose)
    async with Client(gateway(manager, upstream(ran))) as client:
        result = await client.call_tool("shell", {"command": "ls"})
    assert ran == ["ls -la"] and texts(result) == ["ran ls -la"]


@hook("post_tool_call")
def hide_example(result: ToolResult, ctx: HookContext) -> Any:
    return Modify(result.replace(output=result.output.replace("example.com", "[hidden]")))


@pytest.mark.parametrize("mode", MODES)
async def test_a_post_tool_call_modify_is_what_the_client_receives_structured_too(
    mode: str,
) -> None:
    manager = PluginManager()
    manager.register(hide_example)
    manager.register(no_rm)
    # The client checks structured content against the tool's output schema: it passes.
    async with Client(gateway(manager, upstream()), mode=mode) as client:
        person = await client.call_tool("lookup", {"name": "ada"})
        shell = await client.call_tool("shell", {"command": "ping example.com"})
    assert not person.is_error
    assert person.structured_content == {"name": "ada", "email": "ada@[hidden]"}
    assert "example.com" not in str(person.model_dump())
    assert not shell.is_error and texts(shell) == ["ran ping [hidden]"]
    assert shell.structured_content == {"result": "ran ping [hidden]"}


@hook("post_tool_call")
def summarise(result: ToolResult, ctx: HookContext) -> Any:
    return Modify(result.replace(output="one contact, address withheld"))


async def test_an_output_that_no_longer_fits_the_schema_is_text_only_and_marked() -> None:
    manager = PluginManager()
    manager.register(summarise)
    async with Client(gateway(manager, upstream())) as client:
        result = await client.call_tool("lookup", {"name": "ada"})
    assert result.is_error and result.structured_content is None
    assert texts(result)[0] == "one contact, address withheld"
    assert "no longer fits the tool's output schema" in texts(result)[1]
    assert "example.com" not in str(result.model_dump())  # nothing removed survives


@pytest.mark.parametrize("mode", MODES)
async def test_a_raising_gate_fails_closed_and_the_client_gets_an_error_result(
    mode: str,
) -> None:
    ran: list[str] = []
    manager = PluginManager()
    manager.register(broken_gate)
    async with Client(gateway(manager, upstream(ran)), mode=mode) as client:
        result = await client.call_tool("shell", {"command": "ls"})
    assert result.is_error and ran == []
    assert "broken-gate" in texts(result)[0]


class Counting(Plugin):
    """Counts calls per session; notes each count where the model will read it."""

    name = "counting"

    def __init__(self) -> None:
        self.sessions: list[tuple[str, int]] = []

    def on_pre_tool_call(self, call: ToolCall, ctx: HookContext) -> None:
        seen = ctx.state["calls"] = ctx.state.get("calls", 0) + 1
        assert ctx.session is not None
        self.sessions.append((ctx.session.id, seen))
        if ctx.system_items is not None:
            ctx.system_items.append("note", f"call {seen} of this session")


async def test_each_client_connection_is_a_session_of_its_own() -> None:
    counting, recorder = Counting(), RecordingPlugin()
    manager = PluginManager()
    manager.register(counting, capabilities=["system_items"])
    manager.register(recorder)
    server = gateway(manager, upstream())
    both_open = anyio.Event()
    results: dict[str, list[list[str]]] = {"a": [], "b": []}

    async def connection(name: str, calls: int, ready: anyio.Event) -> None:
        async with Client(server) as client:
            ready.set()
            await both_open.wait()  # both connections live at once
            for _ in range(calls):
                results[name].append(texts(await client.call_tool("shell", {"command": "ls"})))

    ready_a, ready_b = anyio.Event(), anyio.Event()
    with anyio.fail_after(30):  # a hang guard, not a timing assertion
        async with anyio.create_task_group() as group:
            group.start_soon(connection, "a", 2, ready_a)
            group.start_soon(connection, "b", 1, ready_b)
            await ready_a.wait()
            await ready_b.wait()
            both_open.set()
    assert results["a"] == [
        ["ran ls", "[note] call 1 of this session"],
        ["ran ls", "[note] call 2 of this session"],
    ]
    assert results["b"] == [["ran ls", "[note] call 1 of this session"]]
    ids = {session for session, _ in counting.sessions}
    assert len(ids) == 2
    assert sorted(seen for _, seen in counting.sessions) == [1, 1, 2]
    names = recorder.names()
    assert names.count("session_start") == 2 and names.count("session_end") == 2


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """`app` on a loopback port of its own, for the block: its `/mcp` URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # bound before serving: early requests wait in the backlog
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    with anyio.fail_after(60):  # a hang guard, not a timing assertion
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            try:
                yield f"http://127.0.0.1:{port}/mcp"
            finally:
                server.should_exit = True
    sock.close()


def http_gateway(**options: Any) -> tuple[Any, Counting, RecordingPlugin]:
    counting, recorder = Counting(), RecordingPlugin()
    manager = PluginManager()
    manager.register(counting, capabilities=["system_items"])
    manager.register(recorder)
    return gateway(manager, upstream(), **options), counting, recorder


def ends(recorder: RecordingPlugin) -> list[str]:
    return [payload.reason for name, payload in recorder.events if name == "session_end"]


@pytest.mark.parametrize("stateless", [False, True])
async def test_over_http_clients_without_an_mcp_session_share_no_interlock_session(
    stateless: bool,
) -> None:
    # The 2026-07-28 protocol (what `Client(url)` speaks) has no sessions: every
    # request is one, never the server-wide lifespan's single session.
    server, counting, recorder = http_gateway()
    app = server.streamable_http_app(stateless_http=stateless, host="127.0.0.1")
    async with served(app) as url, Client(url) as alice, Client(url) as bob:
        for client in (alice, bob, alice, bob):
            result = await client.call_tool("shell", {"command": "ls"})
            assert texts(result) == ["ran ls", "[note] call 1 of this session"]
    assert [seen for _, seen in counting.sessions] == [1, 1, 1, 1]
    assert len({session for session, _ in counting.sessions}) == 4
    assert ends(recorder) == ["closed"] * 4


async def test_over_http_each_mcp_session_is_a_session_of_its_own() -> None:
    server, counting, recorder = http_gateway()
    app = server.streamable_http_app(host="127.0.0.1")
    async with served(app) as url:
        async with Client(url, mode="legacy") as alice, Client(url, mode="legacy") as bob:
            got = [
                texts(await client.call_tool("shell", {"command": "ls"}))[1]
                for client in (alice, bob, alice)
            ]
        assert got == [
            "[note] call 1 of this session",
            "[note] call 1 of this session",
            "[note] call 2 of this session",
        ]
        ids = [session for session, _ in counting.sessions]
        assert ids[0] == ids[2] != ids[1]
    assert ends(recorder) == ["closed", "closed"]


MODERN = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/call",
    "mcp-name": "shell",
}


def raw_call(number: int) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    params = {"name": "shell", "arguments": {"command": "ls"}, "_meta": meta}
    return {"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}


async def test_over_http_a_forged_mcp_session_id_picks_no_session() -> None:
    server, counting, recorder = http_gateway()
    app = server.streamable_http_app(host="127.0.0.1")
    async with served(app) as url, httpx.AsyncClient(timeout=30) as http:
        forged = ["victim", "victim", "rand-1", "rand-2", "victim"]
        for number, sid in enumerate(forged):
            headers = {**MODERN, "mcp-session-id": sid}
            response = await http.post(url, headers=headers, json=raw_call(number))
            assert response.status_code == 200
        # each request its own session, all of them over once answered: nothing to pile up
        assert [seen for _, seen in counting.sessions] == [1] * len(forged)
        assert len({session for session, _ in counting.sessions}) == len(forged)
        assert ends(recorder) == ["closed"] * len(forged)
        # the handshake protocol: an id the SDK did not issue reaches no session at all
        legacy = {**MODERN, "mcp-protocol-version": "2025-11-25", "mcp-session-id": "victim"}
        response = await http.post(url, headers=legacy, json=raw_call(99))
        assert response.status_code == 404
    assert len(counting.sessions) == len(forged)


async def test_over_http_sessions_are_bounded_and_the_least_recently_used_is_evicted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, counting, recorder = http_gateway(max_sessions=2)
    app = server.streamable_http_app(host="127.0.0.1")
    async with (
        served(app) as url,
        Client(url, mode="legacy") as a,
        Client(url, mode="legacy") as b,
        Client(url, mode="legacy") as c,
    ):
        await a.call_tool("shell", {"command": "ls"})
        await b.call_tool("shell", {"command": "ls"})
        await a.call_tool("shell", {"command": "ls"})  # b is now the least recent
        assert ends(recorder) == []
        await c.call_tool("shell", {"command": "ls"})
        assert ends(recorder) == ["evicted"]
        result = await b.call_tool("shell", {"command": "ls"})  # a fresh session
        assert texts(result)[1] == "[note] call 1 of this session"
        assert ends(recorder) == ["evicted", "evicted"]  # a went to make room
    assert [seen for _, seen in counting.sessions] == [1, 1, 2, 1, 1]
    assert "2 evicted so far" in caplog.text and "max_sessions" in caplog.text


def test_max_sessions_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        gateway(PluginManager(), upstream(), max_sessions=0)


@pytest.mark.parametrize("mode", MODES)
async def test_conformance_each_tool_hook_fires_once_per_call(mode: str) -> None:
    kit = Conformance(["session_start", "session_end", "pre_tool_call", "post_tool_call"])
    server = gateway(kit.manager, upstream())
    async with Client(server, mode=mode) as client:
        await client.call_tool("shell", {"command": "ls"})
        await client.call_tool("lookup", {"name": "ada"})
        await client.call_tool("no_such_tool", {})  # the upstream's error is judged too
    kit.check(Expected(tool_calls=3))
    calls = [p for n, p in kit.recorder.events if n == "pre_tool_call"]
    assert all(call.call_id for call in calls) and calls[2].arguments == {}


async def test_an_upstream_error_passes_post_tool_call() -> None:
    seen: list[ToolResult] = []

    @hook("post_tool_call")
    def watch(result: ToolResult, ctx: HookContext) -> None:
        seen.append(result)

    manager = PluginManager()
    manager.register(watch)
    async with Client(gateway(manager, upstream())) as client:
        result = await client.call_tool("no_such_tool", {"x": 1})
    assert result.is_error
    assert seen[0].is_error and "no_such_tool" in seen[0].output


@hook("pre_tool_call")
def ask_first(call: ToolCall, ctx: HookContext) -> Any:
    return Ask(f"run {call.arguments.get('command')}?")


async def test_an_ask_goes_to_the_approver_and_without_one_is_refused() -> None:
    ran: list[str] = []
    questions: list[str] = []

    def approver(call: ToolCall, question: str) -> bool:
        questions.append(question)
        return call.arguments.get("command") == "ls"

    manager = PluginManager()
    manager.register(ask_first)
    async with Client(gateway(manager, upstream(ran), approver=approver)) as client:
        yes = await client.call_tool("shell", {"command": "ls"})
        no = await client.call_tool("shell", {"command": "git push"})
    async with Client(gateway(manager, upstream(ran))) as client:
        refused = await client.call_tool("shell", {"command": "ls"})
    assert not yes.is_error and no.is_error and refused.is_error
    assert texts(no) == ["not approved: run git push?"]
    assert questions == ["run ls?", "run git push?"] and ran == ["ls"]


async def test_built_in_plugins_work_through_the_gateway_unchanged() -> None:
    ran: list[str] = []
    manager = PluginManager()
    manager.register(ToolGuard(ToolGuardConfig(destructive="deny")))
    manager.register(ContentPolicy(ContentPolicyConfig(redact=["email"])))
    async with Client(gateway(manager, upstream(ran))) as client:
        blocked = await client.call_tool("shell", {"command": "rm -rf ~"})
        person = await client.call_tool("lookup", {"name": "ada"})
    assert blocked.is_error and "destructive" in texts(blocked)[0] and ran == []
    assert not person.is_error and "example.com" not in str(person.model_dump())
    assert person.structured_content is not None
    assert person.structured_content["name"] == "ada"


GUARD_SCRIPT = """#!/bin/sh
# a command hook: the event as JSON on stdin; exit 2 with the reason on stderr blocks
if grep -q 'rm -rf'; then
  echo "no rm -rf through MCP" >&2
  exit 2
fi
exit 0
"""


async def test_an_out_of_process_command_plugin_works_through_the_gateway(
    tmp_path: Path,
) -> None:
    script = tmp_path / "guard.sh"
    script.write_text(GUARD_SCRIPT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    ran: list[str] = []
    manager = PluginManager()
    runner = CommandRunner([str(script)], name="sh-guard")
    manager.register(command_plugin(runner, name="sh-guard", hooks=["pre_tool_call"]))
    async with Client(gateway(manager, upstream(ran))) as client:
        blocked = await client.call_tool("shell", {"command": "rm -rf /tmp/x"})
        allowed = await client.call_tool("shell", {"command": "ls"})
    assert blocked.is_error and texts(blocked) == ["no rm -rf through MCP"]
    assert texts(allowed) == ["ran ls"] and ran == ["ls"]
    await manager.aclose()


def test_gateway_is_built_outside_any_loop_and_without_the_sdk_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = gateway(PluginManager(), upstream())  # sync, nothing connects yet
    assert server.name == "interlock-mcp-gateway"
    monkeypatch.setitem(sys.modules, "mcp", None)
    with pytest.raises(ImportError, match=r"pip install -e '<interlock checkout>\[mcp\]'"):
        gateway(PluginManager(), upstream())


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "adapters" / "mcp_example.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "blocked: destructive shell command" in out
    assert "ran: ran ls -la" in out
    assert "lookup: {'name': 'ada', 'email': 'ada@[hidden]'}" in out


CONFIG = """
plugins:
  - name: tool-guard
    use: tool-guard
    config: {destructive: deny}
  - name: content-policy
    use: content-policy
    config: {redact: [email]}
"""


async def test_the_cli_serves_the_gateway_over_stdio(tmp_path: Path) -> None:
    config = tmp_path / "interlock.yaml"
    config.write_text(CONFIG)
    pid_file = tmp_path / "upstream.pid"
    command = [str(ROOT / "tests" / "adapters" / "mcp_upstream.py"), str(pid_file)]
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "interlock", "mcp-gateway", "--config", str(config), "--",
              sys.executable, *command],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )  # fmt: skip
    try:
        with anyio.fail_after(60):  # a hang guard, not a timing assertion
            async with Client(params, mode="legacy") as client:
                tools = [t.name for t in (await client.list_tools()).tools]
                blocked = await client.call_tool("shell", {"command": "rm -rf /"})
                allowed = await client.call_tool("shell", {"command": "ls"})
            # the client ended the gateway, which ended (and waited for) its upstream
            assert not _alive(int(pid_file.read_text()))
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert tools == ["shell"]
    assert blocked.is_error and "destructive" in texts(blocked)[0]
    assert texts(allowed) == ["ran 'ls'; questions to [email]"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
