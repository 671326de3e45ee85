"""Built-ins asked again about a changed payload (gates judge the final payload) count
each event once."""

from __future__ import annotations

from typing import Any

from interlock import LLMResponse, Modify, ToolCall, hook
from interlock.plugins.rate_limit import RateLimit, RateLimitConfig
from interlock.plugins.token_budget import TokenBudget, TokenBudgetConfig

from .helpers import run
from .test_rate_limit import Clock, shells

ANSWERS = ["one two three four five"] * 4


@hook("pre_tool_call", name="quiet", priority=100)
def quiet(call: ToolCall, ctx: Any) -> Modify[ToolCall]:
    """A later plugin that changes every tool call, so the gates before it are asked again."""
    return Modify(call.replace(arguments={**call.arguments, "command": "true"}))


@hook("post_llm_call", name="stamp", priority=100)
def stamp(response: LLMResponse, ctx: Any) -> Modify[LLMResponse]:
    return Modify(response.replace(content=response.content + " [checked]"))


async def test_a_rate_limit_counts_a_rechecked_call_once() -> None:
    clock = Clock()
    plugin = RateLimit(
        RateLimitConfig.model_validate({"tools": {"sh*": {"calls": 2, "per": "1m"}}}),
        clock=clock,
        sleep=clock.sleep,
    )
    result = await run([(plugin, {}), (quiet, {})], shells(3), ["go"])
    outputs = [r["output"] for r in result.kinds("tool_result")]
    assert outputs[:2] == ["ran: true", "ran: true"]
    assert "rate limit: tool 'shell' may make 2 calls per 60s" in outputs[2]


async def test_a_token_budget_counts_a_rechecked_response_once() -> None:
    spent = []
    for plugins in ([], [(stamp, {})]):
        budget = TokenBudget(TokenBudgetConfig.model_validate({"tags": {"t": {"tokens": 10**6}}}))
        await run([(budget, {}), *plugins], ANSWERS, ["hello there"], tags=["t"])
        spent.append(await budget.spent("t"))
    assert spent[0][0] > 0
    assert spent[1] == spent[0]  # the stamped responses were judged twice, counted once
