"""`StateStore`: the one small interface behind state that plugins share across processes.

A store holds plain values (get/set with a TTL, atomic increment, compare-and-set) and two
atomic primitives that limits need: sliding windows (`admit`) and ledgers with holds
(`reserve` / `settle`). Every key a store is given is prefixed with its namespace
(`interlock:{deployment}:{plugin}:`), so a plugin reaches its own keys only.
"""

from __future__ import annotations

import abc
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from .._exceptions import InterlockError

_NO_AMOUNTS: Mapping[str, float] = MappingProxyType({})

AMOUNT_MAX = 1e15
"""The most one hold or one settle may add to a ledger, per name: far above any real call,
far below where sums stop being exact or become infinite."""


class StoreError(InterlockError):
    """A state store could not do what was asked; the message names the store (its URL
    without credentials) and what to check."""


class StoreUnavailable(StoreError):
    """The state store cannot be reached (down, restarting, a network fault, a timeout).

    Stores reconnect by themselves on the next call; gates decide meanwhile
    (`on_store_error: block | allow`)."""


def key(*parts: object) -> str:
    """Join `parts` into one key, escaping `:` (and `%`) inside them, so that free text
    (session ids, tags, globs) can never make two different keys collide. A part that is
    not a string (a metadata value) is written as JSON after `%j`, which no string part
    can produce: `1` and `"1"` are two keys.

        key("w", "s-1", "web_*") == "w:s-1:web_*"
    """
    return ":".join(_part(p) for p in parts)


def _part(part: object) -> str:
    if isinstance(part, str):
        return part.replace("%", "%25").replace(":", "%3A")
    return "%j" + _part(json.dumps(part, sort_keys=True, separators=(",", ":"), default=str))


def namespace(deployment: str, plugin: str) -> str:
    """The prefix of every key of `plugin` in `deployment`: `interlock:{deployment}:{plugin}:`."""
    return key("interlock", deployment, plugin) + ":"


@dataclass(frozen=True, slots=True)
class Window:
    """A sliding window: at most `limit` admissions in any `per` seconds under `key`."""

    key: str
    limit: int
    per: float


@dataclass(frozen=True, slots=True)
class Admission:
    """What `admit` decided: admitted in every window, or refused by window `full` (an
    index into the windows given), which has room again in `retry_after` seconds."""

    admitted: bool
    retry_after: float = 0.0
    full: int | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """A hold to place on the ledger `ledger`: `amounts` (say tokens and cost) held
    against `limits` (a name absent from `limits` is not bounded).

    `ttl`: the ledger expires after so many idle seconds (None: kept until dropped).
    """

    ledger: str
    amounts: Mapping[str, float]
    limits: Mapping[str, float]
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """A ledger's totals: what was spent, and what calls in flight hold."""

    spent: Mapping[str, float] = field(default_factory=lambda: _NO_AMOUNTS)
    held: Mapping[str, float] = field(default_factory=lambda: _NO_AMOUNTS)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What `reserve` decided: held on every ledger, or refused by claim `refused` (an
    index into the claims given) on `name`, whose ledger stood at `balance`."""

    granted: bool
    refused: int | None = None
    name: str = ""
    balance: Balance = field(default_factory=Balance)


def check_claims(claims: Sequence[Claim], ttl: float) -> None:
    """Refuse what `reserve` must not write (raises `ValueError`): a ledger claimed twice,
    an amount that is not a finite number in [0, AMOUNT_MAX], a limit or TTL that is not a
    finite number. Checked before anything is written, so a bad claim changes nothing."""
    if len(claims) > 1:
        check_ledgers(c.ledger for c in claims)
    _check_seconds("hold ttl", ttl)
    for claim in claims:
        check_amounts(claim.amounts)
        for name, limit in claim.limits.items():
            if not _finite(limit):
                raise ValueError(f"the limit of {name!r} on ledger {claim.ledger!r} must be a "
                                 f"finite number, got {limit!r}")  # fmt: skip
        if claim.ttl is not None and not _seconds(claim.ttl):
            raise _not_seconds(f"ledger {claim.ledger!r} ttl", claim.ttl)


def check_amounts(amounts: Mapping[str, float]) -> None:
    """Refuse amounts a ledger must never take (raises `ValueError`): anything but a finite
    number from 0 to `AMOUNT_MAX`, so that no call can give back what others spent or make
    a total infinite or NaN."""
    for name, amount in amounts.items():
        if type(amount) is float and 0.0 <= amount <= AMOUNT_MAX:
            continue  # the common case, decided without the checks below (NaN fails it)
        if not _finite(amount) or not 0 <= amount <= AMOUNT_MAX:
            raise ValueError(f"an amount of {name!r} must be a finite number from 0 to "
                             f"{AMOUNT_MAX:g}, got {amount!r}")  # fmt: skip


def check_ledgers(ledgers: Iterable[str]) -> None:
    """Refuse a ledger named twice in one operation (raises `ValueError`): it would be held
    twice and released once."""
    seen: set[str] = set()
    for name in ledgers:
        if name in seen:
            raise ValueError(f"ledger {name!r} is named twice; name each ledger once")
        seen.add(name)


def check_settle(
    ledgers: Sequence[str],
    amounts: Mapping[str, float],
    ttl: float,
    expire: Sequence[float | None] | None,
) -> None:
    """Refuse what `settle` must not write (raises `ValueError`), before anything is."""
    if len(ledgers) > 1:
        check_ledgers(ledgers)
    check_amounts(amounts)
    _check_seconds("retry ttl", ttl)
    if expire is not None:
        if len(expire) != len(ledgers):
            raise ValueError(f"expire names {len(expire)} TTLs for {len(ledgers)} ledgers")
        for seconds in expire:
            if seconds is not None:
                _check_seconds("ledger ttl", seconds)


def _check_seconds(what: str, seconds: float) -> None:
    if not _seconds(seconds):
        raise _not_seconds(what, seconds)


def _seconds(value: object) -> bool:
    """Whether `value` is a finite number of seconds (from 0)."""
    if type(value) is float:  # the common case, without the isinstance checks
        return 0.0 <= value < math.inf
    return isinstance(value, int | float) and _finite(value) and value >= 0


def _not_seconds(what: str, seconds: object) -> ValueError:
    return ValueError(f"the {what} must be a finite number of seconds, got {seconds!r}")


def _finite(value: object) -> bool:
    if type(value) is float:
        return -math.inf < value < math.inf
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class StateStore(abc.ABC):
    """Shared state for plugins: values with TTLs, counters, compare-and-set, sliding
    windows and ledgers, each operation atomic across every process using the store.

    Get one from `open_store(url, deployment=..., plugin=...)`; the config loader hands one
    to each built-in that keeps shared state. Keys are relative to the store's namespace.
    Every method raises `StoreUnavailable` when the store cannot be reached and
    `StoreError` for anything else that fails.
    """

    prefix: str
    """The namespace every key is stored under."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the state lives, for messages: a URL without credentials, or `memory`."""

    @abc.abstractmethod
    async def get(self, key: str) -> str | None:
        """The value of `key`, or None when absent or expired."""

    @abc.abstractmethod
    async def set(self, key: str, value: str, *, ttl: float | None = None) -> None:
        """Set `key` to `value`, expiring after `ttl` seconds (None: never)."""

    @abc.abstractmethod
    async def delete(self, *keys: str) -> None:
        """Remove values, counters and windows under `keys` (absent ones are ignored)."""

    @abc.abstractmethod
    async def incr(self, key: str, by: int = 1, *, ttl: float | None = None) -> int:
        """Add `by` to the integer at `key` (absent: 0) and return the new value. `ttl`
        (seconds) applies when the increment creates the key."""

    @abc.abstractmethod
    async def compare_and_set(
        self, key: str, expected: str | None, new: str, *, ttl: float | None = None
    ) -> bool:
        """Set `key` to `new` if it holds `expected` (None: if absent); True if it did."""

    @abc.abstractmethod
    async def admit(self, windows: Sequence[Window], member: str) -> Admission:
        """Admit one event into every window or into none, atomically.

        `member` names the event (unique per event): admitting it again (a retry after a
        lost reply) takes no second slot.
        """

    @abc.abstractmethod
    async def reserve(self, claims: Sequence[Claim], hold: str, *, ttl: float) -> Reservation:
        """Place hold `hold` on every claimed ledger, or on none, atomically.

        A claim is refused when its ledger's spent plus held amounts already reach a limit,
        or would pass it with this hold. A hold not settled within `ttl` seconds lapses
        (the call that took it died), so no hold blocks a budget for ever.

        Raises `ValueError`, writing nothing, for a ledger claimed twice or an amount that
        is not a finite number from 0 to `AMOUNT_MAX` (see `check_claims`).
        """

    @abc.abstractmethod
    async def settle(
        self,
        ledgers: Sequence[str],
        hold: str,
        amounts: Mapping[str, float],
        *,
        ttl: float,
        expire: Sequence[float | None] | None = None,
    ) -> list[Balance]:
        """Release `hold` on each ledger and add `amounts` to what it spent; return the
        balances after. Settling the same hold twice (a retry) counts it once, if the
        retry comes within `ttl` seconds. No amounts (`{}`) just release the hold.

        `expire`: each ledger's idle TTL, as its `Claim` gives it (None: kept until
        dropped), so a settle that lands after a ledger went starts one that expires too.
        Raises `ValueError`, writing nothing, for a ledger named twice or a bad amount.
        """

    @abc.abstractmethod
    async def balance(self, ledger: str) -> Balance:
        """What the ledger spent and holds now."""

    @abc.abstractmethod
    async def drop_ledgers(self, *ledgers: str) -> None:
        """Forget ledgers: spending, holds and all."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections (a later call opens new ones); the state stays in the store."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()} {self.prefix!r}>"
