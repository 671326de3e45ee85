"""Running built-in plugins through the reference runtime."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from interlock import LLMRequest, LLMResponse, PluginManager
from interlock.runtime import Agent, ScriptedBackend, SessionStore, Step


class Model(ScriptedBackend):
    """The scripted model, remembering every request it was sent."""

    def __init__(self, script: Iterable[Step | str]) -> None:
        super().__init__(script)
        self.requests: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        return await super().complete(request)


def shell(command: str) -> str:
    """Pretend to run a command; its output quotes it."""
    return f"ran: {command}"


@dataclass
class Run:
    """What a session did: replies, the model's requests, the session log."""

    replies: list[Any]
    model: Model
    records: list[tuple[str, dict[str, Any]]]
    notifications: list[str] = field(default_factory=list)

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [data for k, data in self.records if k == kind]


async def run(
    plugins: Sequence[tuple[object, dict[str, Any]]],
    script: Iterable[Step | str],
    prompts: Sequence[str],
    *,
    tools: Sequence[Any] = (shell,),
    tags: Sequence[str] = (),
    manager: PluginManager | None = None,
    session_id: str = "s-1",
) -> Run:
    """One session of `prompts` with `plugins` registered (each with its options)."""
    manager = manager or PluginManager()
    for plugin, options in plugins:
        manager.register(plugin, **options)
    model = Model(script)
    store = SessionStore()
    agent = Agent(model, tools=list(tools), manager=manager, store=store,
                  approver=lambda call, question: False)  # fmt: skip
    replies = []
    async with agent.session(session_id, tags=list(tags)) as session:
        for prompt in prompts:
            replies.append(await session.send(prompt))
    await agent.aclose()
    records = [(r.kind, dict(r.data)) for r in store.records(session_id)]
    store.close()
    notes = [str(data["text"]) for kind, data in records if kind == "notification"]
    return Run(replies, model, records, notes)
