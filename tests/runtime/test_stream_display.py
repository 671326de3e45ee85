"""Streamed answers are shown only as the `llm_stream_chunk` plugins let them through."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from interlock import (
    Block,
    HookContext,
    LLMRequest,
    LLMResponse,
    Modify,
    PluginManager,
    StreamChunk,
    hook,
)
from interlock.cli import app
from interlock.plugins.content_policy import ContentPolicy
from interlock.runtime import Agent, ScriptedBackend, SessionStore, TraceEvent

from .chat_server import ChatServer, Reply

EMAIL = "ada@example.com"
PIECES = ["I will mail the summary to ad", "a@exam", "ple.com", " today."]  # e-mail over three
REDACTED = "I will mail the summary to [email] today."


class Pieces(ScriptedBackend):
    """The scripted model, streaming each answer in the pieces given."""

    def __init__(self, *answers: Sequence[str], fail_after: int | None = None) -> None:
        super().__init__(["".join(pieces) for pieces in answers])
        self.answers = [list(pieces) for pieces in answers]
        self.fail_after = fail_after

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk | LLMResponse]:
        response = await self.complete(request)
        for index, piece in enumerate(self.answers.pop(0)):
            if index == self.fail_after:
                raise ConnectionError("the stream broke")
            yield StreamChunk(self.model, index, piece)
        yield response


class Display:
    """What a live view gets: the trace events, and the streamed text shown."""

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def __call__(self, event: TraceEvent) -> None:
        self.events.append(event)

    def shown(self) -> list[str]:
        return [e.detail["text"] for e in self.events if e.kind == "stream" and "text" in e.detail]

    def stops(self) -> list[tuple[str, str]]:
        return [
            (e.detail["stopped_by"], e.detail["reason"])
            for e in self.events
            if e.kind == "stream" and "stopped_by" in e.detail
        ]


class Chunks:
    """A handler after every other one (never rechecked): the chunks as the chain ends."""

    def __init__(self) -> None:
        self.seen: list[StreamChunk] = []

    def __call__(self, chunk: StreamChunk, ctx: HookContext) -> None:
        self.seen.append(chunk)


async def session(
    model: ScriptedBackend, *plugins: Any, prompts: Sequence[str] = ("go",)
) -> tuple[list[Any], Display, Chunks, SessionStore]:
    manager = PluginManager()
    for plugin in plugins:
        manager.register(plugin)
    chunks = Chunks()
    manager.register(chunks, hook="llm_stream_chunk", name="chunks", priority=1000)
    display, store = Display(), SessionStore()
    agent = Agent(model, manager=manager, store=store, stream=True, on_event=display)
    async with agent.session("s-1") as s:
        results = [await s.send(prompt) for prompt in prompts]
    return results, display, chunks, store


async def test_an_email_split_over_three_chunks_is_never_shown() -> None:
    [result], display, _, store = await session(Pieces(PIECES), ContentPolicy())
    shown = display.shown()
    assert shown, "the answer was shown"
    assert all("@" not in piece and "exam" not in piece for piece in shown)
    assert "".join(shown) == REDACTED == result.reply  # the display is the redacted reply
    # No per-chunk hook event carries the model's own text to a live view, and nothing is
    # logged per chunk: the log holds one record for the stream, and no part of the e-mail.
    assert [e for e in display.events if e.name == "llm_stream_chunk"] == []
    records = store.records("s-1")
    streamed = [
        r.data for r in records if r.kind == "hook" and r.data["hook"] == "llm_stream_chunk"
    ]
    assert [(tuple(d["modified_by"]), d["chunks"]) for d in streamed] == [(("content-policy",), 4)]
    assert "a@exam" not in str([dict(r.data) for r in records])


async def test_the_hook_fires_once_per_chunk_and_the_last_one_is_done() -> None:
    _, _, chunks, _ = await session(Pieces(PIECES, ["second ", "answer"]), prompts=["a", "b"])
    assert [(c.index, c.delta, c.done) for c in chunks.seen] == [
        (0, PIECES[0], False), (1, PIECES[1], False), (2, PIECES[2], False),
        (3, PIECES[3], True), (0, "second ", False), (1, "answer", True),
    ]  # fmt: skip


async def test_the_display_shows_the_chunks_as_the_plugins_left_them() -> None:
    @hook("llm_stream_chunk")
    def shout(chunk: StreamChunk, ctx: HookContext) -> Modify[StreamChunk]:
        return Modify(chunk.replace(delta=chunk.delta.upper()))

    [result], display, chunks, _ = await session(Pieces(["one ", "two"]), shout)
    assert display.shown() == ["ONE ", "TWO"] == [c.delta for c in chunks.seen]
    assert result.reply == "one two"  # the streamed display, not the answer, was changed


async def test_a_block_stops_the_display_and_the_answer_still_goes_on() -> None:
    @hook("llm_stream_chunk")
    def stop(chunk: StreamChunk, ctx: HookContext) -> Block | None:
        return Block("enough streaming") if chunk.delta.startswith("two") else None

    [result], display, chunks, store = await session(Pieces(["one ", "two ", "three"]), stop)
    assert display.shown() == ["one "]
    assert display.stops() == [("stop", "enough streaming")]
    # The hook fires for every chunk (the chain ends at the block), nothing more is shown,
    # and the answer goes on whole.
    assert [(c.delta, c.done) for c in chunks.seen] == [("one ", False), ("three", True)]
    assert result.reply == "one two three" and result.delivered
    blocked = [r.data for r in store.records("s-1") if r.kind == "hook"]
    assert [(d["hook"], d["blocked_by"]) for d in blocked] == [("llm_stream_chunk", "stop")]


async def test_with_nobody_listening_chunks_are_shown_as_they_come() -> None:
    display = Display()
    agent = Agent(Pieces(["one ", "two"]), stream=True, on_event=display)
    assert not agent.manager.has("llm_stream_chunk")
    assert (await agent.run("go")).reply == "one two"
    assert display.shown() == ["one ", "two"]


async def test_a_stream_that_breaks_fires_every_chunk_and_lets_nothing_held_go() -> None:
    [result], display, chunks, _ = await session(Pieces(PIECES, fail_after=2), ContentPolicy())
    assert result.stopped == "failed"
    assert [(c.index, c.done) for c in chunks.seen] == [(0, False), (1, False)]
    assert "@" not in "".join(display.shown())  # the held tail is never shown


def test_the_cli_streams_only_redacted_text(tmp_path: Path) -> None:
    cli = CliRunner(env={"INTERLOCK_DATA_DIR": str(tmp_path), "COLUMNS": "200"})
    with ChatServer([Reply("".join(PIECES), pieces=PIECES)]) as server:
        args = ["run", "mail the summary", "--model", "openai:local", "--base-url", server.url]
        out = cli.invoke(app, [*args, "--stream", "--plugin", "content-policy"])
    assert out.exit_code == 0, out.output
    [streamed] = [line for line in out.output.splitlines() if line.startswith("  streaming ")]
    assert streamed == f"  streaming {REDACTED}"
    assert out.stdout.rstrip().endswith(REDACTED)  # the reply, as delivered (stdout)
    for fragment in ("ada", "@", "exam"):
        assert fragment not in out.output


async def test_no_trace_event_carries_what_the_plugins_redacted() -> None:
    # Streamed or not: a live view sees the answer only as the plugins left it.
    for stream in (True, False):
        display = Display()
        manager = PluginManager()
        manager.register(ContentPolicy())
        agent = Agent(Pieces(PIECES), manager=manager, store=SessionStore(), stream=stream,
                      on_event=display)  # fmt: skip
        async with agent.session("s-1") as s:
            result = await s.send("go")
        assert result.reply == REDACTED
        assert EMAIL not in repr([e.detail for e in display.events]), f"stream={stream}"
