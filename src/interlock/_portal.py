"""A private event loop on a daemon thread, so sync hosts can run async handlers.

The loop thread must outlive anything a handler does. Handlers' exceptions are caught
where they run; should the loop stop all the same, whatever waits on it is failed with a
`PortalError` at once (never left hanging), and the next use starts a fresh loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from ._exceptions import PortalError
from ._log import logger

if TYPE_CHECKING:
    from collections.abc import Coroutine

T = TypeVar("T")


class Portal:
    """Started on first use; one per manager, so loop-bound resources stay on one loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._waiting: set[concurrent.futures.Future[Any]] = set()

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
        with self._lock:
            loop = self._ensure_loop()
            future = asyncio.run_coroutine_threadsafe(coro, loop)
            self._waiting.add(future)
        future.add_done_callback(self._waiting.discard)
        return future

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
        if thread.is_alive():
            cancelling = asyncio.run_coroutine_threadsafe(_cancel_all(), loop)
            self._waiting.add(cancelling)
            with contextlib.suppress(PortalError):  # it ended while cancelling: nothing left
                cancelling.result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        loop.close()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            return self._loop
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self._serve, args=(loop,), name="interlock-portal", daemon=True
        )
        self._loop, self._thread = loop, thread
        thread.start()
        return loop

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop thread: run the loop; if it ends other than by `close`, say why and
        fail whatever still waits on it."""
        try:
            loop.run_forever()
        except BaseException as error:
            reason = f"{type(error).__name__}: {error}"
        else:
            return  # stopped by `close`
        with self._lock:
            if self._loop is loop:
                self._loop = self._thread = None
            waiting = [f for f in list(self._waiting) if not f.done()]
        logger.error(
            "interlock's event-loop thread ended (%s); later calls start a new one", reason
        )
        failure = PortalError(
            f"interlock's event-loop thread ended ({reason}) while a call waited on it; the "
            "call was abandoned, later calls use a new loop"
        )
        for future in waiting:
            with contextlib.suppress(concurrent.futures.InvalidStateError):  # done meanwhile
                future.set_exception(failure)
        _bury(loop)


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _bury(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what was left on a loop that ended abnormally, then close it. Whoever waited
    on it has been told already, so what the leftovers report on the way out is dropped."""
    loop.set_exception_handler(lambda loop, context: None)
    # A task that will not end is left to the collector.
    with contextlib.suppress(BaseException):
        loop.run_until_complete(_cancel_all())
    loop.close()
