"""JSON-RPC over a pair of byte streams: requests written under a lock, replies read by a
thread and matched to their callers by id.

A thread, not the event loop's pipes: a plugin serves async hosts on their loop and sync
hosts on interlock's helper loop alike, and a channel bound to one loop could not.

Both directions work in batches, which is what makes many calls in flight cheap: requests
made in one turn of an event loop go out in one write, and the replies that arrive
together are handed to each waiting loop in one wake-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable
from typing import IO, Any

from .. import ProtocolError
from .protocol import MAX_MESSAGE_BYTES, decode, encode, request, result_of

logger = logging.getLogger("interlock.external")

_Loop = asyncio.AbstractEventLoop
# A caller waiting for a reply: on an event loop (an asyncio future), or a thread.
_Waiter = tuple[_Loop, "asyncio.Future[dict[str, Any]]"] | concurrent.futures.Future[dict[str, Any]]


class Channel:
    """One conversation with one plugin process (or any pair of byte streams)."""

    def __init__(
        self,
        reader: IO[bytes],
        writer: IO[bytes],
        *,
        name: str,
        limit: int = MAX_MESSAGE_BYTES,
        on_close: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self._reader = reader
        self._writer = writer
        self._limit = limit
        self._on_close = on_close
        self._ids = itertools.count(1)
        self._pending: dict[int, _Waiter] = {}
        self._lock = threading.Lock()
        self._flush_scheduled: set[_Loop] = set()
        self._closed: str | None = None
        self._thread = threading.Thread(target=self._read, name=f"interlock-{name}", daemon=True)

    def start(self) -> Channel:
        """Start reading replies."""
        self._thread.start()
        return self

    @property
    def closed(self) -> str | None:
        """Why the channel closed, or None while it is open."""
        return self._closed

    async def call(self, method: str, params: Any) -> Any:
        """Send a request and wait for its reply's result (raises `ProtocolError`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        id = self._send(method, params, (loop, future), flush=False)
        self._schedule_flush(loop)
        try:
            reply = await future
        finally:
            self._pending.pop(id, None)
        return result_of(reply)

    def call_sync(self, method: str, params: Any, timeout: float | None) -> Any:
        """`call` for code without an event loop (the handshake while a config loads)."""
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        id = self._send(method, params, future, flush=True)
        try:
            reply = future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise ProtocolError(
                f"plugin {self.name!r} did not answer {method} within {timeout:g}s"
            ) from None
        finally:
            self._pending.pop(id, None)
        return result_of(reply)

    def close(self, reason: str) -> None:
        """Stop: fail every waiting call with `reason`."""
        self._fail_all(reason)
        with contextlib.suppress(OSError, ValueError):
            self._writer.close()

    # -- writing ------------------------------------------------------------------------

    def _send(self, method: str, params: Any, waiter: _Waiter, *, flush: bool) -> int:
        if self._closed is not None:
            raise ProtocolError(f"plugin {self.name!r}: {self._closed}")
        id = next(self._ids)
        data = encode(request(method, params, id))
        if len(data) > self._limit:
            raise ProtocolError(f"plugin {self.name!r}: a {method} request of {len(data)} bytes "
                                f"is over the {self._limit}-byte limit")  # fmt: skip
        self._pending[id] = waiter
        try:
            with self._lock:
                self._writer.write(data)
                if flush:
                    self._writer.flush()
        except (OSError, ValueError) as error:  # the process went away, or the pipe closed
            self._pending.pop(id, None)
            self._fail_all(f"cannot write to it ({error})")
            raise ProtocolError(f"plugin {self.name!r}: {self._closed}") from None
        return id

    def _schedule_flush(self, loop: _Loop) -> None:
        """Flush once this turn of `loop` is over: its requests leave in one write."""
        if loop not in self._flush_scheduled:
            self._flush_scheduled.add(loop)
            loop.call_soon(self._flush, loop)

    def _flush(self, loop: _Loop) -> None:
        self._flush_scheduled.discard(loop)
        try:
            with self._lock:
                self._writer.flush()
        except (OSError, ValueError) as error:
            self._fail_all(f"cannot write to it ({error})")

    # -- reading ------------------------------------------------------------------------

    def _read(self) -> None:
        reason = "it closed its output (exited or crashed)"
        try:
            self._read_batches()
        except (OSError, ValueError) as error:
            reason = f"reading from it failed ({error})"
        # Closed before anyone learns of it, and the process reaped before waiting calls
        # fail: a caller that sees the failure sees a transport ready to restart.
        with self._lock:
            self._closed = self._closed or reason
        if self._on_close is not None:
            self._on_close(reason)
        self._fail_all(reason)
        for stream in (self._writer, self._reader):
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    def _read_batches(self) -> None:
        """Read what is there, split it into lines, deliver the lines as one batch."""
        read = getattr(self._reader, "read1", self._reader.read)
        partial = b""
        skipping = False  # inside a line already over the limit: drop up to its end
        while True:
            chunk = read(65536)
            if not chunk:
                if partial.strip() and not skipping:
                    self._deliver([partial])  # a last line without its newline
                return
            data = partial + chunk
            if skipping:
                end = data.find(b"\n")
                partial = b""
                if end < 0:
                    continue
                data, skipping = data[end + 1 :], False
            *lines, partial = data.split(b"\n")
            if len(partial) > self._limit:
                partial, skipping = b"", True
                self._fail_waiting(f"a message over the {self._limit}-byte limit")
            too_long = [line for line in lines if len(line) > self._limit]
            if too_long:
                self._fail_waiting(f"a message over the {self._limit}-byte limit")
                lines = [line for line in lines if len(line) <= self._limit]
            self._deliver(lines)

    def _deliver(self, lines: list[bytes]) -> None:
        by_loop: dict[_Loop, list[tuple[asyncio.Future[dict[str, Any]], dict[str, Any]]]] = {}
        for line in lines:
            if not line.strip():
                continue
            try:
                message = decode(line, self._limit)
            except ProtocolError as error:
                self._fail_waiting(str(error))
                continue
            id = message.get("id")
            waiter = self._pending.pop(id, None) if isinstance(id, int) else None
            if waiter is None:
                logger.warning(
                    "plugin %r sent a reply nobody waits for (id %r); ignored", self.name, id
                )
            elif isinstance(waiter, tuple):
                by_loop.setdefault(waiter[0], []).append((waiter[1], message))
            elif not waiter.done():
                waiter.set_result(message)
        for loop, replies in by_loop.items():
            _on_loop(loop, _settle, replies)

    def _fail_waiting(self, problem: str) -> None:
        """A reply that cannot be matched to its caller fails every caller waiting."""
        logger.warning("plugin %r: %s", self.name, problem)
        self._fail(self._take_pending(), ProtocolError(f"plugin {self.name!r} sent {problem}"))

    def _fail_all(self, reason: str) -> None:
        if self._closed is None:
            self._closed = reason
        self._fail(self._take_pending(), ProtocolError(f"plugin {self.name!r}: {reason}"))

    def _fail(self, waiters: list[_Waiter], error: ProtocolError) -> None:
        by_loop: dict[_Loop, list[tuple[asyncio.Future[dict[str, Any]], Exception]]] = {}
        for waiter in waiters:
            if isinstance(waiter, tuple):
                by_loop.setdefault(waiter[0], []).append((waiter[1], error))
            elif not waiter.done():
                waiter.set_exception(error)
        for loop, failures in by_loop.items():
            _on_loop(loop, _settle, failures)

    def _take_pending(self) -> list[_Waiter]:
        with self._lock:
            waiting = list(self._pending.values())
            self._pending.clear()
        return waiting


def _on_loop(loop: _Loop, fn: Callable[..., None], *args: Any) -> None:
    """Run `fn` on `loop` (from any thread); a loop already closed has nobody waiting."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def _settle(outcomes: list[tuple[asyncio.Future[dict[str, Any]], Any]]) -> None:
    for future, outcome in outcomes:
        if future.done():  # its caller gave up (timeout, cancellation)
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
