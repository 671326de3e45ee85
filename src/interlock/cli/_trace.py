"""The live trace: one line per step of the agent, as the CLI shows it."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from interlock import HookResult
from interlock.runtime import TraceEvent


class Trace:
    """Renders `TraceEvent`s (stream chunks show up in the model's answer, not one by one)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._system = 0

    def __call__(self, event: TraceEvent) -> None:
        if event.kind == "hook":
            self._hook(event.name, event.detail["result"])
        elif event.kind == "model" and "request" in event.detail:
            messages = event.detail["request"].messages
            self._system = sum(m.role == "system" for m in messages)
        elif event.kind == "model":
            usage = event.detail["response"].usage
            self._line(
                f"  [blue]model[/] {escape(event.name)} answered ({usage.input_tokens} in, "
                f"{usage.output_tokens} out; its context held {self._system} system messages)"
            )
        elif event.kind == "tool" and "result" in event.detail:
            result = event.detail["result"]
            colour = "red" if result.is_error else "green"
            self._line(
                f"  [{colour}]tool[/] {escape(event.name)} -> {escape(_short(result.output))}"
            )
        elif event.kind == "system_item":
            plugin, text = event.detail["plugin"], event.detail["text"]
            self._line(f"  [magenta]system item[/] ({escape(event.name)}, from {escape(plugin)}): "
                       f"{escape(text)}")  # fmt: skip
        elif event.kind == "notification":
            plugin, text = event.detail["plugin"], event.detail["text"]
            self._line(f"  [cyan]notice[/] from {escape(plugin)}: {escape(text)}")
        elif event.kind == "reply":
            self._reply(event)

    def _hook(self, name: str, result: HookResult[Any]) -> None:
        if name == "llm_stream_chunk":
            return  # shown through the model's text
        parts = []
        if result.modified_by:
            parts.append(f"[yellow]modified by {escape(', '.join(result.modified_by))}[/]")
        if result.blocked:
            parts.append(f"[red]blocked by {escape(str(result.blocked_by))}: "
                         f"{escape(str(result.reason))}[/]")  # fmt: skip
        if result.responded:
            parts.append(f"[yellow]answered by {escape(str(result.responded_by))}[/]")
        parts.extend(f"[yellow]{escape(p)} asks: {escape(q)}[/]" for p, q in result.asks)
        parts.extend(
            f"[red]{escape(f.plugin)} failed: {escape(f.message)}[/]" for f in result.errors
        )
        parts.extend(f"[yellow]{escape(v.plugin)} would {v.action}: {escape(v.reason)}[/]"
                     for v in result.violations)  # fmt: skip
        detail = "; ".join(parts) if parts else "[dim]continued[/]"
        self._line(f"[bold]{name}[/] {detail}")

    def _reply(self, event: TraceEvent) -> None:
        if event.name == "delivered":
            self._line(f"  [green]reply[/] {escape(event.detail['text'])}")
        else:
            self._line(f"  [red]reply not delivered[/]: {escape(str(event.detail['reason']))}")

    def _line(self, text: str) -> None:
        self.console.print(text, highlight=False)


def _short(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
