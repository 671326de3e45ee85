"""What git subcommands run from their arguments.

Transports run programs named in options (`--upload-pack`, `--receive-pack`, `--exec`,
`clone -u`); `rebase -x`, `difftool -x`, `submodule foreach`, `filter-branch --*-filter` and
`send-email --*-cmd` run shell commands; `bisect run` runs an argument vector; `git config`
stores settings that later git commands run (`core.pager`, `alias.*`). The commands found go
back to the walk; settings are judged like `git -c`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _shell_programs as _programs
from ._shell_results import Opaque, short
from ._shell_syntax import join

if TYPE_CHECKING:
    from ._shell_walk import Collector

__all__ = ["git_subcommand"]

# Long options whose value git runs through a shell, for any subcommand.
_SCRIPT_OPTIONS = frozenset({"--upload-pack", "--receive-pack", "--exec", "--extcmd",
                             "--sendmail-cmd", "--to-cmd", "--cc-cmd", "--header-cmd",
                             "--tree-filter", "--index-filter", "--msg-filter", "--env-filter",
                             "--commit-filter", "--parent-filter", "--tag-name-filter",
                             "--subdirectory-filter"})  # fmt: skip
# Short options that are one of those, per subcommand (`push -u` is --set-upstream).
_SHORT_SCRIPT = {"clone": "-u", "ls-remote": "-u", "rebase": "-x", "difftool": "-x"}
_CONFIG_OPTIONS = frozenset({"--file", "-f", "--blob", "--type", "--default", "--comment"})


def git_subcommand(walker: Collector, words: list[str | None], text: str, depth: int) -> None:
    """Judge what `git SUBCOMMAND ARGS...` runs; `words[0]` is the subcommand."""
    subcommand = words[0]
    args = words[1:]
    short_option = _SHORT_SCRIPT.get(subcommand or "")
    for index, word in enumerate(args):
        if word is None:
            continue
        name, equals, value = word.partition("=")
        if name in _SCRIPT_OPTIONS or (short_option is not None and word == short_option):
            given = value if equals else (args[index + 1] if index + 1 < len(args) else None)
            if given is None:
                walker.opaque.append(Opaque(short(text), f"git {subcommand} {name} runs a "
                                            "command that is not known"))  # fmt: skip
            elif given.strip():
                walker.script(given, depth + 1)
        elif short_option is not None and word.startswith(short_option) and len(word) > 2:
            walker.script(word[2:], depth + 1)  # `-xCMD`
    if subcommand == "bisect" and args[:1] == ["run"] and len(args) > 1:
        walker.argv(args[1:], join(args[1:]), (), False, depth)
    elif subcommand == "submodule" and "foreach" in args:
        command = args[args.index("foreach") + 1 :]
        while command and command[0] in ("--recursive", "-q", "--quiet"):
            command = command[1:]
        if any(w is None for w in command):
            walker.opaque.append(Opaque(short(text), "git submodule foreach runs a command "
                                        "that is not known"))  # fmt: skip
        elif command:
            walker.script(" ".join(w for w in command if w is not None), depth + 1)
    elif subcommand == "config":
        _config(walker, args, text, depth)


def _config(walker: Collector, args: list[str | None], text: str, depth: int) -> None:
    """`git config [set] KEY VALUE`: a stored setting some later git command runs."""
    operands: list[str | None] = []
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word is not None and word.startswith("-"):
            skip = word in _CONFIG_OPTIONS
        else:
            operands.append(word)
    if operands[:1] == ["set"]:
        operands = operands[1:]
    if len(operands) < 2:
        return
    key, value = operands[0], operands[1]
    if key is None:
        walker.opaque.append(Opaque(short(text), "git config sets a key that is not known"))
        return
    kind = _programs.git_config_code(key)
    if kind == "opaque" or _programs.git_push_config(key):
        walker.opaque.append(Opaque(short(text), f"git config {key} changes what later git "
                                    "commands run or push"))  # fmt: skip
    elif kind == "script":
        if value is None:
            walker.opaque.append(Opaque(short(text), f"git config {key} stores a command "
                                        "that is not known"))  # fmt: skip
        else:
            walker.script(value.lstrip("!"), depth + 1)
