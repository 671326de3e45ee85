"""The call loops: run one invocation's handlers in order or concurrently, isolating each.

`run_modify` runs handlers one after another, each seeing the payload as modified so far,
until one blocks or responds. `run_observe` runs them concurrently on one frozen payload.

Both are plain functions. They return a `HookResult` when every handler finished on the
spot, and otherwise a pending `Chain` or `Gathering` that finishes the rest: `finish()` on
an event loop for async hosts, `finish_sync(portal)` for sync hosts. A hook whose handlers
are all sync therefore costs no coroutine at all, and for sync hosts sync handlers always
run in the host's own thread; only async handlers go to the portal's event loop.

Other costs kept off the hot path:
- nothing is allocated for the result until a handler does something besides continue;
- one clock read per handler (each handler's start is the previous one's end);
- for async hosts an async handler's first step runs inline (`coro.send(None)`, what
  `await` does), and only a handler that actually suspends pays for a timeout scope;
- observe handlers get a task of their own only after an earlier one suspended.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import math
import threading
import types
from collections.abc import AsyncIterator, Awaitable, Coroutine, Generator
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal, overload

from . import _deadlines
from ._actions import EMPTY_RESULT, Continue, HookResult
from ._context import Call, HookContext
from ._exceptions import HookTimeoutError, InvalidActionError
from ._outcome import (
    Outcome,
    account,
    count_failure,
    finish,
    late,
    log_failure,
    log_slow_loop,
    refuse,
    wrap,
)
from ._registry import CLOSED, SAMPLE_EVERY

if TYPE_CHECKING:
    from ._conditions import Condition
    from ._portal import Portal
    from ._registry import Plan, Registration, Sampler

_new = object.__new__
_MAIN = threading.main_thread()

# Recheck passes before plugins that keep changing each other's output are stopped: a
# redactor and a rewriter after it settle in two; a cascade of fixes needs one per fix.
MAX_RECHECKS = 8


def start(
    plan: Plan, payload: Any, call: Call, *, eager: bool = True
) -> HookResult[Any] | Chain | Stretch | Gathering:
    """Run what can run right away; a pending `Chain`/`Stretch`/`Gathering` is left to
    finish (`finish()` for async hosts, `finish_sync(portal)` for sync hosts).

    `eager` (async hosts): step async observers inline until they suspend. Sync hosts pass
    False, since a coroutine's first step may need the running loop it would run on.
    """
    if plan.sampler is not None:
        return run_direct(plan, payload, call, plan.sampler)
    if plan.spec.kind == "modify":
        return run_modify(plan, payload, call)
    return run_observe(plan, payload, call, eager=eager)


def run_direct(
    plan: Plan, payload: Any, call: Call, sampler: Sampler
) -> HookResult[Any] | Chain | Stretch | Gathering:
    """The loop of a plan whose handlers are all sync, unconditional and run inline.

    One invocation in `SAMPLE_EVERY` runs the timed loops (`run_modify`, `run_observe`).
    The others read the clock twice in all: while every handler continues, calls are
    counted exactly and the loop's time waits in `sampler` to be spread over the handlers
    (`Sampler.spread`). A loop slower than the lowest threshold of its handlers is logged
    and makes the next invocation a timed one. At the first handler that answers, raises
    or is suspended, the timed loop takes over from there.
    """
    tick = sampler.tick
    sampler.tick = tick + 1
    if not tick % SAMPLE_EVERY:
        return _timed(plan, payload, call, 0, None)
    started = perf_counter()
    for reg in plan.entries:
        counters = reg.counters
        if counters.circuit is not CLOSED:
            _untimed(plan, sampler, started)
            return _timed(plan, payload, call, _at(plan.entries, reg), None)
        if reg.takes_ctx:
            ctx = _new(HookContext)  # what HookContext(call, reg) does, without __init__
            ctx._call = call
            ctx._reg = reg
            try:
                action = reg.fn(payload, ctx)
            except BaseException as error:
                _reraise_if_fatal(error)
                return _answered(plan, sampler, payload, call, reg, None, error, started)
        else:
            try:
                action = reg.fn(payload, None)
            except BaseException as error:
                _reraise_if_fatal(error)
                return _answered(plan, sampler, payload, call, reg, None, error, started)
        if action is not None:
            return _answered(plan, sampler, payload, call, reg, action, None, started)
        if counters.failures_in_row:
            counters.succeeded(0.0)  # ends the breaker's run of failures; time comes later
        else:
            counters.calls += 1
    elapsed = perf_counter() - started
    sampler.pending += elapsed
    if elapsed > plan.limit:
        _slow(plan, sampler, elapsed)
    return EMPTY_RESULT


def _untimed(plan: Plan, sampler: Sampler, started: float) -> None:
    """Keep the time of an untimed loop for spreading; log it when it was slow."""
    elapsed = perf_counter() - started
    sampler.pending += elapsed
    if elapsed > plan.limit:
        _slow(plan, sampler, elapsed)


def _slow(plan: Plan, sampler: Sampler, elapsed: float) -> None:
    sampler.tick = 0  # the next invocation times each handler
    log_slow_loop(plan, elapsed)


def _answered(
    plan: Plan,
    sampler: Sampler,
    payload: Any,
    call: Call,
    reg: Registration,
    action: Any,
    error: BaseException | None,
    started: float,
) -> HookResult[Any] | Chain | Stretch | Gathering:
    """An untimed loop's handler answered or raised: account for it, go on timed.

    Its own time is not known apart from the handlers' before it, so the loop's time so
    far is spread like an untimed loop's."""
    _untimed(plan, sampler, started)
    out = account(None, plan.spec, payload, reg, action, error, 0.0)
    if out is not None and out.stopped:
        return out.result()
    resume_at = _at(plan.entries, reg) + 1
    return _timed(plan, payload if out is None else out.payload, call, resume_at, out)


def _timed(
    plan: Plan, payload: Any, call: Call, resume_at: int, out: Outcome | None
) -> HookResult[Any] | Chain | Stretch | Gathering:
    if plan.spec.kind == "modify":
        return run_modify(plan, payload, call, resume_at, out)
    return run_observe(plan, payload, call, resume_at=resume_at, out=out)


def run_modify(
    plan: Plan,
    payload: Any,
    call: Call,
    resume_at: int = 0,
    out: Outcome | None = None,
) -> HookResult[Any] | Chain | Stretch:
    """Run a modify hook's handlers from `resume_at` in the calling thread, chaining
    `Modify`, ending on Block/Respond. Returns a `Chain` when a handler runs in a thread,
    and a `Stretch` at an async handler: async hosts run modify hooks with async handlers
    in `run_awaited` instead, sync hosts hand the async handlers to the portal."""
    spec = plan.spec
    start = perf_counter()
    entries = plan.entries if out is None or out.entries is None else out.entries
    for reg in entries[resume_at:]:
        if not reg.direct:
            if reg.is_async:
                return Stretch(plan, payload, call, out, _at(entries, reg))
            if reg.condition is not None and not reg.condition(payload, call):
                continue
        counters = reg.counters
        if counters.circuit is not CLOSED and not counters.admit():
            out = refuse(out, spec, payload, reg)
            if out.stopped:
                break
            continue
        if reg.direct and not reg.takes_ctx:
            ctx = None  # its code never reads it
        else:
            ctx = _new(HookContext)  # what HookContext(call, reg) does, without __init__
            ctx._call = call
            ctx._reg = reg
        try:
            if ctx is not None and reg.thread:
                return Chain(plan, payload, call, out, ctx, start_thread(reg, payload, ctx))
            action = reg.fn(payload, ctx)
        except BaseException as error:
            _reraise_if_fatal(error)
            now = perf_counter()
            out = account(out, spec, payload, reg, None, error, now - start)
            start = now
            if out is not None and out.stopped:
                break
            continue
        now = perf_counter()
        duration = now - start
        start = now
        if action is None and duration <= reg.limit and not counters.failures_in_row:
            counters.calls += 1  # Counters.succeeded, inlined for the common case
            counters.time_total += duration
            if duration > counters.time_max:
                counters.time_max = duration
            continue
        out = account(out, spec, payload, reg, action, None, duration)
        if out is not None:
            if out.stopped:
                break
            payload = out.payload
    if out is not None and out.changer is not None and out.blocked_by is None:
        # A chain that ended, or ended with a Respond, on a payload changed after
        # some handler judged it: they judge the final one before either stands.
        ended = next_pass(plan, call, out, out.changer)
        return ended if ended is not None else run_modify(plan, out.payload, call, 0, out)
    return finish(out)


@overload
async def run_awaited(
    plan: Plan,
    payload: Any,
    call: Call,
    resume_at: int = 0,
    out: Outcome | None = None,
    *,
    stretch: Literal[False] = False,
) -> HookResult[Any]: ...


@overload
async def run_awaited(
    plan: Plan,
    payload: Any,
    call: Call,
    resume_at: int = 0,
    out: Outcome | None = None,
    *,
    stretch: Literal[True],
) -> HookResult[Any] | Resume: ...


async def run_awaited(
    plan: Plan,
    payload: Any,
    call: Call,
    resume_at: int = 0,
    out: Outcome | None = None,
    *,
    stretch: bool = False,
) -> HookResult[Any] | Resume:
    """`run_modify` for async hosts, as a coroutine: async handlers are awaited in turn.

    Their timeouts come from the loop's deadline watcher (`_deadlines`): a deadline set
    per handler, no timer per call. With `stretch` (a sync host's async handlers, on the
    portal) it runs only the async handlers from `resume_at` on and returns where the
    host thread goes on (`Resume`): at the next sync handler or at the chain's end.
    """
    spec = plan.spec
    entries = plan.entries if out is None or out.entries is None else out.entries
    watch = _deadlines.watch()
    task, watcher = watch.task, watch.watcher
    cancelling = task.cancelling()
    token = _SCOPE.set(watch)
    setup = _SETUP.get()  # invoked from inside an `untimed` wait: that time is not ours
    extra = 0.0 if setup is None else setup.limit
    now = perf_counter()  # one clock read per handler: each starts when the last ended
    try:
        while True:
            for at, reg in enumerate(entries[resume_at:], resume_at):
                if stretch and not reg.is_async:
                    return Resume(payload, out, at)  # sync handlers run in the host's thread
                if reg.condition is not None and not reg.condition(payload, call):
                    continue
                counters = reg.counters
                if counters.circuit is not CLOSED and not counters.admit():
                    out = refuse(out, spec, payload, reg)
                    if out.stopped:
                        break
                    continue
                if reg.takes_ctx or reg.thread:
                    ctx = _new(HookContext)  # HookContext(call, reg), without __init__
                    ctx._call = call
                    ctx._reg = reg
                else:
                    ctx = None  # its code never reads it
                error: BaseException | None = None
                started = now
                try:
                    if reg.is_async:
                        timeout = reg.timeout
                        deadline = math.inf if timeout is None else started + timeout + extra
                        watch.deadline = deadline  # Watch.start, inlined
                        if deadline < watcher.at:
                            watcher.arm(deadline)
                        action = await reg.fn(payload, ctx)
                        if watch.fired:  # it swallowed the watcher's cancellation
                            raise _late_or_cancelled(watch, task, cancelling, reg, started)
                    elif ctx is not None and reg.thread:
                        watch.deadline = math.inf  # the thread's wait has a timer of its own
                        action, error = await _settle(
                            ctx, asyncio.wrap_future(start_thread(reg, payload, ctx)), started
                        )
                    else:
                        action = reg.fn(payload, ctx)
                except BaseException as failure:
                    if watch.fired and isinstance(failure, asyncio.CancelledError):
                        failure = _late_or_cancelled(watch, task, cancelling, reg, started)
                    _reraise_if_fatal(failure)
                    action, error = None, failure
                    if ctx is not None:
                        _expire_if_late(ctx, failure)
                now = perf_counter()
                duration = now - started
                if duration <= reg.limit:  # then within its timeout too
                    if error is None and action is None and not counters.failures_in_row:
                        counters.calls += 1  # Counters.succeeded, inlined for the common case
                        counters.time_total += duration
                        if duration > counters.time_max:
                            counters.time_max = duration
                        continue
                elif reg.is_async and error is None and now > watch.deadline:
                    action, error = None, late(reg, duration)  # busy past it, never waiting
                out = account(out, spec, payload, reg, action, error, duration)
                if out is not None:
                    if out.stopped:
                        break
                    payload = out.payload
            if stretch:
                return Resume(payload, out, len(entries))  # the host thread ends the chain
            if out is None or out.changer is None or out.blocked_by is not None:
                return finish(out)
            ended = next_pass(plan, call, out, out.changer)
            if ended is not None:
                return ended
            entries, resume_at, payload = out.entries or (), 0, out.payload
    finally:
        _SCOPE.reset(token)
        _deadlines.unwatch(watch)


def _late_or_cancelled(
    watch: _deadlines.Watch,
    task: asyncio.Task[Any],
    cancelling: int,
    reg: Registration,
    started: float,
) -> BaseException:
    """What a handler's end means once its deadline passed: the watcher's cancellation
    is taken back, and the handler is late, unless the task is being cancelled too."""
    if watch.fired:
        watch.fired = False
        if task.uncancel() > cancelling:
            return asyncio.CancelledError()  # the host cancels as well: that one stands
    return late(reg, perf_counter() - started)


class Resume:
    """Where a sync host's chain goes on after a stretch of async handlers on the portal."""

    __slots__ = ("at", "out", "payload")

    def __init__(self, payload: Any, out: Outcome | None, at: int) -> None:
        self.payload = payload
        self.out = out
        self.at = at


class Stretch:
    """A sync host's modify chain at an async handler: the portal runs the async handlers
    from there in one hop (`run_awaited` with `stretch`), the host thread the others."""

    __slots__ = ("at", "call", "out", "payload", "plan")

    def __init__(self, plan: Plan, payload: Any, call: Call, out: Outcome | None, at: int) -> None:
        self.plan = plan
        self.payload = payload
        self.call = call
        self.out = out
        self.at = at

    async def finish(self) -> HookResult[Any]:
        """Run the chain to its end on the running loop."""
        return await run_awaited(self.plan, self.payload, self.call, self.at, self.out)

    def finish_sync(self, portal: Portal) -> HookResult[Any]:
        """Run the chain to its end, one portal hop per stretch of async handlers."""
        plan, call = self.plan, self.call
        resumed = portal.run(run_awaited(plan, self.payload, call, self.at, self.out, stretch=True))
        if isinstance(resumed, HookResult):
            return resumed
        step = run_modify(plan, resumed.payload, call, resumed.at, resumed.out)
        return step if isinstance(step, HookResult) else step.finish_sync(portal)


def next_pass(
    plan: Plan, call: Call, out: Outcome, changer: Registration
) -> HookResult[Any] | None:
    """Set `out` up to ask again the handlers that judged an older payload than the one
    the chain ends with (its `entries`, run from the start); or the result, when none is
    to be asked or the passes are used up.

    A gate's decision must hold for what actually runs. After a pass in which a handler
    changed the payload, the registrations that saw an older version run again on the
    changed one, with `ctx.recheck` set: after the first pass those before the last change,
    after a later pass every one but the last to change it (a change there left both sides
    behind). Registrations that changed the payload are asked too, since a redactor must
    see what a later plugin added; a change they make then is probed (see below) so that
    an appender does not append twice. Passes end when one changes nothing; plugins that
    keep changing it after `MAX_RECHECKS` passes end the invocation blocked. Registrations
    that failed, or whose block was recorded as a permissive violation, are not asked again.
    """
    out.changer = out.pending = None
    if out.stopped:  # by a Respond: it stands only if the gates pass what it answered
        out.held = (out.response, out.responded_by)
        out.response = out.responded_by = None
        out.stopped = False
    if out.rechecks >= MAX_RECHECKS:
        out.unsettled(changer)
        return out.result()
    if out.entries is None:
        entries = plan.entries[: _at(plan.entries, changer)]
    else:
        entries = tuple(reg for reg in plan.entries if reg is not changer)
    settled = {id(reg) for reg in out.settled}
    changed = {id(reg) for reg in out.changed}
    out.probes = {}
    asked: list[Registration] = []
    for reg in entries:
        if id(reg) in settled:
            continue
        asked.append(reg)
        if id(reg) in changed:
            # It changed the payload before. Should it change it now, it is asked once
            # more about that change: a fix (a redactor) changes nothing further and
            # stands; an addition (an appender) would grow again and is set aside.
            probe = dataclasses.replace(reg, direct=False, condition=_probing(out, reg))
            out.probes[id(probe)] = reg
            asked.append(probe)
    if not asked:
        return out.result()
    out.entries = tuple(asked)
    out.rechecks += 1
    call.rechecking = True
    return None


def _probing(out: Outcome, reg: Registration) -> Condition:
    """The condition of `reg`'s probe: it runs only right after `reg` changed the payload
    in this pass (and where `reg` itself would run)."""
    own = reg.condition

    def probe_due(payload: Any, call: Call) -> bool:
        pending = out.pending
        if pending is None or pending[0] is not reg:
            return False
        return own is None or own(payload, call)

    return probe_due


def _at(entries: tuple[Registration, ...], reg: Registration) -> int:
    return next(i for i, entry in enumerate(entries) if entry is reg)


class Chain:
    """A sync host's modify chain waiting for a handler that runs in a thread."""

    __slots__ = ("call", "ctx", "out", "payload", "plan", "started", "waiting")

    def __init__(
        self,
        plan: Plan,
        payload: Any,
        call: Call,
        out: Outcome | None,
        ctx: HookContext,
        waiting: concurrent.futures.Future[Any],
    ) -> None:
        self.plan = plan
        self.payload = payload
        self.call = call
        self.out = out
        self.ctx = ctx
        self.waiting = waiting
        self.started = perf_counter()

    async def finish(self) -> HookResult[Any]:
        """Wait for the thread on the running loop, then run the rest of the chain there."""
        waiting = asyncio.wrap_future(self.waiting)
        action, error = await _settle(self.ctx, waiting, self.started)
        payload, out, resume_at = self._account(action, error)
        return await run_awaited(self.plan, payload, self.call, resume_at, out)

    def finish_sync(self, portal: Portal) -> HookResult[Any]:
        """Wait for the thread here and run the rest of the chain."""
        action, error = _settle_thread(self.ctx, self.waiting, self.started)
        payload, out, resume_at = self._account(action, error)
        step = run_modify(self.plan, payload, self.call, resume_at, out)
        return step if isinstance(step, HookResult) else step.finish_sync(portal)

    def _account(self, action: Any, error: BaseException | None) -> tuple[Any, Outcome | None, int]:
        """Take the thread's answer: the payload, outcome and entry the chain goes on at."""
        spec, reg = self.plan.spec, self.ctx._reg
        duration = perf_counter() - self.started
        out = account(self.out, spec, self.payload, reg, action, error, duration)
        payload = self.payload if out is None else out.payload
        entries = self.plan.entries if out is None or out.entries is None else out.entries
        # Stopped or not, the chain's end (and its rechecks) is decided where it goes on.
        resume_at = len(entries) if out is not None and out.stopped else _at(entries, reg) + 1
        return payload, out, resume_at


def run_observe(
    plan: Plan,
    payload: Any,
    call: Call,
    *,
    eager: bool = True,
    resume_at: int = 0,
    out: Outcome | None = None,
) -> HookResult[Any] | Gathering:
    """Run an observe hook's handlers (from `resume_at`); returns a `Gathering` when some
    must be waited for."""
    spec = plan.spec
    gathering: Gathering | None = None
    start = perf_counter()
    for reg in plan.entries[resume_at:]:
        if not reg.direct and reg.condition is not None and not reg.condition(payload, call):
            continue
        counters = reg.counters
        if counters.circuit is not CLOSED and not counters.admit():
            out = refuse(out, spec, payload, reg)
            continue
        if reg.direct and not reg.takes_ctx:
            failure: BaseException | None = None
            try:
                action = reg.fn(payload, None)  # its code never reads a context
            except BaseException as error:
                _reraise_if_fatal(error)
                action, failure = None, error
            now = perf_counter()
            out = account(out, spec, payload, reg, action, failure, now - start, inline=True)
            start = now
            continue
        ctx = _new(HookContext)  # what HookContext(call, reg) does, without the __init__ call
        ctx._call = call
        ctx._reg = reg
        if reg.thread or (reg.is_async and (not eager or gathering is not None)):
            # Once one handler waits, the later ones run as tasks that overlap with it.
            gathering = gathering or Gathering(plan, payload)
            gathering.deferred.append(ctx)
            continue
        try:
            action = reg.fn(payload, ctx)
            if reg.is_async:
                try:
                    step = action.send(None)
                except StopIteration as done:
                    action = done.value
                else:
                    # It stays in the caller's task, so timeouts and task groups it
                    # opened in its first step still point at the right task.
                    gathering = Gathering(plan, payload)
                    gathering.inline = (ctx, _continue(action, step), start)
                    start = perf_counter()
                    continue
        except BaseException as error:
            _reraise_if_fatal(error)
            now = perf_counter()
            out = account(out, spec, payload, reg, None, error, now - start)
            start = now
            continue
        now = perf_counter()
        out = account(out, spec, payload, reg, action, None, now - start, inline=True)
        start = now
    if gathering is not None:
        gathering.out = out
        return gathering
    return finish(out)


class Gathering:
    """Observe handlers still to wait for: the one that suspended first, and later ones."""

    __slots__ = ("deferred", "inline", "out", "payload", "plan")

    def __init__(self, plan: Plan, payload: Any) -> None:
        self.plan = plan
        self.payload = payload
        self.out: Outcome | None = None
        self.inline: tuple[HookContext, Awaitable[Any], float] | None = None
        self.deferred: list[HookContext] = []

    async def finish(self) -> HookResult[Any]:
        """Run the deferred handlers as tasks, finish the inline one, account for all."""
        spec, payload, out = self.plan.spec, self.payload, self.out
        tasks = [
            (ctx._reg, asyncio.ensure_future(run_alone(payload, ctx))) for ctx in self.deferred
        ]
        try:
            if self.inline is not None:
                ctx, waiting, started = self.inline
                reg = ctx._reg
                action, error = await _settle(ctx, waiting, started)
                out = account(out, spec, payload, reg, action, error, perf_counter() - started)
            for reg, task in tasks:
                action, error, duration = await task
                out = account(out, spec, payload, reg, action, error, duration)
        finally:
            for _, task in tasks:
                task.cancel()
        return finish(out)

    def finish_sync(self, portal: Portal) -> HookResult[Any]:
        """`finish` for sync hosts, on the portal's event loop."""
        return portal.run(self.finish())


async def run_alone(
    payload: Any, ctx: HookContext, *, in_thread: bool = False
) -> tuple[Any, BaseException | None, float]:
    """Run one handler to its end in a task of its own: (action, error, seconds)."""
    reg = ctx._reg
    started = perf_counter()
    try:
        if reg.thread or (in_thread and not reg.is_async):
            awaitable: Awaitable[Any] = asyncio.wrap_future(start_thread(reg, payload, ctx))
            action = await _within(awaitable, reg, reg.timeout)
        else:
            action = reg.fn(payload, ctx)
            if reg.is_async:
                action = await _eagerly(action, reg, started)
    except BaseException as error:
        _reraise_if_fatal(error)
        _expire_if_late(ctx, error)
        return None, error, perf_counter() - started
    return action, None, perf_counter() - started


async def run_background(reg: Registration, payload: Any, call: Call) -> None:
    """Run one fire-and-forget handler after an invocation; failures are counted and logged.

    Sync handlers run in a worker thread, so they never stall the event loop they were
    scheduled on, and their timeout applies.
    """
    try:
        action, error, duration = await run_alone(payload, HookContext(call, reg), in_thread=True)
    finally:
        call.revoke()
    if error is None and action is not None and type(action) is not Continue:
        error = InvalidActionError(
            f"plugin {reg.plugin!r} returned {type(action).__name__} from a background handler "
            f"at hook {reg.hook.name!r}; background handlers cannot change the outcome",
            plugin=reg.plugin,
            hook=reg.hook.name,
        )
    if error is None:
        reg.counters.succeeded(duration)
        return
    failure = wrap(error, reg)
    count_failure(reg, duration, timeout=isinstance(failure, HookTimeoutError))
    log_failure(reg, failure)


def start_thread(
    reg: Registration, payload: Any, ctx: HookContext
) -> concurrent.futures.Future[Any]:
    """Run a sync handler on a daemon thread of its own.

    Not an executor's: a handler that hangs past its timeout is abandoned, and an abandoned
    daemon thread blocks neither an event loop's shutdown nor the process's exit.
    """
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    context = contextvars.copy_context()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = context.run(reg.fn, payload, ctx)
        except Exception as error:
            future.set_exception(error)
        except BaseException as error:
            # SystemExit, KeyboardInterrupt or GeneratorExit from a worker thread signals
            # nothing to the host: it is the handler's failure, carried as an Exception so
            # that no event loop or waiter takes it for its own.
            future.set_exception(wrap(error, reg))
        else:
            future.set_result(result)

    threading.Thread(target=work, name=f"interlock-{reg.plugin}", daemon=True).start()
    return future


async def _settle(
    ctx: HookContext, waiting: Awaitable[Any], started: float
) -> tuple[Any, BaseException | None]:
    reg = ctx._reg
    try:
        return await _within(waiting, reg, _remaining(reg, started)), None
    except BaseException as error:
        _reraise_if_fatal(error)
        _expire_if_late(ctx, error)
        return None, error


def _settle_thread(
    ctx: HookContext, future: concurrent.futures.Future[Any], started: float
) -> tuple[Any, BaseException | None]:
    reg = ctx._reg
    try:
        return future.result(_remaining(reg, started)), None
    except BaseException as error:
        _reraise_if_fatal(error)
        if not future.done():  # our wait timed out; the thread is abandoned
            future.cancel()
            ctx._call = ctx._call.expired()
            return None, late(reg, reg.timeout or 0.0)
        return None, error


def _expire_if_late(ctx: HookContext, error: BaseException) -> None:
    """A handler given up on past its timeout loses its handles: an abandoned thread or a
    coroutine that ignored its cancellation can no longer write anything."""
    if isinstance(error, HookTimeoutError):
        ctx._call = ctx._call.expired()


async def _eagerly(coro: Coroutine[Any, Any, Any], reg: Registration, started: float) -> Any:
    """Await `coro` with its first step run inline, as in a chain: a timeout scope only for
    a handler that actually waits (most background handlers just record and return)."""
    try:
        suspended = coro.send(None)
    except StopIteration as done:
        if reg.timeout is not None and perf_counter() - started > reg.timeout:
            raise late(reg, perf_counter() - started) from None  # busy without waiting
        return done.value
    return await _within(_continue(coro, suspended), reg, _remaining(reg, started))


def _remaining(reg: Registration, started: float) -> float | None:
    if reg.timeout is None:
        return None
    return max(reg.timeout - (perf_counter() - started), 0.0)


class _Setup:
    """A setup wait in progress (see `untimed`): when it began, and its bound."""

    __slots__ = ("entered", "limit")

    def __init__(self, entered: float, limit: float) -> None:
        self.entered = entered
        self.limit = limit


_SCOPE: contextvars.ContextVar[asyncio.Timeout | _deadlines.Watch | None] = contextvars.ContextVar(
    "interlock_timeout_scope", default=None
)
_SETUP: contextvars.ContextVar[_Setup | None] = contextvars.ContextVar(
    "interlock_setup", default=None
)


@contextlib.asynccontextmanager
async def untimed(limit: float) -> AsyncIterator[None]:
    """Time a handler spends in this block, up to `limit` seconds, does not count against
    its timeout: for waits that belong to the host's setup, not to the call (a plugin
    process starting). Private: host-side code (transports) uses it, never plugins.

    While the block runs, the handler's deadline is `limit` later; when it ends, the
    deadline is moved back by what the block did not use.
    """
    loop = asyncio.get_running_loop()
    setup = _Setup(loop.time(), limit)
    token = _SETUP.set(setup)
    _shift(limit)
    try:
        yield
    finally:
        _SETUP.reset(token)
        _shift(-(limit - min(loop.time() - setup.entered, limit)))


def _shift(seconds: float) -> None:
    scope = _SCOPE.get()
    deadline = None if scope is None else scope.when()
    if scope is not None and deadline is not None and not scope.expired():
        scope.reschedule(deadline + seconds)


async def _within(awaitable: Awaitable[Any], reg: Registration, timeout: float | None) -> Any:
    if timeout is None:
        return await awaitable
    setup = _SETUP.get()
    if setup is not None:  # the handler is waiting for setup (`untimed`) as its timer starts
        timeout += setup.limit
    scope = asyncio.timeout(timeout)
    token = _SCOPE.set(scope)
    try:
        async with scope:
            result = await awaitable
    except TimeoutError:
        if not scope.expired():
            raise
        raise late(reg, reg.timeout or timeout) from None
    finally:
        _SCOPE.reset(token)
    if scope.expired():  # the handler swallowed its cancellation; its answer is late
        raise late(reg, reg.timeout or timeout)
    return result


@types.coroutine
def _continue(coro: Coroutine[Any, Any, Any], suspended: Any) -> Generator[Any, Any, Any]:
    """Carry on driving `coro` after its first step, which we ran and which yielded `suspended`.

    The same as the rest of `await coro`: hand the suspension to the event loop, forward
    whatever the loop throws in (cancellation), then delegate with `yield from`.
    """
    while True:
        try:
            yield suspended
        except BaseException as exc:
            try:
                suspended = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        return (yield from coro)


def _reraise_if_fatal(error: BaseException) -> None:
    """Let a real interrupt and real cancellation through; anything else is the plugin's
    fault. `SystemExit` from a handler is the handler's failure, and so is a
    `KeyboardInterrupt` outside the main thread, where Python never delivers a real one."""
    if isinstance(error, KeyboardInterrupt) and threading.current_thread() is _MAIN:
        raise error
    if isinstance(error, asyncio.CancelledError) and _being_cancelled():
        raise error


def _being_cancelled() -> bool:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop: a sync host, so nobody can be cancelling us
        return False
    return task is not None and task.cancelling() > 0
