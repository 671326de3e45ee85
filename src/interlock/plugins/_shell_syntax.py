"""The bash parser and what its nodes say: word values, globs, redirections, unread text.

tree-sitter and its bash grammar are imported on first use; the parser is kept per thread.
A word's value is what it is after quote removal, or `None` where only the running shell
knows it (a variable, a substitution).
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

__all__ = [
    "NAME",
    "SUBSTITUTION",
    "bash_parser",
    "context",
    "has_glob",
    "join",
    "join_lines",
    "literal",
    "node_text",
    "nodes",
    "redirects",
    "unparsed",
]

NAME = re.compile(r"^[A-Za-z_]\w*$")
SUBSTITUTION = re.compile(rb"`|\$\(|\$\[")
_REDIRECTS = frozenset({"file_redirect", "heredoc_redirect", "herestring_redirect"})
_INPUT_OPERATORS = frozenset({"<", "<&", "<<", "<<-", "<<<", "<>"})
_OUTPUT_OPERATORS = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})
_HARMLESS_WRITES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})
_GLOB = re.compile(r"(?<!\\)[*?\[]")
_GLOB_OR_BRACE = re.compile(r"[*?\[{]")
_ESCAPE = re.compile(r"\\(.)", re.S)
_DQ_ESCAPE = re.compile(r'\\([$`"\\\n])')
_ANY_ESCAPE = re.compile(rb"\\.", re.S)

_local = threading.local()


def bash_parser() -> Parser:
    """This thread's bash parser."""
    parser: Parser | None = getattr(_local, "parser", None)
    if parser is None:
        import tree_sitter_bash
        from tree_sitter import Language, Parser

        parser = Parser(Language(tree_sitter_bash.language()))
        _local.parser = parser
    return parser


def join_lines(text: str) -> str:
    """`text` with backslash-newline removed, as bash does before it reads words."""
    return text.replace("\\\n", "") if "\\\n" in text else text


def join(words: Sequence[str | None]) -> str:
    """An argument vector as command text (`$?` for a word that is not known)."""
    return " ".join("$?" if w is None else shlex.quote(w) for w in words)


def nodes(root: Node) -> Iterator[Node]:
    """`root` and every node below it, in document order."""
    cursor = root.walk()
    while True:
        node = cursor.node
        if node is not None:
            yield node
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


def node_text(node: Node) -> str:
    """The node's source text."""
    return (node.text or b"").decode(errors="replace")


def literal(node: Node) -> str | None:
    """The word's value after quote removal, or None if only the running shell knows it."""
    kind = node.type
    if kind in ("word", "number", "variable_name"):
        text = node_text(node)
        return _ESCAPE.sub(r"\1", text) if "\\" in text else text
    if kind == "raw_string":
        return node_text(node)[1:-1]
    if kind == "string":
        parts = []
        for child in node.named_children:
            if child.type != "string_content":
                return None
            text = node_text(child)
            parts.append(_DQ_ESCAPE.sub(r"\1", text) if "\\" in text else text)
        return "".join(parts)
    if kind == "concatenation":
        values = [literal(child) for child in node.named_children]
        if any(v is None for v in values):
            return None
        return "".join(v for v in values if v is not None)
    return None


def has_glob(name: Node) -> bool:
    """Whether an unquoted part of the program word is a glob or a brace expansion."""
    if not _GLOB_OR_BRACE.search(node_text(name)):
        return False
    for node in nodes(name):
        if node.type == "word" and (_GLOB.search(node_text(node)) or "{" in node_text(node)):
            return True
        if node.type == "brace_expression":
            return True
    return False


def unparsed(node: Node) -> bool:
    """Whether the node's own text (outside its children) holds `$(` or a backtick."""
    if node.type == "heredoc_body":
        redirect = node.parent
        start = redirect.child_by_field_name("heredoc_start") if redirect is not None else None
        if start is None:
            start = next((c for c in redirect.children if c.type == "heredoc_start"), None) \
                if redirect is not None else None  # fmt: skip
        if start is not None and re.search(rb"['\"\\]", start.text or b""):
            return False  # a quoted delimiter: the body is literal
    text = node.text or b""
    if not SUBSTITUTION.search(text):
        return False
    own = bytearray()
    position = node.start_byte
    for child in node.children:
        own += text[position - node.start_byte : child.start_byte - node.start_byte]
        position = child.end_byte
    own += text[position - node.start_byte :]
    return bool(SUBSTITUTION.search(_ANY_ESCAPE.sub(b"", bytes(own))))


def context(node: Node) -> tuple[bool, list[str | None]]:
    """Whether the command's input is fed (pipe, redirect) and what it writes to."""
    fed, writes = redirects(node)
    child, parent = node, node.parent
    while parent is not None and parent.type not in ("command_substitution", "program"):
        if parent.type == "pipeline" and parent.named_children[0].id != child.id:
            fed = True
        if parent.type == "redirected_statement":
            redirect_fed, outer_writes = redirects(parent)
            fed |= redirect_fed
            writes.extend(outer_writes)
        child, parent = parent, parent.parent
    return fed, writes


def redirects(node: Node) -> tuple[bool, list[str | None]]:
    """Whether the node's own redirections feed its input, and the files they write."""
    fed = False
    writes: list[str | None] = []
    for child in node.named_children:
        if child.type not in _REDIRECTS:
            continue
        if child.type != "file_redirect":
            fed = True
            continue
        operator = next((c.type for c in child.children if not c.is_named), "")
        destination = child.child_by_field_name("destination")
        if operator in _INPUT_OPERATORS:
            fed = True
        if operator in _OUTPUT_OPERATORS or operator == ">&":
            value = literal(destination) if destination is not None else None
            if operator == ">&" and (value is None or value.isdigit() or value == "-"):
                continue  # a file descriptor, not a file
            if value not in _HARMLESS_WRITES:
                writes.append(value)
    return fed, writes
