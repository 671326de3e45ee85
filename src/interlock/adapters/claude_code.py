"""Claude Code: interlock plugins as Claude Code hooks, through `interlock claude-hook`.

Claude Code starts one process per hook event, with the event as JSON on stdin. Put the
command in `.claude/settings.json` for the events interlock handles:

    {"hooks": {"PreToolUse": [{"hooks": [{"type": "command",
        "command": "interlock claude-hook --config .claude/interlock.yaml"}]}]}}

Each process loads the config, fires the matching catalog hook (`EVENTS`), and answers as
Claude Code expects: nothing at all when the plugins let the event pass; for PreToolUse
`permissionDecision` "deny" with the reason (Block), "ask" (Ask: Claude Code asks the
user) and `updatedInput` with the whole argument object (Modify); `decision: "block"` for
a prompt; `additionalContext` for what plugins add to the model's context; a
`systemMessage` for notifications. A failing gate, or a config that fails to load, still
denies the tool call (exit code 1 would let it run).

Per-session plugin state (`ctx.state`) lives in a `StateStore` between the processes of
one Claude Code session, locked around load, invoke and save, so concurrent events lose
no update. It is kept as JSON: state that is not JSON is dropped, with a warning.

Each event has an overall deadline (`DEFAULT_DEADLINE`, `--deadline`): waiting for the
session's lock and running the plugins both count. Past it the event is refused as
unjudged (a tool call denied, a prompt blocked), because Claude Code treats a hook that
outlives its own `timeout` as a non-blocking error and would run the tool.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .. import (
    HookSpec,
    Level,
    MessageEvent,
    PluginManager,
    SessionEnd,
    SessionStart,
    ToolCall,
    ToolResult,
    TurnEnd,
    hooks,
)
from .._claude import HOOKS_BY_EVENT, response_text, updated_response
from ._bridge import Bridge, Session, Verdict, arguments, tool_call

__all__ = [
    "CONTEXT_EVENTS",
    "DEFAULT_DEADLINE",
    "EVENTS",
    "Answer",
    "SessionState",
    "StateStore",
    "answer",
    "event_payload",
    "handle",
    "main",
    "refusal",
    "run",
    "stops",
]

logger = logging.getLogger("interlock.adapters.claude_code")

T = TypeVar("T")

EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "SessionEnd",
)
"""The Claude Code events interlock handles (each fires one catalog hook; see
`interlock._claude.HOOKS_BY_EVENT`). Others are let pass without a word."""

CONTEXT_EVENTS = frozenset(
    {"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure"}
)
"""Events whose answer can carry `additionalContext` (model context): system items added
at other events wait in the session's state for the next of these."""

DEFAULT_MAX_AGE = 7 * 24 * 3600.0
"""Seconds a session's state is kept unused before it is swept (a session can be resumed
days later, so this is generous; SessionEnd removes it at once)."""

DEFAULT_DEADLINE = 30.0
"""Seconds one `claude-hook` process may spend judging its event, waiting for the
session's lock included, before it refuses the event: well under Claude Code's hook
`timeout` (60 s unless settings.json says otherwise), past which Claude Code would let a
tool call run unjudged."""


# -- events and answers ---------------------------------------------------------------


def event_payload(event: Mapping[str, Any], *, turn: int = 0) -> tuple[HookSpec[Any], Any]:
    """The catalog hook and payload for a Claude Code hook event (its stdin JSON, or the
    Claude Agent SDK's hook input). `turn` is the session's current turn, for Stop and
    SessionEnd. Raises `ValueError` naming what is missing."""
    name = event.get("hook_event_name")
    if name not in HOOKS_BY_EVENT:
        raise ValueError(f"not a Claude Code event interlock handles: {name!r}")
    session_id = str(event.get("session_id") or "")
    if name in ("PreToolUse", "PostToolUse", "PostToolUseFailure"):
        tool = event.get("tool_name")
        if not isinstance(tool, str) or not tool:
            raise ValueError(f"a {name} event without a tool_name")
        call = tool_call(tool, event.get("tool_input"), _str(event.get("tool_use_id")))
        if name == "PreToolUse":
            return hooks.PRE_TOOL_CALL, call
        failed = name == "PostToolUseFailure"
        output = _str(event.get("error")) if failed else response_text(event.get("tool_response"))
        result = ToolResult(call.tool_name, call.arguments, call.call_id, output, failed)
        return hooks.POST_TOOL_CALL, result
    if name == "UserPromptSubmit":
        return hooks.MESSAGE_RECEIVED, MessageEvent(_str(event.get("prompt")))
    if name == "SessionStart":
        source = event.get("source")
        metadata = {"source": source} if isinstance(source, str) else {}
        return hooks.SESSION_START, SessionStart(session_id, metadata=metadata)
    if name == "SessionEnd":
        return hooks.SESSION_END, SessionEnd(session_id, _str(event.get("reason")) or "other", turn)
    return hooks.TURN_END, TurnEnd(turn, _str(event.get("last_assistant_message")))


def answer(
    event: Mapping[str, Any],
    verdict: Verdict[Any],
    *,
    context: Sequence[str] = (),
    messages: Sequence[str] = (),
) -> dict[str, Any]:
    """What Claude Code expects back for `event`, given the plugins' `verdict`: the JSON
    object for stdout (empty when the event simply passes).

    `context` is model context to add (`additionalContext`, where the event takes it),
    `messages` what the user is shown (`systemMessage`). A call the plugins let through
    carries no `permissionDecision`: Claude Code's own permission rules still apply.
    """
    name = str(event.get("hook_event_name"))
    out: dict[str, Any] = {}
    specific: dict[str, Any] = {}
    payload = verdict.payload
    if name == "PreToolUse":
        if verdict.blocked:
            specific["permissionDecision"] = "deny"
            specific["permissionDecisionReason"] = _reason(verdict, "the tool call")
        else:
            if isinstance(payload, ToolCall) and payload.arguments != arguments(
                event.get("tool_input")
            ):
                specific["updatedInput"] = dict(payload.arguments)
            if verdict.question is not None:
                specific["permissionDecision"] = "ask"
                specific["permissionDecisionReason"] = verdict.question
    elif name in ("PostToolUse", "PostToolUseFailure"):
        if verdict.blocked:  # the tool has run: Claude is told, and the turn goes on
            out["decision"] = "block"
            out["reason"] = _reason(verdict, "the tool's result")
        elif name == "PostToolUse" and isinstance(payload, ToolResult):
            original = event.get("tool_response")
            if payload.output != response_text(original):
                replaced = updated_response(original, payload.output)
                specific["updatedToolOutput"] = replaced
                if str(event.get("tool_name", "")).startswith("mcp__"):
                    specific["updatedMCPToolOutput"] = replaced  # older Claude Code
    elif name == "UserPromptSubmit":
        if verdict.blocked:
            out["decision"] = "block"
            out["reason"] = _reason(verdict, "the prompt")
        elif isinstance(payload, MessageEvent) and payload.content != _str(event.get("prompt")):
            # Claude Code cannot send a changed prompt; sending the original would show
            # the model what the plugin removed, so it is not sent at all.
            by = ", ".join(verdict.result.modified_by) if verdict.result else ""
            out["decision"] = "block"
            out["reason"] = (
                f"plugin {by or '(unknown)'} changed this prompt (for example to redact "
                "it), and Claude Code cannot send a changed prompt, so it was not sent: "
                "edit the prompt and send it again"
            )
    if context and name in CONTEXT_EVENTS and not out.get("decision") and not verdict.blocked:
        specific["additionalContext"] = "\n\n".join(context)
    if specific:
        out["hookSpecificOutput"] = {"hookEventName": name, **specific}
    if messages:
        out["systemMessage"] = "\n".join(messages)
    return out


def refusal(event_name: str, reason: str) -> Answer:
    """The answer when interlock cannot judge an event (a config that fails to load, an
    event it cannot read): a tool call is denied and a prompt not sent, with `reason`;
    any other event passes with `reason` on stderr (exit code 1, shown to the user)."""
    if event_name == "PreToolUse":
        specific = {"hookEventName": event_name, "permissionDecision": "deny"}
        return Answer({"hookSpecificOutput": {**specific, "permissionDecisionReason": reason}})
    if event_name == "UserPromptSubmit":
        return Answer({"decision": "block", "reason": reason})
    return Answer(None, 1, reason)


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """One `claude-hook` process's reply: the JSON object for stdout (None: print
    nothing), the exit code, and text for stderr."""

    output: dict[str, Any] | None = None
    code: int = 0
    stderr: str = ""


# -- per-session state ----------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class SessionState:
    """What one Claude Code session keeps between its hook processes."""

    session_id: str
    states: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    pending: list[str] = dataclasses.field(default_factory=list)  # context not yet given
    turn: int = 0
    ended: bool = False  # SessionEnd: removed instead of saved
    loaded: bytes = b""  # the stored form it was read from (unchanged: not written again)


class StateStore:
    """Per-session state for the hook processes of Claude Code sessions: one JSON file per
    session in `directory`, each use locked (POSIX `flock`) from load to save, so
    concurrent processes of one session take turns and lose no update.

    Each session has a lock file of its own (`locks/<key>`), so different sessions never
    wait for each other. A session's files go at SessionEnd, or once unused for `max_age`
    seconds (swept at most hourly); a lock file is removed only by the holder of its lock,
    and whoever locks a file checks it is still the one at its path, so a process waiting
    on a removed lock file tries again rather than getting in beside another.
    """

    def __init__(self, directory: str | Path, *, max_age: float = DEFAULT_MAX_AGE) -> None:
        self.directory = Path(directory)
        self.max_age = max_age

    @classmethod
    def default(cls) -> StateStore:
        """The store under interlock's data dir: `$INTERLOCK_DATA_DIR/claude-code`, else
        `$XDG_DATA_HOME/interlock/claude-code`, else `~/.local/share/interlock/claude-code`."""
        explicit = os.environ.get("INTERLOCK_DATA_DIR")
        base = Path(explicit) if explicit else _xdg_data() / "interlock"
        return cls(base / "claude-code")

    @contextlib.contextmanager
    def session(self, session_id: str, *, timeout: float | None = None) -> Iterator[SessionState]:
        """The session's state, locked until the block ends; saved then (or removed, if
        `ended`), unless the block raised. Waits at most `timeout` seconds for the lock
        (None: as long as it takes), then raises `TimeoutError`."""
        key = _key(session_id)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = self._lock(key, timeout)
        if fd is None:
            raise TimeoutError(
                f"another event of session {session_id!r} held the session's state "
                f"lock for the {timeout:.1f} s this one could wait"
            )
        try:
            state = self._load(key, session_id)
            yield state
            if state.ended:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{key}.json").unlink()
                self._unlink_lock(key)  # while still held: a waiter sees it gone
            else:
                self._save(key, state)
        finally:
            os.close(fd)  # releases the lock

    def sweep(self, *, force: bool = False) -> int:
        """Remove sessions unused for `max_age` (and lock files left without a session);
        at most hourly unless `force`. Returns how many sessions were removed."""
        marker = self.directory / "swept"
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            if not force and now - marker.stat().st_mtime < min(3600.0, self.max_age):
                return 0
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        marker.touch()
        removed = 0
        for path in self.directory.glob("*.json"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime <= self.max_age:
                    continue
                fd = self._lock(path.stem, 0)
                if fd is None:
                    continue  # in use right now
                try:
                    if now - path.stat().st_mtime > self.max_age:
                        path.unlink()
                        self._unlink_lock(path.stem)
                        removed += 1
                finally:
                    os.close(fd)
        locks = self.directory / "locks"
        for path in locks.glob("*") if locks.is_dir() else ():
            with contextlib.suppress(OSError):  # a session's first event died before saving
                if (self.directory / f"{path.name}.json").exists():
                    continue
                if now - path.stat().st_mtime <= 3600.0:
                    continue
                fd = self._lock(path.name, 0)
                if fd is not None:
                    try:
                        if not (self.directory / f"{path.name}.json").exists():
                            self._unlink_lock(path.name)
                    finally:
                        os.close(fd)
        for path in self.directory.glob("*.tmp"):  # a writer that died before its rename
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > 3600.0:
                    path.unlink()
        return removed

    # -- private ----------------------------------------------------------------------

    def _lock(self, key: str, timeout: float | None) -> int | None:
        """A descriptor holding `key`'s lock file locked (close it to release), or None
        when the lock was not had within `timeout` seconds (0: only if free now)."""
        locks = self.directory / "locks"
        locks.mkdir(exist_ok=True, mode=0o700)
        path = locks / key
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                left = None if end is None else max(0.0, end - time.monotonic())
                if not _flock(fd, left):
                    os.close(fd)
                    return None
                held = os.fstat(fd)
                try:
                    current = os.stat(path)
                except FileNotFoundError:
                    current = None
            except BaseException:
                os.close(fd)
                raise
            if current is not None and (current.st_dev, current.st_ino) == (
                held.st_dev,
                held.st_ino,
            ):
                return fd
            os.close(fd)  # removed by its last holder while this one waited: again

    def _unlink_lock(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / "locks" / key).unlink()

    def _load(self, key: str, session_id: str) -> SessionState:
        path = self.directory / f"{key}.json"
        try:
            raw = path.read_bytes()
            data = json.loads(raw)
        except FileNotFoundError:
            return SessionState(session_id)
        except (OSError, ValueError) as error:
            logger.warning("the state of session %r could not be read, starting afresh: %s",
                           session_id, error)  # fmt: skip
            return SessionState(session_id)
        states = data.get("states") if isinstance(data, dict) else None
        if not isinstance(states, dict) or data.get("session_id") != session_id:
            logger.warning("the state of session %r is not interlock's, starting afresh",
                           session_id)  # fmt: skip
            return SessionState(session_id)
        pending = data.get("pending")
        turn = data.get("turn")
        return SessionState(
            session_id,
            {str(k): v for k, v in states.items() if isinstance(v, dict)},
            [str(t) for t in pending] if isinstance(pending, list) else [],
            turn if isinstance(turn, int) else 0,
            loaded=raw,
        )

    def _save(self, key: str, state: SessionState) -> None:
        states: dict[str, Any] = {}
        for plugin, value in state.states.items():
            if not value:
                continue
            try:
                json.dumps(value)
            except (TypeError, ValueError, RecursionError) as error:
                logger.warning(
                    "plugin %r's session state is not JSON (%s), so it is not kept for the "
                    "session's next event: keep dicts, lists, strings, numbers, booleans "
                    "and None in ctx.state",
                    plugin,
                    error,
                )
                continue
            states[plugin] = value
        data = {
            "session_id": state.session_id,
            "turn": state.turn,
            "states": states,
            "pending": state.pending,
        }
        text = json.dumps(data, ensure_ascii=False).encode()
        if text == state.loaded:
            return  # nothing changed: no write
        path = self.directory / f"{key}.json"
        tmp = self.directory / f"{key}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(text)
        os.replace(tmp, path)


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _xdg_data() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) if xdg else Path.home() / ".local" / "share"


def _flock(fd: int, timeout: float | None) -> bool:
    """Lock `fd` exclusively, waiting at most `timeout` seconds (None: no limit)."""
    import fcntl

    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        if timeout <= 0:
            return False
    # flock has no timeout: a helper thread waits on a second descriptor of the same open
    # file (flock locks belong to the open file, so its lock is this one's). Given up on,
    # it lets the lock go as soon as it gets it.
    spare = os.dup(fd)
    guard = threading.Lock()
    got = threading.Event()
    outcome: list[BaseException | None] = []  # [None]: locked; [error]: failed

    def wait() -> None:
        try:
            fcntl.flock(spare, fcntl.LOCK_EX)
            error: BaseException | None = None
        except OSError as failure:
            error = failure
        with guard:
            if got.is_set():  # given up on: let it go
                if error is None:
                    fcntl.flock(spare, fcntl.LOCK_UN)
            else:
                outcome.append(error)
                got.set()
        os.close(spare)

    threading.Thread(target=wait, name="interlock-state-lock", daemon=True).start()
    got.wait(timeout)
    with guard:
        if not outcome:
            got.set()  # tells the helper it was given up on
            return False
    if outcome[0] is not None:
        raise outcome[0]
    return True


class _Overdue(Exception):
    """The event was not judged within the deadline."""


def _within(deadline: float, what: Callable[[], T], late: Callable[[], str]) -> T:
    """`what()`, run in a helper thread, if it ends before `deadline` (a `time.monotonic`
    value); else `_Overdue` with `late()`, and the helper is left to end on its own
    (what it changes is not used)."""
    done = threading.Event()
    outcome: list[tuple[bool, Any]] = []

    def work() -> None:
        try:
            outcome.append((True, what()))
        except BaseException as error:  # handed to the waiting thread
            outcome.append((False, error))
        finally:
            done.set()

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(work,), daemon=True)
    thread.name = "interlock-claude-hook"
    thread.start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise _Overdue(late())
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


# -- one event ------------------------------------------------------------------------


def handle(
    data: bytes | str,
    *,
    config: str | Path | None,
    store: StateStore | None = None,
    manager: PluginManager | None = None,
    deadline: float = DEFAULT_DEADLINE,
) -> Answer:
    """Answer one Claude Code hook event (`data`, the stdin JSON): load `config` (or use
    `manager`, which is left open), fire the hook with the session's state from `store`
    (the default store when None), and say what to print and exit with. Never raises.

    Past `deadline` seconds from the call (waiting for the session's lock and running
    the plugins both count), the event is refused as unjudged (`refusal`); what the
    plugins changed is then not kept."""
    end = time.monotonic() + deadline
    try:
        event = json.loads(data)
    except (ValueError, RecursionError) as error:
        return Answer(None, 2, f"interlock claude-hook: stdin is not a hook event ({error})")
    if not isinstance(event, dict):
        return Answer(None, 2, "interlock claude-hook: stdin is not a hook event (an object)")
    name = event.get("hook_event_name")
    if not isinstance(name, str) or name not in HOOKS_BY_EVENT:
        return Answer()  # not an event interlock handles: it passes
    try:
        event_payload(event)  # a malformed event is refused before anything is loaded
    except ValueError as error:
        return refusal(name, f"interlock could not read the {name} event: {error}")
    own = manager is None
    if manager is None:
        try:
            manager = _load(config)
        except Exception as error:
            return refusal(name, f"interlock could not load its config: {_oneline(error)}")
    try:
        return _judge(event, name, manager, store or StateStore.default(), end, deadline)
    except _Overdue as error:
        return refusal(name, f"interlock could not judge the {name} event in time: {error}")
    except Exception as error:  # interlock's own failure: judged as unjudged
        logger.exception("interlock claude-hook failed on %s", name)
        return refusal(name, f"interlock could not judge the {name} event: {_oneline(error)}")
    finally:
        if own:
            with contextlib.suppress(Exception):
                manager.close()


def _judge(
    event: dict[str, Any],
    name: str,
    manager: PluginManager,
    store: StateStore,
    end: float,
    limit: float,
) -> Answer:
    session_id = str(event.get("session_id") or "")
    messages: list[str] = []

    def notify(key: str, text: str, level: Level, plugin: str) -> None:
        messages.append(text)

    bridge = Bridge(manager, host="claude-code", idle_ttl=None, notify=notify)
    if name in ("SessionStart", "SessionEnd"):
        store.sweep(force=False)
    scope: Any = _ephemeral(session_id)
    if session_id:
        scope = store.session(session_id, timeout=max(0.0, end - time.monotonic()))
    entered = False
    try:
        with scope as state:
            entered = True
            if name == "UserPromptSubmit":
                state.turn += 1
            spec, payload = event_payload(event, turn=state.turn)
            session = Session(bridge, bridge.key(session_id or None))
            session.scope.states.update(state.states)
            session.scope.open()

            def fire() -> Verdict[Any]:
                verdict = bridge.fire_sync(spec, payload, session)
                manager.drain_sync()
                return verdict

            def late() -> str:
                stats = manager.stats().registrations
                names = sorted({s.plugin for s in stats if s.hook == spec.name})
                return (
                    f"its plugins on {spec.name} ({', '.join(names)}) did not finish within "
                    f"the {limit:g} s deadline: make them faster, or raise --deadline (and "
                    "the hook's timeout in .claude/settings.json above it)"
                )

            try:  # overdue: raises, so the session's state is left as it was
                verdict = _within(end, fire, late)
            finally:
                state.states = dict(session.scope.states)
                session.scope.close()
            state.pending += [text for _, text, _ in session.take_system_items()]
            reply = answer(event, verdict, messages=messages)
            if state.pending and name in CONTEXT_EVENTS and not stops(reply):
                reply = answer(event, verdict, context=state.pending, messages=messages)
                state.pending = []
            state.ended = name == "SessionEnd"
    except TimeoutError as error:
        if entered:
            raise
        raise _Overdue(f"{error}, past the {limit:g} s deadline") from None
    return Answer(reply or None)


def stops(reply: Mapping[str, Any]) -> bool:
    """Whether an answer stops what the event was about (a denied tool call, a blocked
    prompt): then it carries no added context, which waits for the next event."""
    specific = reply.get("hookSpecificOutput") or {}
    return reply.get("decision") == "block" or specific.get("permissionDecision") == "deny"


@contextlib.contextmanager
def _ephemeral(session_id: str) -> Iterator[SessionState]:
    yield SessionState(session_id)  # no session id: nothing to keep it under


def _load(config: str | Path | None) -> PluginManager:
    if config is None:
        raise ValueError("no config: pass --config FILE or set INTERLOCK_CONFIG")
    from ..config import load_config

    return load_config(config)


def _oneline(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _reason(verdict: Verdict[Any], what: str) -> str:
    if verdict.reason:
        return verdict.reason
    return f"{what} was blocked by plugin {verdict.blocked_by or '(unknown)'}"


def _str(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


# -- the command ----------------------------------------------------------------------

USAGE = """\
Usage: interlock claude-hook [--config FILE] [--state-dir DIR] [--deadline SECONDS]

  A command hook for Claude Code (.claude/settings.json): reads one hook event on
  stdin, runs the config's plugins on the matching hook, and answers as Claude Code
  expects.

Options:
  --config FILE     The interlock.yaml to load [env: INTERLOCK_CONFIG].
  --state-dir DIR   Where per-session plugin state is kept
                    [default: $INTERLOCK_DATA_DIR/claude-code].
  --deadline SECONDS
                    Past it (waiting for the session included), the event is
                    refused: a tool call denied, a prompt blocked. Keep it under
                    the hook's timeout in settings.json [default: 30].
  --help            Show this message and exit.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """`interlock claude-hook`: read the event from stdin, write the answer to stdout
    (one JSON object or nothing), return the exit code. Anything else that would reach
    stdout (a plugin's `print`) goes to stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    options: dict[str, str] = {}
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        option, equals, value = arg.partition("=")
        if option not in ("--config", "--state-dir", "--deadline") or (not equals and not args):
            sys.stderr.write(f"interlock claude-hook: unexpected {arg!r}\n\n{USAGE}")
            return 2
        options[option] = value if equals else args.pop(0)
    config = options.get("--config") or os.environ.get("INTERLOCK_CONFIG") or None
    state_dir = options.get("--state-dir")
    deadline = None
    if "--deadline" in options:
        try:
            deadline = float(options["--deadline"])
        except ValueError:
            deadline = -1.0
        if not 0 < deadline < float("inf"):
            sys.stderr.write(
                f"interlock claude-hook: --deadline takes a number of seconds above 0, "
                f"not {options['--deadline']!r}\n"
            )
            return 2
    return run(config, state_dir, deadline)


def run(
    config: str | Path | None,
    state_dir: str | Path | None = None,
    deadline: float | None = None,
) -> int:
    """`main` with its options parsed: the command's whole run, stdin to exit code.
    `deadline` is `handle`'s (None: `DEFAULT_DEADLINE`)."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="interlock: %(message)s")
    sys.stdout.flush()
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # fd 1 is stderr now: only the answer reaches Claude Code's stdout
    try:
        data = sys.stdin.buffer.read()
        store = StateStore(state_dir) if state_dir is not None else None
        limit = DEFAULT_DEADLINE if deadline is None else deadline
        reply = handle(data, config=config, store=store, deadline=limit)
        out = b"" if reply.output is None else json.dumps(reply.output).encode() + b"\n"
    except Exception as error:  # past `handle`'s own guard: exit 2 still stops a tool
        reply, out = Answer(None, 2, f"interlock claude-hook failed: {_oneline(error)}"), b""
    try:
        if reply.stderr:
            sys.stderr.write(reply.stderr.rstrip("\n") + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
        with os.fdopen(answer_fd, "wb", closefd=False) as stdout:
            stdout.write(out)
        return reply.code
    finally:
        os.close(answer_fd)
