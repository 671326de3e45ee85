"""What bash evaluates as arithmetic, and which variables of a script are safe to read there.

Bash evaluates the value of a variable read in arithmetic as an expression, array subscripts
included, so `x='a[$(cmd)]'; echo $((x))` runs cmd. Arithmetic is judged only where it reads
numbers: literals, and variables the script itself sets to numbers. The checks here yield an
`Opaque` for each place that reads anything else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._shell_results import Opaque
from ._shell_syntax import NAME, literal, node_text, nodes

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = [
    "ARITHMETIC",
    "Variables",
    "arithmetic",
    "arithmetic_node",
    "conditional",
    "expansion",
    "subscript",
]

# Nodes bash evaluates as arithmetic (a compound statement only when it opens with `((`).
ARITHMETIC = frozenset({"arithmetic_expansion", "compound_statement", "c_style_for_statement"})
_SUBSCRIPT_RE = re.compile(rb"`|\$\((?!\()")  # `$((` opens arithmetic, not a substitution
_IDENTIFIER = re.compile(rb"(?<![\w#@.\\])[A-Za-z_]\w*")
_POSITIONAL = re.compile(rb"\$(?:\{)?[0-9@*]")
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_ARITH_ASSIGN = re.compile(
    rb"(?<![\w#@.\\$])([A-Za-z_]\w*)\s*(?:[-+*/%&|^]|<<|>>)?=(?!=)"
    rb"|(?:\+\+|--)\s*([A-Za-z_]\w*)|([A-Za-z_]\w*)\s*(?:\+\+|--)"
)
_ARITH_TESTS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
# Arithmetic names whose value the shell sets itself.
_SHELL_NUMBERS = frozenset({b"RANDOM", b"SRANDOM", b"SECONDS", b"LINENO", b"BASHPID", b"PPID",
                            b"UID", b"EUID", b"EPOCHSECONDS", b"BASH_SUBSHELL"})  # fmt: skip


class Variables:
    """Which variables of a script hold numbers: safe to read in arithmetic.

    A variable counts as a number where every assignment the script makes to it gives an
    integer literal (or is arithmetic) and the first comes before the read; anything else,
    the environment included, is not known. The script is scanned on first use: most have
    no arithmetic.
    """

    def __init__(self, root: Node) -> None:
        self._root: Node | None = root
        self.first: dict[bytes, int] = {}
        self.unsafe: set[bytes] = set()
        self._integers: set[bytes] = set()  # declared -i: assignments to them are arithmetic
        self._associative: set[bytes] = set()  # declared -A: subscripts are strings

    @property
    def integers(self) -> set[bytes]:
        """Names declared as integers (`declare -i`)."""
        self._scan()
        return self._integers

    @property
    def associative(self) -> set[bytes]:
        """Names declared as associative arrays (`declare -A`)."""
        self._scan()
        return self._associative

    def _scan(self) -> None:
        root, self._root = self._root, None
        if root is None:
            return
        for node in nodes(root):
            kind = node.type
            if kind == "variable_assignment":
                name = node.child_by_field_name("name")
                if name is None or name.type != "variable_name":
                    continue
                value = node.child_by_field_name("value")
                known = "" if value is None else literal(value)
                numeric = known is not None and (known == "" or bool(_INTEGER.match(known)))
                self._assign(name.text or b"", node.start_byte, numeric)
            elif kind == "declaration_command":
                flags = "".join(
                    node_text(c) for c in node.named_children
                    if c.type == "word" and node_text(c).startswith("-")
                )  # fmt: skip
                for child in node.named_children:
                    name = child if child.type == "variable_name" else (
                        child.child_by_field_name("name")
                        if child.type == "variable_assignment" else None)  # fmt: skip
                    if name is None:
                        continue
                    if "i" in flags:
                        self._integers.add(name.text or b"")
                    if "A" in flags:
                        self._associative.add(name.text or b"")
            elif kind in ("for_statement", "select_statement"):
                name = node.child_by_field_name("variable")
                values = node.children_by_field_name("value")
                numeric = bool(values) and all(
                    (lit := literal(v)) is not None and bool(_INTEGER.match(lit)) for v in values
                )
                if name is not None:
                    self._assign(name.text or b"", node.start_byte, numeric)
            elif kind == "command":
                words = [literal(c) for c in node.named_children if c.type != "command_name"]
                name_node = node.child_by_field_name("name")
                program = literal(name_node.named_children[0]) if (
                    name_node is not None and name_node.named_children) else None  # fmt: skip
                if program in ("read", "mapfile", "readarray", "getopts", "printf", "wait"):
                    for word in words:  # their targets: set from input
                        if word is not None and NAME.match(word):
                            self.unsafe.add(word.encode())
                elif program == "let":
                    self._arithmetic_assignments(node)
            elif kind in ARITHMETIC:
                self._arithmetic_assignments(node)

    def _arithmetic_assignments(self, node: Node) -> None:
        for match in _ARITH_ASSIGN.finditer(node.text or b""):
            name = next(g for g in match.groups() if g)
            self._assign(name, node.start_byte + match.start(), True)

    def _assign(self, name: bytes, position: int, numeric: bool) -> None:
        if not numeric:
            self.unsafe.add(name)
        if name not in self.first or position < self.first[name]:
            self.first[name] = position

    def number(self, name: bytes, position: int) -> bool:
        """Whether `name`, read at `position`, holds a number set by the script."""
        self._scan()
        if name in self.unsafe:
            return False
        if name not in self.first:
            return name in _SHELL_NUMBERS
        return self.first[name] <= position


def arithmetic(node: Node, start: int, end: int, variables: Variables) -> Iterator[Opaque]:
    """Opaque unless the arithmetic between `start` and `end` reads only numbers."""
    source = (node.text or b"")[start - node.start_byte : end - node.start_byte]
    why = ""
    if _SUBSCRIPT_RE.search(source):
        why = "arithmetic evaluates the output of a substitution as code"
    elif _POSITIONAL.search(source):
        why = "arithmetic reads a parameter whose value is not known"
    else:
        for match in _IDENTIFIER.finditer(source):
            name = match.group()
            if not variables.number(name, start + match.start()):
                shown = name.decode(errors="replace")
                why = (f"arithmetic reads `{shown}`, which is not known to be a number "
                       "(bash runs a value such as a[$(cmd)])")  # fmt: skip
                break
    if why:
        yield Opaque(node_text(node), why)


def arithmetic_node(node: Node, variables: Variables) -> Iterator[Opaque]:
    """`$(( ))`, `(( ))` and the head of `for (( ))`."""
    opener = node.children[0] if node.children else None
    if node.type == "compound_statement" and (opener is None or opener.type != "(("):
        return
    if node.type == "c_style_for_statement":
        marks = [c for c in node.children if c.type in ("((", "))")]
        if len(marks) == 2:
            yield from arithmetic(node, marks[0].end_byte, marks[1].start_byte, variables)
        return
    yield from arithmetic(node, node.start_byte, node.end_byte, variables)


def expansion(node: Node, variables: Variables) -> Iterator[Opaque]:
    """`${x@P}`, `${!name}` and the arithmetic in `${x:offset:length}`."""
    children = node.children
    kinds = [c.type for c in children]
    if "@" in kinds and (children[kinds.index("@") + 1].text or b"") in (b"P",):
        yield Opaque(node_text(node), "${...@P} expands its value as a prompt, running "
                     "substitutions in it")  # fmt: skip
    if len(kinds) > 2 and kinds[1] == "!":
        text = node.text or b""
        if not text.endswith((b"*}", b"@}", b"[@]}", b"[*]}")):
            name = children[2]
            if not variables.number(name.text or b"", node.start_byte):
                yield Opaque(node_text(node), "${!name} reads the variable its value names, "
                             "which is not known")  # fmt: skip
    if ":" in kinds:  # ${x:offset:length}: both arithmetic
        colon = children[kinds.index(":")]
        yield from arithmetic(node, colon.end_byte, node.end_byte - 1, variables)


def subscript(node: Node, variables: Variables) -> Iterator[Opaque]:
    """An array subscript: arithmetic, unless the array is associative."""
    marks = [c for c in node.children if c.type in ("[", "]")]
    name = node.child_by_field_name("name")
    if len(marks) != 2 or (name is not None and (name.text or b"") in variables.associative):
        return
    inner = (node.text or b"")[marks[0].end_byte - node.start_byte : marks[1].start_byte
                               - node.start_byte]  # fmt: skip
    if inner.strip() in (b"@", b"*"):
        return
    yield from arithmetic(node, marks[0].end_byte, marks[1].start_byte, variables)


def conditional(node: Node, variables: Variables) -> Iterator[Opaque]:
    """Operands a test compares as numbers (`-eq`, ...) or reads as names (`-v`, `-R`)."""
    for part in nodes(node):
        if part.type not in ("binary_expression", "unary_expression"):
            continue
        operator = part.child_by_field_name("operator")
        op = (operator.text or b"").decode() if operator is not None else ""
        if op in _ARITH_TESTS:
            for side in (part.child_by_field_name("left"), part.child_by_field_name("right")):
                if side is not None:
                    yield from arithmetic(side, side.start_byte, side.end_byte, variables)
        elif op in ("-v", "-R"):
            operand = part.named_children[-1] if part.named_children else None
            if operand is not None and b"[" in (operand.text or b""):
                yield from arithmetic(operand, operand.start_byte, operand.end_byte, variables)
