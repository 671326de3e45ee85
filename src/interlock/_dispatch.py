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
import threading
import types
from collections.abc import AsyncIterator, Awaitable, Coroutine, Generator
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._actions import Continue, HookResult
from ._context import Call, HookContext
from ._exceptions import HookTimeoutError, InvalidActionError
from ._outcome import Outcome, account, count_failure, finish, late, log_failure, refuse, wrap
from ._registry import CLOSED

if TYPE_CHECKING:
    from ._conditions import Condition
    from ._portal import Portal
    from ._registry import Plan, Registration

_new = object.__new__
_MAIN = threading.main_thread()

# Recheck passes before plugins that keep changing each other's output are stopped: a
# redactor and a rewriter after it settle in two; a cascade of fixes needs one per fix.
MAX_RECHECKS = 8

# What a pending handler is: a coroutine (or its continuation) or a thread's future.
Waiting = Awaitable[Any] | concurrent.futures.Future[Any]


def start(
    plan: Plan, payload: Any, call: Call, *, eager: bool = True
) -> HookResult[Any] | Chain | Gathering:
    """Run what can run right away; a pending `Chain`/`Gathering` is left to finish.

    `eager` (async hosts): step async handlers inline until they suspend. Sync hosts pass
    False, since a coroutine's first step may need the running loop it would run on.
    """
    if plan.spec.kind == "modify":
        return run_modify(plan, payload, call, eager=eager)
    return run_observe(plan, payload, call, eager=eager)


def run_modify(
    plan: Plan,
    payload: Any,
    call: Call,
    resume_at: int = 0,
    out: Outcome | None = None,
    *,
    eager: bool = True,
) -> HookResult[Any] | Chain:
    """Run a modify hook's handlers from `resume_at`, chaining `Modify`, ending on
    Block/Respond; returns a `Chain` when a handler has to be waited for."""
    spec = plan.spec
    start = perf_counter()
    entries = plan.entries if out is None or out.entries is None else out.entries
    for reg in entries[resume_at:]:
        if not reg.direct and reg.condition is not None and not reg.condition(payload, call):
            continue
        counters = reg.counters
        if counters.circuit is not CLOSED and not counters.admit():
            out = refuse(out, spec, payload, reg)
            if out.stopped:
                break
            continue
        ctx = _new(HookContext)  # what HookContext(call, reg) does, without the __init__ call
        ctx._call = call
        ctx._reg = reg
        try:
            if reg.direct:
                action = reg.fn(payload, ctx)
            elif reg.thread:
                return Chain(plan, payload, call, out, ctx, start_thread(reg, payload, ctx), eager)
            else:
                action = reg.fn(payload, ctx)
                if reg.is_async:
                    if not eager:
                        return Chain(plan, payload, call, out, ctx, action, eager)
                    try:
                        step = action.send(None)
                    except StopIteration as done:
                        action = done.value
                    else:
                        waiting = _continue(action, step)
                        return Chain(plan, payload, call, out, ctx, waiting, eager, start)
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
        out = account(out, spec, payload, reg, action, None, duration, inline=True)
        if out is not None:
            if out.stopped:
                break
            payload = out.payload
    if out is not None and out.changer is not None and out.blocked_by is None:
        # A chain that ended, or ended with a Respond, on a payload changed after
        # some handler judged it: they judge the final one before either stands.
        return recheck(plan, call, out, out.changer, eager)
    return finish(out)


def recheck(
    plan: Plan, call: Call, out: Outcome, changer: Registration, eager: bool
) -> HookResult[Any] | Chain:
    """Ask again the handlers that judged an older payload than the one the chain ends with.

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
    return run_modify(plan, out.payload, call, 0, out, eager=eager)


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
    """A modify chain waiting for one handler (it suspended, or runs in a thread)."""

    __slots__ = ("call", "ctx", "eager", "out", "payload", "plan", "started", "waiting")

    def __init__(
        self,
        plan: Plan,
        payload: Any,
        call: Call,
        out: Outcome | None,
        ctx: HookContext,
        waiting: Waiting,
        eager: bool,
        started: float | None = None,
    ) -> None:
        self.plan = plan
        self.payload = payload
        self.call = call
        self.out = out
        self.ctx = ctx
        self.waiting = waiting
        self.eager = eager
        self.started = perf_counter() if started is None else started

    async def finish(self) -> HookResult[Any]:
        """Await the waiting handlers one by one and run the rest of the chain."""
        chain = self
        while True:
            action, error = await _settle(chain.ctx, _awaitable(chain.waiting), chain.started)
            step = chain._resume(action, error)
            if isinstance(step, HookResult):
                return step
            chain = step

    def finish_sync(self, portal: Portal) -> HookResult[Any]:
        """`finish` for sync hosts: threads are waited for here, coroutines on the portal."""
        chain = self
        while True:
            waiting, ctx = chain.waiting, chain.ctx
            if isinstance(waiting, concurrent.futures.Future):
                action, error = _settle_thread(ctx, waiting, chain.started)
            else:
                try:
                    action, error = portal.run(_settle(ctx, waiting, chain.started))
                except BaseException:
                    if isinstance(waiting, Coroutine):
                        waiting.close()  # never started: close it so Python does not warn
                    raise
            step = chain._resume(action, error)
            if isinstance(step, HookResult):
                return step
            chain = step

    def _resume(self, action: Any, error: BaseException | None) -> HookResult[Any] | Chain:
        spec, reg = self.plan.spec, self.ctx._reg
        duration = perf_counter() - self.started
        out = account(self.out, spec, self.payload, reg, action, error, duration)
        if out is not None and out.stopped:
            return out.result()
        payload = self.payload if out is None else out.payload
        entries = self.plan.entries if out is None or out.entries is None else out.entries
        resume_at = _at(entries, reg) + 1
        return run_modify(self.plan, payload, self.call, resume_at, out, eager=self.eager)


def run_observe(
    plan: Plan, payload: Any, call: Call, *, eager: bool = True
) -> HookResult[Any] | Gathering:
    """Run an observe hook's handlers; returns a `Gathering` when some must be waited for."""
    spec = plan.spec
    out: Outcome | None = None
    gathering: Gathering | None = None
    start = perf_counter()
    for reg in plan.entries:
        if not reg.direct and reg.condition is not None and not reg.condition(payload, call):
            continue
        counters = reg.counters
        if counters.circuit is not CLOSED and not counters.admit():
            out = refuse(out, spec, payload, reg)
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


_SCOPE: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
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


def _awaitable(waiting: Waiting) -> Awaitable[Any]:
    if isinstance(waiting, concurrent.futures.Future):
        return asyncio.wrap_future(waiting)
    return waiting


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
