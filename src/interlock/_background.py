"""Fire-and-forget handlers: scheduled after an invocation, tracked, bounded, drained.

When the queue is full a call is dropped, or, for `overflow="wait"` registrations, the
invoking call waits for room first. Waiting is off the common path: a waiter is a future
in a FIFO that a finishing call resolves, so a full queue wakes one waiter per call that
ends, whether the waiter is a task (any event loop) or a sync host's thread.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from typing import TYPE_CHECKING, Any

from ._log import logger

if TYPE_CHECKING:
    from ._registry import Registration

Work = asyncio.Future[Any] | concurrent.futures.Future[Any]
Waiter = concurrent.futures.Future[None]


class Background:
    """The set of background calls still running, with a bound on how many may wait.

    Past the bound, new calls are dropped (or their invocation waits for room, bounded):
    counted per registration and in total, told to the plugin, and logged at the first
    drop and each time the count doubles, so a flood cannot flood the log too.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self._pending: set[Work] = set()
        self._lock = threading.Lock()
        self._waiters: collections.deque[Waiter] = collections.deque()
        self._finished = 0  # calls finished so far: progress
        self._stalled_at = -1  # `_finished` when a wait for room last ran out
        self._settling = 0  # background calls waiting in `settle`

    @property
    def pending(self) -> int:
        """How many background calls have not finished."""
        return len(self._pending)

    def admit(self) -> bool:
        """Whether one more call fits now (the common path: one comparison)."""
        return len(self._pending) < self.limit

    def track(self, work: Work) -> None:
        """Remember `work` until it finishes."""
        with self._lock:
            self._pending.add(work)
        work.add_done_callback(self._forget)

    def drop(self, reg: Registration) -> None:
        """Count a call of `reg` that will not run, log it (sparingly), tell the plugin."""
        with self._lock:
            self.dropped += 1
            dropped = self.dropped
            reg.counters.dropped += 1
        hook = reg.hook.name
        if dropped & (dropped - 1) == 0:
            logger.warning(
                "background queue full (%d pending): dropped a call of plugin %r at hook %r "
                "(%d dropped so far)",
                self.limit,
                reg.plugin,
                hook,
                dropped,
                extra={"interlock_plugin": reg.plugin, "interlock_hook": hook},
            )
        if reg.on_drop is not None:
            try:
                reg.on_drop(hook, 1)
            except Exception:
                logger.exception(
                    "plugin %r failed to take note of a dropped background call at hook %r",
                    reg.plugin,
                    hook,
                    extra={"interlock_plugin": reg.plugin, "interlock_hook": hook},
                )

    async def wait(self, timeout: float) -> bool:
        """Wait (an async host) until one more call fits; False when the queue made no
        progress (no call finished) for `timeout` seconds.

        A queue that made no progress since a wait last gave up is stalled: the answer is
        False at once, so a hung handler costs one bounded wait, not one per invocation.
        """
        loop = asyncio.get_running_loop()
        while (waiter := self._enqueue()) is not None:
            woken = asyncio.wrap_future(waiter, loop=loop)
            try:
                while not woken.done():
                    seen = self._finished
                    await asyncio.wait((woken,), timeout=timeout)
                    if not woken.done() and self._stalled(waiter, seen):
                        return False
            except BaseException:  # the invocation was cancelled while it waited
                self._abandon(waiter)
                raise
        return self.admit()

    def wait_sync(self, timeout: float) -> bool:
        """`wait` for sync hosts: blocks the calling thread.

        A thread that runs an event loop does not wait (that loop may be the one that
        would finish the pending work): the answer is False.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return False
        while (waiter := self._enqueue()) is not None:
            while True:
                seen = self._finished
                done, _ = concurrent.futures.wait((waiter,), timeout=timeout)
                if done:
                    break
                if self._stalled(waiter, seen):
                    return False
        return self.admit()

    def _enqueue(self) -> Waiter | None:
        """None when a call fits now (or the queue is stalled); else a waiter, resolved
        when a call finishes (first come, first woken)."""
        with self._lock:
            if len(self._pending) < self.limit or self._stalled_at == self._finished:
                return None
            waiter: Waiter = concurrent.futures.Future()
            self._waiters.append(waiter)
            return waiter

    def _stalled(self, waiter: Waiter, seen: int) -> bool:
        """After a wait of a whole bound: True (the waiter withdrawn, the queue marked
        stalled) when no call finished since `seen`; False to go on waiting."""
        with self._lock:
            if self._finished != seen or not waiter.cancel():  # progress, or woken just now
                return False
            self._stalled_at = self._finished
            return True

    def _abandon(self, waiter: Waiter) -> None:
        """Withdraw a waiter; a wake-up it already got goes to the next one."""
        with self._lock:
            if not waiter.cancel():
                self._wake_one()

    def _forget(self, work: Any) -> None:
        with self._lock:
            self._pending.discard(work)
            self._finished += 1
            if self._waiters:
                self._wake_one()

    def _wake_one(self) -> None:
        """Resolve the first waiter still waiting (the lock is held)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.set_running_or_notify_cancel():
                waiter.set_result(None)
                return

    async def drain(self, timeout: float | None) -> bool:
        """Wait for everything pending; True when all of it finished within `timeout`.

        Work started by `invoke_sync` runs in the portal thread and is waited for too;
        tasks that belong to another event loop cannot be waited for from this one.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while waiting := self._awaitables(loop):
                    await asyncio.wait(waiting)
        except TimeoutError:
            return False
        return True

    async def settle(self) -> None:
        """Wait, from a background call, until the other background calls have finished.

        `drain` would wait for the caller too. Calls are not told apart: each call waiting
        here is one pending call, so this returns once every pending call is one waiting
        here (several reports settling at once wait for the rest, never for each other).
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            self._settling += 1
        try:
            while len(waiting := self._awaitables(loop)) > self._settling:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            with self._lock:
                self._settling -= 1

    def drain_sync(self, timeout: float | None) -> bool:
        """Wait, blocking, for the pending work sync hosts started (it runs in the portal)."""
        futures = [w for w in self._snapshot() if isinstance(w, concurrent.futures.Future)]
        _, not_done = concurrent.futures.wait(futures, timeout=timeout)
        return not not_done

    def _awaitables(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Future[Any]]:
        waiting: list[asyncio.Future[Any]] = []
        for work in self._snapshot():
            if isinstance(work, concurrent.futures.Future):
                waiting.append(asyncio.wrap_future(work, loop=loop))
            elif work.get_loop() is loop:
                waiting.append(work)
        return waiting

    def _snapshot(self) -> list[Work]:
        with self._lock:
            return list(self._pending)
