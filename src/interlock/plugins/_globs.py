"""Shell-style globs compiled once for matching whole names, as `fnmatchcase` does."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

_WILD = re.compile(r"[*?[]")


class Globs:
    """Globs compiled for matching whole strings (case-sensitive, as `fnmatchcase`).

    Plain names go in a set and the rest in one regex: a lookup, where one regex of a
    hundred alternatives would try each in turn, and no glob compiled or tried per call.
    No globs match nothing.

        >>> Globs(["rm", "mkfs.*"]).match("mkfs.ext4")
        True
    """

    __slots__ = ("_names", "_wild")

    def __init__(self, globs: Iterable[str]) -> None:
        globs = list(globs)
        self._names = frozenset(g for g in globs if not _WILD.search(g))
        wild = [f"(?:{fnmatch.translate(g)})" for g in globs if _WILD.search(g)]
        self._wild = re.compile("|".join(wild)) if wild else None

    def match(self, text: str) -> bool:
        """Whether some glob matches the whole of `text`."""
        if text in self._names:
            return True
        return self._wild is not None and self._wild.match(text) is not None
