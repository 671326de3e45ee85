"""The walk over a parsed script: every simple command it runs, and what cannot be judged.

`Collector.script` parses a script and visits its nodes in order: commands (through wrappers
such as `sudo`, `env`, `xargs`, `timeout`), declarations, assignments whose values some program
runs later, redirections, arithmetic and text with substitutions the parser did not read.
What a program runs from its own arguments (`bash -c`, `eval`, `find -exec`, ...) is judged
by `_shell_runs`, which hands the scripts it finds back to the walk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import _shell_programs as _programs
from ._shell_arithmetic import (
    ARITHMETIC,
    Variables,
    arithmetic,
    arithmetic_node,
    conditional,
    expansion,
    subscript,
)
from ._shell_braces import MAX_BRACE_WORDS, brace_words
from ._shell_programs import WRAPPERS, normalise_flags
from ._shell_results import Analysis, Command, Opaque, basename, short
from ._shell_runs import eval_words, runs
from ._shell_syntax import (
    NAME,
    SUBSTITUTION,
    bash_parser,
    context,
    has_glob,
    join,
    join_lines,
    literal,
    node_text,
    nodes,
    redirects,
    unparsed,
)

if TYPE_CHECKING:
    from tree_sitter import Node

__all__ = ["MAX_COMMANDS", "MAX_DEPTH", "Collector"]

MAX_DEPTH = 8  # nested `bash -c` / `eval` levels judged before the rest is opaque
MAX_COMMANDS = 1_000  # simple commands judged in one call before the rest is opaque
_CODE_SUBSCRIPT = re.compile(r"\[[^\]]*[$`]")  # a[$(cmd)]: bash runs it where it is a name
# Builtins whose arguments name variables (`read 'a[$(cmd)]'` runs cmd).
_NAMERS = frozenset({"declare", "typeset", "local", "export", "readonly", "unset", "read",
                     "mapfile", "readarray", "printf", "test", "[", "getopts", "wait",
                     "let"})  # fmt: skip
# Nodes whose text bash expands (substitutions included); single quotes and $'...' are not.
_EXPANDED_TEXT = frozenset({"word", "string", "string_content", "heredoc_body",
                            "heredoc_content", "expansion", "concatenation", "regex"})  # fmt: skip
_SCRIPT_OPTIONS = frozenset({("env", "-S"), ("env", "--split-string"),
                             ("flock", "-c"), ("flock", "--command"),
                             ("runuser", "-c"), ("runuser", "--command"),
                             ("runuser", "--session-command")})  # fmt: skip


class Collector:
    """The simple commands and opaque parts found so far, and the walk that finds them."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.opaque: list[Opaque] = []

    def result(self) -> Analysis:
        """What was found."""
        return Analysis(tuple(self.commands), tuple(self.opaque))

    def script(self, text: str, depth: int) -> None:
        """Judge `text` as a shell script, `depth` shells deep."""
        if depth > MAX_DEPTH:
            self.opaque.append(Opaque(short(text), f"more than {MAX_DEPTH} nested shells"))
            return
        joined = join_lines(text)
        if joined != text:  # judge both readings: a quoted `\<newline>` stays in bash
            self._parsed(joined, depth)
        self._parsed(text, depth)

    def _parsed(self, text: str, depth: int) -> None:
        source = text.encode()
        tree = bash_parser().parse(source)
        if tree.root_node.has_error:
            self.opaque.append(Opaque(short(text), "the shell cannot parse it"))
            return
        variables = Variables(tree.root_node)
        for node in nodes(tree.root_node):
            kind = node.type
            if len(self.commands) > MAX_COMMANDS:
                self.opaque.append(Opaque(short(text), f"more than {MAX_COMMANDS} commands"))
                return
            if kind == "command":
                self._command(node, depth, variables)
            elif kind in ("declaration_command", "unset_command"):
                self._declaration(node, depth, variables)
            elif kind == "redirected_statement" and node.child_by_field_name("body") is None:
                writes = tuple(redirects(node)[1])
                if writes:
                    self._emit("", (), writes, node_text(node), False)
            elif kind == "variable_assignment":
                self._assignment(node, depth, variables)
            elif kind in ARITHMETIC:
                self.opaque.extend(arithmetic_node(node, variables))
            elif kind == "expansion":
                self.opaque.extend(expansion(node, variables))
            elif kind == "subscript":
                self.opaque.extend(subscript(node, variables))
            elif kind == "test_command":
                self.opaque.extend(conditional(node, variables))
            if kind in _EXPANDED_TEXT and unparsed(node):
                self.opaque.append(Opaque(node_text(node), "it holds a substitution the "
                                          "analysis did not read"))  # fmt: skip

    # -- commands -----------------------------------------------------------------------------

    def _command(self, node: Node, depth: int, variables: Variables) -> None:
        name = node.child_by_field_name("name")
        words: list[str | None] = []
        if name is not None:
            program = literal(name.named_children[0] if name.named_children else name)
            if program is None or has_glob(name):
                self.opaque.append(
                    Opaque(node_text(node), "its program is not known before it runs")
                )
                return
            words.append(program)
        arguments = node.children_by_field_name("argument")
        for child in arguments:
            expanded = brace_words(child)
            if expanded is None:
                self.opaque.append(Opaque(node_text(child), "a brace expansion gives more "
                                          f"than {MAX_BRACE_WORDS} words"))  # fmt: skip
                words.append(None)
            else:
                words.extend(expanded)
        if words and words[0] == "let" and arguments:
            self.opaque.extend(arithmetic(node, arguments[0].start_byte, node.end_byte, variables))
        fed, writes = context(node)
        whole = node.parent  # the text with its redirections, for reasons
        if whole is None or whole.type != "redirected_statement":
            whole = node
        if not words:
            if writes:
                self._emit("", (), tuple(writes), node_text(whole), False)
            return
        self.argv(words, node_text(whole), tuple(writes), fed, depth)

    def _declaration(self, node: Node, depth: int, variables: Variables) -> None:
        """`declare`, `typeset`, `local`, `export`, `readonly`, `unset`: judged as commands."""
        children = node.children
        words: list[str | None] = [(children[0].text or b"").decode()] if children else []
        flags = ""
        for child in node.named_children:
            if child.type == "variable_assignment":
                name = child.child_by_field_name("name")
                value = child.child_by_field_name("value")
                known = "" if value is None else literal(value)
                words.append(None if known is None or name is None
                              else f"{node_text(name)}={known}")  # fmt: skip
                if value is not None and ("i" in flags or "n" in flags):
                    if "n" in flags and (known is None or not NAME.match(known)):
                        self.opaque.append(Opaque(node_text(node), "a name reference to a "
                                                  "name that is not known"))  # fmt: skip
                    if "i" in flags:
                        self.opaque.extend(
                            arithmetic(value, value.start_byte, value.end_byte, variables)
                        )
            else:
                word = literal(child)
                words.append(word)
                if word is not None and word.startswith(("-", "+")):
                    flags += word[1:]
        fed, writes = context(node)
        self.argv(words, node_text(node), tuple(writes), fed, depth)

    def _assignment(self, node: Node, depth: int, variables: Variables) -> None:
        """Values that name array elements with code, or that some program runs later."""
        name_node = node.child_by_field_name("name")
        value = node.child_by_field_name("value")
        if name_node is None or name_node.type != "variable_name":
            return
        name = node_text(name_node)
        known = "" if value is None else literal(value)
        text = node_text(node)
        if known is not None and _CODE_SUBSCRIPT.search(known):
            why = "its value names an array element with a substitution, run where it is a number"
            self.opaque.append(Opaque(text, why))
        if value is not None and (name_node.text or b"") in variables.integers:
            self.opaque.extend(arithmetic(value, value.start_byte, value.end_byte, variables))
        self._deferred(name, known, text, depth)

    def _deferred(self, name: str, value: str | None, text: str, depth: int) -> None:
        """A variable whose value a program runs later: judge the value, or opaque."""
        if name in _programs.SCRIPT_VARIABLES:
            if value is None:
                self.opaque.append(Opaque(short(text), f"{name} holds a command that is "
                                          "not known"))  # fmt: skip
            elif value:
                self.script(value, depth + 1)
        elif name in _programs.FILE_VARIABLES and value != "":
            self.opaque.append(Opaque(short(text), f"{name} makes programs run or load code "
                                      "that is not known"))  # fmt: skip
        elif name in _programs.PROMPT_VARIABLES and (value is None or SUBSTITUTION.search(
                value.encode())):  # fmt: skip
            self.opaque.append(Opaque(short(text), f"{name} runs substitutions when shown"))

    def _emit(
        self,
        path: str,
        words: Sequence[str | None],
        writes: tuple[str | None, ...],
        text: str,
        more: bool,
    ) -> None:
        program = basename(path)
        writes = tuple(_programs.normal_path(w) for w in writes)
        command = Command(program, path, tuple(words), normalise_flags(program, words),
                          writes, short(text), more)  # fmt: skip
        self.commands.append(command)

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
            self.opaque.append(Opaque(short(text), "its program is not known before it runs"))
            return
        program = basename(path)
        wrapper = WRAPPERS.get(program)
        args = words[1:]
        if program in _NAMERS:
            for word in args:
                if word is not None and _CODE_SUBSCRIPT.search(word):
                    self.opaque.append(Opaque(short(text), f"{program} reads a name with a "
                                              "substitution in its subscript"))  # fmt: skip
                    break
        if wrapper is None or (program == "runuser" and not _runuser_runs_argv(args)):
            written = tuple(_programs.written_by(program, args))
            self._emit(path, args, writes + written, text, more)
            runs(self, program, args, text, fed, depth)
            return
        start, options = _programs.parse_options(wrapper, args)
        if start is None:
            self.opaque.append(Opaque(short(text), f"{program}'s options are not known"))
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
                self.opaque.append(Opaque(short(text), f"{program} runs text that is not "
                                          "known"))  # fmt: skip
            else:
                self.script(script, depth + 1)
        if not inner:
            return
        if program == "watch" and "-x" not in normalise_flags("watch", own):
            eval_words(self, inner, text, depth)
            return
        if program == "flock" and any(option in ("-c", "--command") for option, _ in options):
            eval_words(self, inner, text, depth)
            return
        self.argv(inner, join(inner), writes, fed and program != "xargs", depth,
                  more=more or program == "xargs")  # fmt: skip


def _runuser_runs_argv(args: Sequence[str | None]) -> bool:
    """`runuser -u USER CMD...` runs an argument vector; `runuser USER -c ...` is like su."""
    _, options = _programs.parse_options(WRAPPERS["runuser"], args)
    return any(option in ("-u", "--user") for option, _ in options)
