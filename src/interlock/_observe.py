"""An observe hook's handlers: run concurrently on one frozen payload.

Handlers that finish on the spot run inline; an async handler's first step runs inline
too (for async hosts), and once one suspends, the later ones run as tasks that overlap
with it (`Gathering`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._context import HookContext
from ._isolation import carry_on, reraise_if_fatal, run_alone, settle
from ._outcome import Outcome, account, finish, refuse
from ._registry import CLOSED

if TYPE_CHECKING:
    from ._actions import HookResult
    from ._context import Call
    from ._portal import Portal
    from ._registry import Plan, Registration

_new = object.__new__


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
        if reg.thread or (reg.is_async and (not eager or gathering is not None)):
            # Once one handler waits, the later ones run as tasks that overlap with it.
            gathering = gathering or Gathering(plan, payload)
            gathering.deferred.append(_context(call, reg))
            continue
        ctx = _context(call, reg) if reg.takes_ctx else None  # else its code never reads it
        failure: BaseException | None = None
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
                    ctx = ctx or _context(call, reg)  # to settle it by
                    gathering.inline = (ctx, carry_on(action, step), start)
                    start = perf_counter()
                    continue
        except BaseException as error:
            reraise_if_fatal(error)
            action, failure = None, error
        now = perf_counter()
        duration = now - start
        start = now
        if (
            action is None
            and failure is None
            and duration <= reg.limit
            and not counters.failures_in_row
        ):
            counters.calls += 1  # Counters.succeeded, inlined for the common case
            counters.time_total += duration
            if duration > counters.time_max:
                counters.time_max = duration
            continue
        # An error is not `inline`: a handler that raised past its timeout is not late.
        out = account(out, spec, payload, reg, action, failure, duration, inline=failure is None)
    if gathering is not None:
        gathering.out = out
        return gathering
    return finish(out)


def _context(call: Call, reg: Registration) -> HookContext:
    ctx: HookContext = _new(HookContext)  # what HookContext(call, reg) does, without __init__
    ctx._call = call
    ctx._reg = reg
    return ctx


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
                action, error = await settle(ctx, waiting, started)
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
