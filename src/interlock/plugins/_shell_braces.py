"""Brace expansion of one argument, as bash does it: `rm {-r,-f} x` is `rm -r -f x`."""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

from ._shell_syntax import literal, node_text

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = ["MAX_BRACE_WORDS", "brace_words"]

MAX_BRACE_WORDS = 256  # words one brace expansion may give before it is opaque
_BRACED = frozenset({"word", "concatenation", "brace_expression"})
_SEQUENCE = re.compile(r"^(?:(-?\d+)\.\.(-?\d+)|([A-Za-z])\.\.([A-Za-z]))(?:\.\.(-?\d+))?$")


def brace_words(node: Node) -> list[str | None] | None:
    """The words an argument gives after brace expansion; None if it gives too many."""
    if b"{" not in (node.text or b"") or node.type not in _BRACED:
        return [literal(node)]
    parts = node.named_children if node.type == "concatenation" else [node]
    chars: list[tuple[str, bool]] = []  # (character, protected by quotes or a backslash)
    for part in parts:
        if part.type in ("word", "brace_expression"):
            raw = node_text(part)
            index = 0
            while index < len(raw):
                if raw[index] == "\\" and index + 1 < len(raw):
                    chars.append((raw[index + 1], True))
                    index += 2
                    continue
                chars.append((raw[index], False))
                index += 1
            continue
        value = literal(part)
        if value is None:  # a variable next to a brace: how many words is not known
            return [literal(node)] if not _brace_in(chars) else [None, None]
        chars.extend((c, True) for c in value)
    words = _expand_braces(chars)
    if words is None:
        return None
    return [w for w in words if w != ""]


def _brace_in(chars: list[tuple[str, bool]]) -> bool:
    return any(c == "{" and not protected for c, protected in chars)


def _expand_braces(chars: list[tuple[str, bool]]) -> list[str] | None:
    """Bash brace expansion of one word; None past `MAX_BRACE_WORDS` words."""
    for open_at, (char, protected) in enumerate(chars):
        if char != "{" or protected or (open_at and chars[open_at - 1] == ("$", False)):
            continue
        depth, commas, close_at = 0, [], -1
        for index in range(open_at + 1, len(chars)):
            inner, inner_protected = chars[index]
            if inner_protected:
                continue
            if inner == "{":
                depth += 1
            elif inner == "}":
                if depth == 0:
                    close_at = index
                    break
                depth -= 1
            elif inner == "," and depth == 0:
                commas.append(index)
        if close_at < 0:
            continue
        prefix, suffix = chars[:open_at], chars[close_at + 1 :]
        alternatives: list[list[tuple[str, bool]]] = []
        if commas:
            bounds = [open_at, *commas, close_at]
            alternatives = [chars[a + 1 : b] for a, b in itertools.pairwise(bounds)]
        else:
            sequence = _SEQUENCE.match("".join(c for c, _ in chars[open_at + 1 : close_at]))
            if sequence is None:
                continue
            items = _sequence(sequence)
            if items is None:
                return None
            alternatives = [[(c, True) for c in item] for item in items]
        results: list[str] = []
        for alternative in alternatives:
            expanded = _expand_braces(prefix + alternative + suffix)
            if expanded is None or len(results) + len(expanded) > MAX_BRACE_WORDS:
                return None
            results.extend(expanded)
        return results
    return ["".join(c for c, _ in chars)]


def _sequence(match: re.Match[str]) -> list[str] | None:
    step = abs(int(match.group(5) or 1)) or 1
    if match.group(1) is not None:
        first, last = int(match.group(1)), int(match.group(2))
        if abs(last - first) // step >= MAX_BRACE_WORDS:
            return None
        direction = step if last >= first else -step
        return [str(n) for n in range(first, last + (1 if direction > 0 else -1), direction)]
    first, last = ord(match.group(3)), ord(match.group(4))
    direction = step if last >= first else -step
    return [chr(n) for n in range(first, last + (1 if direction > 0 else -1), direction)]
