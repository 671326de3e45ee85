"""`MemoryStore`: the state store of one process (the default), same semantics as Redis."""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ._base import Admission, Balance, Claim, Reservation, StateStore, Window, namespace


@dataclass
class _Ledger:
    spent: dict[str, float] = field(default_factory=dict)
    held: dict[str, float] = field(default_factory=dict)
    holds: dict[str, tuple[float, Mapping[str, float]]] = field(default_factory=dict)
    # hold -> until when a second settle of it is a retry; in the order settled, so the
    # sweep stops at the first still current (a longer ttl given later only lingers)
    settled: collections.OrderedDict[str, float] = field(default_factory=collections.OrderedDict)
    expires: float = math.inf

    def sweep(self, now: float) -> None:
        for hold, (until, amounts) in list(self.holds.items()):
            if until <= now:  # the call that took it died: its hold lapses
                del self.holds[hold]
                _add(self.held, amounts, -1)
        settled = self.settled
        while settled and next(iter(settled.values())) <= now:
            settled.popitem(last=False)

    def balance(self) -> Balance:
        return Balance(MappingProxyType(dict(self.spent)), MappingProxyType(dict(self.held)))


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
        self._ledgers: dict[str, _Ledger] = {}

    def describe(self) -> str:
        return "memory"

    async def get(self, key: str) -> str | None:
        with self._lock:
            return self._get(key)

    async def set(self, key: str, value: str, *, ttl: float | None = None) -> None:
        with self._lock:
            self._set(key, value, ttl)

    async def delete(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._values.pop(k, None)
                self._windows.pop(k, None)

    async def incr(self, key: str, by: int = 1, *, ttl: float | None = None) -> int:
        with self._lock:
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
            if self._get(key) != expected:
                return False
            self._set(key, new, ttl)
            return True

    async def admit(self, windows: Sequence[Window], member: str) -> Admission:
        now = self._clock()
        with self._lock:
            taken = []
            for index, window in enumerate(windows):
                events = self._windows.setdefault(window.key, collections.OrderedDict())
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
        now = self._clock()
        with self._lock:
            ledgers = [self._ledger(c.ledger, now) for c in claims]
            if ledgers and hold in ledgers[0].holds:
                return Reservation(True)  # a retry: held already
            for index, (claim, ledger) in enumerate(zip(claims, ledgers, strict=True)):
                for name, limit in claim.limits.items():
                    used = ledger.spent.get(name, 0) + ledger.held.get(name, 0)
                    if used >= limit or used + claim.amounts.get(name, 0) > limit:
                        return Reservation(False, index, name, ledger.balance())
            for claim, ledger in zip(claims, ledgers, strict=True):
                ledger.holds[hold] = (now + ttl, dict(claim.amounts))
                _add(ledger.held, claim.amounts, 1)
                ledger.expires = now + claim.ttl if claim.ttl is not None else math.inf
        return Reservation(True)

    async def settle(
        self, ledgers: Sequence[str], hold: str, amounts: Mapping[str, float], *, ttl: float
    ) -> list[Balance]:
        now = self._clock()
        balances = []
        with self._lock:
            for name in ledgers:
                ledger = self._ledger(name, now)
                if hold not in ledger.settled:
                    taken = ledger.holds.pop(hold, None)
                    if taken is not None:
                        _add(ledger.held, taken[1], -1)
                    _add(ledger.spent, amounts, 1)
                    ledger.settled[hold] = now + ttl
                balances.append(ledger.balance())
        return balances

    async def balance(self, ledger: str) -> Balance:
        with self._lock:
            return self._ledger(ledger, self._clock()).balance()

    async def drop_ledgers(self, *ledgers: str) -> None:
        with self._lock:
            for name in ledgers:
                self._ledgers.pop(name, None)

    async def aclose(self) -> None:
        """Nothing to release: the state stays for as long as the store does."""

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
