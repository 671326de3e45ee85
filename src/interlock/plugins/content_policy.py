"""`content_policy`: redact personal data and secrets, and block what must never pass.

On messages in and out, on the model's requests and answers, on tool results before the
runtime stores or shows them, and on streamed text before it is shown (holding back its
newest `stream_hold` characters to judge them). Detectors: e-mail
addresses, phone numbers, payment card numbers (Luhn-checked), IBANs (check digits), US
social security numbers, common API-key and secret formats, and regexes of your own.

    plugins:
      - name: content-policy
        use: content-policy
        capabilities: [notify]          # optional: tell the user what was redacted
        config:
          redact: [email, phone, card, iban, ssn]
          deny: [api_key]               # a secret in a message blocks it
          deny_patterns: ["(?i)internal use only"]
          custom: {employee_id: "EMP-\\\\d{6}"}

Values are found however they are spelt (full-width or other digits, a full-width `@`, zero-width
characters or soft hyphens inside, unusual spaces and dashes) and removed whole, invisible
characters included. A tool result holding a `deny` kind is withheld: the model gets an
error result naming the plugin instead.

What it found is reported by kind and count (in the block reason, the log, a `notify`
and, on messages, `metadata["content_policy"]`), never the value itself. Tool calls the
model makes are checked against `deny` as they come (`post_llm_call`: a secret in their
arguments blocks the answer) but not redacted: a call with rewritten arguments would do
something else.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import (
    Block,
    HookContext,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    Modify,
    Plugin,
    StreamChunk,
    ToolCall,
    ToolResult,
)
from ._detectors import BUILT_IN, Detector, View, detectors, redact, scan

logger = logging.getLogger("interlock.plugins.content_policy")

_CACHED_CHARS = 4096  # texts up to this long are judged once and remembered

Where = Literal[
    "message_received",
    "message_sending",
    "pre_llm_call",
    "post_llm_call",
    "llm_stream_chunk",
    "post_tool_call",
]
_EVERYWHERE: tuple[Where, ...] = (
    "message_received",
    "message_sending",
    "pre_llm_call",
    "post_llm_call",
    "llm_stream_chunk",
    "post_tool_call",
)
_HELD = "stream_held"  # the key of the streamed text not shown yet, in the session state
_CUTS = 32  # places tried for where to stop showing streamed text, per chunk


class ContentPolicyConfig(BaseModel):
    """What to redact, what to block, and where."""

    model_config = ConfigDict(extra="forbid")

    redact: list[str] = Field(default_factory=lambda: [k for k in BUILT_IN if k != "api_key"])
    """Kinds to replace with `replacement`: built-in detectors or keys of `custom`."""
    deny: list[str] = Field(default_factory=lambda: ["api_key"])
    """Kinds whose presence blocks the event (checked before redaction)."""
    deny_patterns: list[str] = Field(default_factory=list)
    """Regexes whose match blocks the event."""
    custom: dict[str, str] = Field(default_factory=dict)
    """Detectors of your own: kind -> regex."""
    replacement: str = "[{kind}]"
    """What a redacted value becomes; `{kind}` names what it was."""
    where: list[Where] = Field(default_factory=lambda: list(_EVERYWHERE))
    """The hooks it acts on. `post_tool_call` redacts a tool's output before the host
    stores or shows it (and withholds a result holding a `deny` kind)."""
    stream_hold: int = Field(default=256, ge=0)
    """Characters of streamed text held back (`llm_stream_chunk`) until they can be judged,
    counted as the detectors see them (invisible characters count for nothing): values up
    to this long are redacted before any of them is shown, however the chunks split them
    and however many zero-width characters pad them. The display trails the model by this
    many characters, and by up to twice as many while a value found across that line is
    held back whole."""

    @field_validator("deny_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"{pattern!r} is not a regex: {error}") from None
        return patterns


class _Verdict:
    """What one text holds: the redacted text, counts by kind, and a reason to block."""

    __slots__ = ("clean", "counts", "denied", "text")

    def __init__(self, text: str, counts: Counter[str], denied: str | None) -> None:
        self.text = text
        self.counts = counts
        self.denied = denied
        self.clean = denied is None and not counts  # nothing found: it passes as it is


class ContentPolicy(Plugin):
    """Redacts and blocks by content; see the module documentation."""

    name = "content-policy"
    version = "1.0"
    config_model = ContentPolicyConfig

    def __init__(self, config: ContentPolicyConfig | None = None) -> None:
        config = config or ContentPolicyConfig()
        self.config = config
        self._redact = detectors(config.redact, config.custom)
        self._deny = detectors(config.deny, config.custom)
        self._deny_patterns = [re.compile(p) for p in config.deny_patterns]
        self._where = frozenset(config.where)
        self._cached = functools.lru_cache(maxsize=1024)(self._judge_text)

    # -- the hooks ------------------------------------------------------------------------

    def on_message_received(self, event: MessageEvent, ctx: HookContext) -> Any:
        return self._message(event, ctx)

    def on_message_sending(self, event: MessageEvent, ctx: HookContext) -> Any:
        return self._message(event, ctx)

    def on_pre_llm_call(self, request: LLMRequest, ctx: HookContext) -> Any:
        if "pre_llm_call" not in self._where:
            return None
        # The whole conversation comes by on every model call, nearly all of it judged
        # clean before: a lookup per message, and nothing built, until one is not.
        judge = self._judge
        for message in request.messages:
            if message.role != "system" and not judge(message.content).clean:
                break
        else:
            return None
        counts: Counter[str] = Counter()
        messages: list[Message] = []
        for message in request.messages:
            if message.role == "system":  # the host's own; plugins may not rewrite them
                messages.append(message)
                continue
            verdict = judge(message.content)
            if verdict.denied is not None:
                return self._block(verdict, ctx)
            if verdict.clean:
                messages.append(message)
                continue
            counts += verdict.counts
            changed = verdict.text != message.content
            messages.append(message.replace(content=verdict.text) if changed else message)
        if not counts:
            return None
        self._report(counts, ctx)
        return Modify(request.replace(messages=tuple(messages)))

    def on_post_llm_call(self, response: LLMResponse, ctx: HookContext) -> Any:
        if "post_llm_call" not in self._where:
            return None
        denied = self._denied_calls(response.tool_calls)
        if denied is not None:
            return self._block(denied, ctx)
        return self._redacted(response.content, ctx, lambda v: response.replace(content=v.text))

    def on_post_tool_call(self, result: ToolResult, ctx: HookContext) -> Any:
        """Redact a tool's output before the host stores, shows or sends it to the model.

        A `deny` kind or pattern blocks: the host withholds the result (the reference
        runtime gives the model an error result naming this plugin and the reason).
        """
        if "post_tool_call" not in self._where:
            return None
        return self._redacted(result.output, ctx, lambda v: result.replace(output=v.text))

    # -- streamed text ----------------------------------------------------------------------

    def on_llm_stream_chunk(self, chunk: StreamChunk, ctx: HookContext) -> Any:
        """Redact streamed text before it is shown, holding back the undecided tail.

        The text not shown yet is kept in this plugin's session state and judged again
        with each chunk; a chunk shows what lies `stream_hold` characters or more behind the
        newest text, redacted, and everything when it is the last (`done`). Deny kinds and
        patterns block: the runtime then shows nothing more of the answer.
        """
        if "llm_stream_chunk" not in self._where:
            return None
        state = ctx.state
        # A recheck (a later plugin changed the chunk) is about text already let through:
        # judged as it is, and the held tail is left alone. Index 0 starts a new answer.
        keep = not ctx.recheck
        held = state.get(_HELD, "") if keep and chunk.index else ""
        text = held + chunk.delta
        view = View(text)
        if keep and not chunk.done:
            # The hold is counted as the detectors see the text: zero-width padding inside
            # a value must not push its start past the line. Runs of invisible characters
            # are cut to one in what is held (the same view), so that padding cannot make
            # the held text, and the work per chunk, grow without bound.
            if len(text) - len(view.text) > self.config.stream_hold:
                text = view.squeezed()
                view = View(text)
            if len(view.text) <= self.config.stream_hold:
                state[_HELD] = text  # none of it can be shown yet: judged once some can
                return Modify(chunk.replace(delta="")) if chunk.delta else None
        # The last text of an answer (a short answer whole) is what `post_llm_call` judges
        # next: remembered. Texts in between are each seen once: not kept.
        verdict = self._judge(text) if chunk.done else self._judge_view(text, view)
        if verdict.denied is not None:
            if keep:
                state.pop(_HELD, None)
            return self._block(verdict, ctx)
        if keep and not chunk.done:
            shown, state[_HELD] = self._release(text, view, verdict)
        else:
            shown = verdict.text
            if keep:
                state.pop(_HELD, None)
        return None if shown == chunk.delta else Modify(chunk.replace(delta=shown))

    def _release(self, text: str, view: View, verdict: _Verdict) -> tuple[str, str]:
        """Split streamed `text` into what can be shown (redacted) and what is held back.

        Shown is only text `stream_hold` or more characters behind the newest (in the
        detectors' `view` of it), so a value up to that long is whole in view before any
        of it is shown; the line moves back (to a whitespace, at most `stream_hold` more)
        until no finding crosses it, which the redaction of the whole text and of its two
        sides agreeing shows.
        """
        hold = self.config.stream_hold
        seen = len(view.text)
        if seen <= hold:
            return "", text
        line = view.origin(seen - hold)
        if verdict.text.startswith(text[:line]):  # nothing found before the line
            return text[:line], text[line:]
        floor = view.origin(max(0, seen - 2 * hold))
        cuts = [line, *(i for i in range(line - 1, floor, -1) if text[i - 1].isspace())]
        for cut in cuts[:_CUTS]:
            head = self._judge_text(text[:cut])
            if head.text + self._judge_text(text[cut:]).text == verdict.text:
                return head.text, text[cut:]
        return self._judge_text(text[:floor]).text, text[floor:]

    # -- judging --------------------------------------------------------------------------

    def _message(self, event: MessageEvent, ctx: HookContext) -> Any:
        if ctx.hook.name not in self._where:
            return None

        def rebuild(verdict: _Verdict) -> MessageEvent:
            metadata = {**event.metadata, "content_policy": dict(verdict.counts)}
            return event.replace(content=verdict.text, metadata=metadata)

        return self._redacted(event.content, ctx, rebuild)

    def _redacted(self, text: str, ctx: HookContext, rebuild: Callable[[_Verdict], Any]) -> Any:
        """Judge one payload's `text`: a block when it holds what is denied, nothing when
        there is nothing to redact, else the payload `rebuild` makes from the verdict."""
        verdict = self._judge(text)
        if verdict.denied is not None:
            return self._block(verdict, ctx)
        if not verdict.counts:
            return None
        self._report(verdict.counts, ctx)
        return Modify(rebuild(verdict))

    def _judge(self, text: str) -> _Verdict:
        # Short texts come by again and again (the conversation, on every model call):
        # judged once. Long ones are not kept, to bound what the cache holds.
        return self._cached(text) if len(text) <= _CACHED_CHARS else self._judge_text(text)

    def _denied_calls(self, calls: tuple[ToolCall, ...]) -> _Verdict | None:
        """Tool calls carrying what may not pass (checked for `deny`, never rewritten: a
        tool call with redacted arguments would do something else)."""
        for call in calls:
            # Each text on its own, as the tool will see it: a secret at the start of a
            # heredoc line is not behind a JSON `\n`, and an escaped quote is a quote.
            for text in _texts(call.arguments):
                verdict = self._judge(text)
                if verdict.denied is not None:
                    return _Verdict(
                        "", Counter(), f"tool call {call.tool_name!r}: {verdict.denied}"
                    )
        return None

    def _judge_text(self, text: str) -> _Verdict:
        return self._judge_view(text, View(text))

    def _judge_view(self, text: str, view: View) -> _Verdict:
        """The verdict on `text`, whose normalised `view` (judged by every detector and
        pattern) the caller made."""
        if not text:
            return _Verdict(text, Counter(), None)
        denied = _denied(text, view, self._deny, self._deny_patterns)
        if denied is not None:
            return _Verdict(text, Counter(), denied)
        found = scan(text, self._redact, view)
        counts = Counter(kind for _, _, kind in found)
        return _Verdict(redact(text, found, self.config.replacement), counts, None)

    def _block(self, verdict: _Verdict, ctx: HookContext) -> Block:
        reason = f"content policy: {verdict.denied}"
        where = {"interlock_plugin": ctx.plugin, "interlock_hook": ctx.hook.name}
        logger.info("%s at %s", reason, ctx.hook.name, extra=where)
        return Block(reason)

    def _report(self, counts: Mapping[str, int], ctx: HookContext) -> None:
        summary = _summary(counts)
        logger.info("redacted %s at %s", summary, ctx.hook.name,
                    extra={"interlock_plugin": ctx.plugin, "interlock_hook": ctx.hook.name,
                           "interlock_redacted": dict(counts)})  # fmt: skip
        if ctx.notify is not None:
            ctx.notify.notify(f"redacted {summary} ({ctx.hook.name})")


def _denied(
    text: str, view: View, deny: list[Detector], patterns: list[re.Pattern[str]]
) -> str | None:
    """Why `text` may not pass (kinds and counts, never the values), or None. Patterns
    are tried on the text as written and on its normalised view (`View`)."""
    counts = Counter(kind for _, _, kind in scan(text, deny, view))
    if counts:
        return f"it contains {_summary(counts)}"
    for pattern in patterns:
        if pattern.search(text) or (view.text is not text and pattern.search(view.text)):
            return f"it matches the deny pattern {pattern.pattern!r}"
    return None


def _texts(value: object) -> Iterator[str]:
    """The texts in tool-call arguments: every string (mapping keys too) and number, at
    any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield str(value)


def _summary(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{kind} x{count}" for kind, count in sorted(counts.items()))
