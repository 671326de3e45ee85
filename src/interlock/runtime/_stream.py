"""A streamed answer on its way to the display: each chunk through `llm_stream_chunk` first,
and only what the plugins let through shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from interlock import StreamChunk, hooks

if TYPE_CHECKING:
    from ._session import Session


class StreamView:
    """One streamed model answer (private to the runtime).

    With nobody at `llm_stream_chunk` (asked once, when the answer starts) chunks are shown
    as they come. Otherwise each chunk goes through the hook before it is shown, one chunk
    behind the model, so that the last one can carry `done=True` (a plugin that held text
    back lets it go then), and the display gets the `delta` the chain ended with. A block
    stops the display of the rest of the answer; the hook still fires for every later
    chunk, so plugins keeping state see the stream end.
    """

    __slots__ = ("_chunks", "_listening", "_modified_by", "_pending", "_session", "_stopped")

    def __init__(self, session: Session) -> None:
        self._session = session
        self._listening = session.agent.manager.has(hooks.LLM_STREAM_CHUNK)
        self._pending: StreamChunk | None = None
        self._stopped = False
        self._modified_by: dict[str, None] = {}  # ordered, without repeats
        self._chunks = 0

    async def add(self, chunk: StreamChunk) -> None:
        """A chunk arrived from the model."""
        if not self._listening:
            self._show(chunk.model, chunk.delta)
            return
        pending, self._pending = self._pending, chunk
        if pending is not None:
            await self._fire(pending)

    async def end(self, *, complete: bool = True) -> None:
        """The model's stream ended: the last chunk goes through, as `done` when the answer
        is `complete` (a stream that broke never says `done`, so that text plugins held
        back, judged against an end that is not the answer's, stays unseen)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await self._fire(pending.replace(done=True) if complete else pending)
        if self._modified_by:  # one record per answer, not one per chunk
            self._session.record("hook", {
                "hook": hooks.LLM_STREAM_CHUNK.name, "modified_by": list(self._modified_by),
                "blocked_by": None, "reason": None, "responded_by": None, "asks": [],
                "errors": [], "violations": [], "chunks": self._chunks,
            })  # fmt: skip

    async def _fire(self, chunk: StreamChunk) -> None:
        self._chunks += 1
        result = await self._session.fire(hooks.LLM_STREAM_CHUNK, chunk, per_chunk=True)
        self._modified_by.update(dict.fromkeys(result.modified_by))
        if self._stopped:
            return
        if result.blocked:
            self._stopped = True
            self._session.emit(
                "stream", chunk.model, stopped_by=result.blocked_by, reason=result.reason
            )
            return
        shown = chunk if result.payload is None else result.payload
        self._show(chunk.model, shown.delta)

    def _show(self, model: str, text: str) -> None:
        if text:
            self._session.emit("stream", model, text=text)
