"""One turn of the agent's loop: a user message in, tool calls and model calls, a reply out.

The order of hooks in a turn (the conformance tests hold the runtime to it):

    message_received
    ( pre_llm_call  llm_stream_chunk*  post_llm_call  ( pre_tool_call  post_tool_call )* )*
    message_sending  turn_end

with `error` wherever something fails (a failed model call: once `message_sending` has
judged the reply that reports it, see `Turn._failed`), and `message_received` with role
`system` for each system item a plugin appended, before it is logged or enters the model's
context: after the user's message, before each model call (items appended at `pre_llm_call`:
right after it) and after `turn_end` (see `Session.judge_system_items`). `post_tool_call`
fires for every tool result the model will see, so also for a refused call (its result is
the refusal);
`llm_stream_chunk` fires only on the streaming path (and not when a plugin responded in
the model's place), once per chunk and before the chunk is shown (see `StreamView`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from interlock import (
    ErrorEvent,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    StreamChunk,
    ToolCall,
    ToolResult,
    TurnEnd,
    Usage,
    hooks,
)

from ._stream import StreamView

if TYPE_CHECKING:
    from ._session import Session

Stop = Literal["answered", "blocked", "failed", "iterations"]


@dataclass(frozen=True)
class TurnResult:
    """How a turn ended.

    `reply` is the agent's answer as delivered to the user; when `message_sending` blocked
    it, `delivered` is False, `reply` is empty and `reason` says why.
    `stopped` says why the loop ended: the model `answered`, a plugin `blocked` a step,
    something `failed`, or the loop hit the agent's `max_iterations`.
    """

    turn: int
    reply: str
    delivered: bool
    stopped: Stop
    reason: str | None
    tool_calls: int
    usage: Usage


class Turn:
    """The loop for one user message (private to the runtime)."""

    def __init__(self, session: Session, number: int) -> None:
        self.session = session
        self.agent = session.agent
        self.number = number
        self.tool_calls = 0
        self.usage = Usage()

    async def run(self, text: str) -> TurnResult:
        """Run the turn to its end; never raises for plugin, model or tool failures."""
        inbound = await self.session.fire(hooks.MESSAGE_RECEIVED, MessageEvent(text))
        if inbound.blocked:
            self.session.record("user", {"content": None, "blocked_by": inbound.blocked_by})
            return await self._reply(f"[blocked] {inbound.reason}", "blocked", inbound.reason)
        message = inbound.payload or MessageEvent(text)
        await self.session.take_system_items()  # items from before this message come before it
        self.session.record("user", {"content": message.content})
        self.session.history.append(Message("user", message.content))
        return await self._loop()

    async def _loop(self) -> TurnResult:
        for _ in range(self.agent.max_iterations):
            response, stop = await self._model_call()
            if stop is not None:
                return stop
            if response is None or not response.tool_calls:
                text = response.content if response else ""
                return await self._reply(text, "answered", answer=True)
            for call in response.tool_calls:
                await self._tool_call(call)
        reason = f"stopped after {self.agent.max_iterations} model calls without an answer"
        await self.session.fail(ErrorEvent("max_iterations", reason, "turn"))
        return await self._reply(f"[stopped] {reason}", "iterations", reason)

    async def _model_call(self) -> tuple[LLMResponse | None, TurnResult | None]:
        session, agent = self.session, self.agent
        await session.take_system_items()
        request = LLMRequest(
            agent.model_name,
            (*agent.system_messages, *session.history),
            agent.tools.schemas(),
            agent.params,
            agent.stream,
        )
        before = await session.fire(hooks.PRE_LLM_CALL, request)
        if before.blocked:
            return None, await self._reply(f"[blocked] {before.reason}", "blocked", before.reason)
        request = before.payload or request
        late = await session.take_system_items()  # appended during pre_llm_call: for this call
        if late:
            request = request.replace(messages=(*request.messages, *late))
        if before.responded:
            response: LLMResponse = before.response
        else:
            try:
                response = await self._ask_model(request)
            except Exception as error:
                return None, await self._failed(error)
        after = await session.fire(hooks.POST_LLM_CALL, response)
        self.usage = Usage(
            self.usage.input_tokens + response.usage.input_tokens,
            self.usage.output_tokens + response.usage.output_tokens,
        )
        if after.blocked:
            return None, await self._reply(f"[blocked] {after.reason}", "blocked", after.reason)
        response = after.payload or response
        if response.tool_calls:  # a final answer is logged once message_sending has seen it
            session.record("assistant", {
                "content": response.content,
                "tool_calls": [
                    {"tool_name": c.tool_name, "arguments": dict(c.arguments),
                     "call_id": c.call_id}
                    for c in response.tool_calls
                ],
            })  # fmt: skip
            message = Message("assistant", response.content, tool_calls=response.tool_calls)
            session.history.append(message)
        return response, None

    async def _ask_model(self, request: LLMRequest) -> LLMResponse:
        session, model = self.session, self.agent.model
        session.emit("model", request.model, request=request)
        if not request.stream:
            response = await model.complete(request)
        else:
            final: LLMResponse | None = None
            view = StreamView(session)
            try:
                async for item in model.stream(request):
                    if isinstance(item, StreamChunk):
                        await view.add(item)
                    else:
                        final = item
            except Exception:  # every chunk that came still fires once
                await view.end(complete=False)
                raise
            await view.end()
            if final is None:
                raise RuntimeError("the model's stream ended without a response")
            response = final
        # Usage only: the answer's text reaches displays as the plugins leave it (stream
        # events, the reply), never as the model wrote it.
        session.emit("model", response.model, usage=response.usage)
        return response

    async def _tool_call(self, call: ToolCall) -> None:
        session = self.session
        self.tool_calls += 1
        gate = await session.fire(hooks.PRE_TOOL_CALL, call)
        call = gate.payload or call
        refusal = None
        if gate.blocked:
            refusal = (
                f"tool {call.tool_name!r} was blocked by plugin {gate.blocked_by!r}: {gate.reason}"
            )
        elif gate.asked:
            refusal = await self._approve(call, gate.question or "")
        session.record("tool_call", {
            "tool_name": call.tool_name, "arguments": dict(call.arguments),
            "call_id": call.call_id, "refused": refusal,
        })  # fmt: skip
        if refusal is not None:
            refused = ToolResult(call.tool_name, call.arguments, call.call_id, refusal, True)
            result = await self._after_tool(refused)
        else:
            result = await self._run_tool(call)
        session.record("tool_result", {
            "tool_name": result.tool_name, "call_id": result.call_id,
            "output": result.output, "is_error": result.is_error,
        })  # fmt: skip
        session.history.append(
            Message("tool", result.output, name=result.tool_name, tool_call_id=result.call_id)
        )

    async def _run_tool(self, call: ToolCall) -> ToolResult:
        session = self.session
        session.emit("tool", call.tool_name, call=call)
        result, failure = await self.agent.tools.attempt(call)
        result = await self._after_tool(result)
        if result.is_error:  # reported as post_tool_call left it (redacted, withheld)
            await session.fail(ErrorEvent(failure or "tool_error", result.output, "tool_call"))
        return result

    async def _after_tool(self, result: ToolResult) -> ToolResult:
        """`post_tool_call` for every result the model will see, refusals included."""
        after = await self.session.fire(hooks.POST_TOOL_CALL, result)
        if after.blocked:
            text = f"the result of tool {result.tool_name!r} was withheld by plugin "
            text += f"{after.blocked_by!r}: {after.reason}"
            result = result.replace(output=text, is_error=True)
        else:
            result = after.payload or result
        self.session.emit("tool", result.tool_name, result=result)
        return result

    async def _approve(self, call: ToolCall, question: str) -> str | None:
        """None when the approver allows the call, else the refusal the model sees."""
        approver = self.agent.approver
        if approver is None:
            return f"tool {call.tool_name!r} needs approval ({question}) and no one can approve"
        try:
            answer = approver(call, question)
            allowed = await answer if inspect.isawaitable(answer) else answer
        except Exception as error:
            await self.session.fail(ErrorEvent(type(error).__name__, str(error), "approval"))
            allowed = False
        return None if allowed else f"tool {call.tool_name!r} was not approved: {question}"

    async def _failed(self, error: Exception) -> TurnResult:
        """End the turn on a failed model call.

        A backend's error often quotes the request (`400: content '...' rejected`), so its
        text is judged as the reply that reports it is (`message_sending`), and the log, the
        trace, the result's `reason` and the `error` hook all get the judged text.
        """
        name = type(error).__name__
        return await self._reply(
            f"[error] model call failed: {name}: {error}", "failed", failure=name
        )

    async def _reply(
        self,
        text: str,
        stopped: Stop,
        reason: str | None = None,
        *,
        answer: bool = False,
        failure: str | None = None,
    ) -> TurnResult:
        """Deliver the turn's reply through `message_sending`; `answer` when the model wrote it.

        The log and the model's context keep what the user got (redacted as delivered, or
        a note that it was withheld), never the text `message_sending` changed or stopped.
        `failure` (an error type) when `text` reports a failed model call: the failure is
        then logged and fired at `error` with the text as `message_sending` left it.
        """
        session = self.session
        out = await session.fire(hooks.MESSAGE_SENDING, MessageEvent(text, role="assistant"))
        reply = (out.payload or MessageEvent(text)).content
        delivered = not out.blocked
        if not delivered:  # the caller learns why, and never gets the text that was stopped
            reply, reason = "", out.reason
        if failure is not None:
            message, judged = _judged_failure(reply, failure, out.blocked_by, out.reason)
            if delivered:
                reason = judged
            await session.fail(ErrorEvent(failure, message, "llm_call"))
        if answer:
            withheld = None if delivered else out.reason
            session.record("assistant", {"content": reply if delivered else None,
                                         "withheld": withheld, "tool_calls": []})  # fmt: skip
            note = reply if delivered else f"[your reply was not delivered: {withheld}]"
            session.history.append(Message("assistant", note))
        if delivered:
            session.record("delivered", {"content": reply})
        else:
            session.record("undelivered", {"blocked_by": out.blocked_by, "reason": out.reason})
        session.emit(
            "reply", "delivered" if delivered else "undelivered", text=reply, reason=reason
        )
        await session.fire(hooks.TURN_END, TurnEnd(self.number, reply, self.tool_calls, self.usage))
        await session.judge_system_items()  # written at turn_end: logged before send returns
        return TurnResult(
            self.number, reply, delivered, stopped, reason, self.tool_calls, self.usage
        )


def _judged_failure(
    reply: str, error_type: str, blocked_by: str | None, reason: str | None
) -> tuple[str, str]:
    """The error message and the turn's reason for a failed model call, from its reply as
    `message_sending` left it (a plugin that blocked it: a note naming the plugin)."""
    if blocked_by is not None:
        return f"[withheld by plugin {blocked_by!r}: {reason}]", reason or ""
    reason_text = reply.removeprefix("[error] ")
    head = f"model call failed: {error_type}: "
    message = reason_text[len(head) :] if reason_text.startswith(head) else reason_text
    return message, reason_text
