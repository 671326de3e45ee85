"""What the shell analysis returns: the simple commands it found and what it could not judge."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Analysis", "Command", "Opaque", "basename", "short"]

_TEXT_CHARS = 80  # command text kept for reasons


@dataclass(frozen=True, slots=True)
class Command:
    """One simple command as it would run.

    `program` is the basename of the program word (`/bin/rm` -> `rm`), `path` the word as
    written after quote removal; `words` its arguments, `None` where only the running shell
    knows the word; `flags` its options, normalised; `writes` the files it writes through
    redirections or its arguments (`None` where unknown). `more_words` is true when more
    arguments come from elsewhere (`xargs`).
    """

    program: str
    path: str
    words: tuple[str | None, ...]
    flags: frozenset[str]
    writes: tuple[str | None, ...]
    text: str
    more_words: bool = False

    @property
    def unknown(self) -> bool:
        """Whether some of its words are not known before it runs."""
        return self.more_words or None in self.words

    @property
    def unknown_flags(self) -> bool:
        """Whether words not known before it runs could be flags (none after `--`)."""
        end = self.words.index("--") if "--" in self.words else len(self.words)
        return (self.more_words and end == len(self.words)) or None in self.words[:end]


@dataclass(frozen=True, slots=True)
class Opaque:
    """A part of a command line that cannot be judged from its text, and why."""

    text: str
    why: str


@dataclass(frozen=True, slots=True)
class Analysis:
    """Every simple command of a command line, and the parts that cannot be judged."""

    commands: tuple[Command, ...]
    opaque: tuple[Opaque, ...]


def basename(path: str) -> str:
    """The program name of a program word: `/usr/bin/rm` -> `rm`."""
    return path.rstrip("/").rsplit("/", 1)[-1] if path.strip("/") else path


def short(text: str) -> str:
    """`text` on one line, cut to what a reason shows."""
    text = " ".join(text.split())
    return text if len(text) <= _TEXT_CHARS else text[: _TEXT_CHARS - 3] + "..."
