"""A private event loop on a daemon thread, so sync hosts can run async handlers."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from ._exceptions import PortalError

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Coroutine

T = TypeVar("T")


class Portal:
    """Started on first use; one per manager, so loop-bound resources stay on one loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the portal loop and wait for its result in the calling thread."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise PortalError(
                "invoke_sync was called from a handler running on interlock's event-loop "
                "thread, which would wait for itself; use `await manager.invoke(...)` there"
            )
        return self.submit(coro).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on the portal loop without waiting."""
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())

    def close(self) -> None:
        """Cancel what still runs there, stop the loop and join its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if threading.current_thread() is thread:  # closed from one of its own handlers
            loop.call_soon(loop.stop)
            return
        asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="interlock-portal", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
