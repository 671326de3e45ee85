"""`StateStore`: the one small interface behind state that plugins share across processes.

A store holds plain values (get/set with a TTL, atomic increment, compare-and-set) and two
atomic primitives that limits need: sliding windows (`admit`) and ledgers with holds
(`reserve` / `settle`). Every key a store is given is prefixed with its namespace
(`interlock:{deployment}:{plugin}:`), so a plugin reaches its own keys only.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from .._exceptions import InterlockError

_NO_AMOUNTS: Mapping[str, float] = MappingProxyType({})


class StoreError(InterlockError):
    """A state store could not do what was asked; the message names the store (its URL
    without credentials) and what to check."""


class StoreUnavailable(StoreError):
    """The state store cannot be reached (down, restarting, a network fault, a timeout).

    Stores reconnect by themselves on the next call; gates decide meanwhile
    (`on_store_error: block | allow`)."""


def key(*parts: object) -> str:
    """Join `parts` into one key, escaping `:` (and `%`) inside them, so that free text
    (session ids, tags, globs) can never make two different keys collide.

        key("w", "s-1", "web_*") == "w:s-1:web_*"
    """
    return ":".join(str(p).replace("%", "%25").replace(":", "%3A") for p in parts)


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
        """

    @abc.abstractmethod
    async def settle(
        self, ledgers: Sequence[str], hold: str, amounts: Mapping[str, float], *, ttl: float
    ) -> list[Balance]:
        """Release `hold` on each ledger and add `amounts` to what it spent; return the
        balances after. Settling the same hold twice (a retry) counts it once, if the
        retry comes within `ttl` seconds."""

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
