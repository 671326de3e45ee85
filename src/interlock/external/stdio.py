"""A plugin as a long-lived child process, speaking newline-delimited JSON-RPC on stdio.

The process starts on first use. If it exits or crashes, the calls waiting on it fail
(attributed to the plugin, per its registration's `on_error`), and the next call starts
it again, after a back-off that doubles with each crash in a row. A call given up on (its
timeout passed) restarts it too: a plugin that does not answer cannot hold the host.
What the process writes on stderr goes to the `interlock.external` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import ProtocolError
from ._channel import Channel
from .protocol import MAX_MESSAGE_BYTES

logger = logging.getLogger("interlock.external")


class StdioTransport:
    """Calls to one plugin process. `command` is its argv, e.g. `["node", "guard.js"]`."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str = "",
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        limit: int = MAX_MESSAGE_BYTES,
        backoff: tuple[float, float] = (0.1, 5.0),
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
        self._clock = clock
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._crashes = 0
        self._retry_at = 0.0
        self._closed = False
        self._given_up: Channel | None = None
        # The processes still to reap: a list the finalizer holds, never `self`.
        self._live: list[subprocess.Popen[bytes]] = []
        weakref.finalize(self, _stop, self._live)
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The running process's id, if there is one."""
        process = self._process
        return None if process is None or process.poll() is not None else process.pid

    async def call(self, method: str, params: Any) -> Any:
        """One request, answered by the process (started or restarted first if needed)."""
        channel = self._ensure()
        try:
            result = await channel.call(method, params)
        except asyncio.CancelledError:
            self._restart(channel, "a call to it was given up on (timeout or cancellation)")
            raise
        self._crashes = 0
        return result

    def call_sync(self, method: str, params: Any, timeout: float = 10.0) -> Any:
        """`call` without an event loop: for the handshake while a config loads."""
        channel = self._ensure()
        try:
            return channel.call_sync(method, params, timeout)
        except ProtocolError:
            self._restart(channel, f"{method} failed")
            raise

    def close(self, timeout: float = 2.0) -> None:
        """Ask the process to shut down, then make sure it is gone (no zombies)."""
        with self._lock:
            self._closed = True
            process, channel = self._process, self._channel
            self._process = self._channel = None
        if process is None or channel is None:
            return
        with contextlib.suppress(ProtocolError):
            channel.call_sync("shutdown", {}, timeout)
        channel.close("the host closed it")
        _end(process, timeout)

    async def aclose(self) -> None:
        """`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

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
                start_new_session=True,  # the host's Ctrl-C is the host's business
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
        self.starts += 1

        def closed(reason: str) -> None:
            self._on_close(process, channel, reason)

        channel = Channel(stdout, stdin, name=self.name, limit=self.limit, on_close=closed)
        self._process, self._channel = process, channel
        threading.Thread(target=_log_stderr, args=(self.name, stderr), daemon=True,
                         name=f"interlock-{self.name}-stderr").start()  # fmt: skip
        return channel.start()

    def _on_close(self, process: subprocess.Popen[bytes], channel: Channel, reason: str) -> None:
        """The process's output ended: it exited, crashed, or was stopped by us."""
        _end(process, 1.0)
        if process in self._live:
            self._live.remove(process)
        if self._closed or channel is self._given_up:
            return
        code = process.returncode
        logger.warning("plugin %r stopped: %s (exit code %s)", self.name, reason, code)
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


def _end(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for `process` up to `timeout`, then kill it; always reap it."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in list(processes):
        if process.poll() is None:
            process.kill()
            process.wait()


def _log_stderr(name: str, stream: Any) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        if line:
            logger.info("plugin %r: %s", name, line, extra={"interlock_plugin": name})
    stream.close()
