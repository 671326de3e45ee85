"""Fire-and-forget handlers: scheduled after an invocation, tracked, bounded, drained."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

from ._log import logger

Work = asyncio.Future[Any] | concurrent.futures.Future[Any]


class Background:
    """The set of background calls still running, with a bound on how many may wait.

    Past the bound, new calls are dropped and counted; a warning is logged at the first
    drop and each time the count doubles, so a flood cannot flood the log too.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self._pending: set[Work] = set()
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """How many background calls have not finished."""
        return len(self._pending)

    def admit(self, plugin: str, hook: str) -> bool:
        """Whether one more call fits; counts and maybe logs the drop when it does not."""
        if len(self._pending) < self.limit:
            return True
        with self._lock:
            self.dropped += 1
            dropped = self.dropped
        if dropped & (dropped - 1) == 0:
            logger.warning(
                "background queue full (%d pending): dropped a call of plugin %r at hook %r "
                "(%d dropped so far)",
                self.limit,
                plugin,
                hook,
                dropped,
                extra={"interlock_plugin": plugin, "interlock_hook": hook},
            )
        return False

    def track(self, work: Work) -> None:
        """Remember `work` until it finishes."""
        with self._lock:
            self._pending.add(work)
        work.add_done_callback(self._forget)

    def _forget(self, work: Any) -> None:
        with self._lock:
            self._pending.discard(work)

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
