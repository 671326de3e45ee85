"""Handler timeouts from one timer per event loop, instead of a timer per call.

An awaited chain keeps one `Watch` for the handler it is awaiting: its deadline, moved
on as each handler starts. A loop's `Watcher` keeps a single timer, at the earliest
deadline it was told of; when it fires it cancels the tasks whose handler is past its
deadline and sets itself again for the earliest one left. Setting a deadline is two
attribute writes and a comparison, where `asyncio.timeout` schedules and cancels a timer
for every call; a handler that finishes without waiting is never seen by the watcher.

A `Watch` answers the `when`/`reschedule`/`expired` questions of `asyncio.Timeout`, so
`untimed` (setup time that does not count) moves either kind of deadline.
"""

from __future__ import annotations

import asyncio
import math
import threading
from time import perf_counter


class Watch:
    """The deadline (perf_counter seconds) of the handler a task is awaiting."""

    __slots__ = ("deadline", "fired", "task", "watcher")

    def __init__(self, watcher: Watcher, task: asyncio.Task[object]) -> None:
        self.watcher = watcher
        self.task = task
        self.deadline = math.inf
        self.fired = False

    def start(self, deadline: float) -> None:
        """A handler begins: it must be done by `deadline`."""
        self.deadline = deadline
        if deadline < self.watcher.at:
            self.watcher.arm(deadline)

    def when(self) -> float | None:
        """The current deadline (None: none), as `asyncio.Timeout.when`."""
        return None if self.deadline == math.inf else self.deadline

    def reschedule(self, deadline: float | None) -> None:
        """Move the deadline (`untimed`), as `asyncio.Timeout.reschedule`."""
        self.start(math.inf if deadline is None else deadline)

    def expired(self) -> bool:
        """Whether the watcher cancelled the task for this deadline."""
        return self.fired


class Watcher:
    """One timer for every watched handler of one event loop."""

    __slots__ = ("at", "handle", "loop", "watches")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watches: set[Watch] = set()
        self.at = math.inf  # when the timer fires (perf_counter seconds)
        self.handle: asyncio.TimerHandle | None = None

    def arm(self, deadline: float) -> None:
        """Fire at `deadline` (earlier than the timer set now, if any)."""
        if self.handle is not None:
            self.handle.cancel()
        self.at = deadline
        delay = max(deadline - perf_counter(), 0.0)
        self.handle = self.loop.call_at(self.loop.time() + delay, self._fire)

    def _fire(self) -> None:
        self.handle, self.at = None, math.inf
        now = perf_counter()
        earliest = math.inf
        for watch in self.watches:
            if watch.fired:
                continue
            if watch.deadline <= now:
                watch.fired = True
                watch.task.cancel()
            elif watch.deadline < earliest:
                earliest = watch.deadline
        if earliest < math.inf:
            self.arm(earliest)


class _Local(threading.local):
    watcher: Watcher | None = None


_local = _Local()


def watch() -> Watch:
    """A watch for the current task, kept by the running loop's watcher until `unwatch`."""
    loop = asyncio.get_running_loop()
    watcher = _local.watcher
    if watcher is None or watcher.loop is not loop:  # one running loop per thread
        watcher = _local.watcher = Watcher(loop)
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("interlock's awaited dispatch must run in an asyncio task")
    entry = Watch(watcher, task)
    watcher.watches.add(entry)
    return entry


def unwatch(entry: Watch) -> None:
    """Stop watching: the chain is over."""
    entry.watcher.watches.discard(entry)
