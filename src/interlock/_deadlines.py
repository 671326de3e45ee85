"""Handler timeouts: one timer per event loop for awaited chains, a scope per waiting call
elsewhere, and setup time that does not count (`untimed`).

An awaited chain keeps one `Watch` for the handler it is awaiting: its deadline, moved
on as each handler starts. A loop's `Watcher` keeps a single timer, at the earliest
deadline it was told of; when it fires it cancels the tasks whose handler is past its
deadline and sets itself again for the earliest one left. Setting a deadline is two
attribute writes and a comparison, where `asyncio.timeout` schedules and cancels a timer
for every call; a handler that finishes without waiting is never seen by the watcher.

Handlers waited for on their own (observers that suspended, threads, background calls)
get an `asyncio.timeout` scope (`within`). A `Watch` answers the same
`when`/`reschedule`/`expired` questions as `asyncio.Timeout`, so `untimed` moves either
kind of deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import threading
from collections.abc import AsyncIterator, Awaitable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._outcome import late

if TYPE_CHECKING:
    from ._registry import Registration


class Watch:
    """The deadline (perf_counter seconds) of the handler a task is awaiting."""

    __slots__ = ("deadline", "fired", "task", "watcher")

    def __init__(self, watcher: Watcher, task: asyncio.Task[object]) -> None:
        self.watcher = watcher
        self.task = task
        self.deadline = math.inf
        self.fired = False

    def start(self, deadline: float) -> None:
        """A handler begins: it must be done by `deadline`."""
        self.deadline = deadline
        if deadline < self.watcher.at:
            self.watcher.arm(deadline)

    def when(self) -> float | None:
        """The current deadline (None: none), as `asyncio.Timeout.when`."""
        return None if self.deadline == math.inf else self.deadline

    def reschedule(self, deadline: float | None) -> None:
        """Move the deadline (`untimed`), as `asyncio.Timeout.reschedule`."""
        self.start(math.inf if deadline is None else deadline)

    def expired(self) -> bool:
        """Whether the watcher cancelled the task for this deadline."""
        return self.fired


class Watcher:
    """One timer for every watched handler of one event loop."""

    __slots__ = ("at", "handle", "idle", "loop", "watches")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watches: set[Watch] = set()
        # The last chain's watch, kept registered with no deadline: the next chain of the
        # same task (a host's loop of invocations) takes it over instead of a new one.
        self.idle: Watch | None = None
        self.at = math.inf  # when the timer fires (perf_counter seconds)
        self.handle: asyncio.TimerHandle | None = None

    def arm(self, deadline: float) -> None:
        """Fire at `deadline` (earlier than the timer set now, if any)."""
        if self.handle is not None:
            self.handle.cancel()
        self.at = deadline
        delay = max(deadline - perf_counter(), 0.0)
        self.handle = self.loop.call_at(self.loop.time() + delay, self._fire)

    def _fire(self) -> None:
        self.handle, self.at = None, math.inf
        now = perf_counter()
        earliest = math.inf
        for watch in self.watches:
            if watch.fired:
                continue
            if watch.deadline <= now:
                watch.fired = True
                watch.task.cancel()
            elif watch.deadline < earliest:
                earliest = watch.deadline
        if earliest < math.inf:
            self.arm(earliest)


class _Local(threading.local):
    watcher: Watcher | None = None


_local = _Local()


def watch() -> Watch:
    """A watch for the current task, kept by the running loop's watcher until `unwatch`."""
    loop = asyncio.get_running_loop()
    watcher = _local.watcher
    if watcher is None or watcher.loop is not loop:  # one running loop per thread
        watcher = _local.watcher = Watcher(loop)
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("interlock's awaited dispatch must run in an asyncio task")
    entry = watcher.idle
    if entry is not None and entry.task is task and not entry.fired:
        watcher.idle = None
        return entry
    entry = Watch(watcher, task)
    watcher.watches.add(entry)
    return entry


def unwatch(entry: Watch) -> None:
    """Stop watching: the chain is over. Its watch stays, idle, for the task's next chain."""
    entry.deadline = math.inf
    watcher = entry.watcher
    if entry.fired:  # never taken over: its cancellation was not taken back
        watcher.watches.discard(entry)
        return
    if watcher.idle is not None:
        watcher.watches.discard(watcher.idle)
    watcher.idle = entry


def remaining(reg: Registration, started: float) -> float | None:
    """Seconds left of the timeout of `reg`'s call that began at `started` (None: none)."""
    if reg.timeout is None:
        return None
    return max(reg.timeout - (perf_counter() - started), 0.0)


class _Setup:
    """A setup wait in progress (see `untimed`): when it began, and its bound."""

    __slots__ = ("entered", "limit")

    def __init__(self, entered: float, limit: float) -> None:
        self.entered = entered
        self.limit = limit


SCOPE: contextvars.ContextVar[asyncio.Timeout | Watch | None] = contextvars.ContextVar(
    "interlock_timeout_scope", default=None
)
SETUP: contextvars.ContextVar[_Setup | None] = contextvars.ContextVar(
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
    token = SETUP.set(setup)
    _shift(limit)
    try:
        yield
    finally:
        SETUP.reset(token)
        _shift(-(limit - min(loop.time() - setup.entered, limit)))


def _shift(seconds: float) -> None:
    scope = SCOPE.get()
    deadline = None if scope is None else scope.when()
    if scope is not None and deadline is not None and not scope.expired():
        scope.reschedule(deadline + seconds)


async def within(awaitable: Awaitable[Any], reg: Registration, timeout: float | None) -> Any:
    """Await `reg`'s call within `timeout` seconds (plus setup time, see `untimed`); past
    it, the call is cancelled and `HookTimeoutError` raised."""
    if timeout is None:
        return await awaitable
    setup = SETUP.get()
    if setup is not None:  # the handler is waiting for setup (`untimed`) as its timer starts
        timeout += setup.limit
    scope = asyncio.timeout(timeout)
    token = SCOPE.set(scope)
    try:
        async with scope:
            result = await awaitable
    except TimeoutError:
        if not scope.expired():
            raise
        raise late(reg, reg.timeout or timeout) from None
    except Exception as error:
        if not scope.expired():
            raise
        # It turned its cancellation into an exception of its own: late all the same.
        raise late(reg, reg.timeout or timeout) from error
    finally:
        SCOPE.reset(token)
    if scope.expired():  # the handler swallowed its cancellation; its answer is late
        raise late(reg, reg.timeout or timeout)
    return result
