"""The live trace: one line per step of the agent, as the CLI shows it."""

from __future__ import annotations

import re
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from interlock import HookResult
from interlock.runtime import TraceEvent

Part = str | tuple[str, str]

_PIECES = re.compile(r"\n|[^\S\n]+|\S+")  # line breaks, runs of other spaces, words


class Trace:
    """Renders `TraceEvent`s as they come; a streamed answer is shown as it arrives, as the
    `llm_stream_chunk` plugins let it through (redacted, held back or stopped).

    Lines are built from `Text` parts, so text from users, models and plugins is never
    read as markup.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._system = 0
        self._streaming = False
        self._column = 0  # where the streamed text is on its line
        self._word = ""  # the streamed text after its last space: a word, maybe unfinished

    def __call__(self, event: TraceEvent) -> None:
        detail = event.detail
        if event.kind == "stream":  # already filtered by the llm_stream_chunk plugins
            if "text" in detail:
                self._chunk(detail["text"])
                return
            self._chunk("")
            self._flow(self._word)
            self._word = ""
            self._flow(f" [stopped by {detail['stopped_by']}: {detail['reason']}]", "red")
            return
        self._end_stream()
        if event.kind == "hook":
            self._hook(event.name, detail["result"], detail["payload"])
        elif event.kind == "model" and "request" in detail:
            self._system = sum(m.role == "system" for m in detail["request"].messages)
        elif event.kind == "model":
            usage = detail["usage"]
            held = f"{self._system} system message" + ("" if self._system == 1 else "s")
            counts = f"{usage.input_tokens} in, {usage.output_tokens} out; its context held {held}"
            self._line(("  model", "blue"), f" {event.name} answered ({counts})")
        elif event.kind == "tool" and "result" in detail:
            result = detail["result"]
            colour = "red" if result.is_error else "green"
            self._line(("  tool", colour), f" {event.name} -> ", _short(result.output))
        elif event.kind == "system_item":
            self._line(("  system item", "magenta"),
                       f" ({event.name}, from {detail['plugin']}): ", detail["text"])  # fmt: skip
        elif event.kind == "notification":
            # A table (the profiler's) starts on a line of its own, so that it lines up.
            text = detail["text"]
            self._line(("  notice", "cyan"), f" from {detail['plugin']}:",
                       "\n" if "\n" in text else " ", text)  # fmt: skip
        elif event.kind == "reply" and event.name == "delivered":
            self._line(("  reply", "green"), " ", detail["text"])
        elif event.kind == "reply":
            self._line(("  reply not delivered", "red"), f": {detail['reason']}")

    def _hook(self, name: str, result: HookResult[Any], payload: Any) -> None:
        parts: list[Part] = []
        if name == "error":
            where = f" in {payload.plugin}" if payload.plugin else ""
            parts.append((f"{payload.error_type} at {payload.stage}{where}: {payload.message}",
                          "red"))  # fmt: skip
        if result.modified_by:
            parts.append((f"modified by {', '.join(result.modified_by)}", "yellow"))
        if result.blocked:
            parts.append((f"blocked by {result.blocked_by}: {result.reason}", "red"))
        if result.responded:
            parts.append((f"answered by {result.responded_by}", "yellow"))
        parts.extend((f"{plugin} asks: {question}", "yellow") for plugin, question in result.asks)
        parts.extend((f"{f.plugin} failed: {f.message}", "red") for f in result.errors)
        parts.extend(
            (f"{v.plugin} would {v.action}: {v.reason}", "yellow") for v in result.violations
        )
        if not parts:
            parts.append(("continued", "dim"))
        joined: list[Part] = []
        for part in parts:
            joined += ["; ", part] if joined else [part]
        self._line((name, "bold"), " ", *joined)

    def _chunk(self, delta: str) -> None:
        """Show streamed text, wrapped at spaces as the other lines are: a word is shown
        once it is whole (a space or the end follows), so it is never cut at the edge."""
        if not self._streaming:
            self._streaming, self._column, self._word = True, 0, ""
            self._flow("  streaming ", "blue")
        text = self._word + delta
        end = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t")) + 1
        self._word = text[end:]
        self._flow(text[:end])

    def _end_stream(self) -> None:
        if self._streaming:
            self._flow(self._word)
            self._word = ""
            self.console.print()
            self._streaming = False

    def _flow(self, text: str, style: str = "") -> None:
        """Print `text` from the current column on, starting a new line before a word
        that would cross the edge (spaces there are dropped)."""
        width = self.console.width
        for piece in _PIECES.findall(text):
            size = cell_len(piece)
            if piece == "\n":
                self.console.print()
                self._column = 0
                continue
            if self._column and self._column + size > width:
                self.console.print()
                self._column = 0
                if piece.isspace():
                    continue
            self.console.print(Text(piece, style=style), end="", soft_wrap=True)
            self._column = (self._column + size) % width if size > width else self._column + size

    def _line(self, *parts: Part) -> None:
        self.console.print(Text.assemble(*parts))


def _short(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
