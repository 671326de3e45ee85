"""What the agent needs from a model: one call, streamed or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from interlock import LLMRequest, LLMResponse, StreamChunk


@runtime_checkable
class ModelBackend(Protocol):
    """A chat model. `stream` yields text chunks as they come, then the whole response."""

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer `request` in one piece."""
        ...

    def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk | LLMResponse]:
        """Answer `request` piece by piece: `StreamChunk`s, then one `LLMResponse` last."""
        ...
