"""Converters between LangChain's messages, model requests and tool calls and the
payloads interlock plugins see, and back: what `interlock.adapters.langchain` hands to the
bridge and what it returns to the agent. Imported only by that module, after it has
checked that the `langchain` extra is installed.

A message, request or tool result the plugins left as it was goes back as the host's own
object (ids, metadata and content blocks kept); a changed one is a copy of it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain.agents.middleware import ExtendedModelResponse, ModelRequest, ModelResponse
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from .. import (
    ErrorEvent,
    LLMRequest,
    LLMResponse,
    Message,
    Role,
    ToolCall,
    ToolResult,
    ToolSchema,
    Usage,
)
from ._bridge import Verdict, arguments, json_data, plain, text, tool_call

_ROLES: dict[object, Role] = {"system": "system", "assistant": "assistant", "tool": "tool"}

ToolOutput = ToolMessage | Command[Any]


# -- model calls ------------------------------------------------------------------------


def _llm_request(request: ModelRequest[Any]) -> LLMRequest:
    originals = _request_messages(request)
    return LLMRequest(
        _model_name(request.model),
        tuple(_message(m) for m in originals),
        tuple(_tool_schema(t) for t in request.tools),
        _params(request.model_settings),
    )


def _request_messages(request: ModelRequest[Any]) -> list[BaseMessage]:
    system = request.system_message
    return [*([system] if system is not None else []), *request.messages]


def _apply_request(
    request: ModelRequest[Any], payload: LLMRequest, verdict: Verdict[LLMRequest]
) -> ModelRequest[Any]:
    """The request as the plugins left it: messages, model settings, and the tools a
    registration allowed to change them kept."""
    if not verdict.changed:
        return request
    final = verdict.payload
    changes: dict[str, Any] = {}
    if final.messages != payload.messages:
        messages = _lc_messages(final.messages, _request_messages(request), payload.messages)
        system = request.system_message
        if messages and isinstance(messages[0], SystemMessage) and system is not None:
            system, messages = messages[0], messages[1:]
        elif system is not None:
            system = None
        changes["system_message"] = system
        changes["messages"] = messages
    if final.params != payload.params:
        changes["model_settings"] = plain(final.params)
    if final.tools != payload.tools:
        names = {tool.name for tool in final.tools}
        changes["tools"] = [t for t in request.tools if _tool_schema(t).name in names]
    return request.override(**changes) if changes else request


def _model_response(value: Any) -> ModelResponse[Any]:
    if isinstance(value, ModelResponse):
        return value
    if isinstance(value, ExtendedModelResponse):
        inner: ModelResponse[Any] = value.model_response
        return inner
    return ModelResponse(result=[value])


def _responded(response: Any) -> ModelResponse[Any]:
    """A `Respond` answer as the model's `AIMessage`."""
    if isinstance(response, LLMResponse):
        return ModelResponse(result=[_ai_message(response)])
    return ModelResponse(result=[AIMessage(content=text(response))])


def _answer(response: ModelResponse[Any]) -> AIMessage | None:
    return next((m for m in response.result if isinstance(m, AIMessage)), None)


def _apply_answer(
    response: ModelResponse[Any], answer: AIMessage, verdict: Verdict[LLMResponse]
) -> ModelResponse[Any]:
    if verdict.blocked:
        update: dict[str, Any] = {"content": f"[blocked] {verdict.reason}", "tool_calls": []}
        replacement = answer.model_copy(update=update)
    elif verdict.changed:
        final = verdict.payload
        tool_calls = _lc_tool_calls(final.tool_calls)
        replacement = answer.model_copy(update={"content": final.content, "tool_calls": tool_calls})
    else:
        return response
    result = [replacement if m is answer else m for m in response.result]
    return dataclasses.replace(response, result=result)


def _llm_response(message: AIMessage, model: str) -> LLMResponse:
    usage: Mapping[str, Any] = message.usage_metadata or {}
    calls = _calls(message)
    finish = message.response_metadata.get("finish_reason")
    return LLMResponse(
        model,
        str(message.text),
        calls,
        Usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
        str(finish) if finish else ("tool_calls" if calls else "stop"),
    )


def _ai_message(response: LLMResponse) -> AIMessage:
    message = AIMessage(content=response.content, tool_calls=_lc_tool_calls(response.tool_calls))
    if response.usage.total_tokens:
        message.usage_metadata = {
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
            "total_tokens": response.usage.total_tokens,
        }
    return message


def _calls(message: AIMessage) -> tuple[ToolCall, ...]:
    """The tool calls of a model's `AIMessage` as plugins see them."""
    return tuple(tool_call(c["name"], c.get("args"), c.get("id")) for c in message.tool_calls)


def _lc_tool_calls(calls: Iterable[ToolCall]) -> list[Any]:
    return [
        {
            "name": call.tool_name,
            "args": plain(call.arguments),
            "id": call.call_id or f"call_{uuid.uuid4().hex[:24]}",
            "type": "tool_call",
        }
        for call in calls
    ]


def _model_name(model: Any) -> str:
    for attribute in ("model_name", "model", "model_id"):
        name = getattr(model, attribute, None)
        if isinstance(name, str) and name:
            return name
    llm_type = getattr(model, "_llm_type", None)
    return llm_type if isinstance(llm_type, str) else type(model).__name__


def _params(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    data = json_data(dict(settings))
    return data if isinstance(data, Mapping) else {}


def _tool_schema(tool: Any) -> ToolSchema:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    try:
        spec = convert_to_openai_tool(tool)["function"]
    except Exception:  # a provider's own tool dict: named as it names itself
        name = tool.get("name", "") if isinstance(tool, Mapping) else getattr(tool, "name", "")
        return ToolSchema(str(name or type(tool).__name__))
    return ToolSchema(
        str(spec.get("name", "")),
        str(spec.get("description", "")),
        arguments(spec.get("parameters")),
    )


# -- messages ---------------------------------------------------------------------------


# Blocks the model reads as media, not as text: plugins judge text, these pass as they are.
_MEDIA = frozenset({"image", "image_url", "audio", "input_audio", "video", "file"})


def _content_text(message: BaseMessage) -> tuple[str, tuple[str, ...]]:
    """A message's text as plugins judge it, and the types of the blocks that carry text
    no plugin can read.

    Every block with a `text` (`text`, `text-plain`, a provider's own kinds) or a
    `reasoning` string counts, joined as LangChain joins text blocks; LangChain's own
    `message.text` reads only `type: "text"` blocks. Media blocks pass. Any other block of
    a message from outside the model (a `text-plain` or text `file` given by `data` or
    `url`, an unknown kind) is unjudged; the model's own blocks were judged at
    `post_llm_call`.
    """
    content = message.content
    if isinstance(content, str):
        return content, ()
    parts: list[str] = []
    unjudged: list[str] = []
    blocks: list[object] = list(content)  # typed as str | dict; anything may arrive
    for block in blocks:
        if isinstance(block, str):
            parts.append(block)
            continue
        if not isinstance(block, Mapping):
            unjudged.append(type(block).__name__)
            continue
        kind = str(block.get("type"))
        body = block.get("reasoning" if kind == "reasoning" else "text")
        if isinstance(body, str):
            parts.append(body)
        elif not (isinstance(message, AIMessage) or _media(block)):
            unjudged.append(kind)
    return "".join(parts), tuple(unjudged)


def _media(block: Mapping[str, Any]) -> bool:
    if block.get("type") not in _MEDIA:
        return False
    return not str(block.get("mime_type") or "").startswith("text/")


def _unjudged(messages: Iterable[BaseMessage], where: str) -> str | None:
    """The reason to block when a message holds text no plugin can read, else None."""
    for message in messages:
        kinds = _content_text(message)[1]
        if kinds:
            return (
                f"interlock cannot judge the {', '.join(map(repr, kinds))} content block "
                f"of a {message.type} message at {where} (its text is not inline); it is "
                'blocked rather than let through unjudged: send the text as a {"type": '
                '"text"} block'
            )
    return None


def _message(message: BaseMessage) -> Message:
    """A LangChain message as the `Message` plugins see."""
    body = _content_text(message)[0]
    if isinstance(message, SystemMessage):
        return Message("system", body)
    if isinstance(message, AIMessage):
        return Message("assistant", body, tool_calls=_calls(message))
    if isinstance(message, ToolMessage):
        return Message("tool", body, name=message.name, tool_call_id=message.tool_call_id)
    role = getattr(message, "role", "user")
    return Message(_ROLES.get(role, "user"), body)


def _lc_messages(
    final: Sequence[Message], originals: Sequence[BaseMessage], seen: Sequence[Message]
) -> list[AnyMessage]:
    """The plugins' messages in LangChain's terms: a message a plugin left as it was is
    the host's own object (ids, metadata and content blocks kept); a changed or new one is
    rebuilt, keeping the id and kind of the message it replaced."""
    result: list[AnyMessage] = []
    start = 0
    for position, message in enumerate(final):
        match = next((i for i in range(start, len(seen)) if seen[i] == message), None)
        if match is not None:
            result.append(originals[match])  # type: ignore[arg-type]
            start = match + 1
            continue
        replaced = originals[position] if position < len(originals) else None
        result.append(_lc_message(message, replaced))
    return result


def _lc_message(message: Message, replaced: BaseMessage | None) -> AnyMessage:
    role, body = message.role, message.content
    if replaced is not None and _message(replaced).role == role:
        update: dict[str, Any] = {"content": body}
        if role == "assistant":
            update["tool_calls"] = _lc_tool_calls(message.tool_calls)
        copy: AnyMessage = replaced.model_copy(update=update)  # type: ignore[assignment]
        return copy
    if role == "system":
        return SystemMessage(content=body)
    if role == "assistant":
        return AIMessage(content=body, tool_calls=_lc_tool_calls(message.tool_calls))
    if role == "tool":
        return ToolMessage(content=body, tool_call_id=message.tool_call_id or "", name=message.name)
    return HumanMessage(content=body)


def _with_text(message: HumanMessage, body: str) -> HumanMessage:
    """`message` (same id) with its text replaced: one text block for every block that
    held text; images and other media are kept."""
    content = message.content
    if isinstance(content, str):
        return message.model_copy(update={"content": body})
    blocks: list[Any] = [{"type": "text", "text": body}]
    blocks += [b for b in content if isinstance(b, Mapping) and not _text_bearing(b)]
    return message.model_copy(update={"content": blocks})


def _text_bearing(block: Mapping[str, Any]) -> bool:
    """Whether `block` holds text `_content_text` read (a redaction replaces it)."""
    key = "reasoning" if block.get("type") == "reasoning" else "text"
    return isinstance(block.get(key), str)


# -- tool calls -------------------------------------------------------------------------


def _id(request: ToolCallRequest) -> str | None:
    call_id = request.tool_call.get("id")
    return None if call_id is None else str(call_id)


def _refusal(gate: Verdict[ToolCall]) -> str | None:
    if not gate.blocked:
        return None
    return gate.refusal(f"tool {gate.payload.tool_name!r} was blocked")


def _unapproved(call: ToolCall, question: str, allowed: bool) -> str | None:
    return None if allowed else f"tool {call.tool_name!r} was not approved: {question}"


def _apply_call(request: ToolCallRequest, gate: Verdict[ToolCall]) -> ToolCallRequest:
    if not gate.changed:
        return request
    call = request.tool_call.copy()
    call["args"] = plain(gate.payload.arguments)
    return request.override(tool_call=call)


def _tool_message(output: ToolOutput | None, call_id: str) -> ToolMessage | None:
    """The `ToolMessage` answering `call_id` in what the tool returned."""
    if isinstance(output, ToolMessage):
        return output
    if isinstance(output, Command) and isinstance(output.update, Mapping):
        for message in output.update.get("messages") or ():
            if isinstance(message, ToolMessage) and message.tool_call_id == call_id:
                return message
    return None


def _tool_result(call: ToolCall, output: ToolOutput | None, refusal: str | None) -> ToolResult:
    if refusal is not None:
        return ToolResult(call.tool_name, call.arguments, call.call_id, refusal, True)
    message = _tool_message(output, call.call_id)
    body = "" if message is None else text(message.content)
    failed = message is not None and message.status == "error"
    return ToolResult(call.tool_name, call.arguments, call.call_id, body, failed)


def _final_result(result: ToolResult, after: Verdict[ToolResult]) -> ToolResult:
    if after.blocked:
        withheld = f"the result of tool {result.tool_name!r} was withheld by plugin "
        return result.replace(
            output=f"{withheld}{after.blocked_by!r}: {after.reason}", is_error=True
        )
    return after.payload


def _tool_output(output: ToolOutput | None, result: ToolResult) -> ToolOutput:
    """What the tool node returns: the host's own result when the plugins left it, else
    the result as they left it, under the host's tool call id."""
    status = "error" if result.is_error else "success"
    message = _tool_message(output, result.call_id)
    if message is None:
        if isinstance(output, Command):  # a Command without a result message: as it is
            return output
        return ToolMessage(
            content=result.output, tool_call_id=result.call_id, name=result.tool_name, status=status
        )
    if text(message.content) == result.output and message.status == status:
        return output if output is not None else message
    replacement = message.model_copy(update={"content": result.output, "status": status})
    if isinstance(output, Command) and isinstance(output.update, Mapping):
        update = dict(output.update)
        update["messages"] = [replacement if m is message else m for m in update["messages"]]
        return dataclasses.replace(output, update=update)
    return replacement


def _error(error: Exception, stage: str) -> ErrorEvent:
    return ErrorEvent(type(error).__name__, str(error), stage)
