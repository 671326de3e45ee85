"""token_budget through the reference runtime."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from interlock.config import load_config_text
from interlock.plugins.token_budget import TokenBudget, TokenBudgetConfig

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
    from interlock import LLMResponse, Usage

    cheap = budget._cost(LLMResponse("scripted-mini-2", usage=Usage(500_000, 500_000)))
    dear = budget._cost(LLMResponse("scripted-large", usage=Usage(500_000, 500_000)))
    assert (cheap, dear) == (1.0, 1000.0)
