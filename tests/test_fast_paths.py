"""Property tests: the specialised dispatch paths against the plain ones, on random plans.

A manager with a slow threshold below `SAMPLED_LIMIT` runs every invocation through the
timed loops, one clock read per handler; the default manager runs the untimed direct loop
(all-sync plans), `run_awaited` (`await invoke` with async handlers) and portal stretches
(`invoke_sync` with async handlers). Same plan, same payloads: same results, same calls in
the same order, same errors and the same counters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock import (
    Block,
    HookSpec,
    MessageEvent,
    Modify,
    PluginManager,
    SessionEnd,
    _chain,
    _dispatch,
    hooks,
)
from interlock._registry import SAMPLE_EVERY, SAMPLED_LIMIT, reads_context
from interlock._spec import WriteRule

ACTIONS = ("continue", "append", "same", "block", "raise", "wrong", "gate")


@dataclass(frozen=True)
class Draft:
    """A payload whose writable field is no scalar: a Modify of it needs only the
    protected-fields check, unless a rule applies (see `draft_spec`)."""

    parts: tuple[str, ...] = ()
    channel: str = "cli"


def draft_spec(*, quick: bool) -> HookSpec[Draft]:
    """A modify hook on `Draft`; with `quick=False` a rule that allows everything sends
    every Modify the whole way through the checks."""
    rules = () if quick else (WriteRule("anything", lambda old, new: None),)
    return HookSpec(
        "draft", Draft, kind="modify", accepts={Modify, Block}, writable={"parts"}, rules=rules
    )


@dataclass(frozen=True)
class Handler:
    action: str
    priority: int
    is_async: bool
    suspends: bool
    reads_ctx: bool
    mode: str
    on_error: str


handlers = st.lists(
    st.builds(
        Handler,
        action=st.sampled_from(ACTIONS),
        priority=st.integers(-2, 2),
        is_async=st.booleans(),
        suspends=st.booleans(),
        reads_ctx=st.booleans(),
        mode=st.sampled_from(["enforce", "enforce", "permissive"]),
        # Fail-closed: an error (a "wrong" Modify among them) blocks and ends the chain.
        on_error=st.sampled_from(["ignore", "ignore", "block"]),
    ),
    max_size=8,
)


def build(
    plan: list[Handler], calls: list[str], *, plain: bool, hook: str, spec: Any = None
) -> PluginManager:
    # Below SAMPLED_LIMIT no plan is sampled: the timed loops run every invocation.
    manager = PluginManager(slow_threshold=SAMPLED_LIMIT / 10 if plain else 0.5)
    if spec is not None:
        manager.declare(spec)
    for index, spec in enumerate(plan):
        manager.register(
            make(spec, f"h{index}", calls),
            hook=hook,
            name=f"h{index}",
            priority=spec.priority,
            mode=spec.mode,
            on_error=spec.on_error,
        )
    return manager


def make(spec: Handler, name: str, calls: list[str]) -> Any:
    def decide(payload: Any) -> Any:
        calls.append(name)
        if spec.action == "append" and isinstance(payload, MessageEvent):
            return Modify(payload.replace(content=f"{payload.content}<{name}>"))
        if spec.action == "append" and isinstance(payload, Draft):
            return Modify(dataclasses.replace(payload, parts=(*payload.parts, name)))
        if spec.action == "same":
            return Modify(dataclasses.replace(payload))  # an equal copy: changes nothing
        said = getattr(payload, "content", "") or getattr(payload, "parts", ())
        if spec.action == "block" or (spec.action == "gate" and said):
            return Block(name)
        if spec.action == "raise":
            raise RuntimeError(name)
        if spec.action == "wrong":
            return Modify(dataclasses.replace(payload, channel="other"))  # not writable: an error
        return None

    if spec.is_async and spec.reads_ctx:

        async def handler(payload: Any, ctx: Any) -> Any:
            assert ctx.plugin == name
            if spec.suspends:
                await asyncio.sleep(0)
            return decide(payload)
    elif spec.is_async:

        async def handler(payload: Any, ctx: Any) -> Any:
            if spec.suspends:
                await asyncio.sleep(0)
            return decide(payload)
    elif spec.reads_ctx:

        def handler(payload: Any, ctx: Any) -> Any:
            assert ctx.plugin == name
            return decide(payload)
    else:

        def handler(payload: Any, ctx: Any) -> Any:
            return decide(payload)

    return handler


def observed(result: Any) -> dict[str, Any]:
    payload = result.payload
    return {
        "content": None if payload is None else getattr(payload, "content", payload),
        "modified_by": result.modified_by,
        "blocked_by": result.blocked_by,
        "reason": result.reason,
        "errors": [(f.plugin, f.kind, f.message) for f in result.errors],
        "violations": [(v.plugin, v.action) for v in result.violations],
    }


def counters(manager: PluginManager) -> list[tuple[Any, ...]]:
    return sorted(
        (s.plugin, s.calls, s.errors, s.timeouts, s.blocks, s.modifications, s.violations)
        for s in manager.stats().registrations
    )


def run_all(manager: PluginManager, hook: Any, payload: Any, *, awaited: bool) -> list[Any]:
    """Enough invocations that sampled plans run both their timed and untimed loops."""
    times = SAMPLE_EVERY + 2
    if awaited:

        async def go() -> list[Any]:
            return [observed(await manager.invoke(hook, payload)) for _ in range(times)]

        return asyncio.run(go())
    return [observed(manager.invoke_sync(hook, payload)) for _ in range(times)]


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="interlock")


@settings(max_examples=60, deadline=None)
@given(handlers, st.booleans())
def test_modify_fast_paths_match_the_plain_loops(plan: list[Handler], awaited: bool) -> None:
    outcomes = [received(plan, plain=plain, awaited=awaited) for plain in (True, False)]
    assert outcomes[0] == outcomes[1]


def received(plan: list[Handler], *, plain: bool, awaited: bool) -> tuple[Any, ...]:
    """Results, calls and counters of `plan` on `message_received`, by the given path."""
    calls: list[str] = []
    manager = build(plan, calls, plain=plain, hook="message_received")
    try:
        results = run_all(manager, hooks.MESSAGE_RECEIVED, MessageEvent(""), awaited=awaited)
        return results, calls, counters(manager)
    finally:
        manager.close()


@settings(max_examples=60, deadline=None)
@given(handlers, st.booleans())
def test_quick_modifies_match_the_checked_path(plan: list[Handler], awaited: bool) -> None:
    """A Modify taken in one step (`_outcome.modified`, on the untimed loop too) ends as
    one that goes through every check and `account`."""
    outcomes = []
    for quick in (False, True):
        calls: list[str] = []
        spec = draft_spec(quick=quick)
        manager = build(plan, calls, plain=not quick, hook="draft", spec=spec)
        try:
            assert [r.quick for r in manager.registrations()] == [quick] * len(plan)
            results = run_all(manager, spec, Draft(), awaited=awaited)
            outcomes.append((results, calls, counters(manager)))
        finally:
            manager.close()
    assert outcomes[0] == outcomes[1]


@settings(max_examples=40, deadline=None)
@given(handlers)
def test_observe_fast_paths_match_the_plain_loops(plan: list[Handler]) -> None:
    sync_only = [h for h in plan if not h.is_async]  # async observers overlap: order varies
    outcomes = []
    for plain in (True, False):
        calls: list[str] = []
        manager = build(sync_only, calls, plain=plain, hook="session_end")
        try:
            event = SessionEnd("s-1")
            results = run_all(manager, hooks.SESSION_END, event, awaited=False)
            results += run_all(manager, hooks.SESSION_END, event, awaited=True)
            outcomes.append((results, calls, counters(manager)))
        finally:
            manager.close()
    assert outcomes[0] == outcomes[1]


@settings(max_examples=40, deadline=None)
@given(handlers)
def test_sync_and_async_hosts_agree(plan: list[Handler]) -> None:
    outcomes = [received(plan, plain=False, awaited=awaited) for awaited in (False, True)]
    assert outcomes[0] == outcomes[1]


def test_untimed_loops_still_add_up_their_time() -> None:
    manager = PluginManager()
    seen: list[int] = []

    def counting(payload: Any, ctx: Any) -> None:
        seen.append(1)

    manager.register(counting, hook="message_received")
    for _ in range(SAMPLE_EVERY * 3):
        manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    stats = manager.stats().get("counting", "message_received")
    assert stats.calls == len(seen) == SAMPLE_EVERY * 3
    assert stats.time_total > 0 and stats.time_max > 0
    assert stats.time_total >= stats.time_max


@pytest.mark.parametrize("replaced_by", ["a registration", "a session scope closing"])
def test_untimed_time_outlives_the_plan_it_waited_in(
    monkeypatch: pytest.MonkeyPatch, replaced_by: str
) -> None:
    """Time of untimed loops still waiting to be spread reaches the handlers' totals when
    their plan is replaced before anyone read the stats."""
    step = 0.001  # on the fake clock, each handler of a timed loop and each untimed loop
    reads = iter(range(1_000_000))
    for module in (_dispatch, _chain):
        monkeypatch.setattr(module, "perf_counter", lambda: next(reads) * step)
    manager = PluginManager()
    for name in ("a", "b"):
        manager.register(lambda p, c: None, hook="message_received", name=name)
    untimed = SAMPLE_EVERY - 1  # after the first invocation, a timed one

    def invoke_all() -> None:
        for _ in range(untimed + 1):
            manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))

    if replaced_by == "a registration":
        invoke_all()
        manager.register(lambda p, c: None, hook="message_received", name="c")
    else:
        with manager.session("s-1") as scope:
            manager.register(lambda p, c: None, hook="message_received", name="c", scope=scope)
            invoke_all()
        del scope  # nothing holds on to the scope's plans once it closed
    stats = manager.stats()
    kept = stats.get("a", "message_received").time_total
    kept += stats.get("b", "message_received").time_total
    # Spread by the handlers' means, equal here: in the scope, "c" took its third.
    share = 1 if replaced_by == "a registration" else 2 / 3
    assert kept == pytest.approx(2 * step + untimed * step * share)
    manager.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The dispatch loops' clock, moved only by the handlers: `clock[0] += seconds`."""
    now = [0.0]
    for module in (_dispatch, _chain):
        monkeypatch.setattr(module, "perf_counter", lambda: now[0])
    return now


def test_a_single_handler_s_time_is_its_own(
    clock: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """A plan of one handler has no untimed loop to hide in: its time and its maximum are
    its own, and a call past its timeout gets the line that says how to enforce it."""
    manager = PluginManager()
    durations = iter([0.001] * (SAMPLE_EVERY // 2) + [0.08] + [0.001] * SAMPLE_EVERY)

    def gate(payload: Any, ctx: Any) -> None:
        clock[0] += next(durations)

    manager.register(gate, hook="message_received", timeout=0.05)
    caplog.set_level(logging.WARNING, logger="interlock")
    for _ in range(SAMPLE_EVERY * 3 // 2 + 1):
        manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    stats = manager.stats().get("gate", "message_received")
    assert stats.time_max == pytest.approx(0.08)
    assert stats.time_total == pytest.approx(0.08 + 0.001 * (SAMPLE_EVERY * 3 // 2))
    [line] = [r for r in caplog.records if "slow plugin" in r.getMessage()]
    assert line.getMessage() == (
        "slow plugin 'gate' at hook 'message_received': 0.080s (past its 0.05s timeout; "
        "register it with thread=True to enforce it)"
    )
    assert line.interlock_plugin == "gate"  # type: ignore[attr-defined]
    manager.close()


def test_a_slow_untimed_loop_names_each_handler_that_may_be_slow(
    clock: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """Each handler whose threshold an untimed loop passed gets its own line ("up to" the
    loop's time, with the others named); the next call times each one and names only it."""
    manager = PluginManager(slow_threshold=0.5)
    slow = [False]

    def quick(payload: Any, ctx: Any) -> None:
        clock[0] += 0.001

    def sometimes_slow(payload: Any, ctx: Any) -> None:
        clock[0] += 0.08 if slow[0] else 0.001

    manager.register(quick, hook="message_received")
    manager.register(sometimes_slow, hook="message_received", timeout=0.05)
    caplog.set_level(logging.WARNING, logger="interlock")
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))  # the first is timed
    slow[0] = True
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))  # untimed, slow
    [shared] = [r for r in caplog.records if "slow plugin" in r.getMessage()]
    assert shared.getMessage() == (
        "slow plugin 'sometimes_slow' at hook 'message_received': up to 0.081s together "
        "with 'quick'; the next call times each one (past its 0.05s timeout; register it "
        "with thread=True to enforce it)"
    )  # 'quick' is within its own 0.5 s: not named
    assert shared.interlock_plugin == "sometimes_slow"  # type: ignore[attr-defined]
    caplog.clear()
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))  # timed again: exact
    [one] = [r for r in caplog.records if "slow plugin" in r.getMessage()]
    assert one.getMessage().startswith(
        "slow plugin 'sometimes_slow' at hook 'message_received': 0.080s"
    )
    manager.close()


def test_which_handlers_read_their_context() -> None:
    def reads(payload: Any, ctx: Any) -> Any:
        return ctx.plugin

    def ignores(payload: Any, ctx: Any) -> Any:
        return payload

    def captures(payload: Any, ctx: Any) -> Any:
        return lambda: ctx

    def introspects(payload: Any, ctx: Any) -> Any:
        return locals()

    def spread(*args: Any) -> Any:
        return args

    class Plugin:
        def method(self, payload: Any, ctx: Any) -> Any:
            return payload

        def __call__(self, payload: Any, ctx: Any) -> Any:
            return payload

    assert reads_context(reads)
    assert not reads_context(ignores)
    assert reads_context(captures)
    assert reads_context(introspects)
    assert reads_context(spread)
    assert not reads_context(Plugin().method)
    assert reads_context(Plugin())  # a callable object: not looked into


def test_a_debugger_in_a_handler_sees_its_context() -> None:
    def pauses(payload: Any, ctx: Any) -> None:
        breakpoint()

    def pauses_in_pdb(payload: Any, ctx: Any) -> None:
        import pdb

        pdb.set_trace()

    assert reads_context(pauses)
    assert reads_context(pauses_in_pdb)


def _ignores(payload: Any, ctx: Any) -> None:
    return None


_given: list[bool] = []  # whether the reloaded handler got a context, call by call


def _notes(payload: Any, ctx: Any) -> None:
    _given.append(ctx is not None)


def _reads(payload: Any, ctx: Any) -> None:
    _given.append(ctx.plugin == "reloaded")  # fails on None


@pytest.mark.parametrize("noticed_by", ["a new plan", "a timed invocation", "a failure"])
def test_a_handler_reloaded_to_read_its_context_gets_one(noticed_by: str) -> None:
    """Reloaders swap a function's code in place (IPython's autoreload): a handler judged
    never to read `ctx` is judged again, and then gets one."""
    manager = PluginManager()
    _given.clear()

    def reloaded(payload: Any, ctx: Any) -> None:
        return None

    manager.register(reloaded, hook="message_received")
    if noticed_by == "a timed invocation":  # a plan of several handlers samples its timing
        manager.register(_ignores, hook="message_received")
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))  # the first is timed
    reloaded.__code__ = (_reads if noticed_by == "a failure" else _notes).__code__
    if noticed_by == "a new plan":
        manager.register(_ignores, hook="session_end")
    results = [
        manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
        for _ in range(SAMPLE_EVERY + 1)
    ]
    manager.close()
    if noticed_by == "a failure":  # the call that got None fails; the next ones get one
        assert [bool(result.errors) for result in results[:2]] == [True, False]
        assert _given == [True] * SAMPLE_EVERY
    elif noticed_by == "a timed invocation":  # untimed invocations until the timed one
        assert _given == [False] * (SAMPLE_EVERY - 1) + [True] * 2
    else:
        assert _given == [True] * (SAMPLE_EVERY + 1)


def test_a_context_is_built_only_for_handlers_that_read_it() -> None:
    manager = PluginManager()
    seen: list[Any] = []

    def reads(payload: Any, ctx: Any) -> None:
        seen.append(ctx.plugin)

    def ignores(payload: Any, ctx: Any) -> None:
        seen.append("ignored")

    manager.register(reads, hook="message_received")
    manager.register(ignores, hook="message_received")
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert seen == ["reads", "ignored"]


def test_a_sync_host_hops_once_per_stretch_of_async_handlers() -> None:
    manager = PluginManager()
    threads: dict[str, Any] = {}

    def handler(name: str, is_async: bool) -> Any:
        if is_async:

            async def async_one(payload: Any, ctx: Any) -> None:
                await asyncio.sleep(0)
                threads[name] = threading.current_thread()

            return async_one

        def sync_one(payload: Any, ctx: Any) -> None:
            threads[name] = threading.current_thread()

        return sync_one

    layout = [("a1", True), ("a2", True), ("s1", False), ("a3", True), ("s2", False)]
    for priority, (name, is_async) in enumerate(layout):
        manager.register(handler(name, is_async), hook="message_received", name=name,
                         priority=priority)  # fmt: skip
    portal = manager._portal
    hops: list[object] = []
    real_run = portal.run

    def counted(coro: Any) -> Any:
        hops.append(coro)
        return real_run(coro)

    portal.run = counted  # type: ignore[method-assign]
    try:
        result = manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    finally:
        manager.close()
    assert result.errors == ()
    assert len(hops) == 2  # [a1, a2] and [a3]
    here = threading.current_thread()
    assert threads["s1"] is threads["s2"] is here
    assert threads["a1"] is threads["a2"] is threads["a3"] is not here


def test_a_handler_s_maximum_never_reads_below_its_mean(clock: list[float]) -> None:
    """In a plan of several handlers, untimed loops' time is estimated per handler; the
    estimate's maximum (its share of the slowest loop) keeps `time_max >= mean`, as the
    profiler's table reads it. The first call is timed and quick, the rest slow."""
    manager = PluginManager()
    step = [0.0001]

    def first(payload: Any, ctx: Any) -> None:
        clock[0] += step[0]

    def second(payload: Any, ctx: Any) -> None:
        clock[0] += step[0]

    manager.register(first, hook="message_received")
    manager.register(second, hook="message_received")
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))  # timed
    step[0] = 0.002
    for _ in range(SAMPLE_EVERY // 2):
        manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))  # untimed
    stats = manager.stats()
    for name in ("first", "second"):
        handler = stats.get(name, "message_received")
        assert handler.time_max >= handler.time_total / handler.calls, name
        assert handler.time_max == pytest.approx(0.002)  # half of the slowest 4 ms loop
    manager.close()
