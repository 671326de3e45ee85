"""What the agent needs from a model: one call, streamed or not; and who serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from interlock import LLMRequest, LLMResponse, StreamChunk


@dataclass(frozen=True, slots=True)
class ModelProvider:
    """Who serves a backend's model, as telemetry reports it.

    `name` is the OpenTelemetry GenAI `gen_ai.provider.name` (`openai`, `anthropic`,
    `gcp.gemini`, ... or a value of your own); `remote` says whether a call leaves the
    process (a network call, traced as a client span) or runs in it.
    """

    name: str
    remote: bool = True


@runtime_checkable
class ModelBackend(Protocol):
    """A chat model. `stream` yields text chunks as they come, then the whole response.

    A backend may also have a `provider` (`ModelProvider`) for telemetry to report.
    """

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer `request` in one piece."""
        ...

    def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk | LLMResponse]:
        """Answer `request` piece by piece: `StreamChunk`s, then one `LLMResponse` last."""
        ...
