"""The graph-state updates `interlock.adapters.langchain` returns from its hooks: the
judged user messages (redacted by id, or removed and the run ended), the system items
plugins appended, the delivered answer and the `turn_end` it closes. Imported only by that
module, after it has checked that the `langchain` extra is installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain.agents.middleware import ExtendedModelResponse, ModelRequest, ModelResponse
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.types import Command

from .. import MessageEvent, TurnEnd, Usage
from ._bridge import Session, Verdict
from ._langchain_convert import _with_text

_SESSION_KEY = "interlock_session"


def _inbound_update(
    verdicts: list[tuple[HumanMessage, Verdict[MessageEvent]]], anonymous_key: str | None
) -> dict[str, Any] | None:
    """The state update for the judged user messages: redactions replace the message by
    id, a blocked message is removed and the run ends with the reason as the answer."""
    update: dict[str, Any] = {}
    if anonymous_key is not None:
        update[_SESSION_KEY] = anonymous_key
    messages: list[BaseMessage] = []
    reasons: list[str] = []
    for message, verdict in verdicts:
        if verdict.blocked:
            messages.append(RemoveMessage(id=str(message.id)))
            reasons.append(str(verdict.reason))
        elif verdict.changed:
            messages.append(_with_text(message, verdict.payload.content))
    if reasons:
        messages.append(AIMessage(content="[blocked] " + "; ".join(reasons)))
        update["jump_to"] = "end"
    if messages:
        update["messages"] = messages
    return update or None


def _items_update(session: Session) -> dict[str, Any] | None:
    items = _system_messages(session.take_system_items())
    return {"messages": items} if items else None


def _system_messages(items: list[tuple[str, str, str]]) -> list[AnyMessage]:
    """System items as the model sees them (as the reference runtime shows them)."""
    return [SystemMessage(content=f"{kind}: {body}") for kind, body, _plugin in items]


def _merge(first: dict[str, Any] | None, second: dict[str, Any] | None) -> dict[str, Any] | None:
    if first is None or second is None:
        return first or second
    merged = dict(first)
    merged["messages"] = [*first.get("messages", ()), *second.get("messages", ())]
    return merged


def _final_answer(state: Mapping[str, Any]) -> AIMessage | None:
    messages: Sequence[AnyMessage] = state.get("messages", ())
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and not last.tool_calls:
        return last
    return None


def _outbound(
    state: Mapping[str, Any],
    answer: AIMessage | None,
    sending: Verdict[MessageEvent] | None,
) -> tuple[dict[str, Any] | None, TurnEnd]:
    """The state update for the delivered answer, and the `turn_end` payload."""
    update = None
    reply = "" if answer is None else str(answer.text)
    if answer is not None and sending is not None:
        if sending.blocked:
            note = f"[your reply was not delivered: {sending.reason}]"
            update = {"messages": [answer.model_copy(update={"content": note})]}
            reply = ""
        elif sending.changed:
            reply = sending.payload.content
            update = {"messages": [answer.model_copy(update={"content": reply})]}
    messages: Sequence[AnyMessage] = state.get("messages", ())
    humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    this_turn = messages[humans[-1] + 1 :] if humans else messages
    usage = Usage()
    for message in this_turn:
        if isinstance(message, AIMessage) and message.usage_metadata:
            usage = Usage(
                usage.input_tokens + message.usage_metadata.get("input_tokens", 0),
                usage.output_tokens + message.usage_metadata.get("output_tokens", 0),
            )
    tools = sum(isinstance(m, ToolMessage) for m in this_turn)
    return update, TurnEnd(len(humans), reply, tools, usage)


def _late_items(
    request: ModelRequest[Any], session: Session
) -> tuple[ModelRequest[Any], list[AnyMessage]]:
    """System items appended while `pre_llm_call` ran: for this call already."""
    late = _system_messages(session.take_system_items())
    if not late:
        return request, late
    return request.override(messages=[*request.messages, *late]), late


def _with_items(
    response: ModelResponse[Any], late: list[AnyMessage]
) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
    """The response, with the items this call saw kept in the state's messages."""
    if not late:
        return response
    return ExtendedModelResponse(
        model_response=response, command=Command(update={"messages": late})
    )
