"""No dead hooks: scenarios that together fire every catalog hook, in the documented order."""

from __future__ import annotations

import re
from typing import Any

from interlock import Ask, Block, LLMRequest, LLMResponse, PluginManager, Respond, hook, hooks
from interlock.runtime import Agent, ScriptedBackend, Step

from .helpers import Recorder

# One letter per hook, and the documented order of a session as a regular expression.
LETTER = {
    "session_start": "S", "session_end": "E", "message_received": "r", "message_sending": "s",
    "pre_llm_call": "L", "post_llm_call": "l", "llm_stream_chunk": "c", "pre_tool_call": "T",
    "post_tool_call": "t", "turn_end": "n", "error": "x",
}  # fmt: skip
TURN = r"r(?:L(?:c*l(?:Tt)*)?)*s n"
SESSION = re.compile(rf"^S(?:{TURN})*E$".replace(" ", ""))


def shell(command: str) -> str:
    """Run a command (not really)."""
    if command == "fail":
        raise RuntimeError("tool broke")
    return f"ran {command}"


@hook("pre_tool_call")
def gate(payload: Any, ctx: Any) -> Any:
    command = payload.arguments.get("command")
    if command == "rm":
        return Block("no")
    if command == "ask":
        return Ask("really?")
    return None


@hook("pre_llm_call")
def cache(payload: LLMRequest, ctx: Any) -> Respond[LLMResponse] | None:
    last = payload.messages[-1]
    return Respond(LLMResponse("cache", "cached")) if last.content == "cached?" else None


@hook("message_sending")
def outbound(payload: Any, ctx: Any) -> Block | None:
    return Block("not today") if "secret" in payload.content else None


def calls(*commands: str) -> Step:
    return Step(tool_calls=tuple(("shell", {"command": c}) for c in commands))


SCENARIOS: list[tuple[str, list[Step | str], list[str], dict[str, Any]]] = [
    ("tools", [calls("ls", "rm", "ask", "fail"), "done"], ["go"], {}),
    ("streaming", ["streamed answer", "again"], ["a", "b"], {"stream": True}),
    ("respond", [], ["cached?"], {}),
    ("outbound block", ["a secret"], ["tell me"], {}),
    ("model error", [], ["boom"], {"model_error": True}),
]


class Broken(ScriptedBackend):
    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise ConnectionError("down")


async def run_scenario(
    script: list[Step | str], prompts: list[str], options: dict[str, Any]
) -> str:
    manager = PluginManager()
    recorder = Recorder()
    for plugin in (recorder, gate, cache, outbound):
        manager.register(plugin)
    model = Broken() if options.pop("model_error", False) else ScriptedBackend(script)
    agent = Agent(model, tools=[shell], manager=manager, approver=lambda c, q: False, **options)
    async with agent.session() as session:
        for prompt in prompts:
            await session.send(prompt)
    return "".join(LETTER[name] for name in recorder.names())


async def test_every_catalog_hook_fires_in_the_documented_order() -> None:
    fired: set[str] = set()
    for name, script, prompts, options in SCENARIOS:
        trace = await run_scenario(script, prompts, dict(options))
        without_errors = trace.replace("x", "")
        assert SESSION.match(without_errors), f"{name}: {trace}"
        fired |= set(trace)
    missing = {spec.name for spec in hooks.CATALOG if LETTER[spec.name] not in fired}
    assert missing == set(), f"hooks never fired: {sorted(missing)}"
    assert set(LETTER) == {spec.name for spec in hooks.CATALOG}


async def test_each_event_fires_its_hook_exactly_once() -> None:
    trace = await run_scenario([calls("ls"), "done"], ["go"], {})
    assert trace == "SrLlTtLlsnE"
