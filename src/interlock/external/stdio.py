"""A plugin as a long-lived child process, speaking newline-delimited JSON-RPC on stdio.

The process starts on first use, and each new process gets the `initialize` request
first (once `connect` has set it). If it exits or crashes, the calls waiting on it fail
(attributed to the plugin, per its registration's `on_error`, with the end of what it
wrote on stderr), and the next call starts it again, after a back-off that doubles with
each crash in a row. A call given up on (its timeout passed) restarts it too when the
process had answered nothing since that call was sent: a plugin that does not answer
cannot hold the host, and a plugin that is merely slow on one call keeps the others.
What the process writes on stderr goes to the `interlock.external` logger. The process
runs in a process group of its own, and the whole group is ended with it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import ProtocolError
from ._channel import Channel
from .protocol import MAX_MESSAGE_BYTES, result_of

logger = logging.getLogger("interlock.external")

_STDERR_TAIL = 5  # lines of stderr quoted when the process fails


class StdioTransport:
    """Calls to one plugin process. `command` is its argv, e.g. `["node", "guard.js"]`.

    `initialize` holds the params of the handshake sent to every new process before any
    other request (`connect` sets it); `backoff` is the first and the longest wait before
    a restart after crashes in a row; `handshake_timeout` bounds `initialize` and
    `shutdown`.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str = "",
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        limit: int = MAX_MESSAGE_BYTES,
        backoff: tuple[float, float] = (0.1, 5.0),
        handshake_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not command:
            raise ValueError("a stdio plugin needs a command to run")
        self.command = tuple(command)
        self.name = name or self.command[0]
        self.cwd = None if cwd is None else str(cwd)
        self.env = None if env is None else {**os.environ, **env}
        self.limit = limit
        self.backoff = backoff
        self.handshake_timeout = handshake_timeout
        self.initialize: Mapping[str, Any] | None = None
        self.starts = 0
        """How many processes were started (the first, then each restart)."""
        self._clock = clock
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._crashes = 0
        self._retry_at = 0.0
        self._closed = False
        self._given_up: Channel | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        # The processes still to reap: a list the finalizer holds, never `self`.
        self._live: list[subprocess.Popen[bytes]] = []
        weakref.finalize(self, _stop, self._live)

    @property
    def pid(self) -> int | None:
        """The running process's id, if there is one."""
        process = self._process
        return None if process is None or process.poll() is not None else process.pid

    async def call(self, method: str, params: Any) -> Any:
        """One request, answered by the process (started or restarted first if needed)."""
        channel = self._ensure()
        greeting = None
        try:
            greeting = self._greeting(channel, method, params)
            if greeting is not None:
                # Awaited only while it is on its way: once done, read it (no loop trip).
                reply = greeting.result() if greeting.done() else await _shared(greeting)
                hello = result_of(reply)
                if method == "initialize":
                    return hello
            result = await channel.call(method, params)
        except asyncio.CancelledError:
            if channel.stuck or (greeting is not None and not greeting.done()):
                self._restart(channel, "it answered nothing since a call it was given up on")
            raise
        except ProtocolError as error:
            raise self._explained(error, channel) from None
        self._crashes = 0
        return result

    def call_sync(self, method: str, params: Any, timeout: float | None = None) -> Any:
        """`call` without an event loop: for the handshake while a config loads."""
        limit = self.handshake_timeout if timeout is None else timeout
        channel = self._ensure()
        try:
            greeting = self._greeting(channel, method, params)
            if greeting is not None:
                hello = result_of(channel.wait(greeting, "initialize", limit))
                if method == "initialize":
                    return hello
            return channel.call_sync(method, params, limit)
        except ProtocolError as error:
            self._restart(channel, f"{method} failed")
            raise self._explained(error, channel) from None

    def close(self, timeout: float | None = None) -> None:
        """Ask the process to shut down, then make sure it and its group are gone."""
        limit = self.handshake_timeout if timeout is None else timeout
        with self._lock:
            self._closed = True
            process, channel = self._process, self._channel
            self._process = self._channel = None
        if process is None or channel is None:
            return
        if channel.closed is None:
            with contextlib.suppress(ProtocolError):
                channel.call_sync("shutdown", {}, min(limit, 2.0))
        channel.close("the host closed it")
        _end(process, min(limit, 2.0))

    async def aclose(self) -> None:
        """`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def _greeting(self, channel: Channel, method: str, params: Any) -> Any:
        """The `initialize` call this process gets first, sent by whichever call comes first."""
        greeting = channel.greeting
        if greeting is not None and method != "initialize":
            return greeting  # the common case, without the lock
        with self._lock:
            if method == "initialize":
                self.initialize = params
            if self.initialize is None:
                return None
            if channel.greeting is None:
                channel.greeting = channel.request("initialize", self.initialize)
            return channel.greeting

    def _explained(self, error: ProtocolError, channel: Channel) -> ProtocolError:
        """The error, with the exit code and the end of stderr when the process died."""
        process = self._process if self._channel is channel else None
        code = None if process is None else process.poll()
        if channel.closed is None or channel is self._given_up:
            return error  # running, or stopped by us: its exit code says nothing
        if code is None and not self._stderr:
            return error
        tail = " | ".join(self._stderr)
        detail = f" (exit code {code})" if code is not None else ""
        detail += f"; its last words on stderr: {tail}" if tail else ""
        return ProtocolError(f"{error}{detail}")

    def _ensure(self) -> Channel:
        with self._lock:
            if self._closed:
                raise ProtocolError(f"plugin {self.name!r} was closed")
            channel = self._channel
            if channel is not None and channel.closed is None:
                return channel
            wait = self._retry_at - self._clock()
            if wait > 0:
                why = channel.closed if channel else "it crashed"
                message = f"plugin {self.name!r} stopped ({why}); it starts again in {wait:.2f}s"
                raise ProtocolError(message)
            return self._start()

    def _start(self) -> Channel:
        try:
            process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,  # its own group: the host's Ctrl-C is not its
            )
        except OSError as error:
            self._note_crash()
            raise ProtocolError(
                f"plugin {self.name!r} could not start {self.command[0]!r}: {error}"
            ) from None
        stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
        if stdin is None or stdout is None or stderr is None:  # not with PIPE; for the types
            raise ProtocolError(f"plugin {self.name!r}: no pipes to the process")
        self._live.append(process)
        self._stderr.clear()
        self.starts += 1

        def closed(reason: str) -> None:
            self._on_close(process, channel, reason)

        channel = Channel(stdout, stdin, name=self.name, limit=self.limit, on_close=closed)
        self._process, self._channel = process, channel
        threading.Thread(target=self._log_stderr, args=(stderr,), daemon=True,
                         name=f"interlock-{self.name}-stderr").start()  # fmt: skip
        return channel.start()

    def _on_close(self, process: subprocess.Popen[bytes], channel: Channel, reason: str) -> None:
        """The process's output ended: it exited, crashed, or was stopped by us."""
        _end(process, 1.0)
        if process in self._live:
            self._live.remove(process)
        if self._closed or channel is self._given_up:
            return
        tail = " | ".join(self._stderr)
        logger.warning("plugin %r stopped: %s (exit code %s)%s", self.name, reason,
                       process.returncode, f"; stderr: {tail}" if tail else "",
                       extra={"interlock_plugin": self.name})  # fmt: skip
        self._note_crash()

    def _restart(self, channel: Channel, reason: str) -> None:
        """Stop the process behind `channel` (it is stuck); the next call starts a new one."""
        with self._lock:
            process = self._process if self._channel is channel else None
            self._given_up = channel
        channel.close(reason)
        if process is not None:
            _end(process, 0.0)

    def _note_crash(self) -> None:
        first, longest = self.backoff
        delay = 0.0 if first <= 0 else min(first * 2**self._crashes, longest)
        self._crashes += 1
        self._retry_at = self._clock() + delay

    def _log_stderr(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._stderr.append(line[:500])
                logger.info("plugin %r: %s", self.name, line,
                            extra={"interlock_plugin": self.name})  # fmt: skip
        stream.close()


def _shared(future: concurrent.futures.Future[Any]) -> asyncio.Future[Any]:
    """Await a future other calls share: one caller's timeout must not cancel it, and
    its outcome is retrieved even when nobody is left waiting for it."""
    inner = asyncio.wrap_future(future)
    inner.add_done_callback(lambda done: done.cancelled() or done.exception())
    return asyncio.shield(inner)


def _end(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for `process` up to `timeout`, then kill it; then end whatever it left in its
    process group (helpers, `npx`/`sh` wrappers' children); always reap it."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        process.wait()
    _kill_group(process.pid)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in list(processes):
        if process.poll() is None:
            _kill_group(process.pid)
            process.wait()
