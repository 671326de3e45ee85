"""A chat model behind any OpenAI-compatible chat-completions endpoint (the `openai` SDK).

Works with OpenAI and with local servers that speak the same wire format (llama.cpp,
vLLM, Ollama, LM Studio, ...): give `base_url`. Needs the `openai` extra
(`pip install -e '<interlock checkout>[openai]'`).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from interlock import LLMRequest, LLMResponse, Message, StreamChunk, ToolCall, Usage

from ._base import ModelProvider


class OpenAIBackend:
    """Calls `model` through the `openai` SDK; streaming, tool calls and usage included.

    model = OpenAIBackend("gpt-4o-mini")                      # key from OPENAI_API_KEY
    local = OpenAIBackend("qwen", base_url="http://127.0.0.1:8080/v1")

    `provider` names who serves the model in telemetry (`gen_ai.provider.name`): `openai`
    unless you say otherwise, e.g. `provider="groq"` for another vendor's compatible API.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        client: Any = None,
        provider: str = "openai",
    ) -> None:
        self.model = model
        self.provider = ModelProvider(provider, remote=True)
        if client is None:
            client = _client(base_url, api_key, timeout)
        self._client = client

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """One chat-completions call."""
        response = await self._client.chat.completions.create(**self._arguments(request))
        choice = response.choices[0]
        message = choice.message
        calls = tuple(
            _tool_call(c.id, c.function.name, c.function.arguments)
            for c in message.tool_calls or ()
        )
        return LLMResponse(
            response.model or self.model,
            message.content or "",
            calls,
            _usage(response.usage),
            choice.finish_reason or "stop",
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk | LLMResponse]:
        """A streamed chat-completions call: text chunks as they come, then the response."""
        arguments = self._arguments(request)
        arguments["stream"] = True
        arguments["stream_options"] = {"include_usage": True}
        stream = await self._client.chat.completions.create(**arguments)
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        model, usage, finish = self.model, Usage(), "stop"
        index = 0
        async for chunk in stream:
            model = chunk.model or model
            if chunk.usage is not None:
                usage = _usage(chunk.usage)
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                    yield StreamChunk(model, index, delta.content)
                    index += 1
                for part in delta.tool_calls or ():
                    slot = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = part.id or slot["id"]
                    if part.function is not None:
                        slot["name"] += part.function.name or ""
                        slot["arguments"] += part.function.arguments or ""
                finish = choice.finish_reason or finish
        tool_calls = tuple(
            _tool_call(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())
        )
        yield LLMResponse(model, "".join(text), tool_calls, usage, finish)

    def _arguments(self, request: LLMRequest) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": [_message(m) for m in request.messages],
            **_plain(request.params),
        }
        if request.tools:
            arguments["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": _plain(t.parameters),
                    },
                }
                for t in request.tools
            ]
        return arguments


def _client(base_url: str | None, api_key: str | None, timeout: float) -> Any:
    try:
        import openai
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the OpenAI-compatible backend needs the openai package: "
            "pip install -e '<interlock checkout>[openai]'"
        ) from None
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if key is None and base_url is None:
        raise ValueError(
            "no API key: set OPENAI_API_KEY, or give the base URL of a local server that needs none"
        )
    return openai.AsyncOpenAI(api_key=key or "not-needed", base_url=base_url, timeout=timeout)


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id or ""
    if message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.tool_name, "arguments": json.dumps(_plain(c.arguments))},
            }
            for c in message.tool_calls
        ]
    return out


def _tool_call(call_id: str | None, name: str, arguments: str | None) -> ToolCall:
    try:
        parsed = json.loads(arguments) if arguments else {}
    except ValueError:
        parsed = {"_unparsed_arguments": arguments}
    if not isinstance(parsed, dict):
        parsed = {"_unparsed_arguments": arguments}
    return ToolCall(name, parsed, call_id or "")


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0)


def _plain(value: Any) -> Any:
    """Frozen payload data back to plain JSON types for the SDK."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
