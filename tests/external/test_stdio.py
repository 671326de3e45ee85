"""The stdio transport with a plugin written in JavaScript (tests/external/plugins/guard.js)."""

from __future__ import annotations

import asyncio
import math
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock import HookTimeoutError, PluginManager, ProtocolError, ToolCall, hooks
from interlock.external import StdioTransport, connect
from interlock.testing import sample

from .conftest import ENV, NODE, PLUGINS, ROOT, LogWatch, needs_node, serve_command

GUARD = [str(NODE), str(PLUGINS / "guard.js")]


@pytest.fixture
def guard() -> Iterator[StdioTransport]:
    transport = StdioTransport(GUARD, name="guard", backoff=(0, 0))
    yield transport
    transport.close()


def reaped(pid: int) -> bool:
    """True when `pid` is no child of ours any more (exited and waited for)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


@needs_node
async def test_a_node_plugin_blocks_modifies_and_starts_lazily(
    guard: StdioTransport, manager: PluginManager
) -> None:
    plugin = connect(guard, name="guard", hooks=["pre_tool_call"])
    assert guard.pid is None  # nothing runs until the first call
    manager.register(plugin)

    blocked = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "rm -rf /"}))
    changed = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))

    assert blocked.blocked and blocked.blocked_by == "guard"
    assert blocked.reason == "guard.js: rm -rf is not allowed"
    assert changed.payload == ToolCall("shell", {"command": "ls", "checked_by": "guard.js"})
    assert guard.starts == 1


@needs_node
def test_the_handshake_tells_hooks_and_requested_capabilities(
    guard: StdioTransport, log_watch: LogWatch
) -> None:
    plugin = connect(guard, name="guard")
    manager = PluginManager()
    handle = manager.register(plugin)
    [registration] = handle.registrations
    assert registration.hook is hooks.PRE_TOOL_CALL
    # The -10 it suggests is logged, not applied: the host decides the order.
    assert registration.priority == 0
    assert any("'guard' suggests priority -10" in m for m in log_watch.messages)
    assert plugin.requested == ("system_items", "notify")
    manager.close()


@needs_node
def test_many_calls_in_flight_are_matched_to_their_callers(guard: StdioTransport) -> None:
    manager = PluginManager()
    manager.register(connect(guard, name="guard", hooks=["pre_tool_call"]))

    async def many() -> list[object]:
        calls = [ToolCall("shell", {"command": f"echo {i}"}) for i in range(200)]
        results = await asyncio.gather(*(manager.invoke(hooks.PRE_TOOL_CALL, c) for c in calls))
        return [r.payload.arguments["command"] for r in results if r.payload is not None]

    assert asyncio.run(many()) == [f"echo {i}" for i in range(200)]
    manager.close()


@needs_node
def test_sync_hosts_call_external_plugins_too(guard: StdioTransport) -> None:
    manager = PluginManager()
    manager.register(connect(guard, name="guard", hooks=["pre_tool_call"]))
    result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "rm -rf x"}))
    assert result.blocked
    manager.close()
    assert guard.pid is None


@needs_node
async def test_kill_9_mid_call_reports_that_call_and_the_next_one_restarts_it(
    guard: StdioTransport, manager: PluginManager, log_watch: LogWatch
) -> None:
    manager.register(connect(guard, name="guard", hooks=["pre_tool_call"]), timeout=60)
    arrived = log_watch.expect("hanging on purpose")  # guard.js says so on stderr
    pending = asyncio.ensure_future(manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("hang")))
    assert await asyncio.to_thread(arrived.wait, 30)
    first = guard.pid
    assert first is not None

    os.kill(first, signal.SIGKILL)
    result = await pending

    # pre_tool_call fails closed: the call in flight is blocked, attributed, explained.
    assert result.blocked and result.blocked_by == "guard"
    [failure] = result.errors
    assert failure.plugin == "guard" and "closed its output" in failure.message
    assert reaped(first)  # no zombie left behind

    after = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    assert not after.errors and after.payload is not None
    assert guard.starts == 2 and guard.pid not in (None, first)
    assert any("stopped" in m and "exit code -9" in m for m in log_watch.messages)


@needs_node
async def test_a_plugin_that_hangs_times_out_and_is_replaced(
    guard: StdioTransport, manager: PluginManager
) -> None:
    guard.hang_after = 0.1  # silent for longer than this when a call is given up on: hung
    manager.register(
        connect(guard, name="guard", hooks=["pre_tool_call"]), timeout=0.2, on_error="ignore"
    )
    await guard.call("initialize", guard.initialize)  # started outside the short timeout
    hung = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    first = guard.pid
    assert first is not None and not hung.errors

    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("hang"))

    [failure] = result.errors
    assert failure.kind == "timeout" and isinstance(failure.error, HookTimeoutError)
    assert not result.blocked  # on_error=ignore: the host goes on
    assert reaped(first)  # the stuck process was killed and waited for
    await guard.call("initialize", guard.initialize)  # the new one, outside the timeout
    again = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    assert not again.errors and guard.starts == 2


@needs_node
async def test_crashes_back_off_before_the_next_start(manager: PluginManager) -> None:
    now = [100.0]
    waited: list[float] = []

    async def sleep(seconds: float) -> None:  # the back-off, on a fake clock
        waited.append(seconds)
        now[0] += seconds

    transport = StdioTransport(GUARD, name="guard", backoff=(1.0, 4.0), clock=lambda: now[0],
                               sleep=sleep)  # fmt: skip
    manager.register(connect(transport, name="guard", hooks=["pre_tool_call"]), on_error="ignore")
    try:
        crashed = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("crash"))
        assert "closed its output" in crashed.errors[0].message
        # The next call waits out the back-off, then starts it, and crashes it again:
        again = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("crash"))
        assert "closed its output" in again.errors[0].message
        assert waited == [1.0] and transport.starts == 2
        # the second crash in a row waits twice as long
        fine = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
        assert not fine.errors and transport.starts == 3
        assert waited == [1.0, 2.0]
    finally:
        transport.close()


def test_a_command_that_cannot_start_fails_the_call_not_the_host(manager: PluginManager) -> None:
    transport = StdioTransport(["no-such-program-anywhere"], name="ghost")
    manager.register(connect(transport, name="ghost", hooks=["pre_tool_call"]))
    result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert (
        result.blocked and "could not start 'no-such-program-anywhere'" in result.errors[0].message
    )
    with pytest.raises(ProtocolError, match="could not start"):
        connect(StdioTransport(["no-such-program-anywhere"]), name="ghost")


def test_stderr_goes_to_the_log_and_stdout_noise_stays_off_the_pipe(log_watch: LogWatch) -> None:
    # `serve --stdio` moves the plugin's own prints to stderr, which the host logs.
    transport = StdioTransport(serve_command("Noisy", "--stdio"), env=ENV, cwd=ROOT)
    manager = PluginManager()
    manager.register(connect(transport, name="noisy"))
    noise = log_watch.expect("noise on stdout")
    result = manager.invoke_sync(hooks.TURN_END, sample(hooks.TURN_END))
    assert not result.errors
    assert noise.wait(30)
    manager.close()
    assert transport.pid is None


def test_close_asks_the_plugin_to_shut_down_and_leaves_no_process() -> None:
    transport = StdioTransport(serve_command("Guard", "--stdio"), env=ENV, cwd=ROOT)
    plugin = connect(transport, name="guard")
    pid = transport.pid
    assert pid is not None
    manager = PluginManager()
    manager.register(plugin)
    manager.close()
    assert transport.pid is None and reaped(pid)
    with pytest.raises(ProtocolError, match="was closed"):
        transport.call_sync("invoke", {})


@needs_node
async def test_every_new_process_is_greeted_before_its_first_call(
    guard: StdioTransport, manager: PluginManager
) -> None:
    # guard.js refuses calls before `initialize`; the host never told it its hooks' names
    # was enough: each process it starts gets the handshake first.
    manager.register(connect(guard, name="guard", hooks=["pre_tool_call"]), on_error="ignore")
    first = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    crashed = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("crash"))
    again = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    assert not first.errors and first.payload is not None
    assert "exit code 3" in crashed.errors[0].message
    assert not again.errors and again.payload is not None and guard.starts == 2


@needs_node
async def test_a_slow_call_given_up_on_does_not_restart_a_plugin_that_answers(
    guard: StdioTransport, manager: PluginManager, log_watch: LogWatch
) -> None:
    manager.register(connect(guard, name="guard", hooks=["pre_tool_call"]), timeout=math.inf)
    arrived = log_watch.expect("hanging on purpose")
    slow = asyncio.ensure_future(manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("hang")))
    assert await asyncio.to_thread(arrived.wait, 30)
    answered = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    assert answered.payload is not None  # it answers others after the slow call was sent

    slow.cancel()  # what its timeout does
    with pytest.raises(asyncio.CancelledError):
        await slow

    later = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    assert later.payload is not None and guard.starts == 1  # the same process goes on


@needs_node
@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux)")
async def test_closing_ends_what_the_plugin_started_too(log_watch: LogWatch) -> None:
    transport = StdioTransport(GUARD, name="guard")
    manager = PluginManager()
    manager.register(connect(transport, name="guard", hooks=["pre_tool_call"]))
    spawned = log_watch.expect("guard.js: child ")
    await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("spawn"))
    assert await asyncio.to_thread(spawned.wait, 30)
    line = next(m for m in log_watch.messages if "guard.js: child " in m)
    pidfd = os.pidfd_open(int(line.rsplit(" ", 1)[1]))
    try:
        await manager.aclose()
        ended, _, _ = await asyncio.to_thread(select.select, [pidfd], [], [], 30)
        assert ended == [pidfd]
    finally:
        os.close(pidfd)


STUFFED = """
import asyncio, sys
from interlock import PluginManager, ToolCall, hooks
from interlock.external import StdioTransport, connect

async def main():
    # A plugin that stops reading after its handshake: the pipe fills, and the host must
    # not freeze.
    deaf = ("import json, sys, time; m = json.loads(sys.stdin.readline()); "
            "print(json.dumps({'jsonrpc': '2.0', 'id': m['id'], 'result': "
            "{'protocol': 1, 'hooks': ['pre_tool_call']}}), flush=True); "
            "time.sleep(600)")  # stands in for a plugin that never reads again; killed at close
    transport = StdioTransport([sys.executable, "-c", deaf], limit=10_000_000)
    manager = PluginManager()
    manager.register(connect(transport, name="deaf", hooks=["pre_tool_call"]), timeout=0.5)
    big = ToolCall("shell", {"command": "x" * 2_000_000})
    result = await manager.invoke(hooks.PRE_TOOL_CALL, big)
    print(result.errors[0].kind)
    await manager.aclose()

asyncio.run(main())
"""


def test_a_plugin_that_stops_reading_cannot_freeze_the_host() -> None:
    # In a child process, so that a regression shows as a failure here, not as a hang.
    out = subprocess.run([sys.executable, "-c", STUFFED], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "timeout"


@needs_node
async def test_a_call_cancelled_early_leaves_the_plugin_running(
    guard: StdioTransport, manager: PluginManager, log_watch: LogWatch
) -> None:
    guard.hang_after = 3600  # the host gave up long before the plugin could look hung
    manager.register(connect(guard, name="guard", hooks=["pre_tool_call"]), timeout=math.inf)
    arrived = log_watch.expect("hanging on purpose")
    aborted = asyncio.ensure_future(manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("hang")))
    assert await asyncio.to_thread(arrived.wait, 30)
    aborted.cancel()  # a host abandoning a turn
    with pytest.raises(asyncio.CancelledError):
        await aborted
    after = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "ls"}))
    assert after.payload is not None and guard.starts == 1


REFUSES_ONCE = """
import json, os, sys
first = not os.path.exists(sys.argv[1])
open(sys.argv[1], "a").close()
for line in sys.stdin:
    message = json.loads(line)
    if message["method"] == "initialize" and first:
        answer = {"error": {"code": -32000, "message": "not ready: no licence file"}}
    elif message["method"] == "initialize":
        answer = {"result": {"protocol": 1, "hooks": ["pre_tool_call"]}}
    else:
        answer = {"result": {"action": {"type": "block", "reason": "ready"}}}
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], **answer}), flush=True)
"""


async def test_a_process_that_refuses_its_handshake_is_replaced(
    tmp_path: Path, manager: PluginManager
) -> None:
    marker = tmp_path / "started-once"
    command = [sys.executable, "-c", REFUSES_ONCE, str(marker)]
    transport = StdioTransport(command, name="picky", backoff=(0, 0))
    manager.register(connect(transport, name="picky", hooks=["pre_tool_call"]))
    refused = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    ready = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    transport.close()
    assert "not ready: no licence file" in refused.errors[0].message
    assert ready.reason == "ready" and transport.starts == 2


SLOW_START = """
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message["method"] == "initialize":
        print("got initialize", file=sys.stderr, flush=True)
        open(sys.argv[1]).read()  # answers only once the test says so (a slow start)
        print(json.dumps({"jsonrpc": "2.0", "id": message["id"],
                          "result": {"protocol": 1, "hooks": ["pre_tool_call"]}}), flush=True)
    else:
        print(json.dumps({"jsonrpc": "2.0", "id": message["id"],
                          "result": {"action": {"type": "block", "reason": "up"}}}), flush=True)
"""


async def test_a_plugin_slow_to_start_is_waited_for_not_killed(
    tmp_path: Path, manager: PluginManager, log_watch: LogWatch
) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    command = [sys.executable, "-c", SLOW_START, str(go)]
    transport = StdioTransport(command, name="slow", hang_after=0)
    manager.register(connect(transport, name="slow", hooks=["pre_tool_call"]), timeout=math.inf)
    greeted = log_watch.expect("got initialize")
    early = asyncio.ensure_future(manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell")))
    assert await asyncio.to_thread(greeted.wait, 30)
    early.cancel()  # a call's timeout passes while the plugin is still starting
    with pytest.raises(asyncio.CancelledError):
        await early
    later = asyncio.ensure_future(manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell")))
    await asyncio.to_thread(go.write_text, "go")  # now it has started
    result = await later
    transport.close()
    assert result.reason == "up" and transport.starts == 1
