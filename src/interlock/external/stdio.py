"""A plugin as a long-lived child process, speaking newline-delimited JSON-RPC on stdio.

The process starts on first use, and each new process gets the `initialize` request
first (once `connect` has set it), bounded by `handshake_timeout`: a plugin slow to start
is waited for, not killed by a call's shorter timeout; each process's handshake result
is checked (`accept`) before any call goes to it. If the process exits or crashes, or
fails its handshake, the calls waiting on it fail (attributed to the plugin, per its
registration's `on_error`, with its exit code and the end of what it wrote on stderr),
and the next call starts it again, after a back-off that doubles with each failure in a
row (a call made meanwhile waits for it, within its own timeout). The exit is noticed
by the process (its pidfd), not by the end of its output, which a helper it started may
hold open. A call given up on (its timeout passed) after waiting `hang_after` seconds with
nothing answered since it was sent restarts it too: a plugin that does not answer cannot
hold the host, while a call cancelled early, or a slow call among answered ones, leaves
it running. What the process writes on stderr goes to the `interlock.external` logger.
The process runs in a process group of its own, and the whole group is ended with it,
as is anything it started that left the group but holds one of its pipes (Linux).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import os
import select
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import ProtocolError
from .._dispatch import untimed
from ._channel import Channel, WarningLimit
from .protocol import MAX_MESSAGE_BYTES, result_of

logger = logging.getLogger("interlock.external")

_STDERR_TAIL = 5  # lines of stderr quoted when the process fails


class StdioTransport:
    """Calls to one plugin process. `command` is its argv, e.g. `["node", "guard.js"]`.

    `initialize` holds the params of the handshake sent to every new process before any
    other request (`connect` sets it); `handshake_timeout` bounds it (and `shutdown`);
    `backoff` is the first and the longest wait before a restart after failures in a
    row; `hang_after` is how long a call given up on must have waited, with nothing
    answered, for the process to be taken for hung and restarted. `clock` and `sleep`
    measure and wait out the back-off (tests replace them).
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
        hang_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        self.hang_after = hang_after
        self.initialize: Mapping[str, Any] | None = None
        self.accept: Callable[[Any], None] | None = None
        """Checks each new process's `initialize` result before any call goes to it, and
        raises `ProtocolError` to refuse the process (`connect` sets it)."""
        self.starts = 0
        """How many processes were started (the first, then each restart)."""
        self._clock = clock
        self._sleep = sleep
        self._warnings = WarningLimit(self.name)
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._closed = False
        # The processes still to reap: a list the finalizer holds, never `self`.
        self._live: list[subprocess.Popen[bytes]] = []
        weakref.finalize(self, _stop, self._live)

    @property
    def pid(self) -> int | None:
        """The running process's id, if there is one."""
        run = self._run
        return None if run is None or run.process.poll() is not None else run.process.pid

    takes_encoded = True
    """`call` takes `invoke` params `Encoded` already (see `Transport`)."""

    async def call(self, method: str, params: Any) -> Any:
        """One request, answered by the process (started or restarted first if needed:
        after the back-off, waited for within the call's own timeout)."""
        run = self._run
        if (
            run is None
            or not run.accepted
            or run.channel.closed is not None
            or method == "initialize"
        ):
            run = await self._ready(method, params)  # the common case skips this: no lock
            if method == "initialize":
                return run.hello
        try:
            result = await run.channel.call(method, params)
        except asyncio.CancelledError:
            if run.channel.stuck:
                self._restart(run, f"it answered nothing for {self.hang_after:g}s or more, "
                                   "until a call was given up on")  # fmt: skip
            raise
        except ProtocolError as error:
            raise self._explained(error, run) from None
        self._failures = 0
        return result

    async def _ready(self, method: str, params: Any) -> _Run:
        """The process, started (after the back-off) and greeted (`initialize`)."""
        while True:
            run = self._ensure()
            if isinstance(run, _Run):
                break
            await self._sleep(run)
        try:
            # Starting the plugin is the host's setup, bounded by the handshake timeout:
            # the first call's own timeout starts once the plugin is ready.
            async with untimed(self.handshake_timeout):
                await self._greet(run, method, params)  # (its result kept: `run.hello`)
        except ProtocolError as error:
            raise self._explained(error, run) from None
        return run

    def call_sync(self, method: str, params: Any, timeout: float | None = None) -> Any:
        """`call` without an event loop: for the handshake while a config loads. During
        a back-off it fails at once, saying when the plugin starts again."""
        run = self._ensure()
        if not isinstance(run, _Run):
            why = self._run.channel.closed if self._run else "it failed"
            raise ProtocolError(f"plugin {self.name!r} stopped ({why}); it starts again in "
                                f"{run:.2f}s")  # fmt: skip
        try:
            greeting = self._greeting(run, method, params)
            if greeting is not None:
                hello = self._greeted(run, run.channel.wait(greeting, "initialize", run.left()))
                if method == "initialize":
                    return hello
            limit = self.handshake_timeout if timeout is None else timeout
            return run.channel.call_sync(method, params, limit)
        except ProtocolError as error:
            explained = self._explained(error, run)  # before a restart hides how it died
            self._restart(run, f"{method} failed")
            raise explained from None

    def close(self, timeout: float | None = None) -> None:
        """Ask the process to shut down, then make sure it and its group are gone."""
        limit = min(self.handshake_timeout if timeout is None else timeout, 2.0)
        with self._lock:
            self._closed = True
            run, self._run = self._run, None
        if run is None:
            return
        run.given_up = True  # its end is ours, not a crash
        # Asked to shut down, and given time to, if it ever answered anything at all.
        polite = run.channel.closed is None and run.channel.last_reply > 0
        if polite:
            with contextlib.suppress(ProtocolError):
                run.channel.call_sync("shutdown", {}, limit)
        run.channel.close("the host closed it")
        _end(run.process, limit if polite else 0.0, run.pipes)
        run.channel.join(limit + 1.0)

    async def aclose(self) -> None:
        """`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    # -- the handshake --------------------------------------------------------------------

    async def _greet(self, run: _Run, method: str, params: Any) -> Any:
        """Wait for this process's handshake (sent by whichever call came first)."""
        greeting = self._greeting(run, method, params)
        if greeting is None:
            return None
        if greeting.done():  # the common case: read it, no trip through the loop
            return self._greeted(run, greeting.result())
        try:
            # Shared by every call waiting here: bounded by the handshake's own timeout,
            # never cancelled by one caller's.
            reply = await asyncio.wait_for(_shared(greeting), run.left())
        except TimeoutError:
            message = f"plugin {self.name!r} did not answer initialize within "
            self._restart(run, "it did not answer initialize", failure=True)
            raise ProtocolError(f"{message}{self.handshake_timeout:g}s") from None
        return self._greeted(run, reply)

    def _greeting(
        self, run: _Run, method: str, params: Any
    ) -> concurrent.futures.Future[dict[str, Any]] | None:
        greeting = run.greeting
        if greeting is not None and method != "initialize":
            return greeting  # the common case, without the lock
        with self._lock:
            if method == "initialize":
                self.initialize = params
            if self.initialize is None:
                return None
            if run.greeting is None:
                run.greeted_at = time.monotonic()
                run.greeting = run.channel.request("initialize", self.initialize)
            return run.greeting

    def _greeted(self, run: _Run, reply: dict[str, Any]) -> Any:
        """The handshake's result, checked once per process (`accept`); a process that
        refuses the handshake, or is refused, is replaced."""
        if run.accepted:
            return run.hello
        try:
            hello = result_of(reply)
        except ProtocolError:
            self._restart(run, "it refused initialize", failure=True)
            raise
        if self.accept is not None:
            try:
                self.accept(hello)
            except ProtocolError as error:
                self._restart(run, "its initialize result was refused", failure=True)
                raise ProtocolError(f"plugin {self.name!r} is refused: {error}") from None
        run.hello, run.accepted = hello, True
        return hello

    # -- processes ------------------------------------------------------------------------

    def _ensure(self) -> _Run | float:
        """The running process, started if need be; or, during a back-off, how many
        seconds are left of it."""
        with self._lock:
            if self._closed:
                raise ProtocolError(f"plugin {self.name!r} was closed")
            run = self._run
            if run is not None and run.channel.closed is None:
                return run
            wait = self._retry_at - self._clock()
            if wait > 0:
                return wait
            self._run = self._start()
            return self._run

    def _start(self) -> _Run:
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
            self._note_failure()
            raise ProtocolError(
                f"plugin {self.name!r} could not start {self.command[0]!r}: {error}"
            ) from None
        stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
        if stdin is None or stdout is None or stderr is None:  # not with PIPE; for the types
            raise ProtocolError(f"plugin {self.name!r}: no pipes to the process")
        self._live.append(process)
        self.starts += 1

        def closed(reason: str) -> None:
            self._on_close(run, reason)

        def said(line: bytes) -> None:
            self._stderr_line(run, line)

        # The plugin's ends of its pipes, by inode: whoever else holds one when it ends
        # is something it started, and is ended with it.
        pipes = {os.fstat(stdin.fileno()).st_ino: os.O_RDONLY,
                 os.fstat(stdout.fileno()).st_ino: os.O_WRONLY,
                 os.fstat(stderr.fileno()).st_ino: os.O_WRONLY}  # fmt: skip
        channel = Channel(stdout, stdin, name=self.name, limit=self.limit, on_close=closed,
                          hang_after=self.hang_after, errors=stderr, on_error_line=said,
                          watch=_exit_watch(process), warnings=self._warnings)  # fmt: skip
        run = _Run(process, channel, self.handshake_timeout, pipes)
        channel.start()
        return run

    def _on_close(self, run: _Run, reason: str) -> None:
        """The process exited, crashed, closed its output, or was stopped by us."""
        _end(run.process, 1.0, run.pipes)
        if run.process in self._live:
            self._live.remove(run.process)
        if self._closed or run.given_up:
            return
        tail = " | ".join(run.stderr)
        logger.warning("plugin %r stopped: %s (exit code %s)%s", self.name, reason,
                       run.process.returncode, f"; stderr: {tail}" if tail else "",
                       extra={"interlock_plugin": self.name})  # fmt: skip
        self._note_failure()

    def _restart(self, run: _Run, reason: str, *, failure: bool = False) -> None:
        """Stop `run`'s process (stuck, or failed its handshake); the next call starts a
        new one (after the back-off, for a `failure`)."""
        with self._lock:
            if run.given_up:
                return
            run.given_up = True
        if failure:
            self._note_failure()
        run.channel.close(reason)
        _end(run.process, 0.0, run.pipes)

    def _note_failure(self) -> None:
        first, longest = self.backoff
        delay = 0.0 if first <= 0 else min(first * 2**self._failures, longest)
        self._failures += 1
        self._retry_at = self._clock() + delay

    def _explained(self, error: ProtocolError, run: _Run) -> ProtocolError:
        """The error, with the exit code and the end of stderr when the process died."""
        if run.channel.closed is None or run.given_up:
            return error  # running, or stopped by us: its exit code says nothing
        code = run.process.poll()
        tail = " | ".join(run.stderr)
        if code is None and not tail:
            return error
        detail = f" (exit code {code})" if code is not None else ""
        detail += f"; its last words on stderr: {tail}" if tail else ""
        return ProtocolError(f"{error}{detail}")

    def _stderr_line(self, run: _Run, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip()
        if line:
            run.stderr.append(line[:500])
            logger.info("plugin %r: %s", self.name, line,
                        extra={"interlock_plugin": self.name})  # fmt: skip


class _Run:
    """One process of the plugin: its channel, its handshake, the end of its stderr."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        channel: Channel,
        handshake_timeout: float,
        pipes: Mapping[int, int],
    ) -> None:
        self.process = process
        self.channel = channel
        self.handshake_timeout = handshake_timeout
        self.pipes = pipes
        self.greeting: concurrent.futures.Future[dict[str, Any]] | None = None
        self.greeted_at = 0.0
        self.hello: Any = None
        self.accepted = False  # its initialize result was checked and taken
        self.given_up = False  # stopped by the host: its end is no crash
        self.stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)

    def left(self) -> float:
        """Seconds the handshake may still take."""
        return max(0.0, self.greeted_at + self.handshake_timeout - time.monotonic())


def _shared(future: concurrent.futures.Future[Any]) -> asyncio.Future[Any]:
    """Await a future other calls share: one caller's timeout must not cancel it, and
    its outcome is retrieved even when nobody is left waiting for it."""
    inner = asyncio.wrap_future(future)
    inner.add_done_callback(lambda done: done.cancelled() or done.exception())
    return asyncio.shield(inner)


def _end(
    process: subprocess.Popen[bytes], timeout: float, pipes: Mapping[int, int] | None = None
) -> None:
    """Wait for `process` up to `timeout`, kill it if it is still there, and end whatever
    it left in its process group (helpers, the children of `npx` or `sh` wrappers): all
    while it is not yet reaped, so its group id cannot have gone to another process.
    Then end what left the group (`setsid`) but still holds the plugin's end of one of
    its `pipes`: only something the plugin started can."""
    with _ending(process):  # the reader thread and a restart may both end it
        if process.returncode is None:
            try:
                if not _exited(process, timeout):
                    _kill_group(process.pid)
                _exited(process, None)
                _kill_group(process.pid)
            except (ChildProcessError, ProcessLookupError):
                pass  # reaped elsewhere (`Popen.poll`): its group id is no longer ours
        process.wait()
        if pipes:
            _end_holders(pipes)


_ENDING: weakref.WeakKeyDictionary[subprocess.Popen[bytes], threading.Lock]
_ENDING = weakref.WeakKeyDictionary()
_ENDING_LOCK = threading.Lock()


def _ending(process: subprocess.Popen[bytes]) -> threading.Lock:
    with _ENDING_LOCK:
        lock = _ENDING.get(process)
        if lock is None:
            lock = _ENDING[process] = threading.Lock()
        return lock


def _exited(process: subprocess.Popen[bytes], timeout: float | None) -> bool:
    """Wait up to `timeout` (None: no limit) for `process` to exit, without reaping it.
    Raises `ChildProcessError` or `ProcessLookupError` when it was reaped already."""
    if timeout is None:
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        return True
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, NotImplementedError):  # no pidfd here: poll, as Popen.wait does
        return _poll_exit(process.pid, timeout)
    try:
        waiter = select.poll()
        waiter.register(pidfd, select.POLLIN)
        return bool(waiter.poll(timeout * 1000))
    finally:
        os.close(pidfd)


def _poll_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)
    return True


def _exit_watch(process: subprocess.Popen[bytes]) -> int:
    """A file descriptor that becomes readable when `process` exits: its pidfd, or (where
    there is none) a pipe a thread writes to once `waitid` saw the exit."""
    try:
        return os.pidfd_open(process.pid)
    except (AttributeError, NotImplementedError, OSError):
        pass
    readable, writable = os.pipe()

    def watch() -> None:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        os.close(writable)  # the end of the pipe: readable

    threading.Thread(target=watch, name="interlock-watch", daemon=True).start()
    return readable


def _end_holders(pipes: Mapping[int, int], rounds: int = 5) -> None:
    """Kill every process, other than this one, that holds the plugin's end of one of
    `pipes` (inode -> the access mode of the plugin's end). Each is checked again through
    a pidfd before the signal, so a process id reused meanwhile is never hit. Linux only
    (/proc); elsewhere the process group is all that is ended."""
    if not hasattr(os, "pidfd_open") or not os.path.isdir("/proc/self/fd"):
        return
    for _ in range(rounds):  # one that forked between two looks is found in the next
        found = [pid for pid in _pids() if _holds(pid, pipes)]
        if not found:
            return
        for pid in found:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue  # gone already
            try:
                if _holds(pid, pipes):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    waiter = select.poll()
                    waiter.register(pidfd, select.POLLIN)
                    waiter.poll(1000)
                    logger.info("ended process %d, started by a plugin and left running with "
                                "its pipes", pid)  # fmt: skip
            except OSError:
                pass
            finally:
                os.close(pidfd)


def _pids() -> list[int]:
    me = os.getpid()
    try:
        return [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) != me]
    except OSError:
        return []


def _holds(pid: int, pipes: Mapping[int, int]) -> bool:
    """Does process `pid` hold one of `pipes` open with the plugin's access mode?"""
    base = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(base)
    except OSError:
        return False  # gone, or not ours to look at (then not ours to kill either)
    for fd in fds:
        try:
            target = os.readlink(f"{base}/{fd}")
        except OSError:
            continue
        if not target.startswith("pipe:["):
            continue
        mode = pipes.get(int(target[6:-1]))
        if mode is not None and _access_mode(pid, fd) == mode:
            return True
    return False


def _access_mode(pid: int, fd: str) -> int | None:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as info:
            for line in info:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & os.O_ACCMODE
    except (OSError, ValueError, IndexError):
        pass
    return None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in list(processes):
        if process.poll() is None:
            _kill_group(process.pid)
            process.wait()
