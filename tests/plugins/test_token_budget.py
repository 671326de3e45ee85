"""token_budget through the reference runtime."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationError

from interlock import LLMRequest, LLMResponse, PluginManager, SessionInfo, Usage, hooks
from interlock.config import load_config_text
from interlock.plugins.token_budget import TokenBudget, TokenBudgetConfig
from interlock.store import MemoryStore, StoreError, StoreUnavailable

from .helpers import run

# The scripted model counts words: input = words in the request, output = words answered.
ANSWERS = ["one two three four five"] * 4


async def test_a_session_budget_blocks_the_model_call_once_spent_and_warns_before() -> None:
    budget = TokenBudget(TokenBudgetConfig.model_validate(
        {"session": {"tokens": 40}, "warn_at": 0.5}
    ))  # fmt: skip
    result = await run([(budget, {"capabilities": ["notify"]})], ANSWERS,
                       ["hello there", "and again", "and more", "last"])  # fmt: skip
    stopped = [r.stopped for r in result.replies]
    assert stopped[:2] == ["answered", "answered"] and "blocked" in stopped
    blocked = next(r for r in result.replies if r.stopped == "blocked")
    assert blocked.reason is not None
    assert blocked.reason.startswith("token budget exhausted: the session used ")
    assert blocked.reason.endswith(" of 40 tokens")
    [warning] = [n for n in result.notifications if "token budget" in n]
    assert warning.startswith("the session has used ") and "of 40 tokens" in warning


async def test_cost_from_the_price_table_and_tag_budgets_shared_across_sessions() -> None:
    manager = load_config_text("""
plugins:
  - name: token-budget
    use: token-budget
    config:
      tags: {team-a: {cost: 0.10}}
      prices: {"scripted*": {input: 10000, output: 10000}}
""")
    first = await run([], ANSWERS, ["a b c d e f g h i j"], tags=["team-a"], manager=manager)
    assert first.replies[0].stopped == "answered"
    second = await run([], ANSWERS, ["again"], tags=["team-a"], manager=manager)
    assert second.replies[0].reason is not None
    # 10 words in and 5 out at 10,000 per million: 0.15, over the 0.10 of the tag
    assert second.replies[0].reason == "token budget exhausted: tag 'team-a' spent 0.1500 of 0.1000"
    untagged = await run([], ANSWERS, ["free"], manager=manager)
    assert untagged.replies[0].stopped == "answered"


def test_budgets_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        TokenBudgetConfig.model_validate({"session": {"tokens": 0}})


async def test_the_most_specific_price_applies() -> None:
    config = {
        "session": {"cost": 1000},
        "prices": {"scripted*": {"input": 1000, "output": 1000},
                   "scripted-mini*": {"input": 1, "output": 1}},
    }  # fmt: skip
    budget = TokenBudget(TokenBudgetConfig.model_validate(config))
    cheap = budget._cost(LLMResponse("scripted-mini-2", usage=Usage(500_000, 500_000)))
    dear = budget._cost(LLMResponse("scripted-large", usage=Usage(500_000, 500_000)))
    assert (cheap, dear) == (1.0, 1000.0)


def _manager(**config: object) -> tuple[PluginManager, TokenBudget]:
    budget = TokenBudget(TokenBudgetConfig.model_validate(config))
    manager = PluginManager()
    manager.register(budget)
    return manager, budget


async def test_concurrent_calls_hold_their_reserve_and_never_pass_the_budget() -> None:
    manager, _ = _manager(tags={"team": {"tokens": 100}}, reserve=30)
    async with manager.session("s-1", tags=["team"]):
        admitted = [await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m")) for _ in range(4)]
        assert [r.blocked for r in admitted] == [False, False, False, True]
        assert admitted[3].reason == (
            "token budget exhausted: tag 'team' used 0 of 100 tokens, 90 tokens held by calls "
            "in flight; a call holds 30 tokens"
        )
        answer = LLMResponse("m", usage=Usage(input_tokens=5, output_tokens=5))
        for _ in range(3):  # each settles its hold: 10 used where 30 were held
            await manager.invoke(hooks.POST_LLM_CALL, answer)
        assert not (await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"))).blocked


async def test_each_tag_matching_a_glob_and_each_metadata_value_has_its_own_budget() -> None:
    manager, budget = _manager(tags={"tenant-*": {"tokens": 10}}, metadata={"user": {"tokens": 15}})
    answer = LLMResponse("m", usage=Usage(input_tokens=6, output_tokens=6))

    async def call(session: str, tenant: str, user: str) -> str | None:
        async with manager.session(session, tags=[tenant], metadata={"user": user}):
            result = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"))
            if not result.blocked:
                await manager.invoke(hooks.POST_LLM_CALL, answer)
            return result.reason

    assert await call("a", "tenant-x", "ann") is None
    assert await call("b", "tenant-x", "bob") == (
        "token budget exhausted: tag 'tenant-x' used 12 of 10 tokens"
    )
    assert await call("c", "tenant-y", "ann") is None  # another tenant; ann at 12 of 15
    assert (
        await call("d", "tenant-z", "ann")
        == "token budget exhausted: user 'ann' used 24 of 15 tokens"
    )
    assert await budget.spent("tenant-x") == (12, 0.0)


async def test_a_session_budget_is_dropped_at_its_end() -> None:
    budget = TokenBudget(TokenBudgetConfig.model_validate({"session": {"tokens": 10**6}}))
    await run([(budget, {})], ANSWERS, ["hello there"])
    assert (await budget.store.balance("session:s-1")).spent == {}


@pytest.mark.parametrize(
    "config",
    [{"hold_for": "none"}, {"hold_for": float("inf")},
     {"prices": {"*": {"input": float("inf"), "output": 1}}}, {"session": {"cost": float("nan")}},
     {"session": {"cost": float("inf")}}],
)  # fmt: skip
def test_durations_prices_and_budgets_must_be_finite(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=r"finite|ends"):
        TokenBudgetConfig.model_validate(config)


def test_a_total_out_of_range_still_reads_in_a_reason() -> None:
    from interlock.plugins.token_budget import Budget, _over
    from interlock.store import Balance

    balance = Balance({"tokens": float("inf")}, {"tokens": float("inf")})
    assert _over(Budget(tokens=10), balance, "tokens", {"tokens": 1.0}) == (
        "used inf of 10 tokens, inf tokens held by calls in flight"
    )


class Refusing(MemoryStore):
    """A store that can be reached but refuses every settle (say, a script error)."""

    async def settle(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreError("state store memory failed: ResponseError: refused")


class Down(MemoryStore):
    """A store that cannot be reached for settles."""

    async def settle(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("state store memory is unreachable")


async def test_usage_the_store_refuses_is_dropped_and_only_an_outage_keeps_it(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = LLMResponse("m", usage=Usage(input_tokens=5, output_tokens=5))
    refusing = TokenBudget(TokenBudgetConfig.model_validate({"session": {"tokens": 100}}),
                           store=Refusing())  # fmt: skip
    manager = PluginManager()
    manager.register(refusing)
    async with manager.session("s"):
        await manager.invoke(hooks.POST_LLM_CALL, answer)
        assert not (await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"))).blocked
    assert not refusing._unsettled  # never replayed before every later call

    monkeypatch.setattr("interlock.plugins.token_budget._UNSETTLED_MAX", 2)
    down = TokenBudget(TokenBudgetConfig.model_validate({"session": {"tokens": 100}}),
                       store=Down())  # fmt: skip
    manager = PluginManager()
    manager.register(down)
    with caplog.at_level(logging.WARNING, logger="interlock"):
        async with manager.session("s"):
            for _ in range(3):
                await manager.invoke(hooks.POST_LLM_CALL, answer)
    assert len(down._unsettled) == 2
    assert any("the oldest is dropped uncounted" in r.getMessage() for r in caplog.records)


async def test_budgets_found_once_per_session_follow_each_sessions_own_facts() -> None:
    """Calls outside a session scope share one state: each still counts against the
    budgets of the session it names, and a call of another model holds at its price."""
    manager, budget = _manager(tags={"team-*": {"tokens": 100, "cost": 0.005}}, reserve=10,
                               prices={"dear*": {"input": 1000, "output": 1000}})  # fmt: skip
    sessions = {t: SessionInfo(f"s-{t}", (t,)) for t in ("team-a", "team-b")}
    for tag, used in (("team-a", 5), ("team-b", 7), ("team-a", 3)):
        admitted = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"),
                                        session=sessions[tag])  # fmt: skip
        assert not admitted.blocked
        await manager.invoke(hooks.POST_LLM_CALL, LLMResponse("m", usage=Usage(used, 0)),
                             session=sessions[tag])  # fmt: skip
    assert await budget.spent("team-a") == (8, 0.0)
    assert await budget.spent("team-b") == (7, 0.0)
    async with manager.session("s-c", tags=["team-c"]):
        assert not (await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"))).blocked
        dear = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("dear-1"))
    # ten tokens at 1,000 per million: 0.01, where the call of "m" (no price) held none
    assert dear.reason == (
        "token budget exhausted: tag 'team-c' spent 0.0000 of 0.0050; a call holds 0.0100"
    )
