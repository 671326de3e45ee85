"""examples/llm_switch: local model servers started, swapped and stopped (a stand-in
server program on loopback plays the model server)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlock import LLMRequest, Message, PluginManager, hooks
from interlock.runtime import Agent, ScriptedBackend

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "llm_switch"


@pytest.fixture
def switch() -> Iterator[Any]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from llm_switch import LLMSwitch, LLMSwitchConfig

        yield LLMSwitch(LLMSwitchConfig(models=str(EXAMPLE / "models.yaml")))
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("llm_switch", None)


async def test_a_local_model_is_served_by_its_own_server_until_the_session_ends(
    switch: Any,
) -> None:
    manager = PluginManager()
    manager.register(switch, timeout=60)
    agent = Agent(ScriptedBackend(model="local-small"), manager=manager)
    async with agent.session("s-1") as session:
        first = await session.send("hello")
        second = await session.send("again")
        process = switch.server.process
    await agent.aclose()

    assert first.reply == "models/small.gguf (context 4096, temperature 0.2) says: hello"
    assert second.reply.endswith("says: again")
    assert switch.started == ["local-small"]  # one start for the session
    assert switch.server is None and process.returncode is not None  # stopped at its end


async def test_another_local_model_swaps_the_server_and_others_pass_through(switch: Any) -> None:
    manager = PluginManager()
    manager.register(switch, timeout=60)

    async def ask(model: str) -> Any:
        request = LLMRequest(model, (Message("user", "hi"),))
        return await manager.invoke(hooks.PRE_LLM_CALL, request)

    small = await ask("local-small")
    first = switch.server.process
    large = await ask("local-large")
    remote = await ask("gpt-4o")
    await manager.aclose()

    assert small.response.content.startswith("models/small.gguf")
    assert large.response.content.startswith("models/large.gguf (context 16384, temperature 0.7)")
    assert first.returncode is not None  # swapped out: one server at a time
    assert switch.started == ["local-small", "local-large"]
    assert remote.empty  # not a local model: the agent's backend answers
    assert switch.server is None  # the manager's close stopped it
