"""The awaited chain: a modify hook's handlers run in a coroutine, async ones awaited in turn.

Async hosts run a modify hook with async (or threaded) handlers here, and a sync host's
portal runs the stretches of async handlers of its chains (`stretch`). Timeouts come from
the loop's deadline watcher (`_deadlines`): a deadline set per handler, no timer per call.
"""

from __future__ import annotations

import asyncio
import math
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal, overload

from . import _deadlines
from ._actions import Modify
from ._context import HookContext
from ._isolation import expire_if_late, reraise_if_fatal, settle, start_thread
from ._outcome import Outcome, account, finish, late, modified, refuse
from ._recheck import next_pass, position
from ._registry import CLOSED

if TYPE_CHECKING:
    from ._actions import HookResult
    from ._context import Call
    from ._registry import Plan, Registration

_new = object.__new__


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
    token = _deadlines.SCOPE.set(watch)
    setup = _deadlines.SETUP.get()  # invoked from inside an `untimed` wait: that time is not ours
    extra = 0.0 if setup is None else setup.limit
    now = perf_counter()  # one clock read per handler: each starts when the last ended
    try:
        while True:
            for reg in entries[resume_at:] if resume_at else entries:
                if stretch and not reg.is_async:  # sync handlers run in the host's thread
                    return Resume(payload, out, position(entries, reg))
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
                            raise _late_or_cancelled(watch, task, cancelling, reg, started, None)
                    elif ctx is not None and reg.thread:
                        watch.deadline = math.inf  # the thread's wait has a timer of its own
                        action, error = await settle(
                            ctx, asyncio.wrap_future(start_thread(reg, payload, ctx)), started
                        )
                    else:
                        action = reg.fn(payload, ctx)
                except BaseException as failure:
                    if watch.fired:  # the watcher cancelled it, whatever it made of that
                        failure = _late_or_cancelled(watch, task, cancelling, reg, started, failure)
                    reraise_if_fatal(failure)
                    action, error = None, failure
                    if ctx is not None:
                        expire_if_late(ctx, failure)
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
                if type(action) is Modify and reg.quick:
                    out = modified(out, spec, payload, reg, action, duration)
                    if out.stopped:  # rejected, from a registration that fails closed
                        break
                    payload = out.payload
                    continue
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
        _deadlines.SCOPE.reset(token)
        _deadlines.unwatch(watch)


def _late_or_cancelled(
    watch: _deadlines.Watch,
    task: asyncio.Task[Any],
    cancelling: int,
    reg: Registration,
    started: float,
    failure: BaseException | None,
) -> BaseException:
    """What a handler's end means once the watcher cancelled it for its deadline: the
    cancellation is always taken back (as `asyncio.timeout` does on leaving), else the
    task stays cancelling and the next handler to wait would be cancelled in its place.

    The handler is late, also when it turned the cancellation into an exception of its
    own (`failure`, kept as the cause), unless the host cancels the task as well: that
    cancellation stands, whatever the handler made of the one it was thrown."""
    watch.fired = False
    if task.uncancel() > cancelling:
        return asyncio.CancelledError()
    error = late(reg, perf_counter() - started)
    if failure is not None and not isinstance(failure, asyncio.CancelledError):
        error.__cause__ = failure
    return error


class Resume:
    """Where a sync host's chain goes on after a stretch of async handlers on the portal."""

    __slots__ = ("at", "out", "payload")

    def __init__(self, payload: Any, out: Outcome | None, at: int) -> None:
        self.payload = payload
        self.out = out
        self.at = at
