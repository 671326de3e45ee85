"""Programs that run commands named in their options or read commands from their input.

Archivers and copiers (`tar --to-command`, `zip -TT`, `rsync -e`), remote shells
(`ssh -o ProxyCommand=`), debuggers, terminal multiplexers and editors (`gdb -ex`, `tmux new`,
`screen -dm`, `vim -c`, `ed`), `sqlite3` dot-commands, `make --eval`, `capsh -- -c`, and the
shell builtins that set commands run later (`mapfile -C`, `hash -p`, `enable -f`).

A command named in an option is judged as a script where the program runs it through a shell
(or splits it as one would); what the program interprets in its own language (gdb, vim,
tmux, sqlite3, make) is opaque. `OPTION_RUNNERS` maps each program to the function that
judges it for the walk (`_shell_walk.Collector`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from . import _shell_programs as _programs
from ._shell_programs import Options, parse_options, reads_input
from ._shell_results import Opaque, short

if TYPE_CHECKING:
    from ._shell_walk import Collector

__all__ = ["OPTION_RUNNERS", "Runner"]

Runner = Callable[["Collector", str, list[str | None], str, bool, int], None]


def _opaque(walker: Collector, text: str, why: str) -> None:
    walker.opaque.append(Opaque(short(text), why))


def _script(walker: Collector, value: str | None, text: str, what: str, depth: int) -> None:
    """A command line the program runs through a shell: judged, or opaque when unknown."""
    if value is None:
        _opaque(walker, text, f"{what} runs a command that is not known")
    elif value.strip():
        walker.script(value, depth + 1)


def _values(args: Sequence[str | None], names: frozenset[str]) -> list[str | None]:
    """The values of long options in `names`, given as `--name=VALUE` or `--name VALUE`."""
    found: list[str | None] = []
    for index, word in enumerate(args):
        if word is None:
            continue
        name, equals, value = word.partition("=")
        if name in names:
            if equals:
                found.append(value)
            else:
                found.append(args[index + 1] if index + 1 < len(args) else None)
    return found


# -- archivers, copiers, remote shells --------------------------------------------------------

_TAR = Options(
    "bCfFgHIKLNTVX",
    frozenset({"--file", "--directory", "--exclude", "--exclude-from", "--files-from",
               "--to-command", "--use-compress-program", "--checkpoint-action", "--info-script",
               "--new-volume-script", "--rsh-command", "--rmt-command", "--transform",
               "--xform", "--format", "--owner", "--group", "--mode", "--mtime", "--newer",
               "--label", "--blocking-factor", "--tape-length", "--index-file",
               "--listed-incremental", "--starting-file", "--suffix", "--checkpoint"}),
)  # fmt: skip
_TAR_SCRIPTS = frozenset({"-I", "-F", "--to-command", "--use-compress-program", "--info-script",
                          "--new-volume-script", "--rsh-command", "--rmt-command"})  # fmt: skip


def _tar(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
         depth: int) -> None:  # fmt: skip
    words = list(args)
    if words and words[0] is not None and re.fullmatch(r"[A-Za-z]+", words[0]):
        words[0] = "-" + words[0]  # old style: `tar czf x.tgz dir`
    _, options = parse_options(_TAR, words, permute=True)
    for option, value in options:
        if option in _TAR_SCRIPTS:
            _script(walker, value, text, f"tar {option}", depth)
        elif option == "--checkpoint-action" and (value is None or value.startswith("exec")):
            command = None if value is None else value.partition("=")[2]
            _script(walker, command, text, "tar --checkpoint-action=exec", depth)


def _zip(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
         depth: int) -> None:  # fmt: skip
    for index, word in enumerate(args):
        if word == "-TT":
            value = args[index + 1] if index + 1 < len(args) else None
            _script(walker, value, text, "zip -TT", depth)
    for value in _values(args, frozenset({"--unzip-command"})):
        _script(walker, value, text, "zip --unzip-command", depth)


_RSYNC = Options("efBTM", frozenset({"--rsh", "--rsync-path", "--filter", "--temp-dir",
                                     "--block-size", "--remote-option"}))  # fmt: skip


def _rsync(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
           depth: int) -> None:  # fmt: skip
    _, options = parse_options(_RSYNC, args, permute=True)
    for option, value in options:
        if option in ("-e", "--rsh"):
            _script(walker, value, text, f"rsync {option}", depth)


_SSH = Options("BbcDEeFIiJLlmOoPpQRSwW")
_SSH_COMMANDS = frozenset({"proxycommand", "localcommand", "knownhostscommand"})


def _ssh(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
         depth: int) -> None:  # fmt: skip
    _, options = parse_options(_SSH, args, permute=True)
    for option, value in options:
        if option == "-o":
            if value is None:
                _opaque(walker, text, f"{program} -o sets an option that is not known")
                continue
            parts = re.split(r"\s*=\s*|\s+", value.strip(), maxsplit=1)
            key, command = parts[0], parts[1] if len(parts) > 1 else ""
            if key.lower() in _SSH_COMMANDS and command.lower() != "none":
                _script(walker, command, text, f"{program} -o {key}", depth)
            elif key.lower() in ("include", "match"):
                _opaque(walker, text, f"{program} -o {key} may run commands")
        elif option == "-F" and (value is None or reads_input(value)):
            _opaque(walker, text, f"{program} reads its configuration from its input")
        elif option in ("-S", "-D") and program in ("scp", "sftp"):
            if value is None:
                _opaque(walker, text, f"{program} {option} runs a program that is not known")
            else:
                walker.argv([value], value, (), False, depth, more=True)


# -- debuggers, multiplexers, editors, databases, make ----------------------------------------

_GDB_COMMANDS = frozenset({"-ex", "--ex", "-eval-command", "--eval-command", "-iex", "--iex",
                           "-init-eval-command", "--init-eval-command", "-x", "--x", "-command",
                           "--command", "-ix", "--ix", "-init-command",
                           "--init-command"})  # fmt: skip


def _gdb(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
         depth: int) -> None:  # fmt: skip
    given = any(w is None or w.partition("=")[0] in _GDB_COMMANDS for w in args)
    if given or fed:
        _opaque(walker, text, f"{program} runs its own commands, which can run shell commands")


_TMUX = Options("cfLST")
_TMUX_READ_ONLY = frozenset({"ls", "list-sessions", "list-windows", "lsw", "list-panes", "lsp",
                             "list-clients", "lsc", "kill-server", "kill-session",
                             "kill-window", "killw", "kill-pane", "killp", "has-session",
                             "has", "attach", "attach-session", "a", "at", "detach-client",
                             "detach", "capture-pane", "capturep", "list-buffers", "lsb",
                             "show-buffer", "showb"})  # fmt: skip


def _tmux(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
          depth: int) -> None:  # fmt: skip
    start, options = parse_options(_TMUX, args)
    for option, value in options:
        if option == "-c":
            _script(walker, value, text, "tmux -c", depth)
        elif option == "-f":
            _opaque(walker, text, "tmux -f reads a configuration that can run commands")
    if start is None or any(w is None or "#(" in w for w in args):
        _opaque(walker, text, "tmux runs commands that are not known")
        return
    rest = args[start:]
    commands = [rest[0]] if rest else []
    commands += [rest[i + 1] for i, w in enumerate(rest[:-1]) if w in (";", "\\;")]
    for command in commands:
        if command not in _TMUX_READ_ONLY:
            _opaque(walker, text, f"tmux {command} may run shell commands")
            return


_SCREEN = Options("SehpTtcsX")


def _screen(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
            depth: int) -> None:  # fmt: skip
    words: list[str | None] = []
    skip = False
    for word in args:  # `-Logfile FILE`, `-ls`, `-wipe`: screen's long options have one dash
        if skip:
            skip = False
        elif word in ("-Logfile", "-logfile"):
            skip = True
        elif word not in ("-ls", "-list", "-wipe", "-ln"):
            words.append(word)
    start, options = parse_options(_SCREEN, words)
    for option, _ in options:
        if option in ("-X", "-c", "-s"):
            _opaque(walker, text, f"screen {option} runs commands that are not shown")
            return
    if start is None:
        _opaque(walker, text, "screen's options are not known")
    elif start < len(words):
        walker.argv(words[start:], text, (), False, depth)


_VIMS = ("vim", "vi", "nvim", "ex", "view", "vimdiff", "nvimdiff", "gvim", "rvim", "evim",
         "gview", "rview", "vimx", "gex")  # fmt: skip
_VIM_COMMANDS = frozenset({"-c", "--cmd", "-S", "-s", "--remote-send", "--remote-expr"})


def _vim(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
         depth: int) -> None:  # fmt: skip
    ex_mode = program in ("ex", "gex")
    for index, word in enumerate(args):
        if word is None:
            _opaque(walker, text, f"{program}'s arguments are not known")
            return
        if word in _VIM_COMMANDS or (
            word.startswith("+") and not re.fullmatch(r"\+\d*|\+/.*", word)
        ):
            _opaque(walker, text, f"{program} runs editor commands, which can run shell "
                    "commands")  # fmt: skip
            return
        if word == "-u":
            value = args[index + 1] if index + 1 < len(args) else None
            if value not in ("NONE", "NORC", "DEFAULTS"):
                _opaque(walker, text, f"{program} -u runs an editor script")
                return
        if re.fullmatch(r"-[a-zA-Z]*[eE][a-zA-Z]*", word) and not word.startswith("--"):
            ex_mode = True
    if ex_mode and fed:
        _opaque(walker, text, f"{program} reads editor commands from its input")


def _ed(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
        depth: int) -> None:  # fmt: skip
    if fed:
        _opaque(walker, text, f"{program} reads editor commands from its input, where `!` "
                "runs shell commands")  # fmt: skip


_SQLITE_DOT = re.compile(r"(?:^|[\n;])\s*\.([A-Za-z_]+)")
_SQLITE_SAFE = frozenset({"tables", "table", "schema", "headers", "header", "mode", "dump",
                          "indexes", "indices", "quit", "exit", "help", "databases", "width",
                          "separator", "timer", "nullvalue", "show", "print", "bail", "echo",
                          "changes", "stats", "eqp", "fullschema", "dbinfo", "limit",
                          "explain"})  # fmt: skip


def _sqlite(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
            depth: int) -> None:  # fmt: skip
    if fed:
        _opaque(walker, text, f"{program} reads statements from its input, where "
                "`.shell` runs commands")  # fmt: skip
        return
    for index, word in enumerate(args):
        if word is None:
            _opaque(walker, text, f"{program}'s arguments are not known")
            return
        if word in ("-init", "--init"):
            _opaque(walker, text, f"{program} -init runs a file of statements")
            return
        unsafe = [name for name in _SQLITE_DOT.findall(word) if name.lower() not in _SQLITE_SAFE]
        if index > 0 and args[index - 1] in ("-separator", "-newline", "-nullvalue"):
            unsafe = []
        if unsafe or "load_extension" in word.lower():
            _opaque(walker, text, f"{program} .{unsafe[0] if unsafe else 'load'} may run "
                    "commands or load code")  # fmt: skip
            return


_MAKE = Options("CfIjlLoWE", frozenset({"--directory", "--file", "--makefile",
                                        "--include-dir", "--jobs", "--load-average",
                                        "--old-file", "--assume-old", "--what-if", "--new-file",
                                        "--assume-new", "--eval", "--output-sync"}))  # fmt: skip
_MAKE_SHELLS = frozenset({"SHELL", "MAKESHELL", ".SHELLFLAGS", "MAKEFLAGS", "MFLAGS"})
_SHELL_CHARS = re.compile(r"[;&|`$<>()\n]")


def _make(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
          depth: int) -> None:  # fmt: skip
    start, options = parse_options(_MAKE, args, permute=True)
    for option, value in options:
        if option in ("-E", "--eval"):
            _opaque(walker, text, f"{program} --eval adds rules whose recipes run commands")
        elif option in ("-f", "--file", "--makefile"):
            if value is None or reads_input(value):
                _opaque(walker, text, f"{program} reads a makefile that is not known")
            else:
                walker.code_files.append((value, text))
    for word in args[start or 0 :]:
        if word is None or not _programs.ASSIGNMENT.match(word):
            continue
        name, _, value = word.partition("=")
        if name.rstrip(":+?") in _MAKE_SHELLS or _SHELL_CHARS.search(value):
            _opaque(walker, text, f"{program} {name}= may change the commands recipes run")
        elif " " in value.strip() and not value.lstrip().startswith("-"):
            walker.script(value, depth + 1)  # `RM='rm -rf /'`: a command a recipe may run


def _capsh(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
           depth: int) -> None:  # fmt: skip
    for index, word in enumerate(args):
        if word is None or word.startswith("--shell"):
            _opaque(walker, text, "capsh runs a shell that is not known")
            return
        if word in ("--", "=="):
            shell = "bash" if word == "--" else "capsh"
            walker.argv([shell, *args[index + 1 :]], text, (), fed, depth)
            return


# -- shell builtins that set commands run later -----------------------------------------------


def _mapfile(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
             depth: int) -> None:  # fmt: skip
    _, options = parse_options(Options("dnOsuCc"), args)
    for option, value in options:
        if option == "-C":
            _opaque(walker, text, f"{program} -C runs a callback with words added")
            _script(walker, value, text, f"{program} -C", depth)


def _hash(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
          depth: int) -> None:  # fmt: skip
    if any(w is None or (w.startswith("-") and "p" in w) for w in args):
        _opaque(walker, text, "hash -p makes a name run another program")


def _enable(walker: Collector, program: str, args: list[str | None], text: str, fed: bool,
            depth: int) -> None:  # fmt: skip
    if any(w is None or (w.startswith("-") and "f" in w) for w in args):
        _opaque(walker, text, "enable -f loads a builtin from a shared object")


OPTION_RUNNERS: dict[str, Runner] = {
    "tar": _tar, "bsdtar": _tar, "gtar": _tar,
    "zip": _zip,
    "rsync": _rsync,
    "ssh": _ssh, "scp": _ssh, "sftp": _ssh,
    "gdb": _gdb, "cgdb": _gdb,
    "tmux": _tmux,
    "screen": _screen,
    **dict.fromkeys(_VIMS, _vim),
    "ed": _ed, "red": _ed,
    "sqlite3": _sqlite, "sqlite": _sqlite,
    "make": _make, "gmake": _make,
    "capsh": _capsh,
    "mapfile": _mapfile, "readarray": _mapfile,
    "hash": _hash,
    "enable": _enable,
}  # fmt: skip
"""Programs whose options or input name commands, and the function that judges each."""
