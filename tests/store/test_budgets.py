"""token-budget and rate-limit on each store (memory and Redis) against hostile answers,
overlapping budgets, calls blocked after the budget held for them, and shared keys."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from interlock import (
    Block,
    LLMRequest,
    LLMResponse,
    Plugin,
    PluginManager,
    SessionEnd,
    SessionInfo,
    ToolCall,
    Usage,
    hook,
    hooks,
)
from interlock.plugins.rate_limit import RateLimit, RateLimitConfig
from interlock.plugins.token_budget import TOKENS_MAX, TokenBudget, TokenBudgetConfig
from interlock.store import StateStore


def budget(store: StateStore, **config: Any) -> tuple[PluginManager, TokenBudget]:
    plugin = TokenBudget(TokenBudgetConfig.model_validate(config), store=store)
    manager = PluginManager()
    manager.register(plugin)
    return manager, plugin


async def call(
    manager: PluginManager, session: str, usage: Usage, *, model: str = "m", **facts: Any
) -> str | None:
    """One model call in a session of its own; its block reason, or None when answered."""
    async with manager.session(session, **facts):
        admitted = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest(model))
        if admitted.blocked:
            return admitted.reason
        await manager.invoke(hooks.POST_LLM_CALL, LLMResponse(model, usage=usage))
    return None


async def test_a_hostile_usage_exhausts_a_budget_and_never_poisons_it(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    manager, plugin = budget(store, tags={"t": {"tokens": 10**6, "cost": 1.0}},
                             prices={"gpt-4o*": {"input": 2.5, "output": 10}})  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="interlock"):
        hostile = Usage(10**308, -(10**308) + 7)
        assert await call(manager, "attacker", hostile, model="gpt-4o", tags=["t"]) is None
    assert not plugin._unsettled  # nothing left to replay before every later call
    assert any("reported a token count of" in r.getMessage() for r in caplog.records)
    spent = (await store.balance("tag:t")).spent
    assert spent == {"tokens": float(TOKENS_MAX), "cost": TOKENS_MAX * 2.5 / 1e6}
    for session in ("alice", "bob"):  # refused by the budget, not "cannot be checked"
        reason = await call(manager, session, Usage(1, 1), model="gpt-4o", tags=["t"])
        assert reason == "token budget exhausted: tag 't' used 1,000,000,000 of 1,000,000 tokens"
    await manager.aclose()


async def test_negative_or_fractional_usage_never_gives_a_budget_back(store: StateStore) -> None:
    manager, _ = budget(store, tags={"team": {"tokens": 1000}})
    assert await call(manager, "victim", Usage(1000, 0), tags=["team"]) is None
    assert await call(manager, "victim", Usage(1, 0), tags=["team"]) is not None
    async with manager.session("attacker", tags=["team"]):
        refund = LLMResponse("m", usage=Usage(-(10**9), 0))
        await manager.invoke(hooks.POST_LLM_CALL, refund)
        fraction = LLMResponse("m", usage=Usage(0.5, 0))  # type: ignore[arg-type]
        await manager.invoke(hooks.POST_LLM_CALL, fraction)
    assert (await store.balance("tag:team")).spent == {"tokens": 1001.0, "cost": 0.0}
    assert await call(manager, "next", Usage(1, 0), tags=["team"]) is not None
    await manager.aclose()


class Later(Plugin):
    """A gate after the budget (a rate limit, a policy) that blocks every model call."""

    name = "later-gate"

    @hook("pre_llm_call")
    def refuse(self, request: LLMRequest, ctx: Any) -> Block:
        return Block("no")


async def test_a_call_blocked_by_a_later_gate_gives_its_hold_back(store: StateStore) -> None:
    plugin = TokenBudget(TokenBudgetConfig.model_validate(
        {"tags": {"tenant-*": {"tokens": 100_000}}, "reserve": 8000}), store=store)  # fmt: skip
    manager = PluginManager()
    manager.register(plugin, priority=0)
    manager.register(Later(), priority=10)
    async with manager.session("noisy", tags=["tenant-acme"]):
        for _ in range(15):
            result = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"))
            assert result.blocked_by == "later-gate"
            await manager.drain()  # the release runs right after the invocation
        assert (await store.balance("tag:tenant-acme")).held == {"tokens": 0.0, "cost": 0.0}
    await manager.aclose()


async def test_holds_still_out_at_session_end_or_after_a_failed_call_are_released(
    store: StateStore,
) -> None:
    manager, _ = budget(store, tags={"team": {"tokens": 1000}}, reserve=100)
    async with manager.session("s-1", tags=["team"]):
        for _ in range(3):  # three calls admitted; their answers never come
            assert not (await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"))).blocked
        failed = hooks.ERROR.payload_type("ConnectionError", "model down", "llm_call")
        await manager.invoke(hooks.ERROR, failed)
        assert (await store.balance("tag:team")).held["tokens"] == 200.0
        await manager.invoke(hooks.SESSION_END, SessionEnd("s-1"))
    assert (await store.balance("tag:team")).held["tokens"] == 0.0
    await manager.aclose()


async def test_two_globs_matching_one_tag_make_one_budget_at_the_tighter_limit(
    store: StateStore,
) -> None:
    manager, _ = budget(store, tags={"team-*": {"tokens": 1000}, "team-a": {"tokens": 500}},
                        reserve=100)  # fmt: skip
    for _ in range(12):
        assert await call(manager, "s", Usage(10, 0), tags=["team-a"]) is None
    balance = await store.balance("tag:team-a")
    assert balance.spent["tokens"] == 120.0 and balance.held["tokens"] == 0.0
    assert await call(manager, "s", Usage(400, 0), tags=["team-a"]) is None
    reason = await call(manager, "s", Usage(1, 0), tags=["team-a"])
    assert reason == (
        "token budget exhausted: tag 'team-a' used 520 of 500 tokens"  # the tighter limit
    )
    await manager.aclose()


async def test_a_call_is_priced_by_the_model_asked_for(store: StateStore) -> None:
    manager, _ = budget(store, session={"cost": 1.0}, reserve=1000,
                        prices={"gpt-4o*": {"input": 2.5, "output": 10}})  # fmt: skip
    async with manager.session("s"):
        assert not (await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("gpt-4o"))).blocked
        answer = LLMResponse("free", usage=Usage(100_000, 100_000))  # named another model
        await manager.invoke(hooks.POST_LLM_CALL, answer)
        assert (await store.balance("session:s")).spent["cost"] == 1.25
        refused = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("gpt-4o"))
        assert refused.reason == "token budget exhausted: the session spent 1.2500 of 1.0000"
    await manager.aclose()


async def test_metadata_values_of_different_types_are_different_budgets(
    store: StateStore,
) -> None:
    manager, _ = budget(store, metadata={"user": {"tokens": 10}})
    assert await call(manager, "a", Usage(10, 0), metadata={"user": 1}) is None
    assert await call(manager, "b", Usage(10, 0), metadata={"user": "1"}) is None
    assert await call(manager, "c", Usage(1, 0), metadata={"user": 1}) is not None
    await manager.aclose()


async def test_tool_and_model_limits_of_one_glob_count_apart(store: StateStore) -> None:
    config = {"tools": {"*": {"calls": 3, "per": 60}}, "models": {"*": {"calls": 100, "per": 60}}}
    manager = PluginManager()
    manager.register(RateLimit(RateLimitConfig.model_validate(config), store=store))
    async with manager.session("s-1"):
        for _ in range(3):
            assert not (await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("gpt"))).blocked
        tools = [await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("read")) for _ in range(4)]
    assert [t.blocked for t in tools] == [False, False, False, True]
    await manager.aclose()


async def test_rate_limit_metadata_values_of_different_types_count_apart(
    store: StateStore,
) -> None:
    config = {"tools": {"*": {"calls": 1, "per": 60, "scope": "metadata.user"}}}
    manager = PluginManager()
    manager.register(RateLimit(RateLimitConfig.model_validate(config), store=store))
    answers = []
    for user in (1, "1", 1):
        session = SessionInfo(f"s-{user!r}", (), {"user": user})
        result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("x"), session=session)
        answers.append(result.blocked)
    assert answers == [False, False, True]
    await manager.aclose()


class Stalled:
    """A store call that never ends (a stalled server with a long socket timeout)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def reserve(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.Event().wait()


async def test_a_budget_that_cannot_answer_in_time_blocks_the_call(store: StateStore) -> None:
    plugin = TokenBudget(TokenBudgetConfig.model_validate({"session": {"tokens": 10}}),
                         store=Stalled(store))  # type: ignore[arg-type]  # fmt: skip
    manager = PluginManager()
    manager.register(plugin, timeout=0.05)
    async with manager.session("s"):
        result = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"))
    assert result.blocked_by == "token-budget"
    assert result.reason is not None and "fails closed" in result.reason
    await manager.aclose()
