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
import select
import selectors
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from .. import ProtocolError
from .protocol import MAX_MESSAGE_BYTES, decode, encode_request, result_of

logger = logging.getLogger("interlock.external")

_BACKLOG = 4  # messages' worth of bytes that may wait for a plugin not reading its input
_PIPE_MAX = 1 << 20  # the most a process can leave unread in a pipe (Linux's default cap)
_READS_BETWEEN_POLLS = 64  # replies read back to back before the exit and stop are looked at
_ERROR_LINE = 65536  # an error-stream line longer than this is handed on in pieces
_Loop = asyncio.AbstractEventLoop
_Reply = dict[str, Any]
# A caller waiting for a reply: on an event loop (an asyncio future), or anywhere else.
_Waiter = tuple[_Loop, "asyncio.Future[_Reply]"] | concurrent.futures.Future[_Reply]


class Channel:
    """One conversation with one plugin process (or any pair of byte streams).

    `errors` is the other end's error stream (a process's stderr): the reader thread
    takes it too, handing each line to `on_error_line`. `watch` is a file descriptor
    that becomes readable when the other end is gone (a process's pidfd): what it wrote
    until then is read, and the channel ends even while something it started still holds
    the streams open. The channel closes `watch`, and both streams, when it ends.
    `warnings` rate-limits what it logs about the other end (one per plugin).
    """

    def __init__(
        self,
        reader: IO[bytes],
        writer: IO[bytes],
        *,
        name: str,
        limit: int = MAX_MESSAGE_BYTES,
        on_close: Callable[[str], None] | None = None,
        hang_after: float = 1.0,
        errors: IO[bytes] | None = None,
        on_error_line: Callable[[bytes], None] | None = None,
        watch: int | None = None,
        warnings: WarningLimit | None = None,
    ) -> None:
        self.name = name
        self.hang_after = hang_after
        self._reader = reader
        self._writer = writer
        self._limit = limit
        self._on_close = on_close
        self._errors = errors
        self._on_error_line = on_error_line
        self._watch = watch
        self._warnings = warnings or WarningLimit(name)
        self._stop_r, self._stop_w = os.pipe()  # written to by `close`: the reader stops
        self._stopping = False
        self._partial = b""  # the start of a reply line still to come
        self._skipping = False  # inside a reply line already over the limit
        self._errors_partial = b""
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
        """Send a request and wait for its reply's result (raises `ProtocolError`);
        `params` may come `Encoded` already."""
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
        """Stop: fail every waiting call with `reason`, stop writing and reading (whoever
        still holds the other ends of the streams cannot keep the threads waiting)."""
        self._fail_all(reason)
        with self._wake:
            self._wake.notify()
            self._stopping = True
            if self._stop_w >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._stop_w, b"x")

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end (after `close`, or the other end's); True if they
        did within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive() and thread.ident is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                thread.join(left)
        return not any(thread.is_alive() for thread in self._threads)

    # -- writing ------------------------------------------------------------------------

    def _send(self, method: str, params: Any, waiter: _Waiter) -> int:
        id = next(self._ids)
        data = encode_request(method, params, id)
        if len(data) > self._limit:
            raise ProtocolError(f"plugin {self.name!r}: a {method} request of {len(data)} bytes "
                                f"is over the {self._limit}-byte limit")  # fmt: skip
        with self._lock:  # closed and pending change together: no waiter is ever missed
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
            reason = self._pump() or reason
        except Exception as error:  # whatever happens here ends the channel, never hangs it
            reason = f"reading from it failed ({type(error).__name__}: {error})"
        # Closed before anyone learns of it, and the process reaped before waiting calls
        # fail: a caller that sees the failure sees a transport ready to restart.
        with self._wake:
            self._closed = reason = self._closed or reason
            self._wake.notify()
        if self._on_close is not None:
            self._on_close(reason)
        self._fail_all(reason)
        self._warnings.flush()
        with self._wake:  # `close` writes to the stop pipe under this lock: never a reused fd
            for fd in (self._stop_r, self._stop_w):
                os.close(fd)
            self._stop_r = self._stop_w = -1
        with contextlib.suppress(OSError, ValueError):
            self._reader.close()
            if self._errors is not None:
                self._errors.close()
        if self._watch is not None:
            with contextlib.suppress(OSError):
                os.close(self._watch)

    def _pump(self) -> str | None:
        """Read replies (and the other end's error stream) until the end; why it ended,
        or None for the default reason (end of output)."""
        out = self._reader.fileno()
        err = None if self._errors is None else self._errors.fileno()
        poller = select.poll()
        for fd in (out, err, self._watch, self._stop_r):
            if fd is not None:
                poller.register(fd, select.POLLIN)
        for fd in (out, err):
            if fd is not None:
                os.set_blocking(fd, False)
        reads = 0
        while True:
            # Replies first, without asking poll when they keep coming (one system call
            # per batch under load); poll when there are none, and now and then anyway.
            if reads < _READS_BETWEEN_POLLS and not self._stopping:
                try:
                    chunk = os.read(out, 65536)
                except BlockingIOError:
                    reads = _READS_BETWEEN_POLLS
                else:
                    reads += 1
                    self._lines_in(chunk)
                    if not chunk:
                        self._drain(err)
                        return None
                    self._warnings.tick()
                    continue
            reads = 0
            ready = {fd for fd, _ in poller.poll()}
            if self._stop_r in ready:
                return None  # the host closed the channel; `_closed` says why
            if err is not None and err in ready and not self._take(err, self._errors_in):
                poller.unregister(err)
                err = None
            if self._watch is not None and self._watch in ready:
                # It exited: what it wrote before it went is in the pipes, read it; what
                # its leftovers write from now on is nobody's answer.
                ended = not self._drain(out, self._lines_in)
                self._drain(err)
                if ended:
                    return None
                return "it exited, and something it started still holds its output"

    def _take(self, fd: int, sink: Callable[[bytes], None]) -> bool:
        """Read once from `fd` into `sink`; False at the end of the stream."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            sink(b"")
            return False
        sink(chunk)
        return True

    def _drain(self, fd: int | None, sink: Callable[[bytes], None] | None = None) -> bool:
        """Read what `fd` holds now, up to what one process can leave in a pipe; False
        when the stream ended."""
        if fd is None:
            return True
        sink = sink or self._errors_in
        budget = self._limit + _PIPE_MAX
        while budget > 0:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            budget -= len(chunk)
            sink(chunk)
            if not chunk:
                return False
        return True

    def _lines_in(self, chunk: bytes) -> None:
        """Split what arrived into lines and deliver the whole ones as one batch (an
        empty chunk: the end, which delivers a last line without its newline)."""
        if not chunk:
            if self._partial.strip() and not self._skipping:
                self._deliver([self._partial])
            self._partial = b""
            return
        data = self._partial + chunk
        if self._skipping:  # inside a line already over the limit: drop up to its end
            end = data.find(b"\n")
            self._partial = b""
            if end < 0:
                return
            data, self._skipping = data[end + 1 :], False
        *lines, self._partial = data.split(b"\n")
        if len(self._partial) > self._limit:
            self._partial, self._skipping = b"", True
            self._fail_waiting(f"a message over the {self._limit}-byte limit")
        too_long = [line for line in lines if len(line) > self._limit]
        if too_long:
            self._fail_waiting(f"a message over the {self._limit}-byte limit")
            lines = [line for line in lines if len(line) <= self._limit]
        self._deliver(lines)

    def _errors_in(self, chunk: bytes) -> None:
        """Hand the error stream's lines to `on_error_line` (an overlong line in pieces)."""
        data = self._errors_partial + chunk
        *lines, rest = data.split(b"\n")
        if not chunk or len(rest) > _ERROR_LINE:
            lines.append(rest)
            rest = b""
        self._errors_partial = rest
        if self._on_error_line is not None:
            for line in lines:
                if line:
                    self._on_error_line(line)

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
                self._warnings.warn("sent a reply nobody waits for (id %r); ignored", id)
            elif isinstance(waiter, tuple):
                by_loop.setdefault(waiter[0], []).append((waiter[1], message))
            elif not waiter.done():
                waiter.set_result(message)
        for loop, replies in by_loop.items():
            _on_loop(loop, replies)

    def _fail_waiting(self, problem: str) -> None:
        """A reply that cannot be matched to its caller fails every caller waiting."""
        self._warnings.warn(": %s", problem)
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


class WarningLimit:
    """Protocol warnings about one plugin, rate-limited: the first `burst` in each
    `window` seconds are logged, the rest counted and summed up in one line once the
    window is over (or the channel ends), so a plugin flooding its output cannot flood
    the host's log. One per plugin, shared by the channels of its processes."""

    def __init__(self, name: str, *, burst: int = 10, window: float = 60.0) -> None:
        self.name = name
        self.burst = burst
        self.window = window
        self.suppressed = 0
        """Warnings counted but not logged since the last summary."""
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._logged = 0

    def warn(self, message: str, *args: Any) -> None:
        """Log `message % args` about the plugin, unless over the limit: then count it."""
        with self._lock:
            self._roll(time.monotonic())
            if self._logged >= self.burst:
                self.suppressed += 1
                return
            self._logged += 1
            last = self._logged == self.burst
        logger.warning("plugin %r " + message, self.name, *args,
                       extra={"interlock_plugin": self.name})  # fmt: skip
        if last:
            logger.warning("plugin %r: %d protocol warnings in %gs; more are counted, not "
                           "logged, until the next %gs", self.name, self.burst, self.window,
                           self.window, extra={"interlock_plugin": self.name})  # fmt: skip

    def tick(self) -> None:
        """Sum up what was suppressed once its window is over (cheap when nothing was)."""
        if self.suppressed:
            with self._lock:
                self._roll(time.monotonic())

    def flush(self) -> None:
        """Sum up what was suppressed now (the channel ends)."""
        with self._lock:
            self._summary()

    def _roll(self, now: float) -> None:
        if now - self._started >= self.window:
            self._summary()
            self._started, self._logged = now, 0

    def _summary(self) -> None:
        if self.suppressed:
            logger.warning("plugin %r: %d more protocol warnings were not logged", self.name,
                           self.suppressed, extra={"interlock_plugin": self.name})  # fmt: skip
            self.suppressed = 0
