"""How the command line writes: help as other command lines write it, and output to a
reader that stops reading (`interlock demo | head -3`) ending the command quietly."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperGroup, TyperOption


class _OutputClosed(KeyboardInterrupt):
    """Whoever read the output stopped reading (`interlock demo | head -3`): the command
    stops as on Ctrl-C, so a session it runs ends as `interrupted`."""


class _Console(Console):
    def on_broken_pipe(self) -> None:
        self.quiet = True  # rich's default exits with 1, which logs the session as an error
        raise _OutputClosed


class Commands(TyperGroup):
    """The commands, with help written as other command lines write it (`--model TEXT`,
    a flag without a placeholder, `PROMPT` in the usage line, paragraphs reflowed to the
    terminal), and a closed output ending any command quietly, with status 141 (SIGPIPE)
    as `git log | head` ends."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_placeholders(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_placeholders(command.get_params(ctx))  # the help option too: it is cached
            paragraphs = inspect.cleandoc(command.help or "").split("\n\n")
            command.help = "\n\n".join(" ".join(p.split()) for p in paragraphs) or None
        return command

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (_OutputClosed, BrokenPipeError):
            _silence_stdout()
            raise typer.Exit(141) from None


class _Option(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        if self.metavar is not None:
            return self.metavar
        shown = self.display_type(ctx).strip("<>").removeprefix("list[").split()[0]
        kind = shown.rstrip("]")
        return {"str": "TEXT", "int": "INTEGER"}.get(kind, kind.upper())


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # its name says it

    def _rich_display_name(self) -> str:
        return self.metavar or (self.name or "").upper()

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        if self.nargs != 1 and self.metavar is None:
            name += "..."
        return name if self.required else f"[{name}]"


def _plain_placeholders(params: list[Any]) -> list[Any]:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _Option
        elif type(param) is TyperArgument:
            param.__class__ = _Argument
    return params


def _silence_stdout() -> None:
    """Point stdout at the null device: what is still buffered for a reader that left
    is dropped at exit, not reported as an error."""
    with contextlib.suppress(OSError, ValueError):  # not a file: a test runner's buffer
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def new_console(*, stderr: bool = False) -> Console:
    """A console for the command's output (stderr: for messages beside it), plain text: no emoji
    codes, no highlighting."""
    return _Console(stderr=stderr, emoji=False, highlight=False)
