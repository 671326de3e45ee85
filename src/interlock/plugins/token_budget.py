"""`token_budget`: budgets of tokens and of cost, per session, per session tag and per
session metadata value (a user), shared by every process when a store is configured.

    store: redis://127.0.0.1:6379/0           # budgets shared by every process (optional)
    plugins:
      - name: token-budget
        use: token-budget
        capabilities: [notify]                # the warning at `warn_at`
        config:
          session: {tokens: 200000, cost: 2.50}
          tags:
            team-a: {cost: 100}               # shared by every session tagged team-a
            "tenant-*": {cost: 500}           # each tenant tag its own budget
          metadata:
            user: {tokens: 1000000}           # each value of the session's metadata.user
          prices:                             # per million tokens, by model glob
            "gpt-4o*": {input: 2.50, output: 10.00}
            "llama*": {input: 0, output: 0}
          reserve: 8000                       # tokens each call holds until its usage is in
          warn_at: 0.8
          on_store_error: block               # or allow, when the store is unreachable

Each `pre_llm_call` holds `reserve` tokens (and their cost at the model's dearest price)
on every budget the call counts against, all or none, and is blocked with the numbers in
the reason when a budget cannot take the hold; its `post_llm_call` releases the hold and
counts the usage. So concurrent calls, in any number of processes sharing a store, are never
admitted past a budget: at most `reserve` tokens per call in flight can overshoot it, none
when `reserve` covers a call's largest use. A call that a later gate blocks releases its
hold right after its `pre_llm_call` (a background handler reads the outcome); a failed
model call (the `error` hook) and a session's end release theirs; any other hold lapses
after `hold_for`. Where several price globs match a model, the most specific (longest) one
applies, and a call costs the dearer of the model asked for and the model the answer
names. A model with no price counts tokens but no cost, and is reported once. Token counts
are taken as whole numbers from 0 to `TOKENS_MAX`: an answer never gives a budget back.

A session's budget is dropped at its end (in a store it also expires after a day idle);
tag and metadata budgets last as long as the store keeps them. When the store cannot be
reached, model calls are blocked with the reason (`on_store_error: block`, the default) or
let through (`allow`); usage that could not be counted is kept and counted when the store
is back, once (each call's hold id makes the retry idempotent), unless the process exits
first; past 10,000 such usages the oldest is dropped with a warning.
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .. import (
    Block,
    ErrorEvent,
    HookContext,
    LLMRequest,
    LLMResponse,
    Plugin,
    SessionEnd,
    SessionInfo,
    hook,
)
from ..config import parse_duration
from ..store import (
    Balance,
    Claim,
    MemoryStore,
    StateStore,
    StoreError,
    StoreUnavailable,
    key,
)

logger = logging.getLogger("interlock.plugins.token_budget")

Seconds = Annotated[float, BeforeValidator(functools.partial(parse_duration, endless=False))]

_SESSION_TTL = 86_400.0  # a session budget left behind by a process that died
_UNSETTLED_MAX = 10_000  # usage kept for a store that is down, before the oldest goes
_WARNED_MAX = 10_000  # budgets known to be warned about, remembered in this process
TOKENS_MAX = 10**9
"""The most tokens one count of one call may report; more (or a count that is not a
whole number from 0) is taken as this many, so a hostile answer exhausts a budget rather
than breaking or refunding it."""


class Budget(BaseModel):
    """At most this many tokens and/or this much cost (None: no bound)."""

    model_config = ConfigDict(extra="forbid")

    tokens: int | None = Field(default=None, gt=0)
    cost: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    def limits(self) -> dict[str, float]:
        """The bounds set, by name."""
        return {n: v for n, v in (("tokens", self.tokens), ("cost", self.cost)) if v is not None}


class Price(BaseModel):
    """Cost per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0, le=1e6, allow_inf_nan=False)
    output: float = Field(ge=0, le=1e6, allow_inf_nan=False)


class TokenBudgetConfig(BaseModel):
    """The budgets, the price table, the holds and when to warn."""

    model_config = ConfigDict(extra="forbid")

    session: Budget = Field(default_factory=Budget)
    tags: dict[str, Budget] = Field(default_factory=dict)
    """By tag glob: each matching tag of a session has a budget of its own."""
    metadata: dict[str, Budget] = Field(default_factory=dict)
    """By session metadata field: each value of it has a budget of its own."""
    prices: dict[str, Price] = Field(default_factory=dict)
    warn_at: float = Field(default=0.8, gt=0, le=1)
    reserve: int = Field(default=1, ge=0, le=TOKENS_MAX)
    """Tokens each model call holds from admission until its usage is counted."""
    hold_for: Seconds = 600.0
    """A hold whose call never answered lapses after this long."""
    on_store_error: Literal["block", "allow"] = "block"
    """When the store cannot be reached: block model calls (fail closed) or let them through."""


class _Counted:
    """The budgets one call counts against, one per ledger: labels, budgets, their limits,
    ledger names, ledger TTLs. Made once per session (its facts are frozen), with the
    claims of the model it last held for (a session mostly asks for one)."""

    __slots__ = ("_claims", "budgets", "ledgers", "limits", "ttls")

    def __init__(self) -> None:
        self.budgets: list[tuple[str, Budget]] = []
        self.limits: list[dict[str, float]] = []
        self.ledgers: list[str] = []
        self.ttls: list[float | None] = []
        self._claims: tuple[str, list[Claim]] | None = None

    def add(self, label: str, budget: Budget, ledger: str, ttl: float | None) -> None:
        if ledger in self.ledgers:
            # Two globs matching one tag (`team-*`, `team-a`) name one ledger: one claim,
            # bounded by the tighter of each limit (two would hold twice, release once).
            index = self.ledgers.index(ledger)
            limits = self.limits[index]
            for name, limit in budget.limits().items():
                limits[name] = min(limit, limits.get(name, limit))
            self.budgets[index] = (self.budgets[index][0], Budget.model_validate(limits))
            return
        self.budgets.append((label, budget))
        self.limits.append(budget.limits())
        self.ledgers.append(ledger)
        self.ttls.append(ttl)

    def claims(self, model: str, hold: Callable[[str], Mapping[str, float]]) -> list[Claim]:
        """The claims of a call of `model`, holding `hold(model)` on every ledger."""
        cached = self._claims  # one read: a pair, never half of one
        if cached is not None and cached[0] == model:
            return cached[1]
        amounts = hold(model)
        together = zip(self.ledgers, self.limits, self.ttls, strict=True)
        claims = [Claim(ledger, amounts, limits, ttl) for ledger, limits, ttl in together]
        self._claims = (model, claims)
        return claims


class _Held:
    """A hold a model call took: its id, the budgets, and the request it was taken for
    (to find it again when a later gate blocks that call, and to price the call by the
    model asked for)."""

    __slots__ = ("counted", "hold", "request")

    def __init__(self, hold: str, counted: _Counted, request: LLMRequest) -> None:
        self.hold = hold
        self.counted = counted
        self.request = request


class TokenBudget(Plugin):
    """Holds, counts and blocks model calls against budgets; see the module documentation.

    `store` keeps the budgets (a `MemoryStore` of this process by default; the config
    loader passes the one interlock.yaml names).
    """

    name = "token-budget"
    version = "1.2"
    config_model = TokenBudgetConfig

    def __init__(
        self, config: TokenBudgetConfig | None = None, *, store: StateStore | None = None
    ) -> None:
        self.config = config or TokenBudgetConfig()
        self.store = store if store is not None else MemoryStore(plugin=self.name)
        self._unpriced: set[str] = set()
        self._warned: set[str] = set()  # ledgers whose warning is known to be given
        # (hold, ledgers, amounts, ledger TTLs) the store could not take yet; settled later
        self._unsettled: collections.deque[
            tuple[str, list[str], dict[str, float], list[float | None]]
        ] = collections.deque()
        self._lock = threading.Lock()
        # Read once: the config is taken as it was at construction.
        self._session_limits = self.config.session.limits()
        self._prices = functools.lru_cache(maxsize=256)(self._price)
        self._holds = functools.lru_cache(maxsize=256)(self._hold)

    # Fail closed: a budget that cannot be checked (a store slower than the timeout, a
    # bug) must not let the call through.
    @hook("pre_llm_call", on_error="block")
    async def admit(self, request: LLMRequest, ctx: HookContext) -> Any:
        """Hold the call's reserve on every budget it counts against, or block it."""
        if ctx.recheck:  # held when first asked
            return None
        state = ctx.state
        counted = self._counted(state, ctx.session)
        if not counted.ledgers:
            return None
        claims = counted.claims(request.model, self._holds)
        hold = _hold_id()
        try:
            if self._unsettled:
                await self._settle_unsettled()
            reservation = await self.store.reserve(claims, hold, ttl=self.config.hold_for)
        except StoreError as error:
            if self.config.on_store_error == "allow":
                logger.debug("token-budget: model call let through unchecked: %s", error)
                return None
            return Block("token budget cannot be checked, so the model call is blocked "
                         f"(on_store_error: block): {error}")  # fmt: skip
        if not reservation.granted:
            refused = reservation.refused or 0
            label, budget = counted.budgets[refused]
            over = _over(budget, reservation.balance, reservation.name, claims[refused].amounts)
            return Block(f"token budget exhausted: {label} {over}")
        holds = state.get("holds")
        if holds is None:
            holds = state["holds"] = collections.deque()
        holds.append(_Held(hold, counted, request))
        return None

    @hook("pre_llm_call", background=True)
    async def release_blocked(self, request: LLMRequest, ctx: HookContext) -> None:
        """After the call's `pre_llm_call`: a call that a later gate blocked gets no
        `post_llm_call`, so its hold is released here rather than left to lapse."""
        result = ctx.result
        if result is None or not result.blocked or result.blocked_by == ctx.plugin:
            return  # admitted (its answer settles it), or refused here (nothing held)
        holds = ctx.state.get("holds")
        taken = next((h for h in holds or () if h.request is request), None)
        if holds and taken is not None:
            holds.remove(taken)
            await self._release([taken], "a call another plugin blocked")

    async def on_post_llm_call(self, response: LLMResponse, ctx: HookContext) -> None:
        """Release the call's hold and count what it used."""
        if ctx.recheck:  # the same model call, already counted
            return
        state = ctx.state
        holds = state.get("holds")
        if holds:
            taken: _Held | None = holds.popleft()
        else:  # no hold taken (this plugin came after the call began): count it anyway
            taken = None
        hold = taken.hold if taken is not None else _hold_id()
        counted = taken.counted if taken is not None else self._counted(state, ctx.session)
        if not counted.ledgers:
            return
        asked = taken.request.model if taken is not None else response.model
        usage = self._usage(response, asked)
        ledgers, ttls = counted.ledgers, counted.ttls
        try:
            if self._unsettled:
                await self._settle_unsettled()
            balances = await self.store.settle(
                ledgers, hold, usage, ttl=self.config.hold_for, expire=ttls
            )
        except StoreUnavailable as error:
            self._keep(hold, ledgers, usage, ttls)
            logger.warning("token-budget: usage of a model call kept until the store is "
                           "back (%s)", error)  # fmt: skip
            return
        except StoreError as error:  # the store refused it: retrying would fail again
            logger.warning("token-budget: usage of a model call not counted: %s", error)
            return
        warn_at = self.config.warn_at
        for index, balance in enumerate(balances):
            ledger = ledgers[index]
            if ledger not in self._warned and _share(counted.limits[index], balance) >= warn_at:
                label, budget = counted.budgets[index]
                await self._warn(label, budget, ledger, ttls[index], balance, ctx)

    @hook("error")
    async def model_failed(self, event: ErrorEvent, ctx: HookContext) -> None:
        """A model call that failed gets no `post_llm_call`: release its hold (the
        session's oldest)."""
        holds = ctx.state.get("holds")
        if event.stage == "llm_call" and holds:
            await self._release([holds.popleft()], "a failed model call")

    async def on_session_end(self, event: SessionEnd, ctx: HookContext) -> None:
        """Release the holds of the session's calls still out, and drop its own budget."""
        holds = ctx.state.pop("holds", None)
        if holds:
            await self._release(list(holds), f"session {event.session_id!r}")
        if self._session_limits:
            ledger = key("session", event.session_id)
            self._warned.discard(ledger)
            try:
                await self.store.drop_ledgers(ledger)
                await self.store.delete(key("warned", ledger))
            except StoreError as error:  # it expires by itself
                logger.warning("token-budget: could not drop the budget of session %r: %s",
                               event.session_id, error)  # fmt: skip

    async def spent(self, tag: str) -> tuple[int, float]:
        """Tokens and cost spent so far by the sessions tagged `tag`."""
        spent = (await self.store.balance(key("tag", tag))).spent
        return int(spent.get("tokens", 0)), float(spent.get("cost", 0.0))

    async def aclose(self) -> None:
        """Close the store's connections."""
        await self.store.aclose()

    def _counted(self, state: dict[str, Any], session: SessionInfo | None) -> _Counted:
        """The budgets a call of `session` counts against, found once per session: kept in
        its state with the (frozen) session facts they were found for."""
        found = state.get("counted")
        if found is not None and found[0] is session:
            counted: _Counted = found[1]
            return counted
        counted = self._count_against(session)
        state["counted"] = (session, counted)
        return counted

    def _count_against(self, session: SessionInfo | None) -> _Counted:
        """The budgets of `session`: its own, its tags', its metadata's."""
        counted = _Counted()
        if self._session_limits:
            counted.add("the session", self.config.session,
                        key("session", session.id if session else ""), _SESSION_TTL)  # fmt: skip
        if session is None:
            return counted
        for glob, budget in self.config.tags.items():
            for tag in session.tags:
                if fnmatchcase(tag, glob):
                    counted.add(f"tag {tag!r}", budget, key("tag", tag), None)
        for field, budget in self.config.metadata.items():
            value = session.metadata.get(field)
            if value is not None:
                # the value itself, not its text: user 1 and user "1" are two budgets
                counted.add(f"{field} {value!r}", budget, key("metadata", field, value), None)
        return counted

    def _hold(self, model: str) -> dict[str, float]:
        """What a call of `model` holds: `reserve` tokens, and their cost at the model's
        dearest price. Shared by the claims of every such call: never changed."""
        tokens = self.config.reserve
        price = self._prices(model)
        dearest = max(price.input, price.output) if price is not None else 0.0
        return {"tokens": float(tokens), "cost": tokens * dearest / 1e6}

    def _price(self, model: str) -> Price | None:
        # The most specific glob that matches wins (the longest): `gpt-4o-mini*` before
        # `gpt-4o*`, whatever their order in the file.
        matching = [g for g in self.config.prices if fnmatchcase(model, g)]
        return self.config.prices[max(matching, key=len)] if matching else None

    def _usage(self, response: LLMResponse, asked: str) -> dict[str, float]:
        """What the call used, as the ledgers count it: tokens and cost."""
        usage = response.usage
        spent = (_count(usage.input_tokens, response), _count(usage.output_tokens, response))
        return {"tokens": float(spent[0] + spent[1]), "cost": self._cost(response, asked, spent)}

    def _cost(
        self, response: LLMResponse, asked: str | None = None, spent: tuple[int, int] | None = None
    ) -> float:
        """The call's cost at the dearer of the model asked for (`asked`) and the model
        the answer names: an answer under another name (an alias, a router's, a lie)
        never makes a call cheaper than the model it was admitted for. `spent`: the
        input and output tokens, when counted already."""
        if not self.config.prices:
            return 0.0
        models = (response.model,) if asked in (None, response.model) else (asked, response.model)
        prices = [p for p in map(self._prices, models) if p is not None]
        if not prices:
            if response.model not in self._unpriced:
                self._unpriced.add(response.model)
                logger.warning("no price for model %r: its calls count tokens, not cost",
                               response.model)  # fmt: skip
            return 0.0
        if spent is None:
            usage = response.usage
            spent = (_count(usage.input_tokens, response), _count(usage.output_tokens, response))
        return max((spent[0] * p.input + spent[1] * p.output) / 1e6 for p in prices)

    def _keep(
        self, hold: str, ledgers: list[str], usage: dict[str, float], ttls: list[float | None]
    ) -> None:
        """Keep usage for the store to take when it is back; past `_UNSETTLED_MAX` the
        oldest goes, with a warning (what this process keeps is lost at its exit)."""
        with self._lock:
            if len(self._unsettled) >= _UNSETTLED_MAX:
                self._unsettled.popleft()
                logger.warning("token-budget: %d usages wait for the store; the oldest is "
                               "dropped uncounted", _UNSETTLED_MAX)  # fmt: skip
            self._unsettled.append((hold, ledgers, usage, ttls))

    async def _settle_unsettled(self) -> None:
        """Count usage the store could not take before; raises `StoreUnavailable` if it
        still cannot (what is left stays for the next try). Usage the store refuses is
        dropped with a warning: it would be refused again before every call."""
        while self._unsettled:
            with self._lock:
                if not self._unsettled:
                    return
                hold, ledgers, usage, ttls = self._unsettled[0]
            try:
                await self.store.settle(ledgers, hold, usage, ttl=self.config.hold_for, expire=ttls)
            except StoreUnavailable:
                raise
            except StoreError as error:
                logger.warning("token-budget: kept usage not counted: %s", error)
            with self._lock:
                if self._unsettled and self._unsettled[0][0] == hold:
                    self._unsettled.popleft()

    async def _release(self, taken: list[_Held], whose: str) -> None:
        """Release holds without counting anything (no usage will come for them)."""
        for held in taken:
            counted = held.counted
            try:
                await self.store.settle(counted.ledgers, held.hold, {},
                                        ttl=self.config.hold_for, expire=counted.ttls)  # fmt: skip
            except StoreError as error:  # it lapses by itself after hold_for
                logger.warning("token-budget: could not release the hold of %s: %s", whose,
                               error)  # fmt: skip

    async def _warn(
        self,
        label: str,
        budget: Budget,
        ledger: str,
        ttl: float | None,
        balance: Balance,
        ctx: HookContext,
    ) -> None:
        """Warn that `ledger` crossed `warn_at` (once per budget, whichever process sees it
        cross first)."""
        if len(self._warned) >= _WARNED_MAX:  # a cache: the store says whether it was given
            self._warned.clear()
        self._warned.add(ledger)
        # Once per budget, whichever process sees it cross first.
        if not await self.store.compare_and_set(key("warned", ledger), None, "1", ttl=ttl):
            return
        share = _share(budget.limits(), balance)
        message = f"{label} has used {share:.0%} of its token budget ({_numbers(budget, balance)})"
        logger.info(message, extra={"interlock_plugin": ctx.plugin})
        if ctx.notify is not None:
            ctx.notify.notify(message, level="warning")


def _count(value: object, response: LLMResponse) -> int:
    """A token count as the budget takes it: a whole number from 0 to `TOKENS_MAX`.
    Negative counts are 0 (an answer never gives back a budget); anything else out of
    shape is `TOKENS_MAX` (a budget is never undercounted); both are logged."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= TOKENS_MAX:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        taken = 0
    elif isinstance(value, float) and math.isfinite(value) and 0 <= value <= TOKENS_MAX:
        taken = math.ceil(value)
    else:
        taken = TOKENS_MAX
    logger.warning("token-budget: model %r reported a token count of %.40r; counted as %d",
                   response.model, value, taken)  # fmt: skip
    return taken


def _share(limits: Mapping[str, float], balance: Balance) -> float:
    """The largest share of a limit the ledger spent (after every model call: a loop,
    cheaper than max() over a generator)."""
    spent, largest = balance.spent, 0.0
    for name, limit in limits.items():
        share = spent.get(name, 0.0) / limit
        if share > largest:
            largest = share
    return largest


def _hold_id() -> str:
    """A hold id no other call of any process has: random, so a forked process never
    repeats its parent's (a counter would)."""
    return os.urandom(16).hex()


def _over(budget: Budget, balance: Balance, name: str, hold: Mapping[str, float]) -> str:
    """Why a hold on `name` was refused: what was spent, what calls in flight hold, and
    the hold that did not fit."""
    spent, held = balance.spent.get(name, 0.0), balance.held.get(name, 0.0)
    if name == "tokens":
        limit, unit = float(budget.tokens or 0), " tokens"
        said = f"used {_show(name, spent)} of {budget.tokens:,} tokens"
    else:
        limit, unit = budget.cost or 0.0, ""
        said = f"spent {_show(name, spent)} of {limit:,.4f}"
    if held > 0:
        said += f", {_show(name, held)}{unit} held by calls in flight"
    if spent + held < limit:
        said += f"; a call holds {_show(name, hold.get(name, 0.0))}{unit}"
    return said


def _show(name: str, amount: float) -> str:
    # `,.0f` rather than int(): a total out of range (inf) still reads, never raises
    return f"{amount:,.0f}" if name == "tokens" else f"{amount:,.4f}"


def _numbers(budget: Budget, balance: Balance) -> str:
    spent = balance.spent
    parts = []
    if budget.tokens is not None:
        parts.append(f"{_show('tokens', spent.get('tokens', 0.0))} of {budget.tokens:,} tokens")
    if budget.cost is not None:
        parts.append(f"{spent.get('cost', 0.0):,.4f} of {budget.cost:,.4f}")
    return ", ".join(parts)
