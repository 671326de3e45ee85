"""The stdio transport against plugins that misbehave (tests/external/plugins/chaos.py):
dying behind a helper that holds their pipes, leaving helpers behind, flooding their
output, answering the handshake wrongly, crashing during a call's timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from interlock import PluginManager, ToolCall, hooks
from interlock.external import StdioTransport, connect

from .conftest import PLUGINS, LogWatch

CHAOS = [sys.executable, str(PLUGINS / "chaos.py")]
BOUND = 60  # seconds any one step may take before the test fails rather than hangs

needs_pidfd = pytest.mark.skipif(
    not hasattr(os, "pidfd_open") or not os.path.isdir("/proc/self/fd"),
    reason="needs pidfd_open and /proc (Linux)",
)


@pytest.fixture
def chaos() -> Iterator[Callable[..., StdioTransport]]:
    made: list[StdioTransport] = []

    def make(*args: str, **options: object) -> StdioTransport:
        made.append(StdioTransport([*CHAOS, *args], name="chaos", **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for transport in made:
        transport.close()


class Helpers:
    """The helpers a chaos plugin started (it names them on stderr), held by pidfd so
    that the test can wait for them and, whatever happens, end them."""

    def __init__(self, log_watch: LogWatch) -> None:
        self.log_watch = log_watch
        self.pidfds: list[int] = []

    async def started(self) -> int:
        """The pidfd of the latest helper, once the plugin said its pid."""
        said = self.log_watch.expect(": helper ")  # before looking: no line is missed

        def lines() -> list[str]:
            return [m for m in self.log_watch.messages if ": helper " in m]

        if len(lines()) <= len(self.pidfds):
            assert await asyncio.to_thread(said.wait, BOUND)
        line = lines()[len(self.pidfds)]
        pidfd = os.pidfd_open(int(line.rsplit(" ", 1)[1]))
        self.pidfds.append(pidfd)
        return pidfd

    def close(self) -> None:
        for pidfd in self.pidfds:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)


@pytest.fixture
def helpers(log_watch: LogWatch) -> Iterator[Helpers]:
    started = Helpers(log_watch)
    yield started
    started.close()


async def ended(pidfd: int) -> bool:
    """Whether the process exits within the bound (a pidfd is readable once it has)."""
    ready, _, _ = await asyncio.to_thread(select.select, [pidfd], [], [], BOUND)
    return ready == [pidfd]


def readers(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"interlock-{name}-read"]


@needs_pidfd
async def test_a_plugin_that_exits_mid_call_is_noticed_though_a_helper_holds_its_output(
    chaos: Callable[..., StdioTransport], helpers: Helpers, manager: PluginManager
) -> None:
    # A timeout far above hang_after: only the process's exit can end this call early.
    transport = chaos(backoff=(0, 0))
    manager.register(connect(transport, name="chaos", hooks=["pre_tool_call"]), timeout=BOUND,
                     on_error="ignore")  # fmt: skip

    died = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("fork-exit"))
    helper = await helpers.started()

    [failure] = died.errors
    assert failure.kind != "timeout" and "exited" in failure.message
    assert "exit code 4" in failure.message
    assert await ended(helper)  # what it left holding its pipes went with it
    after = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("ok"))
    assert after.reason == "ok" and transport.starts == 2


@needs_pidfd
async def test_closing_ends_a_helper_that_left_the_process_group(
    chaos: Callable[..., StdioTransport], helpers: Helpers, manager: PluginManager
) -> None:
    transport = chaos()
    manager.register(connect(transport, name="chaos", hooks=["pre_tool_call"]))
    answered = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("escape"))
    helper = await helpers.started()
    assert answered.reason == "escape"

    await manager.aclose()

    assert await ended(helper)
    assert not any(t.is_alive() for t in readers("chaos"))  # nothing left reading its pipes


async def test_unsolicited_lines_are_logged_a_few_times_then_counted(
    chaos: Callable[..., StdioTransport], manager: PluginManager, log_watch: LogWatch
) -> None:
    transport = chaos()
    manager.register(connect(transport, name="chaos", hooks=["pre_tool_call"]), timeout=BOUND)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("flood", {"lines": 20_000}))
    assert result.reason == "flood"  # the answer after the flood still arrives

    await manager.aclose()

    ignored = [m for m in log_watch.messages if "nobody waits for" in m]
    assert 1 <= len(ignored) <= 10
    [summary] = [m for m in log_watch.messages if "more protocol warnings" in m]
    assert f"{20_000 - len(ignored)} more protocol warnings were not logged" in summary


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--protocol", "2"], "speaks protocol 2; this host speaks 1"),
        (["--hooks", ""], "handles no hooks"),
        (["--hooks", "post_tool_call"], "does not handle 'pre_tool_call'"),
    ],
)
async def test_a_wrong_handshake_is_refused_at_the_first_start_as_at_load(
    chaos: Callable[..., StdioTransport], manager: PluginManager, args: list[str], problem: str
) -> None:
    transport = chaos(*args, backoff=(0, 0))
    manager.register(connect(transport, name="chaos", hooks=["pre_tool_call"]))

    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))

    assert result.blocked and result.reason != "shell"  # fails closed, never asked
    [failure] = result.errors
    assert "plugin 'chaos' is refused" in failure.message and problem in failure.message
    assert transport.pid is None  # the refused process is stopped


async def test_a_call_during_the_back_off_waits_for_the_restart(
    chaos: Callable[..., StdioTransport], manager: PluginManager
) -> None:
    transport = chaos(backoff=(0.2, 0.2))
    manager.register(connect(transport, name="chaos", hooks=["pre_tool_call"]), timeout=BOUND)
    crashed = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("crash"))
    assert "exit code 3" in crashed.errors[0].message

    after = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("ok"))

    assert not after.errors and after.reason == "ok" and transport.starts == 2


async def test_a_back_off_longer_than_the_call_fails_it_by_its_timeout(
    chaos: Callable[..., StdioTransport], manager: PluginManager
) -> None:
    transport = chaos(backoff=(BOUND, BOUND))
    manager.register(connect(transport, name="chaos", hooks=["pre_tool_call"]), timeout=0.2)
    await transport.call("initialize", transport.initialize)  # started outside the timeout
    crashed = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("crash"))
    assert "exit code 3" in crashed.errors[0].message

    waiting = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("ok"))

    [failure] = waiting.errors
    assert failure.kind == "timeout" and waiting.blocked  # waited its timeout, then closed
    assert transport.starts == 1


async def test_a_slow_start_is_waited_for_outside_the_calls_timeout(
    chaos: Callable[..., StdioTransport],
) -> None:
    # The plugin takes longer to answer `initialize` than the call may take: the wait for
    # the handshake (bounded by its own timeout) does not count against the call's.
    plugin = connect(chaos("--slow-start", "0.5"), name="slow", hooks=["pre_tool_call"])
    manager = PluginManager()
    manager.register(plugin, timeout=0.2, on_error="block")
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("answered"))
    await manager.aclose()
    assert result.errors == ()
    assert result.blocked_by == "slow" and result.reason == "answered"
