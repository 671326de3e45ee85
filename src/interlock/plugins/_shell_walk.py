"""The walk over a parsed script: every simple command it runs, and what cannot be judged.

`Collector.script` parses a script and visits its nodes in order: commands (through wrappers
such as `sudo`, `env`, `xargs`, `timeout`), declarations, assignments whose values some program
runs later, redirections, arithmetic and text with substitutions the parser did not read.
What a program runs from its own arguments (`bash -c`, `eval`, `find -exec`, ...) is judged
by `_shell_runs`, which hands the scripts it finds back to the walk.
"""

from __future__ import annotations

import posixpath
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
from ._shell_writes import normal_path, written_by

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
# Words that stand where a program would but are no program the analysis can judge.
_NOT_PROGRAMS = frozenset({"{", "}", "(", ")", "!", "[[", "]]", "((", "))", "if", "then",
                           "else", "elif", "fi", "do", "done", "case", "esac", "while", "until",
                           "for", "in", "select", "function"})  # fmt: skip
# Wrapper options that name a program the wrapper runs besides its command.
_PROGRAM_OPTIONS = frozenset({("dbus-run-session", "--dbus-daemon")})
_SCRIPT_OPTIONS = frozenset({("env", "-S"), ("env", "--split-string"),
                             ("flock", "-c"), ("flock", "--command"),
                             ("runuser", "-c"), ("runuser", "--command"),
                             ("runuser", "--session-command")})  # fmt: skip


class Collector:
    """The simple commands and opaque parts found so far, and the walk that finds them."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.opaque: list[Opaque] = []
        self.code_files: list[tuple[str, str]] = []  # scripts run from files: (path, text)

    def result(self) -> Analysis:
        """What was found; a program or script run from a file the same text writes is opaque.

        `cp /bin/rm x; ./x -rf /` runs what the analysis cannot see: the file's content is
        only known once the earlier command has run.
        """
        written = {_local_path(w) for c in self.commands for w in c.writes if w is not None}
        if written:
            names = {w.rsplit("/", 1)[-1] for w in written}
            runs = [(c.path, c.text, "/" not in c.path) for c in self.commands if c.path]
            runs += [(path, text, False) for path, text in self.code_files]
            for path, text, looked_up in runs:
                local = _local_path(path)
                if (looked_up and local in names) or any(
                    local == w or local.startswith(w + "/") for w in written
                ):
                    self.opaque.append(Opaque(text, f"it runs {path!r}, a file the command "
                                              "line itself writes"))  # fmt: skip
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
        skip = (0, 0)  # the bytes of a substitution judged by re-reading it
        for node in nodes(tree.root_node):
            kind = node.type
            if skip[0] <= node.start_byte and node.end_byte <= skip[1]:
                continue
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
            elif kind == "command_substitution" and self._backticks(node, depth):
                skip = (node.start_byte, node.end_byte)
                continue
            elif kind == "function_definition":
                self._function(node)
            if kind in _EXPANDED_TEXT and unparsed(node):
                self.opaque.append(Opaque(node_text(node), "it holds a substitution the "
                                          "analysis did not read"))  # fmt: skip

    def _backticks(self, node: Node, depth: int) -> bool:
        """A backtick substitution re-read as bash reads it; True if its text was re-parsed.

        The parser keeps escapes inside backticks as written, so a nested substitution
        (`` `echo \\`rm -rf x\\`` ``) is a plain word to it, and it takes `` `a` `b` `` for one
        substitution. Bash pairs backticks in order and un-escapes `` \\` ``, `\\$` and `\\\\`
        inside them: each pair's text is judged as a script, in place of the parser's reading.
        """
        text = node_text(node)
        if not text.startswith("`"):
            return False
        scripts = backtick_scripts(text)
        if len(scripts) == 1 and "\\" not in text:
            return False  # one plain substitution: the parser read it as bash does
        for script in scripts:
            self.script(script, depth + 1)
        return True

    def _function(self, node: Node) -> None:
        """A function that calls itself (`:(){ :|:& };:`) multiplies without end: opaque."""
        name = node.child_by_field_name("name")
        body = node.child_by_field_name("body")
        if name is None or body is None:
            return
        own = node_text(name)
        for inner in nodes(body):
            if inner.type == "command_name" and literal(inner.named_children[0]
                    if inner.named_children else inner) == own:  # fmt: skip
                self.opaque.append(Opaque(short(node_text(node)), f"the function {own} calls "
                                          "itself"))  # fmt: skip
                return

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
        writes = tuple(normal_path(w) for w in writes)
        flags = normalise_flags(program, words)
        if more and program == "rm":
            flags |= {"-r"}  # `find -exec rm`, `xargs rm`: a delete over a tree of names
        command = Command(program, path, tuple(words), flags, writes, short(text), more)
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
        if path in _NOT_PROGRAMS or path.startswith("-") or "=" in path:
            # `coproc { rm -rf x; }`, `env - rm ...`: a keyword or a word the parser or the
            # analysis took for a program. What follows a `{` or `(` is judged as a command.
            self.opaque.append(Opaque(short(text), f"{path!r} is not a program the "
                                      "analysis can judge"))  # fmt: skip
            if path in ("{", "(") and args:
                self.argv(args, join(args), writes, fed, depth, more=more)
            return
        if program == "coproc" and len(args) > 1 and args[0] is not None \
                and NAME.match(args[0]) and args[1] in ("{", "("):  # fmt: skip
            args = args[1:]  # `coproc NAME { ...; }`: the name is not a program
        if program in _NAMERS:
            for word in args:
                if word is not None and _CODE_SUBSCRIPT.search(word):
                    self.opaque.append(Opaque(short(text), f"{program} reads a name with a "
                                              "substitution in its subscript"))  # fmt: skip
                    break
        if wrapper is None or (program == "runuser" and not _runuser_runs_argv(args)):
            written = tuple(written_by(program, args))
            self._emit(path, args, writes + written, text, more)
            runs(self, program, args, text, fed, depth)
            return
        start, options = _programs.parse_options(wrapper, args)
        if start is None:
            self.opaque.append(Opaque(short(text), f"{program}'s options are not known"))
            return
        own = args[:start]
        self._emit(path, own, writes, text, more)
        for option, _ in options:
            if (program, option) in _PROGRAM_OPTIONS:
                self.opaque.append(Opaque(short(text), f"{program} {option} runs a program "
                                          "the analysis does not judge"))  # fmt: skip
        if wrapper.assignments:
            for word in own:
                if word is not None and "=" in word and not word.startswith("-"):
                    name, _, value = word.partition("=")
                    self._deferred(name, value, text, depth)
                    if name.startswith("BASH_FUNC_"):
                        self.opaque.append(Opaque(short(text), "it exports a shell function "
                                                  "that replaces a command"))  # fmt: skip
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


def backtick_scripts(text: str) -> list[str]:
    """The scripts of the backtick pairs in `text`, un-escaped as bash does inside them."""
    scripts: list[str] = []
    index, end = 0, len(text)
    while index < end:
        char = text[index]
        if char == "\\":
            index += 2
        elif char == "`":
            index += 1
            script: list[str] = []
            while index < end and text[index] != "`":
                if text[index] == "\\" and index + 1 < end:
                    pair = text[index : index + 2]
                    script.append(pair[1] if pair[1] in "\\`$" else pair)
                    index += 2
                else:
                    script.append(text[index])
                    index += 1
            scripts.append("".join(script))
            index += 1
        else:
            index += 1
    return scripts


def _local_path(path: str) -> str:
    """A path as written, with `./`, `//` and `..` resolved (`./x` -> `x`)."""
    return posixpath.normpath(path) if path else path


def _runuser_runs_argv(args: Sequence[str | None]) -> bool:
    """`runuser -u USER CMD...` runs an argument vector; `runuser USER -c ...` is like su."""
    _, options = _programs.parse_options(WRAPPERS["runuser"], args)
    return any(option in ("-u", "--user") for option, _ in options)
