"""The circuit breaker: N failures in a row suspend a registration, a trial call reopens it."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from interlock import MessageEvent, PluginManager, ToolCall, hooks
from tests.conftest import FakeClock


class Flaky:
    """A handler that fails while `failing` is set, counting its calls."""

    def __init__(self) -> None:
        self.failing = True
        self.calls = 0

    def __call__(self, payload: Any, ctx: Any) -> None:
        self.calls += 1
        if self.failing:
            raise ConnectionError("policy server down")


@pytest.fixture
def breaker_manager(clock: FakeClock) -> PluginManager:
    return PluginManager(clock=clock, failure_threshold=3, cooldown=30)


def test_opens_half_opens_and_closes(breaker_manager: PluginManager, clock: FakeClock) -> None:
    manager = breaker_manager
    flaky = Flaky()
    manager.register(flaky, hook="message_received", name="flaky")

    def invoke() -> Any:
        return manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))

    for _ in range(3):
        assert invoke().errors[0].kind == "exception"
    assert manager.stats().get("flaky", "message_received").circuit == "open"

    # Open: the handler is not called; the skip is reported and counted.
    result = invoke()
    assert flaky.calls == 3
    assert result.errors[0].kind == "circuit_open"
    assert "suspended after 3 failures in a row" in result.errors[0].message
    assert manager.stats().get("flaky", "message_received").skipped == 1

    # After the cooldown one trial call goes through; failing it reopens the circuit.
    clock.advance(30)
    invoke()
    assert flaky.calls == 4
    assert manager.stats().get("flaky", "message_received").circuit == "open"
    invoke()
    assert flaky.calls == 4

    # A successful trial closes it again.
    clock.advance(30)
    flaky.failing = False
    assert invoke().errors == ()
    stats = manager.stats().get("flaky", "message_received")
    assert (stats.circuit, stats.calls, stats.errors, stats.skipped) == ("closed", 5, 4, 2)
    assert invoke().errors == ()
    assert flaky.calls == 6


def test_a_success_resets_the_count(breaker_manager: PluginManager) -> None:
    flaky = Flaky()
    breaker_manager.register(flaky, hook="message_received", name="flaky")
    for failing in (True, True, False, True, True):
        flaky.failing = failing
        breaker_manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert breaker_manager.stats().get("flaky", "message_received").circuit == "closed"


def test_an_open_fail_closed_gate_blocks(breaker_manager: PluginManager) -> None:
    flaky = Flaky()
    breaker_manager.register(flaky, hook="pre_tool_call", name="gate")
    for _ in range(4):
        result = breaker_manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert flaky.calls == 3
    assert result.blocked and result.errors[0].kind == "circuit_open"


def test_opening_is_logged_once(
    breaker_manager: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    breaker_manager.register(Flaky(), hook="message_received", name="flaky")
    with caplog.at_level("WARNING", logger="interlock"):
        for _ in range(10):
            breaker_manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("suspending plugin 'flaky'" in m for m in messages) == 1
    assert sum("failed at hook" in m for m in messages) == 3


async def test_half_open_lets_one_trial_through(
    breaker_manager: PluginManager, clock: FakeClock
) -> None:
    trial_started = asyncio.Event()
    finish_trial = asyncio.Event()
    calls = 0

    async def gate(payload: Any, ctx: Any) -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise ConnectionError("down")
        trial_started.set()
        await finish_trial.wait()

    breaker_manager.register(gate, hook="message_received", timeout=math.inf)
    for _ in range(3):
        await breaker_manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    clock.advance(30)
    trial = asyncio.ensure_future(breaker_manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x")))
    await trial_started.wait()
    others = [
        await breaker_manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x")) for _ in range(5)
    ]
    assert [r.errors[0].kind for r in others] == ["circuit_open"] * 5
    assert calls == 4
    finish_trial.set()
    assert (await trial).errors == ()
    assert breaker_manager.stats().get("gate", "message_received").circuit == "closed"


def test_a_late_success_does_not_close_an_open_circuit(
    breaker_manager: PluginManager, clock: FakeClock
) -> None:
    flaky = Flaky()
    [reg] = breaker_manager.register(flaky, hook="message_received", name="flaky").registrations
    for _ in range(3):
        breaker_manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    reg.counters.succeeded(0.001)  # a call admitted before the circuit opened, ending now
    assert breaker_manager.stats().get("flaky", "message_received").circuit == "open"
