"""A worker process for the race tests: sessions calling a model or a tool through one
budget or one rate limit kept in a shared Redis (run with multiprocessing's spawn)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from interlock import LLMRequest, LLMResponse, ToolCall, Usage, hooks
from interlock.config import load_config_text

SESSIONS = 8
CALLS = 6  # per session: more than the budget or the limit can take
TAG = "tenant-acme"

CONFIGS = {
    # every call holds 10 tokens and uses 10 (4 in, 6 out): 100 calls spend the budget
    "budget": """
store: {url}
deployment: {deployment}
plugins:
  - name: token-budget
    use: token-budget
    config: {{tags: {{"tenant-*": {{tokens: 1000}}}}, reserve: 10}}
""",
    "rate": """
store: {url}
deployment: {deployment}
plugins:
  - name: rate-limit
    use: rate-limit
    config: {{tools: {{shell: {{calls: 50, per: 1h, scope: "tag:tenant-*"}}}}}}
""",
}


def work(kind: str, url: str, deployment: str, barrier: Any, results: Any) -> None:
    """Run SESSIONS concurrent sessions once every worker is ready; report admissions and
    refusal reasons on `results`."""
    results.put(asyncio.run(_sessions(kind, url, deployment, barrier)))


async def _sessions(kind: str, url: str, deployment: str, barrier: Any) -> dict[str, Any]:
    manager = load_config_text(CONFIGS[kind].format(url=url, deployment=deployment))
    barrier.wait(timeout=60)  # all processes start racing together
    outcomes = await asyncio.gather(*(_session(manager, kind, i) for i in range(SESSIONS)))
    await manager.aclose()
    return {
        "admitted": sum(admitted for admitted, _ in outcomes),
        "reasons": [reason for _, reasons in outcomes for reason in reasons],
    }


async def _session(manager: Any, kind: str, index: int) -> tuple[int, list[str | None]]:
    admitted, reasons = 0, []
    async with manager.session(f"{os.getpid()}-{index}", tags=[TAG]):
        for _ in range(CALLS):
            if kind == "budget":
                result = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("model"))
            else:
                result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
            if result.blocked:
                reasons.append(result.reason)
                continue
            admitted += 1
            if kind == "budget":
                response = LLMResponse("model", usage=Usage(input_tokens=4, output_tokens=6))
                await manager.invoke(hooks.POST_LLM_CALL, response)
    return admitted, reasons
