"""What `_shell` knows about programs: wrappers, interpreters, long options, code in values.

Kept apart from the parser so that the tables can grow without the analysis growing with
them. Everything here is data plus small pure functions on words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

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
}
_VERSIONED = re.compile(r"^(python|perl|ruby|lua|php|pypy)[\d.]*$")

AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})

# Script paths through which a shell or an interpreter reads what it was fed.
_INPUT_PATH = re.compile(r"^(?:-|/+dev/+(?:stdin|fd/.*|tty)|/+proc/+[^/]+/+fd/.*)$")


def reads_input(path: str | None) -> bool:
    """Whether a script path names the program's own input (`/dev/stdin`, `/proc/self/fd/0`)."""
    return path is not None and bool(_INPUT_PATH.match(path))


@functools.lru_cache(maxsize=256)
def interpreter(program: str) -> str | None:
    """The interpreter a program name stands for (`python3.12` -> `python`), if any."""
    name = program.lower()
    if name in INTERPRETERS:
        return name
    versioned = _VERSIONED.match(name)
    if versioned:
        return "python" if versioned.group(1) == "pypy" else versioned.group(1)
    return None


@dataclass(frozen=True, slots=True)
class Options:
    """How a program reads its options: which take a value, which take one only if attached."""

    short_with_value: str = ""  # short options that take a value (`-u USER`, `-uUSER`)
    long_with_value: frozenset[str] = frozenset()
    short_optional: str = ""  # short options whose value must be attached (`xargs -i{}`)
    operands: int = 0  # operands before the command (timeout DURATION, chroot ROOT)
    assignments: bool = False  # NAME=VALUE words before the command (env, sudo)
    dash: bool = False  # a lone `-` is an option (`env -` = `env -i`)


def parse_options(
    spec: Options, args: Sequence[str | None], permute: bool = False
) -> tuple[int | None, list[tuple[str, str | None]]]:
    """Where the operands start in `args`, and the options with their values.

    Long options may be abbreviated (GNU getopt accepts any unique prefix), so a prefix of
    an option that takes a value is read as that option. The start is None when a word
    that only the shell knows stands where an option could be. With `permute`, options
    after operands are read too (GNU getopt without `+`); the start is then the first
    operand.
    """
    found: list[tuple[str, str | None]] = []
    index = 0
    first_operand: int | None = None
    while index < len(args):
        word = args[index]
        if word is None:
            if not permute:
                return None, found
            index += 1
            continue
        if word == "--":
            index += 1
            break
        if spec.assignments and "=" in word and not word.startswith("-") \
                and first_operand is None:  # fmt: skip
            index += 1  # env takes any word with `=` for an assignment (`BASH_FUNC_f%%=`)
            continue
        if word == "-" and spec.dash:
            found.append(("-", None))
            index += 1
            continue
        if word.startswith("--"):
            name, equals, value = word.partition("=")
            name = _long_name(name, spec.long_with_value)
            if equals:
                found.append((name, value))
            elif name in spec.long_with_value:
                found.append((name, args[index + 1] if index + 1 < len(args) else None))
                index += 1
            else:
                found.append((name, None))
            index += 1
            continue
        if word.startswith("-") and len(word) > 1:
            index += 1
            for position, char in enumerate(word[1:], start=2):
                if char in spec.short_with_value:
                    if position == len(word):
                        found.append(("-" + char, args[index] if index < len(args) else None))
                        index += 1  # the value is the next word
                    else:
                        found.append(("-" + char, word[position:]))
                    break
                if char in spec.short_optional:
                    found.append(("-" + char, word[position:] or None))
                    break
                found.append(("-" + char, None))
            continue
        if not permute:
            break
        if first_operand is None:
            first_operand = index
        index += 1
    if permute:
        return (index if first_operand is None else first_operand), found
    return min(index + spec.operands, len(args)), found


def _long_name(name: str, with_value: frozenset[str]) -> str:
    if name in with_value:
        return name
    matches = [option for option in with_value if option.startswith(name)]
    return matches[0] if len(matches) == 1 else name


ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

_SETPRIV = frozenset({"--reuid", "--regid", "--ruid", "--rgid", "--euid", "--egid", "--groups",
                     "--inh-caps", "--ambient-caps", "--bounding-set", "--securebits",
                     "--pdeathsig", "--selinux-label", "--apparmor-profile",
                     "--landlock-access", "--landlock-rule", "--seccomp-filter"})  # fmt: skip

# Programs that run the command given in their arguments.
WRAPPERS: dict[str, Options] = {
    "sudo": Options(
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
    "doas": Options("uC"),
    "pkexec": Options("", frozenset({"--user"})),
    "env": Options(
        "uCS", frozenset({"--unset", "--chdir", "--split-string"}), assignments=True, dash=True
    ),
    "command": Options(),
    "builtin": Options(),
    "exec": Options("a"),
    "nohup": Options(),
    "time": Options("fo", frozenset({"--format", "--output"})),
    "nice": Options("n", frozenset({"--adjustment"})),
    "ionice": Options("cnp", frozenset({"--class", "--classdata", "--pid"})),
    "chrt": Options(
        "TPD", frozenset({"--sched-runtime", "--sched-period", "--sched-deadline"}), operands=1
    ),
    "taskset": Options("", operands=1),
    "timeout": Options("sk", frozenset({"--signal", "--kill-after"}), operands=1),
    "stdbuf": Options("ioe", frozenset({"--input", "--output", "--error"})),
    "setsid": Options(),
    "chroot": Options("", frozenset({"--userspec", "--groups"}), operands=1),
    "xargs": Options(
        "adEILnPs",
        frozenset(
            {
                "--arg-file",
                "--delimiter",
                "--max-args",
                "--max-procs",
                "--max-chars",
                "--process-slot-var",
            }
        ),
        short_optional="eil",  # -e[EOF], -i[R], -l[N]: a value only when attached
    ),
    "busybox": Options(),
    "toybox": Options(),
    "coproc": Options(),
    "flock": Options(
        "wEc", frozenset({"--timeout", "--conflict-exit-code", "--command"}), operands=1
    ),
    "unbuffer": Options(),
    "watch": Options("nd", frozenset({"--interval", "--differences"})),
    "strace": Options("abeEIoOpPsSuUX", frozenset({"--output", "--expr", "--user"})),
    "ltrace": Options("aAeEFlnopSsux", frozenset({"--output", "--user"})),
    "nsenter": Options(
        "tSGwW", frozenset({"--target", "--setuid", "--setgid", "--wd"}), short_optional="mutinpUCr"
    ),
    "unshare": Options(
        "RwS",
        frozenset(
            {
                "--root",
                "--wd",
                "--map-user",
                "--map-group",
                "--propagation",
                "--setgroups",
                "--setuid",
            }
        ),
        short_optional="mutinpUCT",
    ),
    "firejail": Options(),
    "systemd-run": Options(
        "upEMHG",
        frozenset(
            {
                "--unit",
                "--property",
                "--setenv",
                "--machine",
                "--host",
                "--description",
                "--slice",
                "--uid",
                "--gid",
                "--working-directory",
                "--on-calendar",
                "--on-active",
                "--timer-property",
                "--nice",
            }
        ),
    ),
    "runuser": Options(
        "ugGcsw",
        frozenset(
            {
                "--user",
                "--group",
                "--supp-group",
                "--command",
                "--shell",
                "--whitelist-environment",
                "--session-command",
            }
        ),
    ),
    "eatmydata": Options(),
    "fakeroot": Options(),
    "nocache": Options(),
    "torsocks": Options(),
    "proxychains": Options("f"),
    "proxychains4": Options("f"),
    "catchsegv": Options(),
    "caffeinate": Options("tw"),
    "setpriv": Options("", _SETPRIV),
    "prlimit": Options("po", frozenset({"--pid", "--output"}), short_optional="cdefilmnqrstuvxy"),
    "dbus-run-session": Options("", frozenset({"--config-file", "--dbus-daemon"})),
    "dbus-launch": Options("", frozenset({"--config-file", "--autolaunch"})),
}

# How `su`, `runuser`, `script`, `sed` and `awk` read their options.
SU = Options("cgGsw", frozenset({"--command", "--group", "--supp-group", "--shell",
                                  "--whitelist-environment", "--session-command"}))  # fmt: skip
SCRIPT = Options("cEIOBTmo", frozenset({"--command", "--echo", "--log-in", "--log-out",
                                        "--log-io", "--log-timing", "--logging-format",
                                        "--output-limit"}), short_optional="t")  # fmt: skip
SED = Options("efl", frozenset({"--expression", "--file", "--line-length"}), short_optional="i")
AWK = Options("FfvieE", frozenset({"--field-separator", "--file", "--assign", "--include",
                                  "--source", "--exec"}))  # fmt: skip

# Long options spelled differently for the same flag, per program; the short form is kept.
ALIASES: dict[str, dict[str, str]] = {
    "rm": {"--recursive": "-r", "-R": "-r", "--force": "-f", "--dir": "-d"},
    "cp": {"--recursive": "-r", "-R": "-r", "--force": "-f"},
    "mv": {"--force": "-f"},
    "chmod": {"--recursive": "-R"},
    "chown": {"--recursive": "-R"},
    "chgrp": {"--recursive": "-R"},
    "shred": {"--remove": "-u", "--zero": "-z", "--force": "-f", "--iterations": "-n"},
    "git": {"--force": "-f", "-d": "--delete"},
    "zip": {"--move": "-m"},
    "crontab": {},
    "grep": {"--recursive": "-r"},
}

_OWNERS = ("--changes", "--dereference", "--no-dereference", "--from", "--quiet", "--silent",
           "--verbose", "--no-preserve-root", "--preserve-root", "--reference", "--recursive",
           "--help", "--version")  # fmt: skip

# The long options of programs in the destructive set, to read abbreviations (`--rec`).
LONG_OPTIONS: dict[str, tuple[str, ...]] = {
    "rm": ("--force", "--interactive", "--one-file-system", "--no-preserve-root",
           "--preserve-root", "--recursive", "--dir", "--verbose", "--help", "--version"),
    "chmod": ("--changes", "--quiet", "--silent", "--verbose", "--no-preserve-root",
              "--preserve-root", "--reference", "--recursive", "--help", "--version"),
    "chown": _OWNERS,
    "chgrp": _OWNERS,
    "shred": ("--force", "--iterations", "--random-source", "--size", "--remove", "--verbose",
              "--exact", "--zero", "--help", "--version"),
    "cp": ("--archive", "--backup", "--force", "--interactive", "--link", "--recursive",
           "--remove-destination", "--target-directory", "--update", "--verbose"),
    # git, every subcommand: push, reset, clean, checkout, branch, ...
    "git": ("--all", "--mirror", "--delete", "--force", "--force-with-lease",
            "--force-if-includes", "--tags", "--follow-tags", "--dry-run", "--porcelain",
            "--prune", "--verbose", "--quiet", "--repo", "--set-upstream", "--signed",
            "--atomic", "--push-option", "--receive-pack", "--exec", "--no-verify",
            "--verify", "--thin", "--progress", "--recurse-submodules", "--ipv4", "--ipv6",
            "--hard", "--soft", "--mixed", "--merge", "--keep", "--no-refresh",
            "--pathspec-from-file", "--exclude", "--interactive"),
    "tar": ("--remove-files", "--recursion", "--recursive-unlink", "--record-size"),
}  # fmt: skip

_NO_CLUSTERS = frozenset({"find", "dd", "java", "gcc", "clang", "ssh-keygen"})


def normalise_flags(program: str, words: Sequence[str | None]) -> frozenset[str]:
    """The flags among `words` for `program`: clusters split, long forms and aliases joined.

    Options end at `--`. `-rf`, `-fr`, `-r -f`, `--recursive --force` and the abbreviation
    `--rec --f` all give `{"-r", "-f"}` for `rm`; `--name=value` counts as `--name`. An
    abbreviation that fits several long options counts as each of them.
    """
    aliases = ALIASES.get(program, {})
    known = LONG_OPTIONS.get(program, ())
    flags: set[str] = set()
    for word in words:
        if word is None or word == "-" or not word.startswith("-"):
            continue
        if word == "--":
            break
        if word.startswith("--") or program in _NO_CLUSTERS:
            name = word.split("=", 1)[0]
            names = [name]
            if known and name not in known and name.startswith("--") and len(name) > 2:
                names = [option for option in known if option.startswith(name)] or names
            flags.update(aliases.get(n, n) for n in names)
            continue
        for char in word[1:]:
            flag = "-" + char
            flags.add(aliases.get(flag, flag))
    return frozenset(flags)


# -- code hidden in values --------------------------------------------------------------------

# Variables whose value some program later runs as a shell command.
SCRIPT_VARIABLES = frozenset({
    "PROMPT_COMMAND", "PAGER", "GIT_PAGER", "MANPAGER", "SYSTEMD_PAGER", "EDITOR", "VISUAL",
    "GIT_EDITOR", "GIT_SEQUENCE_EDITOR", "SUDO_EDITOR", "FCEDIT", "GIT_SSH_COMMAND",
    "GIT_EXTERNAL_DIFF", "LESSOPEN", "LESSCLOSE", "BROWSER",
})  # fmt: skip
# Variables naming a file that is run, sourced or loaded, or configuration that runs code.
FILE_VARIABLES = frozenset({
    "BASH_ENV", "ENV", "LD_PRELOAD", "LD_AUDIT", "GIT_SSH", "GIT_ASKPASS", "SSH_ASKPASS",
    "SUDO_ASKPASS", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "SHELLOPTS", "BASHOPTS",
})  # fmt: skip
# Prompts: expanded (command substitution included) when shown or traced (`set -x`).
PROMPT_VARIABLES = frozenset({"PS0", "PS1", "PS2", "PS3", "PS4"})

# `git -c KEY=VALUE` keys whose value git runs as a command.
_GIT_EXEC_KEY = re.compile(
    r"^(?:core\.(?:sshcommand|pager|editor|askpass|gitproxy)|sequence\.editor|diff\.external"
    r"|pager\..*|gpg\.(?:.*\.)?program|credential\..*helper|.*\.(?:textconv|clean|smudge"
    r"|process|cmd|command|path|hook|packobjectshook))$"
)
_GIT_OPAQUE_KEY = re.compile(
    r"^(?:alias\..*|core\.(?:hookspath|fsmonitor)|include.*|protocol\..*allow)$"
)
_GIT_PUSH_KEY = re.compile(r"^(?:remote\..*\.(?:mirror|push)|push\..*)$")


def git_push_config(key: str) -> bool:
    """Whether `git -c KEY=...` changes what `git push` sends (`remote.origin.mirror`)."""
    return bool(_GIT_PUSH_KEY.match(key.lower()))


def git_config_code(key: str) -> str | None:
    """`"script"` when git runs the value of `key` as a command, `"opaque"` when it may run
    code the value does not show (aliases, hooks), else None."""
    key = key.lower()
    if _GIT_OPAQUE_KEY.match(key):
        return "opaque"
    return "script" if _GIT_EXEC_KEY.match(key) else None


# sed: the `e` command, or the `e` flag of `s`, runs the pattern space as a command.
_SED_EXEC = re.compile(r"(?:^|[;\n{}])\s*(?:[\d$~,+!\s]|/(?:[^/\\\n]|\\.)*/[IM]*)*e(?:[\s;}]|$)")
_SED_SUBST = re.compile(
    r"s([^\w\s\\])(?:(?!\1)[^\\\n]|\\.)*\1(?:(?!\1)[^\\\n]|\\.)*\1([0-9a-zA-Z]*)"
)
_SED_WRITE = re.compile(r"(?:^|[;\n{}\d/$])\s*[wW]\s*/|/[0-9a-zA-Z]*w\s*/")


def sed_runs_code(script: str) -> bool:
    """Whether a sed script may run a command (`e`) or write a file by path (`w /dev/sda`)."""
    if _SED_EXEC.search(script) or _SED_WRITE.search(script):
        return True
    return any("e" in match.group(2) for match in _SED_SUBST.finditer(script))


# system(), pipes, writes by path, extensions, and gawk's indirect calls (`@f(...)`).
_AWK_CODE = re.compile(
    r"system\s*\(|\||>\s*\"?/|extension\s*\(|@[A-Za-z_][\w:]*\s*\(|@load|@include"
)


def awk_runs_code(program: str) -> bool:
    """Whether an awk program may run a command or write to a path by name."""
    return bool(_AWK_CODE.search(program.replace("||", " ")))
