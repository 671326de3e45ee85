"""`Agent`: a model, tools, a system prompt and a plugin manager, run as sessions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from interlock import FrozenDict, JsonValue, Message, PluginManager, ToolCall

from ._events import TraceEvent
from ._session import Session
from ._store import SessionLog, SessionStore
from ._tools import Tool, ToolSet
from ._turn import TurnResult
from .backends import ModelBackend

Approver = Callable[[ToolCall, str], bool | Awaitable[bool]]
"""Decides a tool call a plugin asked about: `(call, question) -> allowed`."""


class Agent:
    """The reference agent runtime: fires every hook of the catalog as it works.

        agent = Agent(ScriptedBackend(["Hello!"]), tools=[read_file], manager=manager)
        async with agent.session() as session:
            result = await session.send("hi")

    - `model`: a `ModelBackend` (`ScriptedBackend` offline, `OpenAIBackend` for real ones).
    - `tools`: plain typed functions (or `Tool`s); their schemas come from the type hints.
    - `manager`: the plugins; without one, the agent runs with none (and pays nothing).
    - `approver`: decides tool calls a plugin `Ask`ed about; without one, they are refused.
    - `store`: the durable session log, a `SessionLog` (default: SQLite in memory;
      `open_session_store(url)` opens a file or PostgreSQL).
    - `stream`: stream model answers (fires `llm_stream_chunk`); `params`: model settings.
    - `max_iterations`: model calls per turn before the agent gives up.
    - `on_event`: called with a `TraceEvent` for every step, for live views.
    """

    def __init__(
        self,
        model: ModelBackend,
        *,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        system_prompt: str = "",
        manager: PluginManager | None = None,
        approver: Approver | None = None,
        store: SessionLog | None = None,
        stream: bool = False,
        params: Mapping[str, JsonValue] | None = None,
        max_iterations: int = 8,
        on_event: Callable[[TraceEvent], None] | None = None,
    ) -> None:
        if max_iterations < 1:
            raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
        self.model = model
        self.model_name = str(getattr(model, "model", type(model).__name__))
        self.tools = ToolSet(tools)
        self.system_prompt = system_prompt
        self.system_messages = (Message("system", system_prompt),) if system_prompt else ()
        self.manager = manager if manager is not None else PluginManager()
        self.approver = approver
        self.store: SessionLog = store if store is not None else SessionStore(":memory:")
        self.stream = stream
        self.params = FrozenDict(params or {})
        self.max_iterations = max_iterations
        self.on_event = on_event

    def session(
        self,
        session_id: str | None = None,
        *,
        tags: Iterable[str] = (),
        metadata: Mapping[str, JsonValue] | None = None,
    ) -> Session:
        """A new session, or the continuation of a logged one when `session_id` exists."""
        return Session(self, session_id, tags=tuple(tags), metadata=metadata)

    async def run(self, prompt: str, *, session_id: str | None = None) -> TurnResult:
        """One message in a session of its own (or continuing `session_id`)."""
        async with self.session(session_id) as session:
            return await session.send(prompt)

    async def aclose(self) -> None:
        """Close the model backend's connections (if it has any) and the plugin manager."""
        close = getattr(self.model, "aclose", None)
        if close is not None:
            await close()
        await self.manager.aclose()
