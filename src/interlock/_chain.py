"""A modify hook's chain in the calling thread: handlers one after another, each seeing the
payload as modified so far, until one blocks or responds.

`run_modify` is the timed loop (`_dispatch.run_direct` hands over to it at the first
handler that answers). For a sync host it pauses at a handler that runs in a thread
(`Chain`) or at an async handler (`Stretch`): the host thread waits for the one, the
portal's event loop runs the others, and the chain goes on in the host thread.
"""

from __future__ import annotations

import concurrent.futures
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._actions import HookResult, Modify
from ._awaited import run_awaited
from ._context import HookContext
from ._isolation import reraise_if_fatal, settle_thread, start_thread
from ._outcome import Outcome, account, finish, modified, refuse
from ._recheck import next_pass, position
from ._registry import CLOSED

if TYPE_CHECKING:
    from ._context import Call
    from ._portal import Portal
    from ._registry import Plan

_new = object.__new__


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
                return Stretch(plan, payload, call, out, position(entries, reg))
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
            reraise_if_fatal(error)
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
        if type(action) is Modify and reg.quick:
            out = modified(out, spec, payload, reg, action, duration)
            if out.stopped:  # rejected, from a registration that fails closed
                break
            payload = out.payload
            continue
        out = account(out, spec, payload, reg, action, None, duration)
        if out is not None:
            if out.stopped:
                break
            payload = out.payload
    return conclude(plan, call, out)


def conclude(plan: Plan, call: Call, out: Outcome | None) -> HookResult[Any] | Chain | Stretch:
    """The end of a pass of a modify chain: the result, or the next recheck pass."""
    if out is not None and out.changer is not None and out.blocked_by is None:
        # A chain that ended, or ended with a Respond, on a payload changed after
        # some handler judged it: they judge the final one before either stands.
        ended = next_pass(plan, call, out, out.changer)
        return ended if ended is not None else run_modify(plan, out.payload, call, 0, out)
    return finish(out)


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

    def finish_sync(self, portal: Portal) -> HookResult[Any]:
        """Run the chain to its end, one portal hop per stretch of async handlers."""
        plan, call = self.plan, self.call
        resumed = portal.run(run_awaited(plan, self.payload, call, self.at, self.out, stretch=True))
        if isinstance(resumed, HookResult):
            return resumed
        step = run_modify(plan, resumed.payload, call, resumed.at, resumed.out)
        return step if isinstance(step, HookResult) else step.finish_sync(portal)


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

    def finish_sync(self, portal: Portal) -> HookResult[Any]:
        """Wait for the thread here and run the rest of the chain."""
        action, error = settle_thread(self.ctx, self.waiting, self.started)
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
        resume_at = len(entries) if out is not None and out.stopped else position(entries, reg) + 1
        return payload, out, resume_at
