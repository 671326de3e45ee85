"""Running one handler call on its own, guarded: in a thread of its own, as a task, in
the background; and waiting for it within its timeout.

Every handler call is isolated: what it raises is its plugin's failure, except a real
interrupt or the caller's own cancellation (`reraise_if_fatal`).
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

from ._actions import Continue
from ._context import Call, HookContext
from ._deadlines import remaining, within
from ._exceptions import HookTimeoutError, InvalidActionError
from ._outcome import count_failure, late, log_failure, wrap

if TYPE_CHECKING:
    from ._registry import Registration

_MAIN = threading.main_thread()


async def run_alone(
    payload: Any, ctx: HookContext, *, in_thread: bool = False
) -> tuple[Any, BaseException | None, float]:
    """Run one handler to its end in a task of its own: (action, error, seconds)."""
    reg = ctx._reg
    started = perf_counter()
    try:
        if reg.thread or (in_thread and not reg.is_async):
            awaitable: Awaitable[Any] = asyncio.wrap_future(start_thread(reg, payload, ctx))
            action = await within(awaitable, reg, reg.timeout)
        else:
            action = reg.fn(payload, ctx)
            if reg.is_async:
                action = await eagerly(action, reg, started)
    except BaseException as error:
        reraise_if_fatal(error)
        expire_if_late(ctx, error)
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


async def settle(
    ctx: HookContext, waiting: Awaitable[Any], started: float
) -> tuple[Any, BaseException | None]:
    """Wait for the call of `ctx`'s handler that began at `started`, within what is left
    of its timeout: (action, error)."""
    reg = ctx._reg
    try:
        return await within(waiting, reg, remaining(reg, started)), None
    except BaseException as error:
        reraise_if_fatal(error)
        expire_if_late(ctx, error)
        return None, error


def settle_thread(
    ctx: HookContext, future: concurrent.futures.Future[Any], started: float
) -> tuple[Any, BaseException | None]:
    """`settle` for a sync host's thread, waited for in the host's thread; a thread past
    its timeout is abandoned and its handles revoked."""
    reg = ctx._reg
    try:
        return future.result(remaining(reg, started)), None
    except BaseException as error:
        reraise_if_fatal(error)
        if not future.done():  # our wait timed out; the thread is abandoned
            future.cancel()
            ctx._call = ctx._call.expired()
            return None, late(reg, reg.timeout or 0.0)
        return None, error


def expire_if_late(ctx: HookContext, error: BaseException) -> None:
    """A handler given up on past its timeout loses its handles: an abandoned thread or a
    coroutine that ignored its cancellation can no longer write anything."""
    if isinstance(error, HookTimeoutError):
        ctx._call = ctx._call.expired()


async def eagerly(coro: Coroutine[Any, Any, Any], reg: Registration, started: float) -> Any:
    """Await `coro` with its first step run inline, as in a chain: a timeout scope only for
    a handler that actually waits (most background handlers just record and return)."""
    try:
        suspended = coro.send(None)
    except StopIteration as done:
        if reg.timeout is not None and perf_counter() - started > reg.timeout:
            raise late(reg, perf_counter() - started) from None  # busy without waiting
        return done.value
    return await within(carry_on(coro, suspended), reg, remaining(reg, started))


@types.coroutine
def carry_on(coro: Coroutine[Any, Any, Any], suspended: Any) -> Generator[Any, Any, Any]:
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


def reraise_if_fatal(error: BaseException) -> None:
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
