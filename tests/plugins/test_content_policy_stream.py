"""content_policy on streamed text: redacted before it is shown, held back a bounded amount."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from interlock import HookContext, Modify, PluginManager, StreamChunk, hook, hooks
from interlock.plugins.content_policy import ContentPolicy, ContentPolicyConfig

TEXT = "Write to ada@example.com or to bob@example.org, and call it a day."
REDACTED = "Write to [email] or to [email], and call it a day."
KEY = "AKIA" + "Q3EGRIPXMHDWL7ZB"  # built from pieces: the repository holds no key


class Stream:
    """Chunks through a manager's `llm_stream_chunk` in one session, as a host fires them."""

    def __init__(self, *plugins: object) -> None:
        self.manager = PluginManager()
        for plugin in plugins:
            self.manager.register(plugin)
        self.scope = self.manager.session("s-1").open()
        self.shown: list[str] = []  # what a display would show, chunk by chunk
        self.blocked: str | None = None

    def run(
        self, pieces: Sequence[str], *, done: bool = True, behind: list[int] | None = None
    ) -> str:
        """Fire one answer's chunks (the last `done`); `behind` gets, after each chunk, how
        many characters received are not shown yet."""
        self.shown.clear()
        got = 0
        for index, piece in enumerate(pieces):
            last = done and index == len(pieces) - 1
            chunk = StreamChunk("m", index, piece, done=last)
            result = self.manager.invoke_sync(hooks.LLM_STREAM_CHUNK, chunk, scope=self.scope)
            got += len(piece)
            if result.blocked:
                self.blocked = result.reason
                break
            self.shown.append((result.payload or chunk).delta)
            if behind is not None:
                behind.append(got - len("".join(self.shown)))
        return "".join(self.shown)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TEXT)), max_size=12))
def test_values_split_anywhere_are_never_shown(cuts: list[int]) -> None:
    stream = Stream(ContentPolicy())
    assert stream.run(split(TEXT, cuts)) == REDACTED  # what the whole answer becomes
    display = ""
    for piece in stream.shown:  # and no moment of the display shows any of a value
        display += piece
        assert "@" not in display and "exam" not in display


def test_an_email_over_three_chunks_is_shown_redacted_at_the_end_of_a_short_answer() -> None:
    stream = Stream(ContentPolicy())
    assert stream.run(["mail ad", "a@exam", "ple.com"]) == "mail [email]"
    assert stream.shown == ["", "", "mail [email]"]  # under 256 characters: held to the end


@settings(max_examples=40, deadline=None)
@given(
    st.text(alphabet="abcdefgh ,.\n", min_size=1, max_size=700),
    st.lists(st.integers(min_value=0, max_value=700), max_size=40),
    st.sampled_from([1, 16, 256]),
)
def test_text_without_findings_is_delayed_by_at_most_the_bound(
    text: str, cuts: list[int], hold: int
) -> None:
    stream = Stream(ContentPolicy(ContentPolicyConfig(stream_hold=hold)))
    shortfall: list[int] = []
    assert stream.run(split(text, cuts), behind=shortfall) == text
    assert max(shortfall[:-1], default=0) <= hold and shortfall[-1] == 0
    # Once the answer is longer than the bound, the display keeps up to exactly that.
    got = 0
    for piece, behind in zip(split(text, cuts), shortfall[:-1], strict=False):
        got += len(piece)
        assert behind == min(got, hold)


def test_a_value_across_the_line_is_held_whole_within_twice_the_bound() -> None:
    text = "0123456789 Mail ada@example.com soon, " + "then more words follow here " * 3
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    stream = Stream(ContentPolicy(ContentPolicyConfig(stream_hold=16)))
    shortfall: list[int] = []
    result = stream.run(pieces, behind=shortfall)
    assert result == text.replace("ada@example.com", "[email]")
    display = ""
    for piece in stream.shown:
        display += piece
        assert "@" not in display and "ada" not in display and "exam" not in display
    # The raw characters not shown yet: never more than twice the bound.
    raw_behind = []
    got = 0
    for piece, shown_so_far in zip(pieces, _prefixes(stream.shown), strict=False):
        got += len(piece)
        raw_shown = len(shown_so_far) + (len("ada@example.com") - len("[email]")) * (
            "[email]" in shown_so_far
        )
        raw_behind.append(got - raw_shown)
    assert max(raw_behind[:-1]) <= 32
    assert max(raw_behind[:-1]) > 16  # the e-mail on the line was held back whole


def _prefixes(pieces: list[str]) -> list[str]:
    out, text = [], ""
    for piece in pieces:
        text += piece
        out.append(text)
    return out


def test_a_secret_split_over_chunks_blocks_before_any_of_it_is_shown() -> None:
    stream = Stream(ContentPolicy())
    stream.run(["here: ", KEY[:6], KEY[6:13], KEY[13:] + " ok", " more"])
    assert stream.blocked == "content policy: it contains api_key x1"
    assert "AKIA" not in "".join(stream.shown)


def test_not_acting_on_stream_chunks_when_told_so() -> None:
    policy = ContentPolicy(ContentPolicyConfig(where=["post_llm_call"]))
    stream = Stream(policy)
    pieces = ["mail ad", "a@exam", "ple.com"]
    assert stream.run(pieces) == "mail ada@example.com"
    assert stream.shown == pieces


def test_each_answer_starts_afresh_and_sessions_do_not_share_held_text() -> None:
    policy = ContentPolicy()
    stream = Stream(policy)
    stream.run(["an answer that broke ", "off: ad"], done=False)  # never `done`: text held
    assert stream.shown == ["", ""]
    assert stream.run(["new ", "answer"]) == "new answer"  # index 0: the held text dropped
    other = Stream(policy)  # the same plugin, another session: its own held text
    other.run(["held in one ", "session"], done=False)
    assert stream.run(["and ", "another"]) == "and another"
    assert other.run(["its own"]) == "its own"


def test_a_recheck_judges_the_chunk_as_it_is_and_keeps_the_held_tail() -> None:
    @hook("llm_stream_chunk", priority=10)  # after content-policy
    def sign(chunk: StreamChunk, ctx: HookContext) -> Modify[StreamChunk] | None:
        if chunk.index == 1:
            return Modify(chunk.replace(delta=chunk.delta + " bob@example.org "))
        return None

    stream = Stream(ContentPolicy(ContentPolicyConfig(stream_hold=4)), sign)
    # Chunk 1: content-policy lets "abab" through unchanged (holding "abab"); `sign` then
    # adds an e-mail, so content-policy is asked again about the changed chunk: it redacts
    # it, and the tail it held comes with the last chunk, once.
    assert stream.run(["abab", "abab", "abab"]) == "abab [email] abababab"
    assert stream.shown == ["", "abab [email] ", "abababab"]


ZWSP = "\u200b"


def _visible(text: str) -> str:
    return text.replace(ZWSP, "")


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=9), st.sampled_from([1, 40, 300, 600]))
def test_a_value_padded_with_invisible_characters_is_never_shown_in_part(
    size: int, padding: int
) -> None:
    # The value is 20 characters as a reader (and the detectors) see it, whatever its raw
    # length: the hold counts what is visible, so no part of it is shown before it is whole.
    text = "write to john.doe" + ZWSP * padding + "@example.com now " + "x " * 200
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    stream = Stream(ContentPolicy())
    result = stream.run(pieces)
    assert _visible(result) == "write to [email] now " + "x " * 200
    display = ""
    for piece in stream.shown:
        display += piece
        assert "john" not in _visible(display) and "@" not in display


def test_runs_of_invisible_characters_cannot_grow_the_held_text_without_bound() -> None:
    # 20,000 zero-width spaces in 5-character chunks: what is held (and judged again with
    # each chunk) keeps one of each run, so the display moves on and the value is redacted.
    text = "start " + ZWSP * 20_000 + "mail ada@example.com then " + "more words " * 40
    pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
    stream = Stream(ContentPolicy(ContentPolicyConfig(stream_hold=16)))
    result = stream.run(pieces)
    assert _visible(result) == _visible(text).replace("ada@example.com", "[email]")
    assert result.count(ZWSP) < 20_000  # the run was cut while it was held
    assert "ada" not in result
    assert _visible("".join(stream.shown[:-1])).startswith("start mail [email] then")
