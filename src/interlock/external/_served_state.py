"""Sessions' `ctx.state` kept in a state store, so any replica can serve any call of a session.

`interlock serve --http ... --state redis://...` runs each call of a session like this:

1. take the session's lease (a key holding this call's token, with a TTL, renewed while
   the handlers run), so no two replicas run one session's handlers at once;
2. load the session's state (JSON) when the store's text differs from the one this replica
   last saw, the text being its own version;
3. run the handlers, then write the state back with compare-and-set on that text (the
   session's keys expire after `IDLE` seconds without a call), or delete the session's keys
   at `session_end`;
4. give the lease back.

A lease whose replica died lapses after `LEASE` seconds; one this replica holds from an
earlier call it could not give back (the store was away, or timed out after taking it) is
its own to take again at once. Any store failure fails the call with the reason (the
host's `on_error` decides: gates fail closed by default). Built on the store's
get/set/compare-and-set only; the lease is given back by setting it to `_FREE`, since the
store has no compare-and-delete (`session_end` deletes it with the state).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..store import StateStore, StoreError, key

logger = logging.getLogger("interlock.external")

T = TypeVar("T")

LEASE = 10.0
"""Seconds a session's lease lasts without renewal: how long a replica that died mid-call
keeps the session from the others."""

IDLE = 24 * 3600.0
"""Seconds a session's state is kept in the store after its last call."""

MAX_STATE_BYTES = 1_000_000
"""The bound on a session's state in the store, as JSON: every call reads and writes it
whole, so a state that grows without end would slow each call and fill the store."""

_FREE = "free"  # a lease given back (absent means free too)
_UNSEEN = object()  # this replica has not read the session's state yet
_FIRST_WAIT, _LAST_WAIT = 0.002, 0.05  # seconds between tries for a lease another holds


class SharedSession:
    """One session's state as this replica last saw it in the store, and its lease.

    Calls of the session on this replica take turns (`lock`), so only one of them asks for
    the lease, and a lease holding a token of this replica's is left from an earlier call;
    `seen` is the state's text as last loaded or written here.
    """

    __slots__ = ("_mine", "_tokens", "lease_key", "lock", "name", "seen", "state_key")

    def __init__(self, caller: str | None, session: str, owner: str) -> None:
        base = key("session", caller or "", session)
        self.state_key = f"{base}:state"
        self.lease_key = f"{base}:lease"
        self.name = session
        self.lock = asyncio.Lock()
        self.seen: object = _UNSEEN
        self._mine = f"{owner}:"
        self._tokens = (f"{self._mine}{n}" for n in itertools.count())

    async def run(
        self,
        store: StateStore,
        states: dict[str, dict[str, Any]],
        call: Callable[[], Awaitable[T]],
        *,
        plugin: str,
        end: bool = False,
        limit: int = MAX_STATE_BYTES,
    ) -> T:
        """`call()` with `states` (the session scope's, changed in place) loaded from
        `store` before and written back after (deleted when `end`), holding the lease.

        Raises `StoreError` naming `plugin`, the session and what to do when the store
        fails, the state is not JSON or over `limit` bytes; the state is then read again
        on the next call.
        """
        async with self.lock:
            try:
                return await self._leased(store, states, call, plugin, end, limit)
            except StoreError as error:
                self.seen = _UNSEEN  # unsaved changes here: the store's state is the truth
                raise StoreError(f"plugin {plugin!r}, session {self.name!r}: {error}") from None
            except BaseException:
                self.seen = _UNSEEN
                raise

    async def _leased(
        self,
        store: StateStore,
        states: dict[str, dict[str, Any]],
        call: Callable[[], Awaitable[T]],
        plugin: str,
        end: bool,
        limit: int,
    ) -> T:
        token = next(self._tokens)
        await self._take(store, token)
        held = True
        renewal = asyncio.ensure_future(self._renew(store, token, plugin))
        try:
            await self._load(store, states)
            result = await call()
            if end:
                await store.delete(self.state_key, self.lease_key)
                self.seen, held = None, False  # the lease went with the session
            else:
                await self._save(store, states, limit)
            return result
        finally:
            renewal.cancel()
            if held:
                await self._give_back(store, token)

    async def _load(self, store: StateStore, states: dict[str, dict[str, Any]]) -> None:
        text = await store.get(self.state_key)
        if text == self.seen:
            return
        states.clear()
        if text is not None:
            try:
                states.update(json.loads(text))
            except (ValueError, TypeError) as error:
                raise StoreError(f"the stored state is not a JSON object ({error}); end "
                                 "the session to start it afresh") from None  # fmt: skip
        self.seen = text

    async def _save(self, store: StateStore, states: dict[str, dict[str, Any]], limit: int) -> None:
        text = _encode(states)
        size = len(text) if text.isascii() else len(text.encode(errors="surrogatepass"))
        if size > limit:
            raise StoreError(f"ctx.state is {size} bytes as JSON, over the {limit}-byte bound "
                             "of a session's state in a shared store (--state): keep less in "
                             "it; this call's change is not saved")  # fmt: skip
        expected = self.seen if isinstance(self.seen, str) else None
        # Written even when unchanged: that starts the idle TTL again.
        if not await store.compare_and_set(self.state_key, expected, text, ttl=IDLE):
            raise StoreError(f"another replica changed the session's state during this call "
                             f"(its lease of {LEASE:g} s lapsed); this call's change is not "
                             "saved")  # fmt: skip
        self.seen = text

    async def _take(self, store: StateStore, token: str) -> None:
        """Take the lease, waiting while another replica holds it (at most `LEASE` seconds
        and a little: a holder that died lets it lapse by then)."""
        if await store.compare_and_set(self.lease_key, _FREE, token, ttl=LEASE):
            return  # the usual case: given back by the last call
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LEASE + 1.0
        wait = _FIRST_WAIT
        while loop.time() < deadline:
            held = await store.get(self.lease_key)
            # Ours: an earlier call's (calls take turns here) that could not give it back.
            if held is None or held == _FREE or held.startswith(self._mine):
                if await store.compare_and_set(self.lease_key, held, token, ttl=LEASE):
                    return
                continue  # taken or given back meanwhile: look again at once
            await asyncio.sleep(wait)  # another process holds it: nothing here to wait on
            wait = min(wait * 2, _LAST_WAIT)
        raise StoreError(f"another replica has held the session for over {LEASE:g} s; a "
                         "session's calls run one at a time, so this one gave up")  # fmt: skip

    async def _renew(self, store: StateStore, token: str, plugin: str) -> None:
        """Keep the lease while the handlers run (a lost one shows when the state is saved)."""
        with contextlib.suppress(StoreError):
            while True:
                await asyncio.sleep(LEASE / 3)
                if not await store.compare_and_set(self.lease_key, token, token, ttl=LEASE):
                    logger.warning("plugin %r lost the lease of session %r: its handlers ran "
                                   "for over %g s", plugin, self.name, LEASE)  # fmt: skip
                    return

    async def _give_back(self, store: StateStore, token: str) -> None:
        # The store is away: the lease lapses by itself, or our next call takes it back.
        with contextlib.suppress(StoreError):
            await store.compare_and_set(self.lease_key, token, _FREE, ttl=LEASE)


def _encode(states: dict[str, dict[str, Any]]) -> str:
    """The state as JSON text, which must read back as the same state (raises
    `StoreError` naming what JSON cannot hold as it is: a set, a tuple, a number key...)."""
    try:
        text = json.dumps(states, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        if json.loads(text) == states:
            return text
    except (TypeError, ValueError):
        pass
    raise StoreError(_not_json(states))


def _not_json(states: dict[str, dict[str, Any]]) -> str:
    culprits = (f"ctx.state[{field!r}] (a {type(value).__name__})"
                + ("" if len(states) == 1 else f" of {name!r}")
                for name, state in states.items() for field, value in state.items()
                if not _round_trips({field: value}))  # fmt: skip
    return (f"{next(culprits, 'ctx.state')} does not read back the same from JSON, and with a "
            "shared state store (--state) a session's state is kept as JSON: keep ctx.state "
            "to dicts with text keys, lists, text, finite numbers, booleans and None; this "
            "call's change is not saved")  # fmt: skip


def _round_trips(value: dict[str, Any]) -> bool:
    try:
        return bool(json.loads(json.dumps(value, allow_nan=False)) == value)
    except (TypeError, ValueError):
        return False
