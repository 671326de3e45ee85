"""Shell commands as the simple commands they run, for `tool_guard`.

`analyse_script(text)` parses a command line with tree-sitter-bash and returns every simple
command it would run: in pipelines and lists, in `$( )`, backticks, `<( )`, subshells,
function bodies and here-documents, in the scripts given to `bash -c`, `sh -c`, `eval`,
`su -c`, `trap`, `watch`, `flock -c`, `script -c` and `env -S`, the commands run by
`find -exec`, and through wrappers (`sudo`, `doas`, `env`, `command`, `exec`, `nohup`,
`time`, `nice`, `timeout`, `xargs`, `runuser`, ...). Declarations (`declare`, `export`,
`local`, `readonly`, `unset`) are commands too. `analyse_argv(words)` does the same for an
argument vector (`["bash", "-lc", "..."]`).

Before parsing, line continuations (backslash-newline) are removed as bash removes them;
brace expansion in words is expanded (`rm {-r,-f} x` is `rm -r -f x`).

Each `Command` has its program's basename, its words as they are known before it runs
(`None` for a word that only the shell knows: a variable, a substitution), its flags
normalised (`-rf` = `-fr` = `-r -f` = `--recursive --force` = `--rec --f`) and the paths it
writes, through redirections or its arguments (`tee`, `cp`, `dd of=`), normalised
(`//dev/./sda` = `/dev/sda`). What cannot be judged from the text is an `Opaque` part with
the reason: anything bash could run that the analysis did not turn into a judged command,
such as a program from a variable, a shell or an interpreter reading its commands from its
input, inline code (`python -c`, `sed e`, `awk system()`), substitution text the parser did
not read (backticks in a here-document), arithmetic on values not known to be numbers
(bash runs `a[$(cmd)]` inside arithmetic), `${x@P}`, aliases, and text longer than
`MAX_CHARS` or that does not parse.

tree-sitter and its bash grammar are imported on first use; the parser is kept per thread.
"""

from __future__ import annotations

import functools
import itertools
import re
import shlex
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import _shell_programs as _programs
from ._shell_programs import SHELLS, WRAPPERS, normalise_flags

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

__all__ = [
    "MAX_CHARS",
    "MAX_COMMANDS",
    "MAX_DEPTH",
    "Analysis",
    "Command",
    "Opaque",
    "analyse_argv",
    "analyse_script",
    "basename",
    "normalise_flags",
]

MAX_DEPTH = 8  # nested `bash -c` / `eval` levels judged before the rest is opaque
MAX_CHARS = 65_536  # longer command text is opaque: parsing cost grows with it
MAX_COMMANDS = 1_000  # simple commands judged in one call before the rest is opaque
MAX_BRACE_WORDS = 256  # words one brace expansion may give before it is opaque
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


# -- parsing ----------------------------------------------------------------------------------

_local = threading.local()


def _parser() -> Parser:
    parser: Parser | None = getattr(_local, "parser", None)
    if parser is None:
        import tree_sitter_bash
        from tree_sitter import Language, Parser

        parser = Parser(Language(tree_sitter_bash.language()))
        _local.parser = parser
    return parser


@functools.lru_cache(maxsize=512)
def analyse_script(text: str) -> Analysis:
    """Every simple command `text` runs as a shell script, and what cannot be judged."""
    collector = _Collector()
    if len(text) > MAX_CHARS:
        collector.opaque.append(Opaque(_short(text), f"longer than {MAX_CHARS} characters"))
    else:
        collector.script(text, 0)
    return collector.result()


def analyse_argv(argv: Sequence[str]) -> Analysis:
    """The commands an argument vector runs, as `analyse_script` finds them in a script."""
    collector = _Collector()
    if not argv:
        collector.opaque.append(Opaque("[]", "an empty argument list"))
    elif sum(len(word) + 1 for word in argv) > MAX_CHARS:
        collector.opaque.append(Opaque(_short(shlex.join(argv)),
                                       f"longer than {MAX_CHARS} characters"))  # fmt: skip
    else:
        collector.argv(list(argv), shlex.join(argv), (), False, 0)
    return collector.result()


_REDIRECTS = frozenset({"file_redirect", "heredoc_redirect", "herestring_redirect"})
_INPUT_OPERATORS = frozenset({"<", "<&", "<<", "<<-", "<<<", "<>"})
_OUTPUT_OPERATORS = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})
_HARMLESS_WRITES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})
_GLOB = re.compile(r"(?<!\\)[*?\[]")
_GLOB_OR_BRACE = re.compile(r"[*?\[{]")
_ESCAPE = re.compile(r"\\(.)", re.S)
_DQ_ESCAPE = re.compile(r'\\([$`"\\\n])')
_ANY_ESCAPE = re.compile(rb"\\.", re.S)
_SUBSTITUTION = re.compile(rb"`|\$\(|\$\[")
_IDENTIFIER = re.compile(rb"(?<![\w#@.\\])[A-Za-z_]\w*")
_POSITIONAL = re.compile(rb"\$(?:\{)?[0-9@*]")
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_NAME = re.compile(r"^[A-Za-z_]\w*$")
_CODE_SUBSCRIPT = re.compile(r"\[[^\]]*[$`]")  # a[$(cmd)]: bash runs it where it is a name
_ARITH_ASSIGN = re.compile(
    rb"(?<![\w#@.\\$])([A-Za-z_]\w*)\s*(?:[-+*/%&|^]|<<|>>)?=(?!=)"
    rb"|(?:\+\+|--)\s*([A-Za-z_]\w*)|([A-Za-z_]\w*)\s*(?:\+\+|--)"
)
_ARITH_TESTS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
# Builtins whose arguments name variables (`read 'a[$(cmd)]'` runs cmd).
_NAMERS = frozenset({"declare", "typeset", "local", "export", "readonly", "unset", "read",
                     "mapfile", "readarray", "printf", "test", "[", "getopts", "wait",
                     "let"})  # fmt: skip
# Arithmetic names whose value the shell sets itself.
_SHELL_NUMBERS = frozenset({b"RANDOM", b"SRANDOM", b"SECONDS", b"LINENO", b"BASHPID", b"PPID",
                            b"UID", b"EUID", b"EPOCHSECONDS", b"BASH_SUBSHELL"})  # fmt: skip


def _join_lines(text: str) -> str:
    """`text` with backslash-newline removed, as bash does before it reads words."""
    return text.replace("\\\n", "") if "\\\n" in text else text


class _Variables:
    """Which variables of a script hold numbers: safe to read in arithmetic.

    Bash evaluates the value of a variable read in arithmetic as an expression, array
    subscripts included, so `x='a[$(cmd)]'; echo $((x))` runs cmd. A variable counts as a
    number where every assignment the script makes to it gives an integer literal (or is
    arithmetic) and the first comes before the read; anything else, the environment
    included, is not known. The script is scanned on first use: most have no arithmetic.
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
        for node in _nodes(root):
            kind = node.type
            if kind == "variable_assignment":
                name = node.child_by_field_name("name")
                if name is None or name.type != "variable_name":
                    continue
                value = node.child_by_field_name("value")
                literal = "" if value is None else _literal(value)
                numeric = literal is not None and (literal == "" or bool(_INTEGER.match(literal)))
                self._assign(name.text or b"", node.start_byte, numeric)
            elif kind == "declaration_command":
                flags = "".join(
                    _node_text(c) for c in node.named_children
                    if c.type == "word" and _node_text(c).startswith("-")
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
                    (lit := _literal(v)) is not None and bool(_INTEGER.match(lit)) for v in values
                )
                if name is not None:
                    self._assign(name.text or b"", node.start_byte, numeric)
            elif kind == "command":
                words = [_literal(c) for c in node.named_children if c.type != "command_name"]
                name_node = node.child_by_field_name("name")
                program = _literal(name_node.named_children[0]) if (
                    name_node is not None and name_node.named_children) else None  # fmt: skip
                if program in ("read", "mapfile", "readarray", "getopts", "printf", "wait"):
                    for word in words:  # their targets: set from input
                        if word is not None and _NAME.match(word):
                            self.unsafe.add(word.encode())
                elif program == "let":
                    self._arithmetic_assignments(node)
            elif kind in ("arithmetic_expansion", "compound_statement", "c_style_for_statement"):
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


class _Collector:
    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.opaque: list[Opaque] = []

    def result(self) -> Analysis:
        return Analysis(tuple(self.commands), tuple(self.opaque))

    def script(self, text: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.opaque.append(Opaque(_short(text), f"more than {MAX_DEPTH} nested shells"))
            return
        joined = _join_lines(text)
        if joined != text:  # judge both readings: a quoted `\<newline>` stays in bash
            self._parsed(joined, depth)
        self._parsed(text, depth)

    def _parsed(self, text: str, depth: int) -> None:
        source = text.encode()
        tree = _parser().parse(source)
        if tree.root_node.has_error:
            self.opaque.append(Opaque(_short(text), "the shell cannot parse it"))
            return
        variables = _Variables(tree.root_node)
        for node in _nodes(tree.root_node):
            kind = node.type
            if len(self.commands) > MAX_COMMANDS:
                self.opaque.append(Opaque(_short(text), f"more than {MAX_COMMANDS} commands"))
                return
            if kind == "command":
                self._command(node, depth, variables)
            elif kind in ("declaration_command", "unset_command"):
                self._declaration(node, depth, variables)
            elif kind == "redirected_statement" and node.child_by_field_name("body") is None:
                writes = tuple(w for w in _redirects(node)[1])
                if writes:
                    self._emit("", (), writes, _node_text(node), False)
            elif kind == "variable_assignment":
                self._assignment(node, depth, variables)
            elif kind in _ARITHMETIC:
                self._arithmetic_node(node, variables)
            elif kind == "expansion":
                self._expansion(node, variables)
            elif kind == "subscript":
                self._subscript(node, variables)
            elif kind == "test_command":
                self._test(node, variables)
            if kind in _EXPANDED_TEXT and _unparsed(node):
                self.opaque.append(Opaque(_node_text(node), "it holds a substitution the "
                                          "analysis did not read"))  # fmt: skip

    # -- what bash evaluates as arithmetic ----------------------------------------------------

    def _arithmetic(self, node: Node, start: int, end: int, variables: _Variables) -> None:
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
            self.opaque.append(Opaque(_node_text(node), why))

    def _arithmetic_node(self, node: Node, variables: _Variables) -> None:
        opener = node.children[0] if node.children else None
        if node.type == "compound_statement" and (opener is None or opener.type != "(("):
            return
        if node.type == "c_style_for_statement":
            marks = [c for c in node.children if c.type in ("((", "))")]
            if len(marks) == 2:
                self._arithmetic(node, marks[0].end_byte, marks[1].start_byte, variables)
            return
        self._arithmetic(node, node.start_byte, node.end_byte, variables)

    def _expansion(self, node: Node, variables: _Variables) -> None:
        children = node.children
        kinds = [c.type for c in children]
        if "@" in kinds and (children[kinds.index("@") + 1].text or b"") in (b"P",):
            self.opaque.append(Opaque(_node_text(node), "${...@P} expands its value as a "
                                      "prompt, running substitutions in it"))  # fmt: skip
        if len(kinds) > 2 and kinds[1] == "!":
            text = node.text or b""
            if not text.endswith((b"*}", b"@}", b"[@]}", b"[*]}")):
                name = children[2]
                if not variables.number(name.text or b"", node.start_byte):
                    self.opaque.append(Opaque(_node_text(node), "${!name} reads the variable "
                                              "its value names, which is not known"))  # fmt: skip
        if ":" in kinds:  # ${x:offset:length}: both arithmetic
            colon = children[kinds.index(":")]
            self._arithmetic(node, colon.end_byte, node.end_byte - 1, variables)

    def _subscript(self, node: Node, variables: _Variables) -> None:
        marks = [c for c in node.children if c.type in ("[", "]")]
        name = node.child_by_field_name("name")
        if len(marks) != 2 or (name is not None and (name.text or b"") in variables.associative):
            return
        inner = (node.text or b"")[marks[0].end_byte - node.start_byte : marks[1].start_byte
                                   - node.start_byte]  # fmt: skip
        if inner.strip() in (b"@", b"*"):
            return
        self._arithmetic(node, marks[0].end_byte, marks[1].start_byte, variables)

    def _test(self, node: Node, variables: _Variables) -> None:
        for part in _nodes(node):
            if part.type not in ("binary_expression", "unary_expression"):
                continue
            operator = part.child_by_field_name("operator")
            op = (operator.text or b"").decode() if operator is not None else ""
            if op in _ARITH_TESTS:
                for side in (part.child_by_field_name("left"), part.child_by_field_name("right")):
                    if side is not None:
                        self._arithmetic(side, side.start_byte, side.end_byte, variables)
            elif op in ("-v", "-R"):
                operand = part.named_children[-1] if part.named_children else None
                if operand is not None and b"[" in (operand.text or b""):
                    self._arithmetic(operand, operand.start_byte, operand.end_byte, variables)

    # -- commands -----------------------------------------------------------------------------

    def _command(self, node: Node, depth: int, variables: _Variables) -> None:
        name = node.child_by_field_name("name")
        words: list[str | None] = []
        if name is not None:
            program = _literal(name.named_children[0] if name.named_children else name)
            if program is None or _has_glob(name):
                self.opaque.append(
                    Opaque(_node_text(node), "its program is not known before it runs")
                )
                return
            words.append(program)
        arguments = node.children_by_field_name("argument")
        for child in arguments:
            expanded = _brace_words(child)
            if expanded is None:
                self.opaque.append(Opaque(_node_text(child), "a brace expansion gives more "
                                          f"than {MAX_BRACE_WORDS} words"))  # fmt: skip
                words.append(None)
            else:
                words.extend(expanded)
        if words and words[0] == "let" and arguments:
            self._arithmetic(node, arguments[0].start_byte, node.end_byte, variables)
        fed, writes = _context(node)
        whole = node.parent  # the text with its redirections, for reasons
        if whole is None or whole.type != "redirected_statement":
            whole = node
        if not words:
            if writes:
                self._emit("", (), tuple(writes), _node_text(whole), False)
            return
        self.argv(words, _node_text(whole), tuple(writes), fed, depth)

    def _declaration(self, node: Node, depth: int, variables: _Variables) -> None:
        """`declare`, `typeset`, `local`, `export`, `readonly`, `unset`: judged as commands."""
        children = node.children
        words: list[str | None] = [(children[0].text or b"").decode()] if children else []
        flags = ""
        for child in node.named_children:
            if child.type == "variable_assignment":
                name = child.child_by_field_name("name")
                value = child.child_by_field_name("value")
                literal = "" if value is None else _literal(value)
                words.append(None if literal is None or name is None
                              else f"{_node_text(name)}={literal}")  # fmt: skip
                if value is not None and ("i" in flags or "n" in flags):
                    if "n" in flags and (literal is None or not _NAME.match(literal)):
                        self.opaque.append(Opaque(_node_text(node), "a name reference to a "
                                                  "name that is not known"))  # fmt: skip
                    if "i" in flags:
                        self._arithmetic(value, value.start_byte, value.end_byte, variables)
            else:
                word = _literal(child)
                words.append(word)
                if word is not None and word.startswith(("-", "+")):
                    flags += word[1:]
        fed, writes = _context(node)
        self.argv(words, _node_text(node), tuple(writes), fed, depth)

    def _assignment(self, node: Node, depth: int, variables: _Variables) -> None:
        """Values that name array elements with code, or that some program runs later."""
        name_node = node.child_by_field_name("name")
        value = node.child_by_field_name("value")
        if name_node is None or name_node.type != "variable_name":
            return
        name = _node_text(name_node)
        literal = "" if value is None else _literal(value)
        text = _node_text(node)
        if literal is not None and _CODE_SUBSCRIPT.search(literal):
            why = "its value names an array element with a substitution, run where it is a number"
            self.opaque.append(Opaque(text, why))
        if value is not None and (name_node.text or b"") in variables.integers:
            self._arithmetic(value, value.start_byte, value.end_byte, variables)
        self._deferred(name, literal, text, depth)

    def _deferred(self, name: str, value: str | None, text: str, depth: int) -> None:
        """A variable whose value a program runs later: judge the value, or opaque."""
        if name in _programs.SCRIPT_VARIABLES:
            if value is None:
                self.opaque.append(Opaque(_short(text), f"{name} holds a command that is "
                                          "not known"))  # fmt: skip
            elif value:
                self.script(value, depth + 1)
        elif name in _programs.FILE_VARIABLES and value != "":
            self.opaque.append(Opaque(_short(text), f"{name} makes programs run or load code "
                                      "that is not known"))  # fmt: skip
        elif name in _programs.PROMPT_VARIABLES and (value is None or _SUBSTITUTION.search(
                value.encode())):  # fmt: skip
            self.opaque.append(Opaque(_short(text), f"{name} runs substitutions when shown"))

    def _emit(
        self,
        path: str,
        words: Sequence[str | None],
        writes: tuple[str | None, ...],
        text: str,
        more: bool,
    ) -> Command:
        program = basename(path)
        writes = tuple(_programs.normal_path(w) for w in writes)
        command = Command(program, path, tuple(words), normalise_flags(program, words),
                          writes, _short(text), more)  # fmt: skip
        self.commands.append(command)
        return command

    def argv(
        self,
        words: list[str | None],
        text: str,
        writes: tuple[str | None, ...],
        fed: bool,
        depth: int,
        more: bool = False,
    ) -> None:
        """Judge one argument vector whose program word is known."""
        path = words[0]
        if path is None:
            self.opaque.append(Opaque(_short(text), "its program is not known before it runs"))
            return
        program = basename(path)
        wrapper = WRAPPERS.get(program)
        args = words[1:]
        if program in _NAMERS:
            for word in args:
                if word is not None and _CODE_SUBSCRIPT.search(word):
                    self.opaque.append(Opaque(_short(text), f"{program} reads a name with a "
                                              "substitution in its subscript"))  # fmt: skip
                    break
        if wrapper is None or (program == "runuser" and not _runuser_runs_argv(args)):
            written = tuple(_programs.written_by(program, args))
            self._emit(path, args, writes + written, text, more)
            self._runs(program, args, text, fed, depth)
            return
        start, options = _programs.parse_options(wrapper, args)
        if start is None:
            self.opaque.append(Opaque(_short(text), f"{program}'s options are not known"))
            return
        own = args[:start]
        self._emit(path, own, writes, text, more)
        if wrapper.assignments:
            for word in own:
                if word is not None and _programs.ASSIGNMENT.match(word):
                    name, _, value = word.partition("=")
                    self._deferred(name, value, text, depth)
        inner = args[start:]
        scripts = [value for option, value in options
                   if (program, option) in _SCRIPT_OPTIONS]  # fmt: skip
        if program == "flock" and len(inner) > 1 and inner[0] in ("-c", "--command"):
            scripts.append(inner[1])
            inner = []
        for script in scripts:
            if script is None:
                self.opaque.append(Opaque(_short(text), f"{program} runs text that is not "
                                          "known"))  # fmt: skip
            else:
                self.script(script, depth + 1)
        if not inner:
            return
        if program == "watch" and "-x" not in normalise_flags("watch", own):
            self._eval(inner, text, depth)
            return
        if program == "flock" and any(option in ("-c", "--command") for option, _ in options):
            self._eval(inner, text, depth)
            return
        self.argv(inner, _join(inner), writes, fed and program != "xargs", depth,
                  more=more or program == "xargs")  # fmt: skip

    def _runs(self, program: str, args: list[str | None], text: str, fed: bool, depth: int) -> None:
        """What a program runs from its arguments or input: shells, eval, su, find, ..."""
        if program in SHELLS:
            self._shell(program, args, text, fed, depth)
        elif program in ("eval", "trap"):
            self._eval(_trap_action(args) if program == "trap" else args, text, depth)
        elif program in ("su", "runuser"):
            self._su(program, args, text, fed, depth)
        elif program in ("source", "."):
            if not args or args[0] is None or _programs.reads_input(args[0]):
                self.opaque.append(Opaque(_short(text), "it runs a script that is not known"))
        elif program == "find":
            self._find(args, depth)
        elif program == "alias" and any(w is None or "=" in w for w in args):
            self.opaque.append(Opaque(_short(text), "an alias changes what later commands "
                                      "run"))  # fmt: skip
            for word in args:
                if word is not None and "=" in word:
                    self.script(word.split("=", 1)[1], depth + 1)
        elif program in ("bind", "complete", "compgen") and any(
            w is None or (w.startswith("-") and ("x" in w or "C" in w)) for w in args
        ):
            self.opaque.append(Opaque(_short(text), f"{program} sets a command run later"))
        elif program == "script":
            self._script_command(args, text, fed, depth)
        elif program in ("parallel", "sem"):
            self.opaque.append(Opaque(_short(text), f"{program} runs its arguments through a "
                                      "shell"))  # fmt: skip
            if args and args[0] is not None and not args[0].startswith("-"):
                end = next((i for i, w in enumerate(args) if w in _PARALLEL_SOURCES), len(args))
                self.argv(args[:end], _join(args[:end]), (), False, depth, more=True)
        elif program == "git":
            self._git(args, text, depth)
        elif program == "sed":
            self._sed(args, text)
        elif program in _programs.AWKS:
            self._awk(program, args, text, fed)
        else:
            interpreter = _programs.interpreter(program)
            if interpreter is not None:
                self._interpreter(interpreter, args, text, fed)

    def _shell(
        self, program: str, args: list[str | None], text: str, fed: bool, depth: int
    ) -> None:
        script: str | None = None
        inline = False
        reads_input = False
        index = 0
        while index < len(args):
            word = args[index]
            if word is None:
                self.opaque.append(Opaque(_short(text), f"{program}'s arguments are not known"))
                return
            if word == "--":
                index += 1
                break
            if word.startswith(("-", "+")) and len(word) > 1:
                if word.startswith("--"):
                    if word in ("--rcfile", "--init-file"):
                        index += 1
                elif "c" in word[1:]:
                    inline = True
                elif "s" in word[1:]:
                    reads_input = True
                if not word.startswith("--") and ("o" in word[1:] or "O" in word[1:]):
                    index += 1  # -o option / -O shopt take a value
                index += 1
                continue
            break
        if inline:
            if index >= len(args):
                self.opaque.append(Opaque(_short(text), f"{program} -c without a script"))
                return
            script = args[index]
            if script is None:
                self.opaque.append(Opaque(_short(text), f"{program} -c runs a script that "
                                          "is not known before it runs"))  # fmt: skip
                return
            self.script(script, depth + 1)
            return
        if index < len(args) and _programs.reads_input(args[index]):
            reads_input = True
        if reads_input or (index >= len(args) and fed):
            self.opaque.append(Opaque(_short(text), f"{program} reads commands from its input"))

    def _eval(self, args: Sequence[str | None], text: str, depth: int) -> None:
        if any(word is None for word in args):
            self.opaque.append(Opaque(_short(text), "it runs text that is not known before "
                                      "it runs"))  # fmt: skip
            return
        script = " ".join(w for w in args if w is not None)
        if script.strip("- "):
            self.script(script, depth + 1)

    def _su(self, program: str, args: list[str | None], text: str, fed: bool, depth: int) -> None:
        _, options = _programs.parse_options(_programs.SU, args, permute=True)
        for option, value in options:
            if option not in ("-c", "--command", "--session-command"):
                continue
            if value is None:
                self.opaque.append(Opaque(_short(text), f"{program} -c runs text that is "
                                          "not known"))  # fmt: skip
            else:
                self.script(value, depth + 1)
            return
        if fed:
            self.opaque.append(Opaque(_short(text), f"{program} reads commands from its input"))

    def _script_command(self, args: list[str | None], text: str, fed: bool, depth: int) -> None:
        _, options = _programs.parse_options(_programs.SCRIPT, args, permute=True)
        commands = [value for option, value in options if option in ("-c", "--command")]
        for value in commands:
            if value is None:
                self.opaque.append(Opaque(_short(text), "script -c runs text that is not known"))
            else:
                self.script(value, depth + 1)
        if not commands and fed:
            self.opaque.append(Opaque(_short(text), "script reads commands from its input"))

    def _find(self, args: list[str | None], depth: int) -> None:
        index = 0
        while index < len(args):
            if args[index] in ("-exec", "-execdir", "-ok", "-okdir"):
                end = index + 1
                while end < len(args) and args[end] not in (";", "+"):
                    end += 1
                inner = args[index + 1 : end]
                if inner:
                    self.argv(inner, _join(inner), (), False, depth)
                index = end
            index += 1

    def _git(self, args: list[str | None], text: str, depth: int) -> None:
        index = 0
        while index < len(args):
            word = args[index]
            if word is None or not word.startswith("-"):
                return  # the subcommand
            setting: str | None = None
            if word == "-c":
                index += 1
                setting = args[index] if index < len(args) else None
                if setting is None:
                    self.opaque.append(Opaque(_short(text), "git -c sets what is not known"))
                    return
            elif word.startswith("-c") and len(word) > 2:
                setting = word[2:]
            elif word.startswith("--config-env"):
                self.opaque.append(Opaque(_short(text), "git --config-env sets configuration "
                                          "from the environment"))  # fmt: skip
            elif word in ("-C", "--git-dir", "--work-tree", "--namespace", "--exec-path"):
                index += 1
            if setting is not None:
                key, _, value = setting.partition("=")
                kind = _programs.git_config_code(key)
                if kind == "opaque":
                    self.opaque.append(Opaque(_short(text), f"git -c {key} may run code"))
                elif kind == "script":
                    self.script(value.lstrip("!"), depth + 1)
            index += 1

    def _sed(self, args: list[str | None], text: str) -> None:
        start, options = _programs.parse_options(_programs.SED, args, permute=True)
        scripts = [v for o, v in options if o in ("-e", "--expression")]
        if not scripts and not any(o in ("-f", "--file") for o, _ in options):
            operands = args[start or 0 :]
            scripts = operands[:1] if operands else []
        for script in scripts:
            if script is None or _programs.sed_runs_code(script):
                self.opaque.append(Opaque(_short(text), "a sed script that may run commands "
                                          "(e) or write files (w)"))  # fmt: skip
                return

    def _awk(self, program: str, args: list[str | None], text: str, fed: bool) -> None:
        start, options = _programs.parse_options(_programs.AWK, args)
        sources = [v for o, v in options if o in ("-e", "--source", "--exec")]
        files = [v for o, v in options if o in ("-f", "--file", "-i", "--include")]
        if not sources and not files:
            operands = args[start or 0 :]
            sources = operands[:1] if operands else []
        if any(f is None or _programs.reads_input(f) for f in files) or any(
            s is None or _programs.awk_runs_code(s) for s in sources
        ):
            self.opaque.append(Opaque(_short(text), f"an {program} program that may run "
                                      "commands or write files"))  # fmt: skip

    def _interpreter(self, name: str, args: list[str | None], text: str, fed: bool) -> None:
        code_flags = _programs.INTERPRETERS.get(name, frozenset())
        for word in args:
            if word is None:
                continue
            if word.lower() in code_flags or (
                word.startswith("-")
                and not word.startswith("--")
                and any("-" + c in code_flags for c in word[1:])
            ):
                self.opaque.append(Opaque(_short(text), f"{name} runs inline code"))
                return
        operands = [w for w in args if w is None or not w.startswith("-") or w == "-"]
        if (operands and _programs.reads_input(operands[0])) or (fed and not operands):
            self.opaque.append(Opaque(_short(text), f"{name} reads code from its input"))


_ARITHMETIC = frozenset({"arithmetic_expansion", "compound_statement", "c_style_for_statement"})
_SUBSCRIPT_RE = re.compile(rb"`|\$\((?!\()")  # `$((` opens arithmetic, not a substitution
# Nodes whose text bash expands (substitutions included); single quotes and $'...' are not.
_EXPANDED_TEXT = frozenset({"word", "string", "string_content", "heredoc_body",
                            "heredoc_content", "expansion", "concatenation", "regex"})  # fmt: skip
_SCRIPT_OPTIONS = frozenset({("env", "-S"), ("env", "--split-string"),
                             ("flock", "-c"), ("flock", "--command"),
                             ("runuser", "-c"), ("runuser", "--command"),
                             ("runuser", "--session-command")})  # fmt: skip
_PARALLEL_SOURCES = frozenset({":::", "::::", ":::+", "::::+"})


def _runuser_runs_argv(args: Sequence[str | None]) -> bool:
    """`runuser -u USER CMD...` runs an argument vector; `runuser USER -c ...` is like su."""
    _, options = _programs.parse_options(WRAPPERS["runuser"], args)
    return any(option in ("-u", "--user") for option, _ in options)


def _trap_action(args: list[str | None]) -> list[str | None]:
    """The command `trap ACTION SIGNAL...` sets; nothing for `trap -p`, `trap - SIG`, `trap SIG`."""
    words = list(args)
    while words and words[0] is not None and words[0].startswith("-") and words[0] != "-":
        if words.pop(0) == "--":
            break
    if len(words) < 2 or words[0] in ("-", ""):
        return []
    return words[:1]


def _unparsed(node: Node) -> bool:
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
    if not _SUBSTITUTION.search(text):
        return False
    own = bytearray()
    position = node.start_byte
    for child in node.children:
        own += text[position - node.start_byte : child.start_byte - node.start_byte]
        position = child.end_byte
    own += text[position - node.start_byte :]
    return bool(_SUBSTITUTION.search(_ANY_ESCAPE.sub(b"", bytes(own))))


def _brace_words(node: Node) -> list[str | None] | None:
    """The words an argument gives after brace expansion; None if it gives too many."""
    if b"{" not in (node.text or b"") or node.type not in _BRACED:
        return [_literal(node)]
    parts = node.named_children if node.type == "concatenation" else [node]
    chars: list[tuple[str, bool]] = []  # (character, protected by quotes or a backslash)
    for part in parts:
        if part.type in ("word", "brace_expression"):
            raw = _node_text(part)
            index = 0
            while index < len(raw):
                if raw[index] == "\\" and index + 1 < len(raw):
                    chars.append((raw[index + 1], True))
                    index += 2
                    continue
                chars.append((raw[index], False))
                index += 1
            continue
        value = _literal(part)
        if value is None:  # a variable next to a brace: how many words is not known
            return [_literal(node)] if not _brace_in(chars) else [None, None]
        chars.extend((c, True) for c in value)
    words = _expand_braces(chars)
    if words is None:
        return None
    return [w for w in words if w != ""]


_BRACED = frozenset({"word", "concatenation", "brace_expression"})


def _brace_in(chars: list[tuple[str, bool]]) -> bool:
    return any(c == "{" and not protected for c, protected in chars)


_SEQUENCE = re.compile(r"^(?:(-?\d+)\.\.(-?\d+)|([A-Za-z])\.\.([A-Za-z]))(?:\.\.(-?\d+))?$")


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


def _nodes(root: Node) -> Iterator[Node]:
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


def _node_text(node: Node) -> str:
    return (node.text or b"").decode(errors="replace")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TEXT_CHARS else text[: _TEXT_CHARS - 3] + "..."


def _join(words: Sequence[str | None]) -> str:
    return " ".join("$?" if w is None else shlex.quote(w) for w in words)


def _literal(node: Node) -> str | None:
    """The word's value after quote removal, or None if only the running shell knows it."""
    kind = node.type
    if kind in ("word", "number", "variable_name"):
        text = _node_text(node)
        return _ESCAPE.sub(r"\1", text) if "\\" in text else text
    if kind == "raw_string":
        return _node_text(node)[1:-1]
    if kind == "string":
        parts = []
        for child in node.named_children:
            if child.type != "string_content":
                return None
            text = _node_text(child)
            parts.append(_DQ_ESCAPE.sub(r"\1", text) if "\\" in text else text)
        return "".join(parts)
    if kind == "concatenation":
        values = [_literal(child) for child in node.named_children]
        if any(v is None for v in values):
            return None
        return "".join(v for v in values if v is not None)
    return None


def _has_glob(name: Node) -> bool:
    """Whether an unquoted part of the program word is a glob or a brace expansion."""
    if not _GLOB_OR_BRACE.search(_node_text(name)):
        return False
    for node in _nodes(name):
        if node.type == "word" and (_GLOB.search(_node_text(node)) or "{" in _node_text(node)):
            return True
        if node.type == "brace_expression":
            return True
    return False


def _context(node: Node) -> tuple[bool, list[str | None]]:
    """Whether the command's input is fed (pipe, redirect) and what it writes to."""
    fed = False
    writes: list[str | None] = []
    redirect_fed, own_writes = _redirects(node)
    fed |= redirect_fed
    writes.extend(own_writes)
    child, parent = node, node.parent
    while parent is not None and parent.type not in ("command_substitution", "program"):
        if parent.type == "pipeline" and parent.named_children[0].id != child.id:
            fed = True
        if parent.type == "redirected_statement":
            redirect_fed, outer_writes = _redirects(parent)
            fed |= redirect_fed
            writes.extend(outer_writes)
        child, parent = parent, parent.parent
    return fed, writes


def _redirects(node: Node) -> tuple[bool, list[str | None]]:
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
            value = _literal(destination) if destination is not None else None
            if operator == ">&" and (value is None or value.isdigit() or value == "-"):
                continue  # a file descriptor, not a file
            if value not in _HARMLESS_WRITES:
                writes.append(value)
    return fed, writes
