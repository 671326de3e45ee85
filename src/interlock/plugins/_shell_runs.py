"""What a program runs from its arguments or its input.

The scripts of `bash -c`, `eval`, `trap`, `su -c` and `script -c`, the commands of
`find -exec`, `git -c` settings, sed and awk programs, interpreters' inline code.

Each function judges one program for the walk (`_shell_walk.Collector`): scripts it finds go
back to the walk to be judged as shell text, and what it cannot judge becomes an `Opaque`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import _shell_programs as _programs
from ._shell_git import git_subcommand
from ._shell_options import OPTION_RUNNERS
from ._shell_programs import SHELLS
from ._shell_results import Opaque, short
from ._shell_syntax import join

if TYPE_CHECKING:
    from ._shell_walk import Collector

__all__ = ["eval_words", "runs"]

_PARALLEL_SOURCES = frozenset({":::", "::::", ":::+", "::::+"})


def runs(
    walker: Collector, program: str, args: list[str | None], text: str, fed: bool, depth: int
) -> None:
    """What a program runs from its arguments or input: shells, eval, su, find, ..."""
    if program in SHELLS:
        _shell(walker, program, args, text, fed, depth)
    elif program in ("eval", "trap"):
        eval_words(walker, _trap_action(args) if program == "trap" else args, text, depth)
    elif program in ("su", "runuser"):
        _su(walker, program, args, text, fed, depth)
    elif program in ("source", "."):
        if not args or args[0] is None or _programs.reads_input(args[0]):
            walker.opaque.append(Opaque(short(text), "it runs a script that is not known"))
        else:
            walker.code_files.append((args[0], text))
    elif program == "find":
        _find(walker, args, depth)
    elif program == "alias" and any(w is None or "=" in w for w in args):
        walker.opaque.append(Opaque(short(text), "an alias changes what later commands "
                                    "run"))  # fmt: skip
        for word in args:
            if word is not None and "=" in word:
                walker.script(word.split("=", 1)[1], depth + 1)
    elif program in ("bind", "complete", "compgen") and any(
        w is None or (w.startswith("-") and ("x" in w or "C" in w)) for w in args
    ):
        walker.opaque.append(Opaque(short(text), f"{program} sets a command run later"))
    elif program == "script":
        _script_command(walker, args, text, fed, depth)
    elif program in ("parallel", "sem"):
        walker.opaque.append(Opaque(short(text), f"{program} runs its arguments through a "
                                    "shell"))  # fmt: skip
        if args and args[0] is not None and not args[0].startswith("-"):
            end = next((i for i, w in enumerate(args) if w in _PARALLEL_SOURCES), len(args))
            walker.argv(args[:end], join(args[:end]), (), False, depth, more=True)
    elif program == "git":
        _git(walker, args, text, depth)
    elif program == "sed":
        _sed(walker, args, text)
    elif program in _programs.AWKS:
        _awk(walker, program, args, text)
    elif program in OPTION_RUNNERS:
        if any(word is None for word in args):
            # `tar -cf x "$OPT"`: the word could be `--to-command=...`
            walker.opaque.append(Opaque(short(text), f"{program}'s arguments are not known, "
                                        "and options can make it run commands"))  # fmt: skip
        OPTION_RUNNERS[program](walker, program, args, text, fed, depth)
    else:
        interpreter = _programs.interpreter(program)
        if interpreter is not None:
            _interpreter(walker, interpreter, args, text, fed)


def _shell(
    walker: Collector, program: str, args: list[str | None], text: str, fed: bool, depth: int
) -> None:
    script: str | None = None
    inline = False
    reads_input = False
    index = 0
    while index < len(args):
        word = args[index]
        if word is None:
            walker.opaque.append(Opaque(short(text), f"{program}'s arguments are not known"))
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
            walker.opaque.append(Opaque(short(text), f"{program} -c without a script"))
            return
        script = args[index]
        if script is None:
            walker.opaque.append(Opaque(short(text), f"{program} -c runs a script that "
                                        "is not known before it runs"))  # fmt: skip
            return
        walker.script(script, depth + 1)
        return
    if index < len(args) and _programs.reads_input(args[index]):
        reads_input = True
    elif index < len(args) and args[index] is not None:
        walker.code_files.append((args[index] or "", text))
    if reads_input or (index >= len(args) and fed):
        walker.opaque.append(Opaque(short(text), f"{program} reads commands from its input"))


def eval_words(walker: Collector, args: Sequence[str | None], text: str, depth: int) -> None:
    """`eval ARGS...`: the words joined by spaces, judged as a script."""
    if any(word is None for word in args):
        walker.opaque.append(Opaque(short(text), "it runs text that is not known before "
                                    "it runs"))  # fmt: skip
        return
    script = " ".join(w for w in args if w is not None)
    if script.strip("- "):
        walker.script(script, depth + 1)


def _su(
    walker: Collector, program: str, args: list[str | None], text: str, fed: bool, depth: int
) -> None:
    _, options = _programs.parse_options(_programs.SU, args, permute=True)
    for option, value in options:
        if option not in ("-c", "--command", "--session-command"):
            continue
        if value is None:
            walker.opaque.append(Opaque(short(text), f"{program} -c runs text that is "
                                        "not known"))  # fmt: skip
        else:
            walker.script(value, depth + 1)
        return
    if fed:
        walker.opaque.append(Opaque(short(text), f"{program} reads commands from its input"))


def _script_command(
    walker: Collector, args: list[str | None], text: str, fed: bool, depth: int
) -> None:
    _, options = _programs.parse_options(_programs.SCRIPT, args, permute=True)
    commands = [value for option, value in options if option in ("-c", "--command")]
    for value in commands:
        if value is None:
            walker.opaque.append(Opaque(short(text), "script -c runs text that is not known"))
        else:
            walker.script(value, depth + 1)
    if not commands and fed:
        walker.opaque.append(Opaque(short(text), "script reads commands from its input"))


def _find(walker: Collector, args: list[str | None], depth: int) -> None:
    index = 0
    while index < len(args):
        if args[index] in ("-exec", "-execdir", "-ok", "-okdir"):
            end = index + 1
            while end < len(args) and args[end] not in (";", "+"):
                end += 1
            inner = args[index + 1 : end]
            if inner:  # find adds the names it finds: more words from elsewhere
                walker.argv(inner, join(inner), (), False, depth, more=True)
            index = end
        index += 1


def _git(walker: Collector, args: list[str | None], text: str, depth: int) -> None:
    index = 0
    while index < len(args):
        word = args[index]
        if word is None or not word.startswith("-"):
            git_subcommand(walker, args[index:], text, depth)
            return
        setting: str | None = None
        if word == "-c":
            index += 1
            setting = args[index] if index < len(args) else None
            if setting is None:
                walker.opaque.append(Opaque(short(text), "git -c sets what is not known"))
                return
        elif word.startswith("-c") and len(word) > 2:
            setting = word[2:]
        elif word.startswith("--config-env"):
            walker.opaque.append(Opaque(short(text), "git --config-env sets configuration "
                                        "from the environment"))  # fmt: skip
        elif word in ("-C", "--git-dir", "--work-tree", "--namespace", "--exec-path"):
            index += 1
        if setting is not None:
            key, _, value = setting.partition("=")
            kind = _programs.git_config_code(key)
            if kind == "opaque":
                walker.opaque.append(Opaque(short(text), f"git -c {key} may run code"))
            elif kind == "script":
                walker.script(value.lstrip("!"), depth + 1)
            elif _programs.git_push_config(key) and "push" in args:
                walker.opaque.append(Opaque(short(text), f"git -c {key} changes what git "
                                            "push deletes or overwrites"))  # fmt: skip
        index += 1


def _sed(walker: Collector, args: list[str | None], text: str) -> None:
    start, options = _programs.parse_options(_programs.SED, args, permute=True)
    scripts = [v for o, v in options if o in ("-e", "--expression")]
    if not scripts and not any(o in ("-f", "--file") for o, _ in options):
        operands = args[start or 0 :]
        scripts = operands[:1] if operands else []
    for option, value in options:
        if option in ("-f", "--file"):
            if value is None or _programs.reads_input(value):
                walker.opaque.append(Opaque(short(text), "sed reads its script from its input"))
                return
            walker.code_files.append((value, text))
    for script in scripts:
        if script is None or _programs.sed_runs_code(script):
            walker.opaque.append(Opaque(short(text), "a sed script that may run commands "
                                        "(e) or write files (w)"))  # fmt: skip
            return


def _awk(walker: Collector, program: str, args: list[str | None], text: str) -> None:
    start, options = _programs.parse_options(_programs.AWK, args)
    sources = [v for o, v in options if o in ("-e", "--source")]
    files = [v for o, v in options if o in ("-f", "--file", "-i", "--include", "-E", "--exec")]
    walker.code_files.extend((f, text) for f in files if f is not None)
    if not sources and not files:
        operands = args[start or 0 :]
        sources = operands[:1] if operands else []
    if any(f is None or _programs.reads_input(f) for f in files) or any(
        s is None or _programs.awk_runs_code(s) for s in sources
    ):
        walker.opaque.append(Opaque(short(text), f"an {program} program that may run "
                                    "commands or write files"))  # fmt: skip


def _interpreter(
    walker: Collector, name: str, args: list[str | None], text: str, fed: bool
) -> None:
    code_flags = _programs.INTERPRETERS.get(name, frozenset())
    for word in args:
        if word is None:
            continue
        if word.lower() in code_flags or (
            word.startswith("-")
            and not word.startswith("--")
            and any("-" + c in code_flags for c in word[1:])
        ):
            walker.opaque.append(Opaque(short(text), f"{name} runs inline code"))
            return
    operands = [w for w in args if w is None or not w.startswith("-") or w == "-"]
    if (operands and _programs.reads_input(operands[0])) or (fed and not operands):
        walker.opaque.append(Opaque(short(text), f"{name} reads code from its input"))
    elif operands and operands[0] is not None:
        walker.code_files.append((operands[0], text))


def _trap_action(args: list[str | None]) -> list[str | None]:
    """The command `trap ACTION SIGNAL...` sets; nothing for `trap -p`, `trap - SIG`, `trap SIG`."""
    words = list(args)
    while words and words[0] is not None and words[0].startswith("-") and words[0] != "-":
        if words.pop(0) == "--":
            break
    if len(words) < 2 or words[0] in ("-", ""):
        return []
    return words[:1]
