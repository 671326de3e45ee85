"""`MemoryStore`: the state store of one process (the default), same semantics as Redis."""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ._base import (
    Admission,
    Balance,
    Claim,
    Reservation,
    StateStore,
    Window,
    check_claims,
    check_settle,
    namespace,
)

# Stale entries (expired values, windows past their period, expired or empty ledgers) go
# in a sweep after at least this many operations, or as many as there are entries, so a
# long-lived process stays bounded at an amortised O(1) per operation.
_SWEEP_EVERY = 1024
_GRANTED = Reservation(True)  # frozen: one for every grant


@dataclass
class _Ledger:
    spent: dict[str, float] = field(default_factory=dict)
    held: dict[str, float] = field(default_factory=dict)
    holds: dict[str, tuple[float, Mapping[str, float]]] = field(default_factory=dict)
    # hold -> until when a second settle of it is a retry; in the order settled, so the
    # sweep stops at the first still current (a longer ttl given later only lingers)
    settled: collections.OrderedDict[str, float] = field(default_factory=collections.OrderedDict)
    expires: float = math.inf
    # no hold lapses before this (it may be earlier than the first that does, never
    # later), so most sweeps look at no hold
    lapse: float = math.inf

    def sweep(self, now: float) -> None:
        if self.lapse <= now:
            self.lapse = math.inf
            for hold, (until, amounts) in list(self.holds.items()):
                if until <= now:  # the call that took it died: its hold lapses
                    del self.holds[hold]
                    _add(self.held, amounts, -1)
                else:
                    self.lapse = min(self.lapse, until)
        settled = self.settled
        while settled and next(iter(settled.values())) <= now:
            settled.popitem(last=False)

    def balance(self) -> Balance:
        return Balance(MappingProxyType(dict(self.spent)), MappingProxyType(dict(self.held)))

    def empty(self) -> bool:
        """Nothing spent, held or remembered: as good as absent."""
        return not (self.holds or self.settled or any(self.spent.values()))


def _add(totals: dict[str, float], amounts: Mapping[str, float], sign: int) -> None:
    for name, amount in amounts.items():
        totals[name] = totals.get(name, 0) + sign * amount


class MemoryStore(StateStore):
    """State in this process only: what every built-in uses unless a store is configured.

    Operations hold a lock and never wait, so they are atomic between the threads and
    tasks of the process. `clock` (monotonic seconds) drives windows and expiry.
    """

    def __init__(
        self,
        *,
        deployment: str = "default",
        plugin: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = namespace(deployment, plugin)
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[str, float]] = {}  # key -> (value, expires at)
        self._windows: dict[str, collections.OrderedDict[str, float]] = {}  # member -> when
        self._periods: dict[str, float] = {}  # window -> its period, for the sweep
        self._ledgers: dict[str, _Ledger] = {}
        self._operations = 0
        self._next_sweep = _SWEEP_EVERY

    def describe(self) -> str:
        return "memory"

    async def get(self, key: str) -> str | None:
        with self._lock:
            self._tick()
            return self._get(key)

    async def set(self, key: str, value: str, *, ttl: float | None = None) -> None:
        with self._lock:
            self._tick()
            self._set(key, value, ttl)

    async def delete(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._values.pop(k, None)
                self._windows.pop(k, None)
                self._periods.pop(k, None)

    async def incr(self, key: str, by: int = 1, *, ttl: float | None = None) -> int:
        with self._lock:
            self._tick()
            current = self._get(key)
            value = (0 if current is None else int(current)) + by
            if current is None:
                self._set(key, str(value), ttl)
            else:
                self._values[key] = (str(value), self._values[key][1])
            return value

    async def compare_and_set(
        self, key: str, expected: str | None, new: str, *, ttl: float | None = None
    ) -> bool:
        with self._lock:
            self._tick()
            if self._get(key) != expected:
                return False
            self._set(key, new, ttl)
            return True

    async def admit(self, windows: Sequence[Window], member: str) -> Admission:
        now = self._clock()
        with self._lock:
            self._tick()
            taken = []
            for index, window in enumerate(windows):
                events = self._windows.setdefault(window.key, collections.OrderedDict())
                self._periods[window.key] = max(self._periods.get(window.key, 0.0), window.per)
                while events and next(iter(events.values())) <= now - window.per:
                    events.popitem(last=False)  # (an emptied window stays: used next)
                if member in events:
                    continue  # admitted already: a retry takes no second slot
                if len(events) >= window.limit:
                    return Admission(False, next(iter(events.values())) + window.per - now, index)
                taken.append(events)
            for events in taken:
                events[member] = now
        return Admission(True)

    async def reserve(self, claims: Sequence[Claim], hold: str, *, ttl: float) -> Reservation:
        check_claims(claims, ttl)
        now = self._clock()
        with self._lock:
            self._tick()
            ledgers = [self._ledger(c.ledger, now) for c in claims]
            if ledgers and hold in ledgers[0].holds:
                return _GRANTED  # a retry: held already
            for index, (claim, ledger) in enumerate(zip(claims, ledgers, strict=True)):
                spent, held, amounts = ledger.spent, ledger.held, claim.amounts
                for name, limit in claim.limits.items():
                    used = spent.get(name, 0) + held.get(name, 0)
                    if used >= limit or used + amounts.get(name, 0) > limit:
                        return Reservation(False, index, name, ledger.balance())
            until = now + ttl
            for claim, ledger in zip(claims, ledgers, strict=True):
                ledger.holds[hold] = (until, dict(claim.amounts))
                ledger.lapse = min(ledger.lapse, until)
                _add(ledger.held, claim.amounts, 1)
                ledger.expires = now + claim.ttl if claim.ttl is not None else math.inf
        return _GRANTED

    async def settle(
        self,
        ledgers: Sequence[str],
        hold: str,
        amounts: Mapping[str, float],
        *,
        ttl: float,
        expire: Sequence[float | None] | None = None,
    ) -> list[Balance]:
        check_settle(ledgers, amounts, ttl, expire)
        now = self._clock()
        until = now + ttl
        balances = []
        with self._lock:
            self._tick()
            for index, name in enumerate(ledgers):
                ledger = self._ledger(name, now)
                idle = expire[index] if expire is not None else None
                if idle is not None:
                    ledger.expires = now + idle
                if hold not in ledger.settled:
                    taken = ledger.holds.pop(hold, None)
                    if taken is not None:
                        _add(ledger.held, taken[1], -1)
                    if amounts:
                        _add(ledger.spent, amounts, 1)
                    ledger.settled[hold] = until
                balances.append(ledger.balance())
        return balances

    async def balance(self, ledger: str) -> Balance:
        with self._lock:
            self._tick()
            return self._ledger(ledger, self._clock()).balance()

    async def drop_ledgers(self, *ledgers: str) -> None:
        with self._lock:
            for name in ledgers:
                self._ledgers.pop(name, None)

    async def aclose(self) -> None:
        """Nothing to release: the state stays for as long as the store does."""

    def _tick(self) -> None:
        """Count an operation; sweep what went stale now and then (under the lock)."""
        self._operations += 1
        if self._operations < self._next_sweep:
            return
        now = self._clock()
        for k in [k for k, (_, until) in self._values.items() if until <= now]:
            del self._values[k]
        for k, events in list(self._windows.items()):
            oldest_kept = now - self._periods.get(k, 0.0)
            while events and next(iter(events.values())) <= oldest_kept:
                events.popitem(last=False)
            if not events:
                del self._windows[k]
                self._periods.pop(k, None)
        for name, ledger in list(self._ledgers.items()):
            if ledger.expires > now:
                ledger.sweep(now)
            if ledger.expires <= now or ledger.empty():
                del self._ledgers[name]
        size = len(self._values) + len(self._windows) + len(self._ledgers)
        self._next_sweep = self._operations + max(_SWEEP_EVERY, size)

    def _get(self, key: str) -> str | None:
        found = self._values.get(key)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._values[key]
            return None
        return found[0]

    def _set(self, key: str, value: str, ttl: float | None) -> None:
        self._values[key] = (value, math.inf if ttl is None else self._clock() + ttl)

    def _ledger(self, name: str, now: float) -> _Ledger:
        ledger = self._ledgers.get(name)
        if ledger is None or ledger.expires <= now:
            ledger = self._ledgers[name] = _Ledger()
        ledger.sweep(now)
        return ledger
