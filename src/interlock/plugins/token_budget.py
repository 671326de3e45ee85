"""`token_budget`: budgets of tokens and of cost, per session and per session tag.

    plugins:
      - name: token-budget
        use: token-budget
        capabilities: [notify]                # the warning at `warn_at`
        config:
          session: {tokens: 200000, cost: 2.50}
          tags:
            team-a: {cost: 100}               # shared by every session tagged team-a
          prices:                             # per million tokens, by model glob
            "gpt-4o*": {input: 2.50, output: 10.00}
            "llama*": {input: 0, output: 0}
          warn_at: 0.8

Usage is counted from each `post_llm_call`; once a budget is spent, `pre_llm_call` is
blocked with the numbers in the reason. Where several price globs match a model, the most
specific (longest) one applies. Session budgets live in the session's state, which needs
a session scope (`manager.session(...)`; the reference runtime opens one per session).
Tag budgets live in this process (a fleet shares them through a store, later). A model
with no price counts tokens but no cost, and is reported once.
"""

from __future__ import annotations

import logging
import threading
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .. import Block, HookContext, LLMRequest, LLMResponse, Plugin

logger = logging.getLogger("interlock.plugins.token_budget")


class Budget(BaseModel):
    """At most this many tokens and/or this much cost (None: no bound)."""

    model_config = ConfigDict(extra="forbid")

    tokens: int | None = Field(default=None, gt=0)
    cost: float | None = Field(default=None, gt=0)


class Price(BaseModel):
    """Cost per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class TokenBudgetConfig(BaseModel):
    """The budgets, the price table and when to warn."""

    model_config = ConfigDict(extra="forbid")

    session: Budget = Field(default_factory=Budget)
    tags: dict[str, Budget] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    warn_at: float = Field(default=0.8, gt=0, le=1)


class _Spent:
    """Tokens and cost spent against one budget, and whether the user was warned."""

    __slots__ = ("cost", "tokens", "warned")

    def __init__(self) -> None:
        self.tokens = 0
        self.cost = 0.0
        self.warned = False


class TokenBudget(Plugin):
    """Counts usage and blocks model calls past a budget; see the module documentation."""

    name = "token-budget"
    version = "1.0"
    config_model = TokenBudgetConfig

    def __init__(self, config: TokenBudgetConfig | None = None) -> None:
        self.config = config or TokenBudgetConfig()
        self._tags: dict[str, _Spent] = {}
        self._unpriced: set[str] = set()
        self._lock = threading.Lock()  # tag budgets are shared by concurrent sessions

    def on_post_llm_call(self, response: LLMResponse, ctx: HookContext) -> None:
        if ctx.recheck:  # the same model call, already counted
            return
        tokens = response.usage.total_tokens
        cost = self._cost(response)
        with self._lock:
            for label, budget, spent in self._budgets(ctx):
                spent.tokens += tokens
                spent.cost += cost
                self._warn(label, budget, spent, ctx)

    def on_pre_llm_call(self, request: LLMRequest, ctx: HookContext) -> Any:
        with self._lock:
            for label, budget, spent in self._budgets(ctx):
                over = _over(budget, spent)
                if over is not None:
                    return Block(f"token budget exhausted: {label} {over}")
        return None

    def spent(self, tag: str) -> tuple[int, float]:
        """Tokens and cost spent so far by the sessions tagged `tag`."""
        with self._lock:
            spent = self._tags.get(tag)
            return (0, 0.0) if spent is None else (spent.tokens, spent.cost)

    def _budgets(self, ctx: HookContext) -> list[tuple[str, Budget, _Spent]]:
        """The budgets this call counts against: its session's and its tags'."""
        budgets = []
        session = self.config.session
        if session.tokens is not None or session.cost is not None:
            spent = ctx.state.get("spent")
            if spent is None:
                spent = ctx.state["spent"] = _Spent()
            budgets.append(("the session", session, spent))
        for tag in ctx.session.tags if ctx.session is not None else ():
            budget = self.config.tags.get(tag)
            if budget is not None:
                budgets.append((f"tag {tag!r}", budget, self._tags.setdefault(tag, _Spent())))
        return budgets

    def _cost(self, response: LLMResponse) -> float:
        # The most specific glob that matches wins (the longest): `gpt-4o-mini*` before
        # `gpt-4o*`, whatever their order in the file.
        matching = [g for g in self.config.prices if fnmatchcase(response.model, g)]
        price = self.config.prices[max(matching, key=len)] if matching else None
        if price is None:
            if self.config.prices and response.model not in self._unpriced:
                self._unpriced.add(response.model)
                logger.warning("no price for model %r: its calls count tokens, not cost",
                               response.model)  # fmt: skip
            return 0.0
        usage = response.usage
        return (usage.input_tokens * price.input + usage.output_tokens * price.output) / 1e6

    def _warn(self, label: str, budget: Budget, spent: _Spent, ctx: HookContext) -> None:
        if spent.warned:
            return
        share = max(
            spent.tokens / budget.tokens if budget.tokens else 0.0,
            spent.cost / budget.cost if budget.cost else 0.0,
        )
        if share < self.config.warn_at:
            return
        spent.warned = True
        message = f"{label} has used {share:.0%} of its token budget ({_numbers(budget, spent)})"
        logger.info(message, extra={"interlock_plugin": ctx.plugin})
        if ctx.notify is not None:
            ctx.notify.notify(message, level="warning")


def _over(budget: Budget, spent: _Spent) -> str | None:
    if budget.tokens is not None and spent.tokens >= budget.tokens:
        return f"used {spent.tokens:,} of {budget.tokens:,} tokens"
    if budget.cost is not None and spent.cost >= budget.cost:
        return f"spent {spent.cost:,.4f} of {budget.cost:,.4f}"
    return None


def _numbers(budget: Budget, spent: _Spent) -> str:
    parts = []
    if budget.tokens is not None:
        parts.append(f"{spent.tokens:,} of {budget.tokens:,} tokens")
    if budget.cost is not None:
        parts.append(f"{spent.cost:,.4f} of {budget.cost:,.4f}")
    return ", ".join(parts)
