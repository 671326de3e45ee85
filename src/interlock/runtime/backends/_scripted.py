"""An offline, deterministic stand-in for a model, for demos and tests.

It does not understand anything: each model call takes the next step of its script (a
text answer, tool calls, or both). When the script runs out it echoes the last user
message. Token counts are word counts. Use it to exercise an agent and its plugins end to
end without a network or an API key; use `OpenAIBackend` for a real model.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interlock import JsonValue, LLMRequest, LLMResponse, StreamChunk, ToolCall, Usage

from ._base import ModelProvider


@dataclass(frozen=True)
class Step:
    """One scripted answer: `text`, and `tool_calls` as (tool name, arguments) pairs."""

    text: str = ""
    tool_calls: tuple[tuple[str, Mapping[str, JsonValue]], ...] = field(default=())


class ScriptedBackend:
    """Answers model calls from a script, in order; offline and deterministic.

    model = ScriptedBackend([
        Step(tool_calls=(("shell", {"command": "ls"}),)),
        Step("Listed the files."),
    ])

    Telemetry reports its provider as `interlock.scripted`, in process.
    """

    provider = ModelProvider("interlock.scripted", remote=False)

    def __init__(self, script: Iterable[Step | str] = (), *, model: str = "scripted") -> None:
        self.model = model
        self._steps = [Step(s) if isinstance(s, str) else s for s in script]
        self._position = 0
        self._calls = 0

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedBackend:
        """Load a script from JSON: a list of strings or `{"text", "tool_calls"}` objects,
        tool calls as `{"name": ..., "arguments": {...}}`."""
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a valid model script ({error})") from None
        if not isinstance(raw, list):
            raise ValueError(f"{path}: a model script is a JSON list of steps")
        steps = [_step(item, f"{path}: step {index}") for index, item in enumerate(raw)]
        return cls(steps, model=f"scripted:{Path(path).name}")

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The next step of the script, as a response."""
        step = self._next(request)
        calls = tuple(self._call(name, arguments) for name, arguments in step.tool_calls)
        words_in = sum(len(m.content.split()) for m in request.messages)
        usage = Usage(words_in, len(step.text.split()) + len(calls))
        reason = "tool_calls" if calls else "stop"
        return LLMResponse(self.model, step.text, calls, usage, reason)

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk | LLMResponse]:
        """The same response, its text in word-sized chunks first."""
        response = await self.complete(request)
        for index, piece in enumerate(re.findall(r"\S+\s*", response.content)):
            yield StreamChunk(self.model, index, piece)
        yield response

    def _next(self, request: LLMRequest) -> Step:
        if self._position < len(self._steps):
            self._position += 1
            return self._steps[self._position - 1]
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        return Step(f"(scripted) You said: {last}")

    def _call(self, name: str, arguments: Mapping[str, JsonValue]) -> ToolCall:
        self._calls += 1
        return ToolCall(name, arguments, f"call_{self._calls}")


def _step(item: Any, where: str) -> Step:
    if isinstance(item, str):
        return Step(item)
    problem = f'{where}: a step is a string or {{"text": ..., "tool_calls": [...]}}'
    if not isinstance(item, dict) or set(item) - {"text", "tool_calls"}:
        raise ValueError(problem)
    calls = []
    for call in item.get("tool_calls") or ():
        arguments = call.get("arguments") or {} if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ValueError(f'{where}: a tool call is {{"name": ..., "arguments": {{...}}}}')
        if not isinstance(arguments, dict):
            raise ValueError(f"{where}: tool call arguments must be an object")
        calls.append((call["name"], arguments))
    return Step(str(item.get("text", "")), tuple(calls))
