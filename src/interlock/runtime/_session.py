"""`Session`: one conversation, its durable log, and the capability writers plugins use."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any

from interlock import (
    CapabilityError,
    ErrorEvent,
    HookResult,
    HookSpec,
    JsonValue,
    Level,
    Message,
    MessageEvent,
    RegistrationStats,
    SessionEnd,
    SessionStart,
    ToolCall,
    hooks,
)

from ._events import EventKind, TraceEvent
from ._store import Record, RecordKind, SessionLog

if TYPE_CHECKING:
    from ._agent import Agent
    from ._turn import TurnResult

logger = logging.getLogger("interlock.runtime")

INTERRUPTED = "interrupted: the agent stopped before this tool returned; its result is unknown"

SYSTEM_ITEM_CHANNEL = "system_item"
"""The `channel` of the `message_received` event that judges a system item."""

# Set while `message_received` judges a system item: an item appended then (by a handler of
# that call, or work it started) is refused, so that judging items never makes more items.
_judging_item: ContextVar[bool] = ContextVar("interlock_judging_system_item", default=False)


class Session:
    """One conversation with an agent. Use it as an async context manager:

        async with agent.session("s-1", tags=["dev"]) as session:
            result = await session.send("list the files")

    Entering fires `session_start`, leaving fires `session_end` and waits for background
    plugins (a background `session_end` handler may wait for the others first, with
    `ctx.stats.settled()`: the profiler's table counts every call that way). Everything
    the agent does is in the session's durable log (`records()`), which is also where the
    model's context comes from: reopening a session id continues the conversation. Several
    sessions may run at once, in one task or in many.
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
        self._written: list[tuple[str, str, str]] = []  # system items not judged yet
        self._pending: list[Message] = []  # system items judged, not yet in the model's context
        writers = _Writers(
            self._write_system_item, self._write_notification, self._stats, agent.manager.settle
        )
        self._scope = agent.manager.session(
            self.id,
            tags=tags,
            metadata=self.metadata,
            capabilities={"system_items": writers, "notify": writers, "stats": writers},
        )
        self._open = False

    @property
    def store(self) -> SessionLog:
        """The log this session writes to."""
        return self.agent.store

    async def __aenter__(self) -> Session:
        self.store.open_session(self.id, self.tags, self.metadata)
        self._load()
        # An explicit scope, passed to every invoke: sessions never see each other's
        # plugins, state or capabilities, even when several share one task.
        self._scope.open()
        self._open = True
        try:
            payload = SessionStart(self.id, self.tags, self.metadata)
            await self.fire(hooks.SESSION_START, payload)
        except BaseException as exc:
            reason = _end_reason(exc)
            self._close("interrupted" if reason == "interrupted" else "error: session_start failed")
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reason = _end_reason(exc)
        try:
            await self.judge_system_items()  # written after the last model call: logged
            await self.fire(hooks.SESSION_END, SessionEnd(self.id, reason, self.turn))
            await self.agent.manager.drain()
            await self.judge_system_items()  # from background work that ended just now
            self.record("stats", {"registrations": [_stats(s) for s in self._stats()]})
        finally:
            self._close(reason)

    async def send(self, text: str) -> TurnResult:
        """Handle one user message: one turn of the agent's loop.

        Failures of plugins, the model or tools end up in the result and the log; this
        raises only when the session is not open, or when the log cannot be written.
        """
        from ._turn import Turn

        if not self._open:
            raise RuntimeError(
                f"session {self.id!r} is not open; use `async with agent.session(...)`"
            )
        _close_dangling_calls(self.history)
        self.turn += 1
        return await Turn(self, self.turn).run(text)

    def records(self) -> list[Record]:
        """This session's log, in order."""
        return self.store.records(self.id)

    # -- what the turn loop uses -----------------------------------------------------------

    def record(self, kind: RecordKind, data: Mapping[str, Any]) -> Record:
        """Append to the log (committed before this returns)."""
        return self.store.append(self.id, kind, data, turn=self.turn)

    def emit(self, kind: EventKind, name: str, **detail: Any) -> None:
        """Tell the agent's live view what happened; a failing view never stops the agent."""
        on_event = self.agent.on_event
        if on_event is None:
            return
        try:
            on_event(TraceEvent(kind, name, self.id, self.turn, detail))
        except Exception:
            logger.exception("the agent's on_event callback failed; the agent goes on")

    async def fire(
        self, spec: HookSpec[Any], payload: Any, *, per_chunk: bool = False
    ) -> HookResult[Any]:
        """Invoke a hook for this session: log what plugins did, show it, report failures.

        `per_chunk` (streamed chunks): a result that only changed the payload is not logged
        (the caller logs one record per answer) and no hook event is shown (the caller shows
        the chunk as the plugins left it, never the model's own text).
        """
        result = await self.agent.manager.invoke(spec, payload, turn=self.turn, scope=self._scope)
        if not result.empty and not (per_chunk and _only_modified(result)):
            self.record("hook", _outcome(spec, result))  # a plugin did something: logged
        if not per_chunk:
            # What the host goes on with, never what a blocking or redacting plugin stopped.
            shown = None if result.blocked else (result.payload or payload)
            self.emit("hook", spec.name, result=result, payload=shown)
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

    async def take_system_items(self) -> list[Message]:
        """Judge the system items written since the last call and move them into the
        model's context."""
        await self.judge_system_items()
        items, self._pending = self._pending, []
        self.history.extend(items)
        return items

    async def judge_system_items(self) -> None:
        """Pass each system item written since the last call through `message_received`
        (role `system`, channel `system_item`, metadata `kind` and `plugin`), then log it,
        show it and queue it for the model's context as the plugins left it.

        An item is text a plugin copied from somewhere (a todo list, a tool's arguments):
        what a redacting plugin removes from messages is removed from it before it is
        stored, shown or sent. An item the hook blocks is withheld: the log keeps a note
        naming the plugin and the reason, the model gets nothing.
        """
        written, self._written = self._written, []
        for kind, text, plugin in written:
            await self._judge_item(kind, text, plugin)

    async def _judge_item(self, kind: str, text: str, plugin: str) -> None:
        metadata = {"kind": kind, "plugin": plugin}
        event = MessageEvent(text, role="system", channel=SYSTEM_ITEM_CHANNEL, metadata=metadata)
        token = _judging_item.set(True)
        try:
            judged = await self.fire(hooks.MESSAGE_RECEIVED, event)
        finally:
            _judging_item.reset(token)
        if judged.blocked:
            note = f"[withheld by plugin {judged.blocked_by!r}: {judged.reason}]"
            self.record("system_item", {"kind": kind, "text": note, "plugin": plugin,
                                        "withheld": judged.reason})  # fmt: skip
            self.emit("system_item", kind, text=note, plugin=plugin, withheld=judged.reason)
            return
        text = (judged.payload or event).content
        self.record("system_item", {"kind": kind, "text": text, "plugin": plugin})
        self._pending.append(_system_item(kind, text))
        self.emit("system_item", kind, text=text, plugin=plugin)

    # -- the capability writers (reached by plugins only through bound handles) ----------

    def _write_system_item(self, kind: str, text: str, plugin: str) -> None:
        if _judging_item.get():
            raise CapabilityError(
                f"plugin {plugin!r}: system_items.append is refused while message_received "
                f"judges a system item (role 'system', channel {SYSTEM_ITEM_CHANNEL!r}); "
                "append only for the user's messages, e.g. register with "
                "when={'role': 'user'}",
                plugin=plugin,
            )
        self._written.append((kind, text, plugin))  # logged once judged (judge_system_items)

    def _write_notification(self, text: str, level: Level, plugin: str) -> None:
        self.record("notification", {"text": text, "level": level, "plugin": plugin})
        self.emit("notification", level, text=text, plugin=plugin)

    def _stats(self) -> list[RegistrationStats]:
        """Counters of the global plugins and of this session's own."""
        return [s for s in self.agent.manager.stats().registrations if s.scope in (None, self.id)]

    def _close(self, reason: str) -> None:
        self._open = False
        self._scope.close()
        self.store.end_session(self.id, reason)

    def _load(self) -> None:
        """Rebuild the model's context and the turn count from the log (reopened sessions)."""
        self.history.clear()
        self._written.clear()
        self._pending.clear()
        for record in self.records():
            self.turn = max(self.turn, record.turn or 0)
            message = _message(record)
            if message is not None:
                self.history.append(message)
        _close_dangling_calls(self.history)


class _Writers:
    """The host's side of `system_items`, `notify` and `stats` for one session, and
    nothing else."""

    __slots__ = ("_item", "_note", "_settle", "_stats")

    def __init__(
        self,
        item: Callable[[str, str, str], None],
        note: Callable[[str, Level, str], None],
        stats: Callable[[], list[RegistrationStats]],
        settle: Callable[[], Awaitable[None]],
    ) -> None:
        self._item = item
        self._note = note
        self._stats = stats
        self._settle = settle

    def read_stats(self) -> tuple[RegistrationStats, ...]:
        return tuple(self._stats())

    async def settle(self) -> None:
        await self._settle()  # `StatsView.settled`: the other background calls end first

    def write_system_item(self, kind: str, text: str, *, plugin: str) -> None:
        self._item(kind, text, plugin)

    def write_notification(self, text: str, *, level: Level, plugin: str) -> None:
        self._note(text, level, plugin)


def _end_reason(exc: BaseException | None) -> str:
    """Why a session ended: `completed`, `interrupted` (Ctrl-C, a cancelled task, a
    command line whose reader went away), or `error: TYPE`."""
    if exc is None:
        return "completed"
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return "interrupted"
    return f"error: {type(exc).__name__}"


def _close_dangling_calls(history: list[Message]) -> None:
    """Answer tool calls left without a result (a killed or cancelled turn), so that the
    conversation stays valid for chat-completions servers."""
    answered = {m.tool_call_id for m in history if m.role == "tool"}
    for index in range(len(history) - 1, -1, -1):
        message = history[index]
        if message.role == "assistant" and message.tool_calls:
            missing = [c for c in message.tool_calls if c.call_id not in answered]
            fillers = [Message("tool", INTERRUPTED, name=c.tool_name, tool_call_id=c.call_id)
                       for c in missing]  # fmt: skip
            results_end = index + 1
            while results_end < len(history) and history[results_end].role == "tool":
                results_end += 1
            history[results_end:results_end] = fillers
            break


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
        content = data.get("content")
        if content is None:  # a reply that was not delivered
            content = f"[your reply was not delivered: {data.get('withheld')}]"
        return Message("assistant", str(content), tool_calls=calls)
    if record.kind == "tool_result":
        return Message(
            "tool", str(data["output"]), name=str(data["tool_name"]),
            tool_call_id=str(data["call_id"]),
        )  # fmt: skip
    if record.kind == "system_item" and "withheld" not in data:
        return _system_item(str(data["kind"]), str(data["text"]))
    return None


def _only_modified(result: HookResult[Any]) -> bool:
    return not (
        result.blocked or result.responded or result.asks or result.errors or result.violations
    )


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


def _stats(stats: RegistrationStats) -> dict[str, Any]:
    return {**dataclasses.asdict(stats), "time_mean": stats.time_mean}
