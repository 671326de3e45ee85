"""Per-registration timeouts: async hangs, threaded sync hangs, and late sync answers."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from interlock import (
    Block,
    HookTimeoutError,
    MessageEvent,
    Modify,
    PluginManager,
    SessionEnd,
    ToolCall,
    hooks,
)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that hung worker threads wait on; tests set it once they have their result,
    so the event loop's executor can shut down."""
    event = threading.Event()
    yield event
    event.set()


async def test_a_hanging_async_handler_times_out(manager: PluginManager) -> None:
    cancelled = asyncio.Event()

    async def hang(payload: Any, ctx: Any) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    manager.register(hang, hook="pre_tool_call", timeout=0.05)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert cancelled.is_set()  # the handler was stopped, not abandoned
    assert result.blocked  # pre_tool_call fails closed
    [failure] = result.errors
    assert failure.kind == "timeout"
    assert isinstance(failure.error, HookTimeoutError)
    assert isinstance(failure.error, TimeoutError)
    assert "ran past its 0.05s timeout" in failure.message
    stats = manager.stats().get("hang", "pre_tool_call")
    assert (stats.calls, stats.errors, stats.timeouts) == (1, 1, 1)


async def test_a_handler_that_swallows_its_cancellation_is_still_late(
    manager: PluginManager,
) -> None:
    async def stubborn(payload: MessageEvent, ctx: Any) -> Any:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return Modify(payload.replace(content="too late"))

    manager.register(stubborn, hook="message_received", timeout=0.05)
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert result.payload is None
    assert result.errors[0].kind == "timeout"


async def test_a_hanging_threaded_sync_handler_times_out(
    manager: PluginManager, release: threading.Event
) -> None:
    def hang(payload: Any, ctx: Any) -> None:
        release.wait()

    manager.register(hang, hook="message_received", thread=True, timeout=0.05)
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    release.set()
    assert [f.kind for f in result.errors] == ["timeout"]


def test_sync_host_threaded_handler_times_out(
    manager: PluginManager, release: threading.Event
) -> None:
    def hang(payload: Any, ctx: Any) -> None:
        release.wait()

    manager.register(hang, hook="message_received", thread=True, timeout=0.05)
    result = manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    release.set()
    assert [f.kind for f in result.errors] == ["timeout"]


def test_an_inline_sync_handler_past_its_timeout_is_honoured_and_logged(
    manager: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    # An inline sync handler cannot be stopped; throwing away a finished answer (say, a
    # correct Block) would only make things less safe. The log says how to enforce it.
    def slow(payload: ToolCall, ctx: Any) -> Block:
        return Block("still a good answer")

    manager.register(slow, hook="pre_tool_call", on_error="ignore", timeout=1e-9)
    with caplog.at_level("WARNING", logger="interlock"):
        result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert result.blocked and result.reason == "still a good answer"
    assert result.errors == ()
    assert any("register it with thread=True" in r.getMessage() for r in caplog.records)


async def test_infinite_timeout_means_none(manager: PluginManager) -> None:
    async def fine(payload: Any, ctx: Any) -> None:
        await asyncio.sleep(0)

    [reg] = manager.register(fine, hook="message_received", timeout=math.inf).registrations
    assert reg.timeout is None
    assert manager.register(fine, hook="message_received", name="d").registrations[0].timeout == 5.0


def test_manager_default_timeout() -> None:
    manager = PluginManager(default_timeout=math.inf)

    def fine(payload: Any, ctx: Any) -> None:
        return None

    assert manager.register(fine, hook="message_received").registrations[0].timeout is None
    with pytest.raises(ValueError, match=r"math\.inf for no timeout"):
        PluginManager(default_timeout=None)  # type: ignore[arg-type]


async def test_slow_handlers_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    manager = PluginManager(slow_threshold=0.0)

    def sluggish(payload: Any, ctx: Any) -> None:
        return None

    manager.register(sluggish, hook="message_received")
    with caplog.at_level("WARNING", logger="interlock"):
        await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    [record] = [r for r in caplog.records if "slow plugin" in r.getMessage()]
    assert "slow plugin 'sluggish' at hook 'message_received'" in record.getMessage()
    assert record.interlock_plugin == "sluggish"  # type: ignore[attr-defined]
    assert record.interlock_duration >= 0  # type: ignore[attr-defined]


async def test_chains_of_one_task_each_keep_their_own_deadlines(manager: PluginManager) -> None:
    """A task's awaited chains take over one watch in turn, and a chain invoked from inside
    a handler has its own: each handler is stopped at its own deadline, and only it."""
    inner: list[Any] = []

    async def hangs_on_request(payload: MessageEvent, ctx: Any) -> None:
        if payload.content == "hang":
            await asyncio.Event().wait()

    async def invokes_inside(payload: MessageEvent, ctx: Any) -> None:
        inner.append(await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("hang")))

    manager.register(hangs_on_request, hook="message_received", timeout=0.05)
    manager.register(invokes_inside, hook="message_sending", timeout=5.0)
    received = hooks.MESSAGE_RECEIVED
    before = await manager.invoke(received, MessageEvent("fine"))
    hung = await manager.invoke(received, MessageEvent("hang"))
    # Another task's handler hangs while this task waits: its deadline is the only one
    # the watcher may act on (this task's last chain is over; its deadline went with it).
    elsewhere = await asyncio.create_task(manager.invoke(received, MessageEvent("hang")))
    after = await manager.invoke(received, MessageEvent("fine"))
    assert before.errors == after.errors == ()
    assert [f.kind for f in hung.errors] == [f.kind for f in elsewhere.errors] == ["timeout"]

    outer = await manager.invoke(hooks.MESSAGE_SENDING, MessageEvent("x"))
    assert outer.errors == ()  # the inner chain's timeout is not the outer handler's
    assert [f.kind for f in inner[0].errors] == ["timeout"]
    last = await manager.invoke(received, MessageEvent("fine"))
    assert last.errors == ()
    assert manager.stats().get("hangs_on_request", "message_received").timeouts == 3


class _AbortedError(Exception):
    """What a client library raises when the request it awaited is cancelled."""


async def _converts_its_cancellation(payload: Any, ctx: Any) -> None:
    try:
        await asyncio.Event().wait()
    except BaseException as error:  # as client libraries do: cancelled becomes their own error
        raise _AbortedError("request aborted") from error


async def _gate(payload: Any, ctx: Any) -> None:
    await asyncio.sleep(0)


async def _own_cancellation(payload: Any, ctx: Any) -> None:
    raise asyncio.CancelledError  # its own raise: its failure, not the host's


def _register_converting_then_gate(manager: PluginManager) -> None:
    manager.register(
        _converts_its_cancellation, hook="pre_tool_call", name="slow", timeout=0.05,
        on_error="ignore",
    )  # fmt: skip
    manager.register(_gate, hook="pre_tool_call", name="gate", priority=1, on_error="block")


async def test_a_handler_that_converts_its_cancellation_times_out_alone(
    manager: PluginManager,
) -> None:
    """Its deadline's cancellation is taken back whatever it raised instead: the gate after
    it is not charged with a timeout, and the host's task is not left cancelling."""
    _register_converting_then_gate(manager)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert not result.blocked
    [failure] = result.errors
    assert (failure.plugin, failure.kind) == ("slow", "timeout")
    assert isinstance(failure.error.__cause__, _AbortedError)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert manager.stats().get("gate", "pre_tool_call").timeouts == 0
    # A handler's own CancelledError stays its failure: no cancellation is left pending.
    manager.register(_own_cancellation, hook="pre_tool_call", name="own", priority=2,
                     on_error="ignore")  # fmt: skip
    again = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert [(f.plugin, f.kind) for f in again.errors] == [("slow", "timeout"), ("own", "exception")]


def test_a_sync_host_s_converting_handler_times_out_alone(manager: PluginManager) -> None:
    _register_converting_then_gate(manager)
    result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert not result.blocked
    assert [(f.plugin, f.kind) for f in result.errors] == [("slow", "timeout")]


async def test_an_observer_that_converts_its_cancellation_times_out(
    manager: PluginManager,
) -> None:
    manager.register(_converts_its_cancellation, hook="session_end", timeout=0.05)
    result = await manager.invoke(hooks.SESSION_END, SessionEnd("s-1"))
    [failure] = result.errors
    assert failure.kind == "timeout"
    assert isinstance(failure.error.__cause__, _AbortedError)
