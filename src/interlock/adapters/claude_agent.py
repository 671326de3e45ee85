"""The Claude Agent SDK: interlock plugins as the SDK's hook callbacks.

    from claude_agent_sdk import ClaudeAgentOptions, query
    from interlock.adapters.claude_agent import hooks

    options = ClaudeAgentOptions(hooks=hooks(manager))
    async for message in query(prompt="tidy the build folder", options=options): ...

`hooks(manager)` gives a `HookMatcher` for each event interlock maps (PreToolUse,
PostToolUse, PostToolUseFailure, UserPromptSubmit, Stop), answering in the SDK's
decision shapes, the ones Claude Code's command hooks use (see
`interlock.adapters.claude_code`). Sessions follow the SDK's `session_id`:
`session_start` fires at a session's first event, `session_end` at `aclose()` or after
`idle_ttl` unused. `ScriptedClaude` stands in for the Claude Code CLI in tests.

Needs `pip install 'interlock[claude-agent]'`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from .. import Level, PluginManager, ToolCall
from .._claude import tool_response
from ._bridge import Approver, Bridge, Session, Verdict, missing_extra
from .claude_code import CONTEXT_EVENTS, answer, event_payload, refusal, stops

__all__ = ["EVENTS", "ClaudeHooks", "ScriptedClaude", "hooks"]

logger = logging.getLogger("interlock.adapters.claude_agent")

EVENTS = ("UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure", "Stop")
"""The SDK hook events `hooks` answers."""


def _sdk() -> Any:
    try:
        import claude_agent_sdk
    except ImportError as error:
        raise missing_extra(
            "the Claude Agent SDK adapter", "claude-agent-sdk", "claude-agent"
        ) from error
    return claude_agent_sdk


class ClaudeHooks(dict[str, list[Any]]):
    """The `hooks=` mapping for `ClaudeAgentOptions` (event -> [HookMatcher]), which
    also ends interlock's sessions: `await hooks.aclose()` when the agent is done."""

    def __init__(
        self,
        manager: PluginManager,
        *,
        idle_ttl: float | None = 3600.0,
        approver: Approver | None = None,
        events: Sequence[str] = EVENTS,
    ) -> None:
        sdk = _sdk()
        self.bridge = Bridge(
            manager,
            host="claude-agent",
            idle_ttl=idle_ttl,
            approver=approver,
            notify=self._notified,
        )
        self._messages: dict[str, list[str]] = {}
        self._turns: weakref.WeakKeyDictionary[Session, int] = weakref.WeakKeyDictionary()
        unknown = [e for e in events if e not in EVENTS]
        if unknown:
            raise ValueError(f"interlock answers the events {list(EVENTS)}, not {unknown}")
        super().__init__({event: [sdk.HookMatcher(hooks=[self.callback])] for event in events})

    async def callback(
        self, data: Mapping[str, Any], tool_use_id: str | None, context: Any
    ) -> dict[str, Any]:
        """The SDK hook callback for every mapped event; never raises (a failure denies
        a tool call and lets any other event pass, logged)."""
        name = str(data.get("hook_event_name"))
        try:
            return await self._answer(dict(data), name, tool_use_id)
        except Exception as error:
            logger.exception("interlock could not judge %s for the Claude Agent SDK", name)
            reason = f"interlock could not judge the {name} event: {error}"
            output = refusal(name, reason).output
            return output if output is not None else {"systemMessage": reason}

    async def end(self, session_id: str, reason: str = "completed") -> None:
        """End one session now (`session_end` fires), if it is open."""
        session = self.bridge.find(session_id)
        if session is not None:
            await self.bridge.end(session, reason)

    async def aclose(self) -> None:
        """End every open session (`session_end` fires for each)."""
        await self.bridge.aclose()

    async def _answer(
        self, event: dict[str, Any], name: str, tool_use_id: str | None
    ) -> dict[str, Any]:
        if tool_use_id and not event.get("tool_use_id"):
            event["tool_use_id"] = tool_use_id
        session = await self.bridge.session(event.get("session_id") or None)
        turn = self._turns.get(session, 0) + (name == "UserPromptSubmit")
        self._turns[session] = turn
        spec, payload = event_payload(event, turn=turn)
        verdict: Verdict[Any] = await self.bridge.fire(spec, payload, session)
        if name == "PreToolUse" and verdict.question is not None and self.bridge.approver:
            verdict = self._decide(verdict)
        messages = self._messages.pop(session.key, [])
        reply = answer(event, verdict, messages=messages)
        if name in CONTEXT_EVENTS and not stops(reply):  # else they wait for the next event
            context = [text for _, text, _ in session.take_system_items()]
            if context:
                reply = answer(event, verdict, context=context, messages=messages)
        return reply

    def _decide(self, verdict: Verdict[Any]) -> Verdict[Any]:
        """An `Ask` put to the adapter's approver (without one, the SDK's own permission
        mechanism gets it as `permissionDecision: "ask"`)."""
        question = verdict.question or ""
        call: ToolCall = verdict.payload
        if self.bridge.approve(call, question):
            return Verdict(verdict.payload, result=verdict.result)
        reason = f"not approved: {question}"
        return Verdict(verdict.payload, True, reason, "approver", result=verdict.result)

    def _notified(self, key: str, text: str, level: Level, plugin: str) -> None:
        self._messages.setdefault(key, []).append(text)


def hooks(
    manager: PluginManager,
    *,
    idle_ttl: float | None = 3600.0,
    approver: Approver | None = None,
) -> ClaudeHooks:
    """The `hooks=` for `ClaudeAgentOptions`: interlock's plugins on the SDK's hook events.

    A Block denies the tool call with the reason (what the model reads); a Modify of a
    tool call is `updatedInput`; an Ask goes to `approver` when given, otherwise to the
    SDK's own permission handling (`can_use_tool`, the permission mode).
    """
    return ClaudeHooks(manager, idle_ttl=idle_ttl, approver=approver)


# -- a stand-in for the CLI, for tests ------------------------------------------------

Tool = Callable[[dict[str, Any]], str]


class ScriptedClaude:
    """A stand-in for the Claude Code CLI behind the SDK (a `Transport`): no process, no
    model. For each user message it plays `steps` (tool calls, then `reply`), calling the
    SDK's hooks where the CLI would and acting on their answers as the CLI does.

        claude = ScriptedClaude([("Bash", {"command": "ls"})], tools={"Bash": run})
        async for message in query(prompt="list", options=options, transport=claude.transport()):
            ...

    `ran` records the tool calls that ran (name, input), `model_saw` what reached the
    model (tool results, then added context), `blocked_prompts` the prompts not sent. An
    "ask" is refused here: there is no one to ask.
    """

    def __init__(
        self,
        steps: Sequence[tuple[str, dict[str, Any]]],
        *,
        tools: Mapping[str, Tool],
        reply: str = "done",
        session_id: str = "scripted-session",
    ) -> None:
        self.steps = list(steps)
        self.tools = dict(tools)
        self.reply = reply
        self.session_id = session_id
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self.model_saw: list[str] = []
        self.blocked_prompts: list[str] = []
        self._hooks: dict[str, list[tuple[str | None, list[str]]]] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._requests = 0
        self._turns: list[asyncio.Task[None]] = []

    def transport(self) -> Any:
        """The SDK `Transport` to pass to `query(..., transport=...)`."""
        base = _sdk()._internal.transport.Transport
        claude = self

        class _Transport(base):  # type: ignore[misc, valid-type]
            async def connect(self) -> None:
                return None

            async def write(self, data: str) -> None:
                for line in data.splitlines():
                    if line.strip():
                        await claude._received(json.loads(line))

            def read_messages(self) -> AsyncIterator[dict[str, Any]]:
                return claude._messages()

            async def close(self) -> None:
                claude._outbox.put_nowait(None)

            def is_ready(self) -> bool:
                return True

            async def end_input(self) -> None:
                claude._outbox.put_nowait(None)

        return _Transport()

    # -- the CLI's side of the control protocol ---------------------------------------

    async def _messages(self) -> AsyncIterator[dict[str, Any]]:
        while (message := await self._outbox.get()) is not None:
            yield message

    async def _received(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "control_request":
            request = message["request"]
            if request.get("subtype") == "initialize":
                for event, matchers in (request.get("hooks") or {}).items():
                    self._hooks[event] = [
                        (m.get("matcher"), m["hookCallbackIds"]) for m in matchers
                    ]
            self._reply(message["request_id"], {})
        elif kind == "control_response":
            response = message["response"]
            future = self._pending.pop(response["request_id"])
            if response.get("subtype") == "error":
                future.set_exception(RuntimeError(response.get("error", "hook failed")))
            else:
                future.set_result(response.get("response") or {})
        elif kind == "user":
            content = message["message"]["content"]
            self._turns.append(asyncio.ensure_future(self._turn(str(content))))

    def _reply(self, request_id: str, response: dict[str, Any]) -> None:
        answer = {"subtype": "success", "request_id": request_id, "response": response}
        self._outbox.put_nowait({"type": "control_response", "response": answer})

    async def _hook(
        self, event: str, data: dict[str, Any], tool: str | None = None
    ) -> list[dict[str, Any]]:
        answers = []
        for matcher, ids in self._hooks.get(event, []):
            regex = tool is not None and matcher not in (None, "", "*")  # as the CLI's
            if regex and not re.fullmatch(str(matcher), str(tool)):
                continue
            for callback_id in ids:
                self._requests += 1
                request_id = f"cli_{self._requests}"
                future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
                self._pending[request_id] = future
                payload = {
                    "hook_event_name": event,
                    "session_id": self.session_id,
                    "transcript_path": "",
                    "cwd": "",
                    **data,
                }
                request = {
                    "subtype": "hook_callback",
                    "callback_id": callback_id,
                    "input": payload,
                    "tool_use_id": data.get("tool_use_id"),
                }
                self._send("control_request", request_id=request_id, request=request)
                answers.append(await future)
        return answers

    def _context(self, answers: list[dict[str, Any]]) -> None:
        for found in answers:
            context = (found.get("hookSpecificOutput") or {}).get("additionalContext")
            if context:
                self.model_saw.append(context)

    async def _turn(self, prompt: str) -> None:
        answers = await self._hook("UserPromptSubmit", {"prompt": prompt})
        blocked = [a for a in answers if a.get("decision") == "block"]
        if blocked:
            self.blocked_prompts.append(str(blocked[0].get("reason", "")))
            self._result(f"prompt blocked: {blocked[0].get('reason', '')}")
            return
        self._context(answers)
        for index, (name, tool_input) in enumerate(self.steps):
            await self._tool(f"toolu_{index + 1}", name, dict(tool_input))
        self._assistant([{"type": "text", "text": self.reply}])
        await self._hook("Stop", {"stop_hook_active": False, "last_assistant_message": self.reply})
        self._result(self.reply)

    async def _tool(self, call_id: str, name: str, tool_input: dict[str, Any]) -> None:
        self._assistant([{"type": "tool_use", "id": call_id, "name": name, "input": tool_input}])
        data = {"tool_name": name, "tool_input": tool_input, "tool_use_id": call_id}
        answers = await self._hook("PreToolUse", data, name)
        self._context(answers)
        for found in answers:
            specific = found.get("hookSpecificOutput") or {}
            decision = specific.get("permissionDecision")
            if decision in ("deny", "ask"):  # nobody to ask here: refused
                reason = specific.get("permissionDecisionReason") or f"{name} was denied"
                return self._tool_result(call_id, str(reason), is_error=True)
            if isinstance(specific.get("updatedInput"), dict):
                tool_input = specific["updatedInput"]
                data["tool_input"] = tool_input
        self.ran.append((name, tool_input))
        try:
            output = self.tools[name](tool_input)
        except Exception as error:
            failure = {**data, "error": str(error)}
            self._context(await self._hook("PostToolUseFailure", failure, name))
            return self._tool_result(call_id, str(error), is_error=True)
        response: Any = tool_response(output) if name == "Bash" else output
        answers = await self._hook("PostToolUse", {**data, "tool_response": response}, name)
        for found in answers:
            specific = found.get("hookSpecificOutput") or {}
            if "updatedToolOutput" in specific:
                response = specific["updatedToolOutput"]
        shown = response["stdout"] if isinstance(response, dict) else str(response)
        self._tool_result(call_id, shown, is_error=False)
        self._context(answers)
        for found in answers:
            if found.get("decision") == "block":
                self.model_saw.append(str(found.get("reason", "")))
        return None

    def _tool_result(self, call_id: str, content: str, *, is_error: bool) -> None:
        self.model_saw.append(content)
        block = {"type": "tool_result", "tool_use_id": call_id, "content": content}
        message = {"role": "user", "content": [{**block, "is_error": is_error}]}
        self._send("user", message=message, parent_tool_use_id=None)

    def _assistant(self, content: list[dict[str, Any]]) -> None:
        message = {"role": "assistant", "model": "scripted", "content": content}
        self._send("assistant", message=message, parent_tool_use_id=None)

    def _result(self, text: str) -> None:
        self._send(
            "result",
            subtype="success",
            duration_ms=0,
            duration_api_ms=0,
            is_error=False,
            num_turns=1,
            result=text,
        )

    def _send(self, kind: str, **fields: Any) -> None:
        self._outbox.put_nowait({"type": kind, "session_id": self.session_id, **fields})
