"""JSON-RPC over a pair of byte streams: requests written without ever blocking the
caller, replies read by a thread and matched to their callers by id.

A thread, not the event loop's pipes: a plugin serves async hosts on their loop and sync
hosts on interlock's helper loop alike, and a channel bound to one loop could not.

Writes never block the caller: the pipe is non-blocking, and what does not fit (a plugin
that stopped reading its input) is left to a writer thread that waits for room. So a
stuck plugin can hold its own calls, which time out as usual, never the event loop.

Both directions work in batches, which is what makes many calls in flight cheap: the
requests made in one turn of an event loop go out in one write, and the replies that
arrive together are handed to each waiting loop in one wake-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from .. import ProtocolError
from .protocol import MAX_MESSAGE_BYTES, decode, encode, request, result_of

logger = logging.getLogger("interlock.external")

_BACKLOG = 4  # messages' worth of bytes that may wait for a plugin not reading its input
_Loop = asyncio.AbstractEventLoop
_Reply = dict[str, Any]
# A caller waiting for a reply: on an event loop (an asyncio future), or anywhere else.
_Waiter = tuple[_Loop, "asyncio.Future[_Reply]"] | concurrent.futures.Future[_Reply]


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
        hang_after: float = 1.0,
    ) -> None:
        self.name = name
        self.hang_after = hang_after
        self._reader = reader
        self._writer = writer
        self._limit = limit
        self._on_close = on_close
        self._ids = itertools.count(1)
        self._pending: dict[int, _Waiter] = {}
        self._sent_at: dict[int, float] = {}
        self._lock = threading.Lock()
        self._fd = writer.fileno()
        os.set_blocking(self._fd, False)
        self._outbox = bytearray()  # written yet to be: the writer thread's while `_backlog`
        self._backlog = False
        self._flush_scheduled: set[_Loop] = set()
        self._wake = threading.Condition(self._lock)
        self._closed: str | None = None
        self.last_reply = 0.0
        """When the last reply arrived (monotonic seconds)."""
        self.stuck = False
        """Set when a call was given up on after waiting `hang_after` seconds or more with
        nothing answered since it was sent: the other end looks hung. (A call given up on
        sooner, or a slow call among answered ones, does not set it.)"""
        self._threads = (
            threading.Thread(target=self._read, name=f"interlock-{name}-read", daemon=True),
            threading.Thread(target=self._write, name=f"interlock-{name}-write", daemon=True),
        )

    def start(self) -> Channel:
        """Start reading replies and writing requests."""
        for thread in self._threads:
            thread.start()
        return self

    @property
    def closed(self) -> str | None:
        """Why the channel closed, or None while it is open."""
        return self._closed

    async def call(self, method: str, params: Any) -> Any:
        """Send a request and wait for its reply's result (raises `ProtocolError`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Reply] = loop.create_future()
        id = self._send(method, params, (loop, future))
        if loop not in self._flush_scheduled:  # once per turn of the loop, for all its calls
            self._flush_scheduled.add(loop)
            loop.call_soon(self._flush_for, loop)
        try:
            reply = await future
        except asyncio.CancelledError:
            sent = self._sent_at.get(id)
            if sent is not None and self.last_reply < sent <= time.monotonic() - self.hang_after:
                self.stuck = True
            raise
        finally:
            self._forget(id)
        return result_of(reply)

    def call_sync(self, method: str, params: Any, timeout: float | None) -> Any:
        """`call` for code without an event loop (the handshake while a config loads)."""
        return result_of(self.wait(self.request(method, params), method, timeout))

    def request(self, method: str, params: Any) -> concurrent.futures.Future[_Reply]:
        """Send a request; its reply, as a future any thread or loop can wait for."""
        future: concurrent.futures.Future[_Reply] = concurrent.futures.Future()
        self._send(method, params, future)
        self._flush()
        return future

    def wait(
        self, future: concurrent.futures.Future[_Reply], method: str, timeout: float | None
    ) -> _Reply:
        """The reply `future` (from `request`) brings, waiting at most `timeout` seconds."""
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise ProtocolError(
                f"plugin {self.name!r} did not answer {method} within {timeout:g}s"
            ) from None

    def close(self, reason: str) -> None:
        """Stop: fail every waiting call with `reason`, stop writing."""
        self._fail_all(reason)
        with self._wake:
            self._wake.notify()

    # -- writing ------------------------------------------------------------------------

    def _send(self, method: str, params: Any, waiter: _Waiter) -> int:
        id = next(self._ids)
        data = encode(request(method, params, id))
        if len(data) > self._limit:
            raise ProtocolError(f"plugin {self.name!r}: a {method} request of {len(data)} bytes "
                                f"is over the {self._limit}-byte limit")  # fmt: skip
        with self._wake:  # closed and pending change together: no waiter is ever missed
            if self._closed is not None:
                raise ProtocolError(f"plugin {self.name!r}: {self._closed}")
            if len(self._outbox) > _BACKLOG * self._limit:
                raise ProtocolError(f"plugin {self.name!r} is not reading its input "
                                    f"({len(self._outbox)} bytes wait for it)")  # fmt: skip
            self._pending[id] = waiter
            self._sent_at[id] = time.monotonic()
            self._outbox += data
        return id

    def _flush_for(self, loop: _Loop) -> None:
        self._flush_scheduled.discard(loop)
        self._flush()

    def _flush(self) -> None:
        """Write what is queued, as far as the pipe takes it now; leave the rest to the
        writer thread."""
        failed = None
        with self._wake:
            if self._backlog or not self._outbox or self._closed is not None:
                return
            try:
                written = os.write(self._fd, self._outbox)
            except BlockingIOError:
                written = 0
            except OSError as error:  # the process went away
                failed, written = f"cannot write to it ({error})", len(self._outbox)
            del self._outbox[:written]
            if self._outbox:
                self._backlog = True
                self._wake.notify()
        if failed is not None:
            self._fail_all(failed)

    def _write(self) -> None:
        """The writer thread: waits for room in the pipe while there is a backlog."""
        room = selectors.DefaultSelector()  # poll/epoll: any fd number
        room.register(self._fd, selectors.EVENT_WRITE)
        while True:
            with self._wake:
                while not self._backlog and self._closed is None:
                    self._wake.wait()
                if self._closed is not None:
                    break
            try:
                room.select(1.0)  # room in the pipe, or a second to look again
                with self._wake:
                    del self._outbox[: os.write(self._fd, self._outbox)]
                    self._backlog = bool(self._outbox)
            except BlockingIOError:
                continue
            except (OSError, ValueError) as error:  # the process went away
                self._fail_all(f"cannot write to it ({error})")
                break
        room.close()
        with contextlib.suppress(OSError, ValueError):
            self._writer.close()

    def _forget(self, id: int) -> None:
        self._pending.pop(id, None)
        self._sent_at.pop(id, None)

    # -- reading ------------------------------------------------------------------------

    def _read(self) -> None:
        reason = "it closed its output (exited or crashed)"
        try:
            self._read_batches()
        except Exception as error:  # whatever happens here ends the channel, never hangs it
            reason = f"reading from it failed ({type(error).__name__}: {error})"
        # Closed before anyone learns of it, and the process reaped before waiting calls
        # fail: a caller that sees the failure sees a transport ready to restart.
        with self._wake:
            self._closed = self._closed or reason
            self._wake.notify()
        if self._on_close is not None:
            self._on_close(reason)
        self._fail_all(reason)
        with contextlib.suppress(OSError, ValueError):
            self._reader.close()

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
        by_loop: dict[_Loop, list[tuple[asyncio.Future[_Reply], Any]]] = {}
        for line in lines:
            if not line.strip():
                continue
            try:
                message = decode(line, self._limit)
            except ProtocolError as error:
                self._fail_waiting(str(error))
                continue
            self.last_reply = time.monotonic()
            id = message.get("id")
            if id is None and isinstance(message.get("error"), dict):
                # The answer to a request the plugin could not read: whose, it cannot say.
                self._fail_waiting(f"an error for a request it could not read: "
                                   f"{message['error'].get('message')}")  # fmt: skip
                continue
            waiter = None
            if type(id) is int:  # the host's ids are integers (and never booleans)
                waiter = self._pending.pop(id, None)
                self._sent_at.pop(id, None)
            if waiter is None:
                logger.warning(
                    "plugin %r sent a reply nobody waits for (id %r); ignored", self.name, id
                )
            elif isinstance(waiter, tuple):
                by_loop.setdefault(waiter[0], []).append((waiter[1], message))
            elif not waiter.done():
                waiter.set_result(message)
        for loop, replies in by_loop.items():
            _on_loop(loop, replies)

    def _fail_waiting(self, problem: str) -> None:
        """A reply that cannot be matched to its caller fails every caller waiting."""
        logger.warning("plugin %r: %s", self.name, problem)
        self._fail(self._take_pending(), ProtocolError(f"plugin {self.name!r} sent {problem}"))

    def _fail_all(self, reason: str) -> None:
        with self._wake:
            self._closed = self._closed or reason
        self._fail(self._take_pending(), ProtocolError(f"plugin {self.name!r}: {reason}"))

    def _fail(self, waiters: list[_Waiter], error: ProtocolError) -> None:
        by_loop: dict[_Loop, list[tuple[asyncio.Future[_Reply], Any]]] = {}
        for waiter in waiters:
            if isinstance(waiter, tuple):
                by_loop.setdefault(waiter[0], []).append((waiter[1], error))
            elif not waiter.done():
                waiter.set_exception(error)
        for loop, failures in by_loop.items():
            _on_loop(loop, failures)

    def _take_pending(self) -> list[_Waiter]:
        with self._wake:
            waiting = list(self._pending.values())
            self._pending.clear()
            self._sent_at.clear()
        return waiting


def _on_loop(loop: _Loop, outcomes: list[tuple[asyncio.Future[_Reply], Any]]) -> None:
    """Settle futures on their loop (from any thread); a closed loop has nobody waiting."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, outcomes)


def _settle(outcomes: list[tuple[asyncio.Future[_Reply], Any]]) -> None:
    for future, outcome in outcomes:
        if future.done():  # its caller gave up (timeout, cancellation)
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
