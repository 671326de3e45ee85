"""Command hooks: one process per event, the event as JSON on stdin, the answer on stdout.

The answer is JSON: interlock's own (`{"action": {...}, "requests": [...]}`) or Claude
Code's hook output (`decision`, `hookSpecificOutput.permissionDecision`, `updatedInput`,
`continue`, `systemMessage`, `additionalContext`). Exit code 2 blocks, with stderr as the
reason; any other non-zero exit is a failure. Empty output lets the event pass; plain text
from a `message_received` (UserPromptSubmit) or `session_start` (SessionStart) command is
added to the model's context, as Claude Code does, through the `system_items` capability.
The event carries Claude Code's fields too (`hook_event_name`, `session_id`, `cwd`,
`tool_name`, `tool_input`, `tool_use_id`, `tool_response` shaped like its Bash tool's
response, `prompt`) and the command gets `CLAUDE_PROJECT_DIR`, so existing Claude Code hook
scripts run as they are. A command past its timeout is killed with its whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import Ask, Block, HookContext, HookSpec, Modify, ProtocolError
from .._claude import CLAUDE_EVENTS, CONTEXT_HOOKS, CONTEXT_KIND, tool_response
from .protocol import MAX_MESSAGE_BYTES, Request, dump_context, dump_payload, load_result

logger = logging.getLogger("interlock.external")

_DRAIN_SECONDS = 2.0  # for what is left in the pipes of a command that was ended
_STDERR_KEEP = 4000  # bytes of stderr kept: a block reason, or the end of an error


class CommandRunner:
    """Runs one command per event and turns its answer into an action and requests."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str = "",
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        limit: int = MAX_MESSAGE_BYTES,
    ) -> None:
        if not command:
            raise ValueError("a command hook needs a command to run")
        self.command = tuple(command)
        self.name = name or self.command[0]
        self.cwd = None if cwd is None else str(cwd)
        self.env = dict(env or {})
        self.limit = limit

    def environment(self) -> dict[str, str]:
        """The command's environment: the host's, `CLAUDE_PROJECT_DIR` (the host's
        current directory, as the event's `cwd`), then `env` (which may set it)."""
        return {**os.environ, "CLAUDE_PROJECT_DIR": os.getcwd(), **self.env}

    async def run(
        self, spec: HookSpec[Any], payload: Any, ctx: HookContext
    ) -> tuple[Any, tuple[Request, ...]]:
        """Run the command for one event; its action and capability requests."""
        event = json.dumps(event_json(spec, payload, ctx), ensure_ascii=False).encode()
        code, out, err = await self._execute(event)
        if code == 2:
            reason = err.decode(errors="replace").strip()
            return Block(reason or f"command {self.name!r} blocked (exit code 2)"), ()
        if code != 0:
            tail = err.decode(errors="replace").strip()[-300:]
            raise ProtocolError(f"command {self.name!r} failed with exit code {code}: {tail}")
        action, requests = read_output(spec, payload, out)
        if spec.name == "message_received" and getattr(payload, "role", "user") == "system":
            # A system item being judged (the reference runtime fires message_received for
            # each one): the command may change or block it, but context is added for a
            # user's prompt only, as Claude Code does, never for an item.
            requests = tuple(r for r in requests if r.capability != "system_items")
        return action, requests

    async def _execute(self, event: bytes) -> tuple[int, bytes, bytes]:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.cwd,
                env=self.environment(),
                start_new_session=True,  # its own process group: ended as one
            )
        except OSError as error:
            raise ProtocolError(f"command {self.name!r} could not start: {error}") from None
        feed = asyncio.ensure_future(_feed(process.stdin, event))
        stdout = asyncio.ensure_future(_read(process.stdout, self.limit))
        stderr = asyncio.ensure_future(_tail(process.stderr, _STDERR_KEEP))
        exited = asyncio.ensure_future(process.wait())
        helpers: list[asyncio.Future[Any]] = [feed, stdout, stderr, exited]
        try:
            # Until it exits, or has written more than it may (then it is stopped now).
            await asyncio.wait([stdout, exited], return_when=asyncio.FIRST_COMPLETED)
            if stdout.done() and len(stdout.result()) > self.limit:
                raise ProtocolError(f"command {self.name!r} wrote more than {self.limit} bytes")
            code = await exited
            # What it left running goes now; pipes they held close, and reading ends.
            _kill_group(process.pid)
            out, err = await stdout, await stderr
            if len(out) > self.limit:
                raise ProtocolError(f"command {self.name!r} wrote more than {self.limit} bytes")
        finally:  # done, failed, cancelled (its timeout): nothing it started lives on
            _kill_group(process.pid)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            # Its pipes hold what it wrote past the limit: drain them to their end, or
            # the process is never done; a group that is gone ends them at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_drained(process), _DRAIN_SECONDS)
        return code, out, err


def event_json(spec: HookSpec[Any], payload: Any, ctx: HookContext) -> dict[str, Any]:
    """The event as a command gets it: interlock's fields and Claude Code's."""
    data = dump_payload(spec, payload)
    event: dict[str, Any] = {
        "hook": spec.name,
        "payload": data,
        "context": dump_context(ctx),
        "hook_event_name": CLAUDE_EVENTS.get(spec.name, spec.name),
        "session_id": ctx.session.id if ctx.session else "",
        "transcript_path": "",  # no transcript file: the session log is the host's
        "cwd": os.getcwd(),
    }
    if spec.name in ("pre_tool_call", "post_tool_call"):
        event["tool_name"] = data["tool_name"]
        event["tool_input"] = data["arguments"]
        event["tool_use_id"] = data["call_id"]
    if spec.name == "post_tool_call":
        event["tool_response"] = tool_response(data["output"], is_error=data["is_error"])
    elif spec.name == "message_received":
        event["prompt"] = data["content"]
    elif spec.name == "session_end":
        event["reason"] = data["reason"]
    elif spec.name == "turn_end":
        event["stop_hook_active"] = False  # a Stop command never makes a turn go on here
    return event


def read_output(spec: HookSpec[Any], payload: Any, out: bytes) -> tuple[Any, tuple[Request, ...]]:
    """A command's stdout as an action: interlock's shape or Claude Code's."""
    text = out.decode(errors="replace").strip()
    if not text:
        return None, ()
    try:
        answer = json.loads(text)
    except (ValueError, RecursionError):
        if text.startswith(("{", "[")):  # meant as JSON: a broken answer must not pass
            message = f"a command's output that is not valid JSON: {text[:80]!r}"
            raise ProtocolError(message) from None
        return _plain(spec, text)
    if not isinstance(answer, Mapping) and not text.startswith(("{", "[")):
        return _plain(spec, text)  # a word or a number that happens to parse as JSON
    if not isinstance(answer, Mapping):
        raise ProtocolError(f"a command's JSON output must be an object, got {text[:80]!r}")
    if "action" in answer or "requests" in answer:  # interlock's own shape
        return load_result(spec, answer)
    return _claude(spec, payload, answer)


def _plain(spec: HookSpec[Any], text: str) -> tuple[Any, tuple[Request, ...]]:
    """Plain output: model context where Claude Code makes it so, otherwise only logged."""
    if spec.name in CONTEXT_HOOKS:
        return None, (Request("system_items", {"kind": CONTEXT_KIND, "text": text}),)
    logger.info("command hook output that is not JSON, ignored: %s", text[:200])
    return None, ()


def _claude(
    spec: HookSpec[Any], payload: Any, answer: Mapping[str, Any]
) -> tuple[Any, tuple[Request, ...]]:
    requests: list[Request] = []
    if isinstance(answer.get("systemMessage"), str):
        requests.append(Request("notify", {"text": answer["systemMessage"], "level": "info"}))
    specific = answer.get("hookSpecificOutput") or {}
    if not isinstance(specific, Mapping):
        raise ProtocolError("hookSpecificOutput must be an object")
    context = specific.get("additionalContext")
    if isinstance(context, str) and context:
        requests.append(Request("system_items", {"kind": CONTEXT_KIND, "text": context}))
    action: Any = None
    decision = specific.get("permissionDecision")
    reason = specific.get("permissionDecisionReason") or answer.get("reason")
    if answer.get("continue") is False:
        action = Block(str(answer.get("stopReason") or "stopped by a command hook"))
    elif answer.get("decision") == "block" or decision == "deny":
        action = Block(str(reason) if reason else None)
    elif decision == "ask":
        action = Ask(str(reason) if reason else f"allow {spec.name}?")
    elif decision not in (None, "allow") or answer.get("decision") not in (
        None,
        "approve",
        "allow",
    ):
        raise ProtocolError(
            f"unknown decision in the command's output: {decision or answer.get('decision')!r}"
        )
    updated = specific.get("updatedInput")
    if action is None and updated is not None:
        if spec.name != "pre_tool_call" or not isinstance(updated, Mapping):
            raise ProtocolError("updatedInput is an object, and only for pre_tool_call")
        action = Modify(payload.replace(arguments=dict(updated)))
    return action, tuple(requests)


async def _read(stream: asyncio.StreamReader | None, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of `stream` (one more than allowed shows it was too much)."""
    data = bytearray()
    while stream is not None and len(data) <= limit:
        chunk = await stream.read(65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def _drained(process: asyncio.subprocess.Process) -> None:
    for stream in (process.stdout, process.stderr):
        while stream is not None and await stream.read(65536):
            pass
    await process.wait()


async def _tail(stream: asyncio.StreamReader | None, keep: int) -> bytes:
    """All of `stream` read (so the command never blocks on it), its last `keep` bytes kept."""
    data = b""
    while stream is not None:
        chunk = await stream.read(65536)
        if not chunk:
            break
        data = (data + chunk)[-keep:]
    return data


async def _feed(stream: asyncio.StreamWriter | None, data: bytes) -> None:
    if stream is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it need not read it
        stream.write(data)
        await stream.drain()
        stream.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
