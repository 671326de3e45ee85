"""Dispatch: where an invocation starts, and the tight loop of plans of plain sync handlers.

Sync hosts call `start`. It returns a `HookResult` when every handler finished on the
spot, and otherwise a pending `Chain`, `Stretch` or `Gathering` whose `finish_sync(portal)`
finishes the rest: sync handlers always run in the host's own thread, only async handlers
go to the portal's event loop. Async hosts await `run_awaited` for modify hooks with async
or threaded handlers (`plan.awaited`), and otherwise call `begin`.

The parts, one module each:
- here, `run_direct`: all handlers sync, unconditional, inline; sampled timing;
- `_chain.run_modify`: the timed modify loop in the calling thread;
- `_awaited.run_awaited`: the modify chain as a coroutine, async handlers awaited;
- `_recheck`: passes that ask gates again about a payload changed after they judged it;
- `_observe.run_observe`: observe hooks, handlers overlapping once one waits;
- `_isolation`: one handler on its own (threads, tasks, background), guarded;
- `_deadlines`: timeouts, one timer per loop for awaited chains.
The rest of the package imports from here: the entry points above, `run_background`, and
`untimed` (for transports).

Costs kept off the hot path: nothing is allocated for the result until a handler does
something besides continue; at most one clock read per handler (each handler's start is
the previous one's end), and on most invocations of a direct plan two in all.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

from ._actions import EMPTY_RESULT, HookResult, Modify
from ._awaited import run_awaited as run_awaited
from ._chain import Chain, Stretch, conclude, run_modify
from ._context import HookContext
from ._deadlines import untimed as untimed
from ._isolation import reraise_if_fatal
from ._isolation import run_background as run_background
from ._observe import Gathering, run_observe
from ._outcome import Outcome, account, log_slow_loop, modified
from ._recheck import position
from ._registry import CLOSED, SAMPLE_EVERY, follow_code

if TYPE_CHECKING:
    from ._context import Call
    from ._registry import Plan, Registration, Sampler

_new = object.__new__

Pending = Chain | Stretch | Gathering
"""What a sync host's invocation still waits for: `finish_sync(portal)` runs the rest."""


def start(
    plan: Plan, payload: Any, call: Call, *, eager: bool = False
) -> HookResult[Any] | Pending:
    """Run what can run right away; what is left pending finishes with `finish_sync`.

    `eager` (async hosts, see `begin`): step async observers inline until they suspend.
    Sync hosts leave it False, since a coroutine's first step may need the running loop
    it would run on.
    """
    if plan.sampler is not None:
        return run_direct(plan, payload, call, plan.sampler)
    if plan.spec.kind == "modify":
        return run_modify(plan, payload, call)
    return run_observe(plan, payload, call, eager=eager)


def begin(plan: Plan, payload: Any, call: Call) -> HookResult[Any] | Gathering:
    """`start` for async hosts, for plans that are not `awaited`: no modify handler of
    theirs is async or runs in a thread, so no `Chain` or `Stretch` comes back; pending
    observers finish with `await gathering.finish()`."""
    return cast("HookResult[Any] | Gathering", start(plan, payload, call, eager=True))


def run_direct(plan: Plan, payload: Any, call: Call, sampler: Sampler) -> HookResult[Any] | Pending:
    """The loop of a plan whose handlers are all sync, unconditional and run inline.

    One invocation in `SAMPLE_EVERY` runs the timed loops (`run_modify`, `run_observe`).
    The others read the clock twice in all: while every handler continues, calls are
    counted exactly and the loop's time waits in `sampler` to be spread over the handlers
    (`Sampler.spread`; exact for a plan of one handler). A loop slower than the lowest
    threshold of its handlers is logged and makes the next invocation a timed one. At the
    first handler that answers, raises or is suspended, the timed loop takes over from
    there; a `Modify` from a `quick` registration is taken on the spot
    (`_outcome.modified`), and the loop goes on untimed.
    """
    tick = sampler.tick
    sampler.tick = tick + 1
    if not tick % SAMPLE_EVERY:
        follow_code(plan.entries)  # a handler reloaded since may read its ctx now
        return _timed(plan, payload, call, 0, None)
    out: Outcome | None = None
    started = perf_counter()
    for reg in plan.entries:
        counters = reg.counters
        if counters.circuit is not CLOSED:
            _untimed(plan, sampler, started)
            return _timed(plan, payload, call, position(plan.entries, reg), out)
        if reg.takes_ctx:
            ctx = _new(HookContext)  # what HookContext(call, reg) does, without __init__
            ctx._call = call
            ctx._reg = reg
            try:
                action = reg.fn(payload, ctx)
            except BaseException as error:
                reraise_if_fatal(error)
                return _answered(plan, sampler, payload, call, reg, None, error, started, out)
        else:
            try:
                action = reg.fn(payload, None)
            except BaseException as error:
                reraise_if_fatal(error)
                return _answered(plan, sampler, payload, call, reg, None, error, started, out)
        if action is not None:
            if type(action) is Modify and reg.quick:
                out = modified(out, plan.spec, payload, reg, action, 0.0)  # time comes later
                if out.stopped:  # rejected, from a registration that fails closed
                    _untimed(plan, sampler, started)
                    return conclude(plan, call, out)
                payload = out.payload
                continue
            return _answered(plan, sampler, payload, call, reg, action, None, started, out)
        if counters.failures_in_row:
            counters.succeeded(0.0)  # ends the breaker's run of failures; time comes later
        else:
            counters.calls += 1
    _untimed(plan, sampler, started)
    return EMPTY_RESULT if out is None else conclude(plan, call, out)


def _untimed(plan: Plan, sampler: Sampler, started: float) -> None:
    """Keep the time of an untimed loop for spreading; log it when it was slow."""
    elapsed = perf_counter() - started
    sampler.pending += elapsed
    if elapsed > sampler.peak:
        sampler.peak = elapsed
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
    out: Outcome | None,
) -> HookResult[Any] | Pending:
    """An untimed loop's handler answered or raised: account for it, go on timed.

    Its own time is not known apart from the handlers' before it, so the loop's time so
    far is spread like an untimed loop's."""
    _untimed(plan, sampler, started)
    out = account(out, plan.spec, payload, reg, action, error, 0.0)
    if out is not None and out.stopped:  # a modify hook's chain ends here
        return conclude(plan, call, out)
    resume_at = position(plan.entries, reg) + 1
    return _timed(plan, payload if out is None else out.payload, call, resume_at, out)


def _timed(
    plan: Plan, payload: Any, call: Call, resume_at: int, out: Outcome | None
) -> HookResult[Any] | Pending:
    if plan.spec.kind == "modify":
        return run_modify(plan, payload, call, resume_at, out)
    return run_observe(plan, payload, call, resume_at=resume_at, out=out)
