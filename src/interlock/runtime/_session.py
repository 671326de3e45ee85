"""`Session`: one conversation, its durable log, and the capability writers plugins use."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from interlock import (
    ErrorEvent,
    HookResult,
    HookSpec,
    JsonValue,
    Level,
    Message,
    SessionEnd,
    SessionScope,
    SessionStart,
    ToolCall,
    hooks,
)

from ._events import EventKind, TraceEvent
from ._store import Record, RecordKind, SessionStore

if TYPE_CHECKING:
    from ._agent import Agent
    from ._turn import TurnResult


class Session:
    """One conversation with an agent. Use it as an async context manager:

        async with agent.session("s-1", tags=["dev"]) as session:
            result = await session.send("list the files")

    Entering fires `session_start`, leaving fires `session_end` and waits for background
    plugins. Everything the agent does is in the session's durable log (`records()`),
    which is also where the model's context comes from: reopening a session id continues
    the conversation. The session is the host's writer for the `system_items` and `notify`
    capabilities of its plugins.
    """

    def __init__(
        self,
        agent: Agent,
        session_id: str | None = None,
        *,
        tags: tuple[str, ...] = (),
        metadata: Mapping[str, JsonValue] | None = None,
    ) -> None:
        self.agent = agent
        self.id = session_id or uuid.uuid4().hex[:12]
        self.tags = tags
        self.metadata = dict(metadata or {})
        self.history: list[Message] = []
        self.turn = 0
        self._scope: SessionScope | None = None

    @property
    def store(self) -> SessionStore:
        """The log this session writes to."""
        return self.agent.store

    async def __aenter__(self) -> Session:
        self.store.open_session(self.id, self.tags, self.metadata)
        self._load()
        manager = self.agent.manager
        writers: dict[str, object] = {"system_items": self, "notify": self}
        scope = manager.session(
            self.id, tags=self.tags, metadata=self.metadata, capabilities=writers
        )
        self._scope = await scope.__aenter__()
        await self.fire(hooks.SESSION_START, SessionStart(self.id, self.tags, self.metadata))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reason = "completed" if exc is None else f"error: {type(exc).__name__}"
        try:
            await self.fire(hooks.SESSION_END, SessionEnd(self.id, reason, self.turn))
            await self.agent.manager.drain()
        finally:
            if self._scope is not None:
                await self._scope.__aexit__(exc_type, exc, tb)
            self.store.end_session(self.id, reason)

    async def send(self, text: str) -> TurnResult:
        """Handle one user message: one turn of the agent's loop."""
        from ._turn import Turn

        self.turn += 1
        return await Turn(self, self.turn).run(text)

    def records(self) -> list[Record]:
        """This session's log, in order."""
        return self.store.records(self.id)

    # -- what the turn loop uses -----------------------------------------------------------

    def record(
        self, kind: RecordKind, data: Mapping[str, Any], *, turn: int | None = None
    ) -> Record:
        """Append to the log (committed before this returns)."""
        return self.store.append(self.id, kind, data, turn=self.turn if turn is None else turn)

    def emit(self, kind: EventKind, name: str, **detail: Any) -> None:
        """Tell the agent's live view what happened."""
        if self.agent.on_event is not None:
            self.agent.on_event(TraceEvent(kind, name, self.id, self.turn, detail))

    async def fire(self, spec: HookSpec[Any], payload: Any) -> HookResult[Any]:
        """Invoke a hook for this session: log what plugins did, show it, report failures."""
        result = await self.agent.manager.invoke(spec, payload, turn=self.turn)
        if not result.empty:  # a plugin did something: it goes in the log
            self.record("hook", _outcome(spec, result))
        self.emit("hook", spec.name, result=result)
        if spec is not hooks.ERROR:
            for failure in result.errors:
                event = ErrorEvent(failure.kind, failure.message, spec.name, failure.plugin)
                await self.fail(event)
        return result

    async def fail(self, event: ErrorEvent) -> None:
        """Log a failure and fire the `error` hook for it."""
        self.record("error", {"type": event.error_type, "message": event.message,
                              "stage": event.stage, "plugin": event.plugin})  # fmt: skip
        await self.fire(hooks.ERROR, event)

    # -- the capability writers plugins reach through ctx.system_items / ctx.notify -------

    def write_system_item(self, kind: str, text: str, *, plugin: str) -> None:
        """Log a system item; from the next model call on, the model sees it."""
        self.record("system_item", {"kind": kind, "text": text, "plugin": plugin})
        self.history.append(_system_item(kind, text))
        self.emit("system_item", kind, text=text, plugin=plugin)

    def write_notification(self, text: str, *, level: Level, plugin: str) -> None:
        """Log a notification and show it to the user; the model never sees it."""
        self.record("notification", {"text": text, "level": level, "plugin": plugin})
        self.emit("notification", level, text=text, plugin=plugin)

    def _load(self) -> None:
        """Rebuild the model's context and the turn count from the log (reopened sessions)."""
        for record in self.records():
            self.turn = max(self.turn, record.turn or 0)
            message = _message(record)
            if message is not None:
                self.history.append(message)


def _system_item(kind: str, text: str) -> Message:
    return Message("system", f"{kind}: {text}")


def _message(record: Record) -> Message | None:
    data: Any = record.data  # JSON the runtime wrote itself
    if record.kind == "user" and data.get("content") is not None:
        return Message("user", str(data["content"]))
    if record.kind == "assistant":
        calls = tuple(
            ToolCall(str(c["tool_name"]), c["arguments"], str(c["call_id"]))
            for c in data.get("tool_calls") or ()
        )
        return Message("assistant", str(data.get("content") or ""), tool_calls=calls)
    if record.kind == "tool_result":
        return Message(
            "tool", str(data["output"]), name=str(data["tool_name"]),
            tool_call_id=str(data["call_id"]),
        )  # fmt: skip
    if record.kind == "system_item":
        return _system_item(str(data["kind"]), str(data["text"]))
    return None


def _outcome(spec: HookSpec[Any], result: HookResult[Any]) -> dict[str, Any]:
    return {
        "hook": spec.name,
        "modified_by": list(result.modified_by),
        "blocked_by": result.blocked_by,
        "reason": result.reason,
        "responded_by": result.responded_by,
        "asks": [list(ask) for ask in result.asks],
        "errors": [
            {"plugin": f.plugin, "kind": f.kind, "message": f.message} for f in result.errors
        ],
        "violations": [
            {"plugin": v.plugin, "action": v.action, "reason": v.reason} for v in result.violations
        ],
    }
