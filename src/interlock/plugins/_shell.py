"""Shell commands as the simple commands they run, for `tool_guard`.

`analyse_script(text)` parses a command line with tree-sitter-bash and returns every simple
command it would run: in pipelines and lists, in `$( )`, backticks, `<( )`, subshells,
function bodies and here-documents, in the scripts given to `bash -c`, `sh -c`, `eval`,
`su -c`, `watch` and `env -S`, the commands run by `find -exec`, and through wrappers
(`sudo`, `doas`, `env`, `command`, `exec`, `nohup`, `time`, `nice`, `timeout`, `xargs`, ...).
`analyse_argv(words)` does the same for an argument vector (`["bash", "-lc", "..."]`).

Each `Command` has its program's basename, its words as they are known before it runs
(`None` for a word that only the shell knows: a variable, a substitution), its flags
normalised (`-rf` = `-fr` = `-r -f` = `--recursive --force`) and the paths it writes through
redirections. What cannot be judged from the text is an `Opaque` part with the reason: a
program from a variable, a shell or an interpreter reading its commands from a pipe, inline
code for an interpreter (`python -c`, `perl -e`), text that does not parse.

tree-sitter and its bash grammar are imported on first use; the parser is kept per thread.
"""

from __future__ import annotations

import functools
import re
import shlex
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

__all__ = [
    "Analysis",
    "Command",
    "Opaque",
    "analyse_argv",
    "analyse_script",
    "basename",
    "normalise_flags",
]

MAX_DEPTH = 8  # nested `bash -c` / `eval` levels judged before the rest is opaque
_TEXT_CHARS = 80  # command text kept for reasons


@dataclass(frozen=True, slots=True)
class Command:
    """One simple command as it would run.

    `program` is the basename of the program word (`/bin/rm` -> `rm`), `path` the word as
    written after quote removal; `words` its arguments, `None` where only the running shell
    knows the word; `flags` its options, normalised; `writes` the files its output is
    redirected to (`None` where unknown). `more_words` is true when more arguments come from
    elsewhere (`xargs`).
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


# -- knowledge about programs --------------------------------------------------------------

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "fish"})

# Interpreters and the flags that give them inline code.
INTERPRETERS: dict[str, frozenset[str]] = {
    "python": frozenset({"-c"}),
    "perl": frozenset({"-e", "-E"}),
    "ruby": frozenset({"-e"}),
    "node": frozenset({"-e", "--eval", "-p", "--print"}),
    "nodejs": frozenset({"-e", "--eval", "-p", "--print"}),
    "deno": frozenset({"eval"}),
    "bun": frozenset({"-e", "--eval"}),
    "php": frozenset({"-r"}),
    "lua": frozenset({"-e"}),
    "luajit": frozenset({"-e"}),
    "rscript": frozenset({"-e"}),
    "osascript": frozenset({"-e"}),
    "pwsh": frozenset({"-c", "-command", "-encodedcommand", "-e", "-ec"}),
    "powershell": frozenset({"-c", "-command", "-encodedcommand", "-e", "-ec"}),
    "tclsh": frozenset(),
    "awk": frozenset(),
}
_VERSIONED = re.compile(r"^(python|perl|ruby|lua|php|pypy)[\d.]*$")


@functools.lru_cache(maxsize=256)
def _interpreter(program: str) -> str | None:
    name = program.lower()
    if name in INTERPRETERS:
        return name
    versioned = _VERSIONED.match(name)
    if versioned:
        return "python" if versioned.group(1) == "pypy" else versioned.group(1)
    return None


@dataclass(frozen=True, slots=True)
class _Wrapper:
    short_with_value: str = ""  # short options that take a value
    long_with_value: frozenset[str] = frozenset()
    operands: int = 0  # operands before the command (timeout DURATION, chroot ROOT)
    assignments: bool = False  # NAME=VALUE words before the command (env, sudo)


# Programs that run the command given in their arguments.
WRAPPERS: dict[str, _Wrapper] = {
    "sudo": _Wrapper(
        "ugpChDrtUT",
        frozenset(
            {
                "--user",
                "--group",
                "--host",
                "--prompt",
                "--close-from",
                "--chdir",
                "--role",
                "--type",
                "--other-user",
                "--command-timeout",
            }
        ),
        assignments=True,
    ),
    "doas": _Wrapper("uC"),
    "env": _Wrapper("uCS", frozenset({"--unset", "--chdir", "--split-string"}), assignments=True),
    "command": _Wrapper(),
    "builtin": _Wrapper(),
    "exec": _Wrapper("a"),
    "nohup": _Wrapper(),
    "time": _Wrapper("fo", frozenset({"--format", "--output"})),
    "nice": _Wrapper("n", frozenset({"--adjustment"})),
    "ionice": _Wrapper("cnp", frozenset({"--class", "--classdata", "--pid"})),
    "timeout": _Wrapper("sk", frozenset({"--signal", "--kill-after"}), operands=1),
    "stdbuf": _Wrapper("ioe", frozenset({"--input", "--output", "--error"})),
    "setsid": _Wrapper(),
    "chroot": _Wrapper("", frozenset({"--userspec", "--groups"}), operands=1),
    "xargs": _Wrapper(
        "adEeIiLlnPs",
        frozenset(
            {
                "--arg-file",
                "--delimiter",
                "--eof",
                "--replace",
                "--max-lines",
                "--max-args",
                "--max-procs",
                "--max-chars",
                "--process-slot-var",
            }
        ),
    ),
    "busybox": _Wrapper(),
    "coproc": _Wrapper(),
    "flock": _Wrapper(
        "wEc", frozenset({"--timeout", "--conflict-exit-code", "--command"}), operands=1
    ),
    "unbuffer": _Wrapper(),
    "watch": _Wrapper("nd", frozenset({"--interval", "--differences"})),
}

# Long options spelled differently for the same flag, per program; the short form is kept.
_ALIASES: dict[str, dict[str, str]] = {
    "rm": {"--recursive": "-r", "-R": "-r", "--force": "-f", "--dir": "-d"},
    "cp": {"--recursive": "-r", "-R": "-r", "--force": "-f"},
    "mv": {"--force": "-f"},
    "chmod": {"--recursive": "-R"},
    "chown": {"--recursive": "-R"},
    "chgrp": {"--recursive": "-R"},
    "shred": {"--remove": "-u", "--zero": "-z", "--force": "-f", "--iterations": "-n"},
    "git": {"--force": "-f"},
    "crontab": {},
    "grep": {"--recursive": "-r"},
}
_NO_CLUSTERS = frozenset({"find", "dd", "java", "gcc", "clang", "ssh-keygen"})


def basename(path: str) -> str:
    """The program name of a program word: `/usr/bin/rm` -> `rm`."""
    return path.rstrip("/").rsplit("/", 1)[-1] if path.strip("/") else path


def normalise_flags(program: str, words: Sequence[str | None]) -> frozenset[str]:
    """The flags among `words` for `program`: clusters split, long forms and aliases joined.

    Options end at `--`. `-rf`, `-fr`, `-r -f` and `--recursive --force` all give
    `{"-r", "-f"}` for `rm`; `--name=value` counts as `--name`.
    """
    aliases = _ALIASES.get(program, {})
    flags: set[str] = set()
    for word in words:
        if word is None or word == "-" or not word.startswith("-"):
            continue
        if word == "--":
            break
        if word.startswith("--") or program in _NO_CLUSTERS:
            name = word.split("=", 1)[0]
            flags.add(aliases.get(name, name))
            continue
        for char in word[1:]:
            flag = "-" + char
            flags.add(aliases.get(flag, flag))
    return frozenset(flags)


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
    collector.script(text, 0)
    return collector.result()


def analyse_argv(argv: Sequence[str]) -> Analysis:
    """The commands an argument vector runs, as `analyse_script` finds them in a script."""
    collector = _Collector()
    if not argv:
        collector.opaque.append(Opaque("[]", "an empty argument list"))
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
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


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
        source = text.encode()
        tree = _parser().parse(source)
        if tree.root_node.has_error:
            self.opaque.append(Opaque(_short(text), "the shell cannot parse it"))
            return
        for node in _nodes(tree.root_node):
            if node.type == "command":
                self._command(node, depth)
            elif node.type == "redirected_statement" and node.child_by_field_name("body") is None:
                writes = tuple(w for w in _redirects(node)[1])
                if writes:
                    self._emit("", (), writes, _node_text(node), False)

    def _command(self, node: Node, depth: int) -> None:
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
        for child in node.children_by_field_name("argument"):
            words.append(_literal(child))
        fed, writes = _context(node)
        whole = node.parent  # the text with its redirections, for reasons
        if whole is None or whole.type != "redirected_statement":
            whole = node
        if not words:
            if writes:
                self._emit("", (), tuple(writes), _node_text(whole), False)
            return
        self.argv(words, _node_text(whole), tuple(writes), fed, depth)

    def _emit(
        self,
        path: str,
        words: Sequence[str | None],
        writes: tuple[str | None, ...],
        text: str,
        more: bool,
    ) -> Command:
        program = basename(path)
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
        if wrapper is None:
            self._emit(path, args, writes, text, more)
            self._runs(program, args, text, fed, depth)
            return
        start = _inner_start(wrapper, args)
        if start is None:
            self.opaque.append(Opaque(_short(text), f"{program}'s options are not known"))
            return
        self._emit(path, args[:start], writes, text, more)
        own = args[:start]
        if program == "env" and any(w is not None and w.startswith(("-S", "--split-string"))
                                    for w in own):  # fmt: skip
            self._env_split(own, text, depth)
        inner = args[start:]
        if not inner:
            return
        if program == "watch" and "-x" not in normalise_flags("watch", own):
            self._eval(inner, text, depth)
            return
        if program == "flock" and inner[0] is not None and own and "-c" in own:
            self._eval(inner, text, depth)
            return
        self.argv(inner, _join(inner), writes, fed and program != "xargs", depth,
                  more=more or program == "xargs")  # fmt: skip

    def _runs(self, program: str, args: list[str | None], text: str, fed: bool, depth: int) -> None:
        """What a program runs from its arguments or input: shells, eval, su, find."""
        if program in SHELLS:
            self._shell(program, args, text, fed, depth)
        elif program == "eval":
            self._eval(args, text, depth)
        elif program == "su":
            self._su(args, text, fed, depth)
        elif program in ("source", "."):
            if not args or args[0] is None or args[0] in ("/dev/stdin", "-"):
                self.opaque.append(Opaque(_short(text), "it runs a script that is not known"))
        elif program == "find":
            self._find(args, depth)
        else:
            interpreter = _interpreter(program)
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
        if reads_input or (index >= len(args) and fed):
            self.opaque.append(Opaque(_short(text), f"{program} reads commands from its input"))

    def _eval(self, args: list[str | None], text: str, depth: int) -> None:
        if any(word is None for word in args):
            self.opaque.append(Opaque(_short(text), "it runs text that is not known before "
                                      "it runs"))  # fmt: skip
            return
        self.script(" ".join(w for w in args if w is not None), depth + 1)

    def _env_split(self, own: list[str | None], text: str, depth: int) -> None:
        for index, word in enumerate(own):
            if word is None:
                continue
            value: str | None = None
            if word in ("-S", "--split-string") and index + 1 < len(own):
                value = own[index + 1]
            elif word.startswith("--split-string="):
                value = word.split("=", 1)[1]
            elif word.startswith("-S") and len(word) > 2:
                value = word[2:]
            else:
                continue
            if value is None:
                self.opaque.append(Opaque(_short(text), "env -S splits text that is not known"))
            else:
                self.script(value, depth + 1)

    def _su(self, args: list[str | None], text: str, fed: bool, depth: int) -> None:
        for index, word in enumerate(args):
            value: str | None
            if word in ("-c", "--command"):
                value = args[index + 1] if index + 1 < len(args) else None
            elif word is not None and word.startswith("--command="):
                value = word.split("=", 1)[1]
            else:
                continue
            if value is None:
                self.opaque.append(Opaque(_short(text), "su -c runs text that is not known"))
            else:
                self.script(value, depth + 1)
            return
        if fed:
            self.opaque.append(Opaque(_short(text), "su reads commands from its input"))

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

    def _interpreter(self, name: str, args: list[str | None], text: str, fed: bool) -> None:
        code_flags = INTERPRETERS.get(name, frozenset())
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
        operands = [w for w in args if w is None or not w.startswith("-")]
        if name == "awk":
            return  # its program is its first operand; judged as awk
        if fed and (not operands or operands[0] == "-"):
            self.opaque.append(Opaque(_short(text), f"{name} reads code from its input"))


def _inner_start(wrapper: _Wrapper, args: list[str | None]) -> int | None:
    """Where the wrapped command starts in `args` (len(args) if none); None if unknown."""
    index = 0
    while index < len(args):
        word = args[index]
        if word is None:
            return None
        if word == "--":
            index += 1
            break
        if wrapper.assignments and _ASSIGNMENT.match(word):
            index += 1
            continue
        if word.startswith("--"):
            index += 2 if "=" not in word and word in wrapper.long_with_value else 1
            continue
        if word.startswith("-") and len(word) > 1:
            index += 1
            for position, char in enumerate(word[1:], start=2):
                if char in wrapper.short_with_value:
                    if position == len(word):
                        index += 1  # the value is the next word
                    break
            continue
        break
    index += wrapper.operands
    return min(index, len(args))


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
    if kind in ("word", "number"):
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
        if node.type == "word" and _GLOB.search(_node_text(node)):
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
