"""Shared state: the per-call cost of rate-limit and token-budget with their windows and
budgets in this process's memory and in Redis, side by side.

    python benchmarks/bench_store.py [--quick] [--redis redis://127.0.0.1:6379/0]

Rows, in one run, measured in interleaved rounds: one tool call through rate-limit (a
`pre_tool_call`), one model call through token-budget (its `pre_llm_call` hold and its
`post_llm_call` settle), each with the memory store and with Redis, and the same invocations
with no plugin as the floor. p50 and p99 in µs per call, and Redis over memory. Keys go
under a deployment of their own, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from interlock import (
    LLMRequest,
    LLMResponse,
    PluginManager,
    SessionScope,
    ToolCall,
    Usage,
    hooks,
)
from interlock.plugins.rate_limit import RateLimit, RateLimitConfig
from interlock.plugins.token_budget import TokenBudget, TokenBudgetConfig
from interlock.store import MemoryStore, StateStore, open_store

LIMITS = RateLimitConfig.model_validate(
    {"tools": {"shell": {"calls": 10**9, "per": 1}}}  # never full: the cost of admitting
)
BUDGETS = TokenBudgetConfig.model_validate(
    {
        "session": {"tokens": 10**12},
        "tags": {"team": {"cost": 10**9}},
        "reserve": 100,
        "prices": {"m*": {"input": 1, "output": 2}},
    }
)
Call = Callable[[], Awaitable[object]]


def calls(manager: PluginManager, scope: SessionScope) -> dict[str, Call]:
    tool, request = ToolCall("shell"), LLMRequest("model")
    response = LLMResponse("model", usage=Usage(input_tokens=10, output_tokens=10))

    async def tool_call() -> object:
        return await manager.invoke(hooks.PRE_TOOL_CALL, tool, scope=scope)

    async def model_call() -> object:
        await manager.invoke(hooks.PRE_LLM_CALL, request, scope=scope)
        return await manager.invoke(hooks.POST_LLM_CALL, response, scope=scope)

    return {"rate-limit (pre_tool_call)": tool_call, "token-budget (pre+post_llm_call)": model_call}


async def measure(call: Call, count: int, samples: list[float]) -> None:
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)


def manager_with(store: Callable[[str], StateStore] | None) -> PluginManager:
    manager = PluginManager()
    if store is not None:
        manager.register(RateLimit(LIMITS, store=store("rate-limit")))
        manager.register(TokenBudget(BUDGETS, store=store("token-budget")))
    return manager


async def main(rounds: int, count: int, url: str) -> None:
    deployment = f"bench-{uuid.uuid4().hex[:8]}"
    managers = {
        "no plugin": manager_with(None),
        "memory": manager_with(lambda plugin: MemoryStore(plugin=plugin)),
        "redis": manager_with(lambda plugin: open_store(url, deployment=deployment, plugin=plugin)),
    }
    samples: dict[tuple[str, str], list[float]] = {}
    scopes = {kind: m.session("bench", tags=["team"]).open() for kind, m in managers.items()}
    try:
        for round_ in range(rounds + 1):  # the first warms up (connections, scripts)
            for kind, manager in managers.items():
                for row, call in calls(manager, scopes[kind]).items():
                    await measure(call, count, samples.setdefault((row, kind), []))
            if round_ == 0:
                samples = {k: [] for k in samples}
    finally:
        for kind, manager in managers.items():
            scopes[kind].close()
            await manager.aclose()
        await cleanup(url, deployment)
    report(samples, rounds, count)


def report(samples: dict[tuple[str, str], list[float]], rounds: int, count: int) -> None:
    print(f"{rounds} rounds of {count} calls per row; µs per call")
    print(f"{'row':34} {'store':10} {'p50':>8} {'p99':>8} {'p50 / memory':>13}")
    for (row, kind), values in samples.items():
        values.sort()
        p50 = statistics.median(values) * 1e6
        p99 = values[int(len(values) * 0.99)] * 1e6
        memory = statistics.median(samples[(row, "memory")]) * 1e6
        ratio = f"{p50 / memory:.1f}x" if kind != "no plugin" else ""
        print(f"{row:34} {kind:10} {p50:8.1f} {p99:8.1f} {ratio:>13}")


async def cleanup(url: str, deployment: str) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match=f"interlock:{deployment}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(main(3 if args.quick else 7, 300 if args.quick else 1000, args.redis))
