"""The call loops: run one invocation's handlers in order or concurrently, isolating each.

`run_modify` runs handlers one after another, each seeing the payload as modified so far,
until one blocks or responds. `run_observe` runs them concurrently on one frozen payload.

Both are plain functions. They return a `HookResult` when every handler finished on the
spot (all sync handlers, and async handlers that never suspend), and otherwise a pending
object whose `finish()` coroutine awaits the rest. So a sync-only plan costs no coroutine
at all and `invoke_sync` runs it directly, while async hosts await only real waiting.

Other costs kept off the hot path:
- nothing is allocated for the result until a handler does something besides continue;
- one clock read per handler (each handler's start is the previous one's end);
- an async handler's first step runs inline (`coro.send(None)`, what `await` does), and
  only a handler that actually suspends pays for a timeout scope;
- observe handlers get a task of their own only after an earlier one suspended.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import types
from collections.abc import Awaitable, Coroutine, Generator
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._actions import Continue, HookResult
from ._context import Call, HookContext
from ._exceptions import HookTimeoutError, InterlockError, InvalidActionError
from ._outcome import Outcome, account, count_failure, finish, late, log_failure, refuse, wrap
from ._registry import CLOSED

if TYPE_CHECKING:
    from ._registry import Plan, Registration

_new = object.__new__


def start(plan: Plan, payload: Any, call: Call) -> HookResult[Any] | Chain | Gathering:
    """Run what can run right away; a pending `Chain`/`Gathering` is left to `finish()`."""
    if plan.spec.kind == "modify":
        return run_modify(plan, payload, call)
    return run_observe(plan, payload, call)


async def complete(plan: Plan, payload: Any, call: Call) -> HookResult[Any]:
    """Run an invocation to its end (for the helper loop that serves sync hosts)."""
    step = start(plan, payload, call)
    return step if isinstance(step, HookResult) else await step.finish()


def run_now(plan: Plan, payload: Any, call: Call) -> HookResult[Any]:
    """Run an invocation whose handlers cannot wait (sync only), without an event loop."""
    step = start(plan, payload, call)
    if isinstance(step, HookResult):
        return step
    step.waiting.close()  # type: ignore[attr-defined]
    raise InterlockError("a sync-only plan had a handler waiting; this is an interlock bug")


def run_modify(
    plan: Plan, payload: Any, call: Call, resume_at: int = 0, out: Outcome | None = None
) -> HookResult[Any] | Chain:
    """Run a modify hook's handlers from `resume_at`, chaining `Modify`, ending on
    Block/Respond; returns a `Chain` to await when a handler has to wait."""
    spec = plan.spec
    start = perf_counter()
    for reg in plan.entries[resume_at:]:
        counters = reg.counters
        if counters.circuit is not CLOSED and not counters.admit():
            out = refuse(out, spec, payload, reg)
            if out.stopped:
                break
            continue
        if not reg.direct and reg.condition is not None and not reg.condition(payload, call):
            continue
        ctx = _new(HookContext)  # what HookContext(call, reg) does, without the __init__ call
        ctx._call = call
        ctx._reg = reg
        try:
            if reg.direct:
                action = reg.fn(payload, ctx)
            elif reg.thread:
                waiting: Awaitable[Any] = _in_thread(reg, payload, ctx)
                return Chain(plan, payload, call, out, reg, waiting, start)
            else:
                action = reg.fn(payload, ctx)
                if reg.is_async:
                    try:
                        step = action.send(None)
                    except StopIteration as done:
                        action = done.value
                    else:
                        return Chain(plan, payload, call, out, reg, _continue(action, step), start)
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
    return finish(out)


class Chain:
    """A modify chain waiting for one handler (it suspended, or runs in a thread)."""

    __slots__ = ("call", "out", "payload", "plan", "reg", "started", "waiting")

    def __init__(
        self,
        plan: Plan,
        payload: Any,
        call: Call,
        out: Outcome | None,
        reg: Registration,
        waiting: Awaitable[Any],
        started: float,
    ) -> None:
        self.plan = plan
        self.payload = payload
        self.call = call
        self.out = out
        self.reg = reg
        self.waiting = waiting
        self.started = started

    async def finish(self) -> HookResult[Any]:
        """Await the waiting handler, account for it, and run the rest of the chain."""
        chain = self
        while True:
            action, error = await _settle(chain.reg, chain.waiting, chain.started)
            reg, spec = chain.reg, chain.plan.spec
            out = account(chain.out, spec, chain.payload, reg, action, error, _since(chain))
            if out is not None and out.stopped:
                return out.result()
            payload = chain.payload if out is None else out.payload
            resume_at = chain.plan.entries.index(reg) + 1
            step = run_modify(chain.plan, payload, chain.call, resume_at, out)
            if isinstance(step, HookResult):
                return step
            chain = step


def run_observe(plan: Plan, payload: Any, call: Call) -> HookResult[Any] | Gathering:
    """Run an observe hook's handlers; returns a `Gathering` when some are still running."""
    spec = plan.spec
    out: Outcome | None = None
    gathering: Gathering | None = None
    start = perf_counter()
    for reg in plan.entries:
        counters = reg.counters
        if counters.circuit is not CLOSED and not counters.admit():
            out = refuse(out, spec, payload, reg)
            continue
        if not reg.direct and reg.condition is not None and not reg.condition(payload, call):
            continue
        ctx = _new(HookContext)  # what HookContext(call, reg) does, without the __init__ call
        ctx._call = call
        ctx._reg = reg
        if gathering is not None and (reg.is_async or reg.thread):
            # Once one handler waits, later ones run as tasks so that they overlap with it.
            gathering.spawn(reg, payload, ctx)
            continue
        try:
            if reg.thread:
                gathering = Gathering(plan, payload, reg, _in_thread(reg, payload, ctx))
                continue
            action = reg.fn(payload, ctx)
            if reg.is_async:
                try:
                    step = action.send(None)
                except StopIteration as done:
                    action = done.value
                else:
                    # It stays in the caller's task, so timeouts and task groups it
                    # opened in its first step still point at the right task.
                    gathering = Gathering(plan, payload, reg, _continue(action, step), start)
                    start = perf_counter()
                    continue
        except BaseException as error:
            _reraise_if_fatal(error)
            now = perf_counter()
            out = account(out, spec, payload, reg, None, error, now - start)
            start = now
            continue
        now = perf_counter()
        duration = now - start
        start = now
        out = account(out, spec, payload, reg, action, None, duration)
    if gathering is not None:
        gathering.out = out
        return gathering
    return finish(out)


class Gathering:
    """Observe handlers still running: the first that waited, and tasks for later ones."""

    __slots__ = ("out", "payload", "plan", "reg", "started", "tasks", "waiting")

    def __init__(
        self,
        plan: Plan,
        payload: Any,
        reg: Registration,
        waiting: Awaitable[Any],
        started: float | None = None,
    ) -> None:
        self.plan = plan
        self.payload = payload
        self.reg = reg
        self.waiting = waiting
        self.started = perf_counter() if started is None else started
        self.out: Outcome | None = None
        self.tasks: list[tuple[Registration, asyncio.Task[tuple[Any, Any, float]]]] = []

    def spawn(self, reg: Registration, payload: Any, ctx: HookContext) -> None:
        """Start one more handler as a task of its own."""
        self.tasks.append((reg, asyncio.ensure_future(run_alone(reg, payload, ctx))))

    async def finish(self) -> HookResult[Any]:
        """Wait for every running handler and account for each."""
        spec, payload, out = self.plan.spec, self.payload, self.out
        try:
            action, error = await _settle(self.reg, self.waiting, self.started)
            out = account(out, spec, payload, self.reg, action, error, _since(self))
            for reg, task in self.tasks:
                action, error, duration = await task
                out = account(out, spec, payload, reg, action, error, duration)
        finally:
            for _, task in self.tasks:
                task.cancel()
        return finish(out)


async def run_alone(
    reg: Registration, payload: Any, ctx: HookContext
) -> tuple[Any, BaseException | None, float]:
    """Run one handler to its end in a task of its own: (action, error, seconds)."""
    started = perf_counter()
    try:
        if reg.thread:
            action = await _within(_in_thread(reg, payload, ctx), reg, reg.timeout)
        else:
            action = reg.fn(payload, ctx)
            if reg.is_async:
                action = await _within(action, reg, reg.timeout)
    except BaseException as error:
        _reraise_if_fatal(error)
        return None, error, perf_counter() - started
    return action, None, perf_counter() - started


async def run_background(reg: Registration, payload: Any, call: Call) -> None:
    """Run one fire-and-forget handler after an invocation; failures are counted and logged."""
    action, error, duration = await run_alone(reg, payload, HookContext(call, reg))
    if error is None and reg.timeout is not None and duration > reg.timeout:
        error = late(reg, duration)
    if error is None and action is not None and action.__class__ is not Continue:
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


async def _settle(
    reg: Registration, waiting: Awaitable[Any], started: float
) -> tuple[Any, BaseException | None]:
    timeout = reg.timeout
    if timeout is not None:
        timeout = max(timeout - (perf_counter() - started), 0.0)
    try:
        return await _within(waiting, reg, timeout), None
    except BaseException as error:
        _reraise_if_fatal(error)
        return None, error


async def _within(awaitable: Awaitable[Any], reg: Registration, timeout: float | None) -> Any:
    if timeout is None:
        return await awaitable
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            result = await awaitable
    except TimeoutError:
        if not scope.expired():
            raise
        raise late(reg, reg.timeout or timeout) from None
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


def _in_thread(reg: Registration, payload: Any, ctx: HookContext) -> asyncio.Future[Any]:
    """Run a `thread=True` handler on a daemon thread of its own.

    Not the event loop's executor: a handler that hangs past its timeout is abandoned, and
    an abandoned daemon thread blocks neither the loop's shutdown nor the process's exit.
    """
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    context = contextvars.copy_context()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = context.run(reg.fn, payload, ctx)
        except BaseException as error:
            future.set_exception(error)
        else:
            future.set_result(result)

    threading.Thread(target=work, name=f"interlock-{reg.plugin}", daemon=True).start()
    return asyncio.wrap_future(future)


def _since(pending: Chain | Gathering) -> float:
    return perf_counter() - pending.started


def _reraise_if_fatal(error: BaseException) -> None:
    """Let interrupts and real cancellation through; anything else is the plugin's fault."""
    if isinstance(error, KeyboardInterrupt | SystemExit):
        raise error
    if isinstance(error, asyncio.CancelledError) and _being_cancelled():
        raise error


def _being_cancelled() -> bool:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop: a sync host, so nobody can be cancelling us
        return False
    return task is not None and task.cancelling() > 0
