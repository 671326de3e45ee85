"""What every adapter shares: sessions keyed by the host's ids, hooks fired from sync or
async host code, and each outcome turned into a decision the host can act on.

An adapter turns its host's seams into catalog hooks and the decisions back into what the
host's model sees. It never lets interlock raise into the host: a gate that fails, or
anything that goes wrong while asking the plugins, becomes a visible block with a reason.

    bridge = Bridge(manager, host="langchain")
    session = bridge.session_sync(thread_id)             # opened (session_start) on first use
    verdict = bridge.fire_sync(hooks.PRE_TOOL_CALL, tool_call(name, args, call_id), session)
    if verdict.blocked:
        return error_result(verdict.reason)
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload

from .. import (
    HookResult,
    HookSpec,
    InterlockError,
    JsonValue,
    Level,
    PluginManager,
    SessionEnd,
    SessionScope,
    SessionStart,
    ToolCall,
    hooks,
)
from .._extras import missing_extra as missing_extra  # the adapters' missing host library
from .._frozen import freeze_json

logger = logging.getLogger("interlock.adapters")

P = TypeVar("P")

Approver = Callable[[ToolCall, str], bool]
"""Decides an `Ask` where the host has no approval mechanism: True lets the call run."""


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict(Generic[P]):
    """What the plugins decided about one event, in the terms an adapter acts on.

    `payload` is the payload to go on with (the plugins' final version, or the host's own
    when nobody changed it). `blocked` with `reason`: do not go on; show the reason where
    the host's model will see it. `response`: a `Respond` answer (pre_llm_call). `question`:
    an `Ask` the host should put to its approver (a host without one treats it as a block).
    """

    payload: P
    blocked: bool = False
    reason: str | None = None
    blocked_by: str | None = None
    response: Any = None
    question: str | None = None
    result: HookResult[Any] | None = None

    @property
    def changed(self) -> bool:
        """Whether a plugin changed the payload."""
        return self.result is not None and self.result.payload is not None

    def refusal(self, what: str, anonymous: str = "a plugin") -> str:
        """A block as the host's model reads it: `<what> by plugin '<name>': <reason>`.

        `what` says what happened (`"tool 'shell' was blocked"`); `anonymous` stands for
        the plugin when the block names none.
        """
        return f"{what} by plugin {self.blocked_by or anonymous!r}: {self.reason}"


class UngovernedToolError(InterlockError):
    """An agent holds a tool interlock cannot gate (a hosted tool that runs on the model
    provider's side, a code executor, a local computer or shell tool): refused by the
    adapter, unless it was told to run such tools ungoverned with a warning. `agent`,
    `tool` and `kind` name it; the message says why it cannot be gated and the fix."""

    def __init__(self, agent: str, tool: str, kind: str, *, why: str, fix: str) -> None:
        self.agent = agent
        self.tool = tool
        self.kind = kind
        super().__init__(
            f"agent {agent!r} has the {kind} {tool!r}, which interlock cannot gate ({why}); "
            f"remove it, or pass {fix} to run it ungoverned with a warning"
        )


class Session:
    """One host conversation (thread, run, client connection) as interlock sees it.

    Its scope gives plugins per-session state; `system_items` collects what plugins
    appended (durable for the session, model-visible from the host's next model call on),
    for the adapter to put into the host's messages with `take_system_items()`.
    """

    def __init__(self, bridge: Bridge, key: str) -> None:
        self.key = key
        self.bridge = bridge
        self.items: list[tuple[str, str, str]] = []  # (kind, text, plugin), all of them
        self._pending: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self.last_used = time.monotonic()
        self.started = False
        handles = {"system_items": self, "notify": self}
        self.scope: SessionScope = bridge.manager.session(
            key, tags=bridge.tags, capabilities=handles
        )

    def write_system_item(self, kind: str, text: str, *, plugin: str) -> None:
        """The `system_items` writer: kept for the host's next model call."""
        with self._lock:
            self.items.append((kind, text, plugin))
            self._pending.append((kind, text, plugin))

    def write_notification(self, text: str, *, level: Level, plugin: str) -> None:
        """The `notify` writer: the user's side, never the model's (logged, or the
        bridge's `notify` callback)."""
        notify = self.bridge.notify
        if notify is not None:
            notify(self.key, text, level, plugin)
            return
        logger.log(_LEVELS[level], "%s (from plugin %r, session %r)", text, plugin, self.key)

    def take_system_items(self) -> list[tuple[str, str, str]]:
        """The system items appended since the last call, oldest first: (kind, text, plugin)."""
        with self._lock:
            taken, self._pending = self._pending, []
        return taken


_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class Bridge:
    """Sessions and hook firing for one adapter instance over one manager.

    Sessions are keyed by the host's id (`None`: a session of its own per call site that
    has no id, see `session`). They open on first use (`session_start`) and close when the
    adapter says the host's run is over, or after `idle_ttl` seconds unused
    (`session_end`).
    """

    def __init__(
        self,
        manager: PluginManager,
        *,
        host: str,
        tags: tuple[str, ...] = (),
        idle_ttl: float | None = 3600.0,
        approver: Approver | None = None,
        notify: Callable[[str, str, Level, str], None] | None = None,
    ) -> None:
        self.manager = manager
        self.host = host
        self.tags = tags
        self.idle_ttl = idle_ttl
        self.approver = approver
        self.notify = notify
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    # -- sessions ---------------------------------------------------------------------

    def key(self, host_id: object | None) -> str:
        """The session key for a host id; a fresh one when the host gives none."""
        if host_id is None or host_id == "":
            return f"{self.host}-{uuid.uuid4().hex[:12]}"
        return str(host_id)

    async def session(self, host_id: object | None) -> Session:
        """The open session for `host_id`, opened (and `session_start` fired) if new."""
        session, new = self._get(host_id)
        if new:
            session.scope.open()
            await self.fire(hooks.SESSION_START, SessionStart(session.key, self.tags), session)
            session.started = True
        await self._sweep()
        return session

    def session_sync(self, host_id: object | None) -> Session:
        """`session` for sync host code."""
        session, new = self._get(host_id)
        if new:
            session.scope.open()
            self.fire_sync(hooks.SESSION_START, SessionStart(session.key, self.tags), session)
            session.started = True
        self._sweep_sync()
        return session

    def find(self, host_id: object) -> Session | None:
        """The open session for `host_id`, or None (nothing is opened)."""
        with self._lock:
            return self._sessions.get(str(host_id))

    async def end(self, session: Session, reason: str = "completed") -> None:
        """Close `session`: `session_end` fires, background work is drained, state dropped."""
        if not self._forget(session):
            return
        try:
            await self.fire(hooks.SESSION_END, SessionEnd(session.key, reason), session)
            await self.manager.drain()
        finally:
            session.scope.close()

    def end_sync(self, session: Session, reason: str = "completed") -> None:
        """`end` for sync host code."""
        if not self._forget(session):
            return
        try:
            self.fire_sync(hooks.SESSION_END, SessionEnd(session.key, reason), session)
            self.manager.drain_sync()
        finally:
            session.scope.close()

    async def aclose(self) -> None:
        """End every open session (the host is shutting the adapter down)."""
        for session in self._open_sessions():
            await self.end(session, "closed")

    def close(self) -> None:
        """`aclose` for sync host code."""
        for session in self._open_sessions():
            self.end_sync(session, "closed")

    # -- firing -----------------------------------------------------------------------

    async def fire(self, hook: HookSpec[P], payload: P, session: Session | None) -> Verdict[P]:
        """Invoke `hook` for `session`; never raises (a failure is a block)."""
        if not self.manager.has(hook):
            return Verdict(payload)
        try:
            scope = None if session is None else session.scope
            result = await self.manager.invoke(hook, payload, scope=scope)
        except Exception as error:  # interlock's own failure: the event is not judged
            return self._unjudged(hook, payload, error)
        return self._verdict(payload, result, session)

    def fire_sync(self, hook: HookSpec[P], payload: P, session: Session | None) -> Verdict[P]:
        """`fire` for sync host code (async handlers run on interlock's own loop)."""
        if not self.manager.has(hook):
            return Verdict(payload)
        try:
            scope = None if session is None else session.scope
            result = self.manager.invoke_sync(hook, payload, scope=scope)
        except Exception as error:
            return self._unjudged(hook, payload, error)
        return self._verdict(payload, result, session)

    def approve(self, call: ToolCall, question: str) -> bool:
        """An `Ask` put to the bridge's approver; without one it is refused."""
        if self.approver is None:
            return False
        try:
            return bool(self.approver(call, question))
        except Exception:
            logger.exception("the approver failed on %r; the call is refused", call.tool_name)
            return False

    def denied(self, call: ToolCall, question: str) -> str | None:
        """An `Ask` put to the approver (`approve`): None when the call may run, else the
        refusal the model reads, `not approved (<why>): <question>`."""
        if self.approve(call, question):
            return None
        why = "the approver said no" if self.approver else "there is no approver"
        return f"not approved ({why}): {question}"

    # -- private ----------------------------------------------------------------------

    def _get(self, host_id: object | None) -> tuple[Session, bool]:
        key = self.key(host_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                session.last_used = time.monotonic()
                return session, False
            session = self._sessions[key] = Session(self, key)
        return session, True

    def _forget(self, session: Session) -> bool:
        with self._lock:
            if self._sessions.get(session.key) is not session:
                return False
            del self._sessions[session.key]
        return True

    def _open_sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    def _idle(self) -> list[Session]:
        """Sessions unused for `idle_ttl`; looked for at most every tenth of it."""
        ttl = self.idle_ttl
        now = time.monotonic()
        if ttl is None or now - self._swept < ttl / 10:
            return []
        self._swept = now
        with self._lock:
            return [s for s in self._sessions.values() if now - s.last_used > ttl]

    async def _sweep(self) -> None:
        for session in self._idle():
            await self.end(session, "idle")

    def _sweep_sync(self) -> None:
        for session in self._idle():
            self.end_sync(session, "idle")

    def _verdict(self, payload: P, result: HookResult[Any], session: Session | None) -> Verdict[P]:
        final = payload if result.payload is None else result.payload
        if result.blocked:
            return Verdict(final, True, result.reason, result.blocked_by, result=result)
        return Verdict(
            final,
            response=result.response if result.responded else None,
            question=result.question if result.asked else None,
            result=result,
        )

    def _unjudged(self, hook: HookSpec[Any], payload: P, error: Exception) -> Verdict[P]:
        logger.exception("interlock could not judge %s for %s", hook.name, self.host)
        return Verdict(payload, True, unjudged(hook.name, error), "interlock")


def unjudged(hook: str, error: Exception) -> str:
    """The reason an event is blocked when interlock itself failed to judge it."""
    return (
        f"interlock could not judge {hook} ({describe(error)}); "
        "it is blocked rather than let through unjudged"
    )


def describe(error: BaseException) -> str:
    """An exception as one line: `<type>: <message>`."""
    return f"{type(error).__name__}: {error}"


def json_data(value: Any) -> JsonValue:
    """`value` as JSON data a payload can hold: pydantic's view of models, dataclasses
    and the like; anything it cannot show becomes its `str`."""
    from pydantic_core import to_jsonable_python

    try:
        data = to_jsonable_python(value, fallback=str)
    except Exception:
        data = str(value)
    frozen: JsonValue = freeze_json(data)
    return frozen


@overload
def plain(value: Mapping[str, Any]) -> dict[str, Any]: ...
@overload
def plain(value: Any) -> Any: ...


def plain(value: Any) -> Any:
    """Frozen payload data (`FrozenDict`s, tuples) as the plain dicts and lists host
    libraries take, validate and serialise; other values are returned as they are."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def arguments(value: Any) -> Mapping[str, JsonValue]:
    """A tool's arguments as a mapping, never None: a JSON object is used as it is, text
    holding one is parsed, anything else is kept under `"input"`."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            return {"input": value}
    data = json_data(value)
    if isinstance(data, Mapping):
        return data
    return {"input": data}


def tool_call(name: str, args: Any, call_id: str | None) -> ToolCall:
    """The `ToolCall` payload for a host's tool call."""
    return ToolCall(str(name), arguments(args), call_id or "")


def text(value: Any) -> str:
    """A host's message or tool output as text: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    import json

    return json.dumps(json_data(value), ensure_ascii=False)
