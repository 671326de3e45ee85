"""`tool_guard`: allow, deny or ask about tool calls; shell commands are parsed and judged.

    plugins:
      - name: tool-guard
        use: tool-guard
        on_error: block
        config:
          destructive: deny                   # the built-in set, before the rules
          rules:                              # for each command, the first match decides
            - ask: {program: git, args: [push]}
            - allow: {program: [ls, cat, grep, echo]}
            - allow: 'read_*'                 # another tool: a tool glob
          default: deny                       # what no rule matched
          opaque: ask                         # what cannot be judged: ask or deny

Calls to shell tools (`shell_tools`, names compared case-insensitively) are judged by the
commands they run: the text under `command_keys` is parsed (`interlock.plugins._shell`) into
every simple command it runs, through pipelines, lists, substitutions, `bash -c`, `eval` and
wrappers such as `sudo`, `env` or `xargs`; a list of words is judged as an argument vector.
A command rule (`{program, flags, args, writes}`) is matched against each command: for each
command the first rule that matches it decides, the default decides the rest, and the call
gets the most severe of these (deny, then ask, then allow). So a deny fires if any command
matches, and a call is allowed only if every one of its commands is. What cannot be judged
(a program from a variable, `curl ... | sh`, `python -c`, text that does not parse) gets
`opaque`, never allow.

Other tools are judged by tool globs with optional argument globs, as before:
`fs_write(path: "/tmp/*")`; the first rule that matches decides. A tool glob on a shell tool
with no argument globs (`allow: shell`) decides every command of the call. A glob on the
text of a shell command (`shell(command: "rm -rf *")`) is refused at load with the command
rule to write instead: `rm -fr /`, `echo; rm -rf /` and `$(rm -rf /)` slip past it.

The guard is a policy layer: it judges the text it is shown. The boundary is the sandbox
the commands run in.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from fnmatch import fnmatchcase
from typing import Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .. import Ask, Block, HookContext, Plugin, ToolCall
from . import _shell
from ._globs import Globs

Decision = Literal["allow", "deny", "ask"]
_SEVERITY: dict[str, int] = {"allow": 0, "ask": 1, "deny": 2}

SHELL_TOOLS: tuple[str, ...] = (
    "shell",
    "bash",  # also Claude Code's `Bash`: names are compared case-insensitively
    "exec",
    "run_shell_command",
    "execute_command",
    "execute_bash",
    "run_terminal_cmd",
    "run_terminal_command",
    "local_shell",
    "terminal",  # Hermes Agent's
)
"""Tool names judged as shells by default."""

COMMAND_KEYS: tuple[str, ...] = ("command", "cmd", "script", "args")
"""Argument names that carry the command of a shell tool by default."""

_RULE = re.compile(r"^\s*(?P<tool>[^\s()]+)\s*(?:\((?P<args>.*)\))?\s*$", re.S)
_ARG = re.compile(
    r"\s*(?P<name>\w+)\s*:\s*(?P<value>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^,]*?)\s*(?:,|$)", re.S
)


class _Match(IntEnum):
    NO = 0
    MAYBE = 1  # words not known before the command runs could make it match
    YES = 2


class CommandPattern(BaseModel):
    """A shell command shape: program globs, flags, argument globs, written paths.

    `program`: globs on the program's basename (`rm`, `mkfs*`), or on the path when the
    glob has a `/`. `flags`: every one must be given, normalised per program (`-rf` =
    `-r -f` = `--recursive --force`). `args`: every glob must match some argument word.
    `writes`: globs on the files its output is redirected to; for deny and ask, some written
    file must match; for allow, every written file must (so an allow without `writes` does
    not cover a command that writes to a file).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    program: str | tuple[str, ...]
    flags: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    @field_validator("program")
    @classmethod
    def _some_program(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        if not value:
            raise ValueError("program names at least one program glob (`*` for any)")
        return value

    @field_validator("flags")
    @classmethod
    def _flags_are_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for flag in value:
            if not flag.startswith("-") or flag in ("-", "--"):
                raise ValueError(f"{flag!r} is not a flag; write flags as -r or --recursive")
        return value

    @property
    def programs(self) -> tuple[str, ...]:
        """The program globs, as a tuple."""
        return (self.program,) if isinstance(self.program, str) else self.program

    def __str__(self) -> str:
        parts = [f"program: {_flow(self.program)}"]
        for name in ("flags", "args", "writes"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}: {_flow(value)}")
        return "{" + ", ".join(parts) + "}"


def _compile(globs: Sequence[str]) -> Globs | None:
    return Globs(globs) if globs else None


@dataclass(frozen=True, slots=True)
class _Shape:
    """A `CommandPattern` compiled for matching: its globs compiled once."""

    label: str
    names: Globs | None  # globs on the basename
    paths: Globs | None  # globs with a `/`, on the path
    flags: tuple[str, ...]
    args: tuple[re.Pattern[str], ...]
    writes: Globs | None

    @classmethod
    def of(cls, pattern: CommandPattern) -> _Shape:
        programs = pattern.programs
        return cls(
            str(pattern),
            _compile([g for g in programs if "/" not in g]),
            _compile([g for g in programs if "/" in g]),
            pattern.flags,
            tuple(re.compile(fnmatch.translate(g)) for g in pattern.args),
            _compile(pattern.writes),
        )

    def program_matches(self, command: _shell.Command) -> bool:
        return bool(
            (self.names is not None and self.names.match(command.program))
            or (self.paths is not None and self.paths.match(command.path))
        )

    def match(self, command: _shell.Command) -> _Match:
        """Whether `command` has this shape (deny and ask rules)."""
        if not self.program_matches(command):
            return _Match.NO
        result = _Match.YES
        if self.flags and not _rule_flags(command.program, self.flags) <= command.flags:
            if not command.unknown_flags:
                return _Match.NO
            result = _Match.MAYBE
        for glob in self.args:
            if not any(w is not None and glob.match(w) for w in command.words):
                if not command.unknown:
                    return _Match.NO
                result = _Match.MAYBE
        writes = self.writes
        if writes is not None and not any(
            w is not None and writes.match(w) for w in command.writes
        ):
            if None not in command.writes:
                return _Match.NO
            result = _Match.MAYBE
        return result

    def covers(self, command: _shell.Command) -> bool:
        """Whether this allow shape covers `command`, its written files included."""
        if not self.program_matches(command):
            return False
        if self.flags and not _rule_flags(command.program, self.flags) <= command.flags:
            return False
        for glob in self.args:
            if not any(w is not None and glob.match(w) for w in command.words):
                return False
        writes = self.writes
        return all(w is not None and writes is not None and writes.match(w) for w in command.writes)


@functools.lru_cache(maxsize=1024)
def _rule_flags(program: str, flags: tuple[str, ...]) -> frozenset[str]:
    return _shell.normalise_flags(program, flags)


def _flow(value: str | tuple[str, ...]) -> str:
    if isinstance(value, str):
        return value
    return "[" + ", ".join(value) + "]"


_DISKS = ("/dev/sd*", "/dev/hd*", "/dev/vd*", "/dev/xvd*", "/dev/nvme*", "/dev/mmcblk*",
          "/dev/disk*", "/dev/mapper/*", "/dev/md*", "/dev/dm-*", "/dev/loop*", "/dev/nbd*",
          "/dev/sg*", "/dev/sr*", "/dev/block/*", "/dev/rbd*", "/dev/zram*", "/dev/mtd*",
          "/dev/ubi*", "/dev/mem", "/dev/kmem", "/dev/port", "/proc/sysrq-trigger")  # fmt: skip
_SYSTEM_STATES = ("poweroff", "reboot", "halt", "kexec", "emergency", "rescue", "soft-reboot",
                  "ctrl-alt-del")  # fmt: skip
_TARGETS = tuple(name for state in _SYSTEM_STATES for name in (state, f"{state}.target"))
_RSYNC_DELETES = ("--del", "--delete*", "--remove-source-files", "--remove-sent-files")
_HDPARM_ERASES = ("--security-erase", "--security-erase-enhanced", "--write-sector",
                  "--trim-sector-ranges", "--trim-sector-ranges-stdin", "--make-bad-sector",
                  "--dco-restore")  # fmt: skip

DESTRUCTIVE: tuple[CommandPattern, ...] = (
    CommandPattern(program="rm", flags=("-r",)),
    CommandPattern(program="find", args=("-delete",)),
    CommandPattern(program=("shred", "wipe", "srm")),
    CommandPattern(
        program=(
            "mkfs",
            "mkfs.*",
            "mke2fs",
            "mkswap",
            "wipefs",
            "fdisk",
            "sfdisk",
            "cfdisk",
            "gdisk",
            "sgdisk",
            "parted",
            "blkdiscard",
            "mkdosfs",
            "mkntfs",
            "mkexfatfs",
            "mkudffs",
            "mformat",
            "sg_format",
            "sg_sanitize",
            "lvremove",
            "vgremove",
            "pvremove",
        )
    ),
    *(
        CommandPattern(program="cryptsetup", args=(action,))
        for action in ("luksFormat", "luksformat", "erase", "luksErase", "luksKillSlot")
    ),
    CommandPattern(program="badblocks", flags=("-w",)),
    *(CommandPattern(program="hdparm", flags=(flag,)) for flag in _HDPARM_ERASES),
    *(CommandPattern(program="nvme", args=(action,)) for action in ("format", "sanitize")),
    CommandPattern(program="zpool", args=("destroy",)),
    CommandPattern(program="zpool", args=("labelclear",)),
    CommandPattern(program="zfs", args=("destroy",)),
    *(CommandPattern(program="dd", args=(f"of={disk}",)) for disk in _DISKS),
    CommandPattern(program="*", writes=_DISKS),
    CommandPattern(program=("chmod", "chown", "chgrp"), flags=("-R",)),
    CommandPattern(program="git", args=("push",), flags=("-f",)),
    CommandPattern(program="git", args=("push",), flags=("--force-with-lease",)),
    CommandPattern(program="git", args=("push",), flags=("--mirror",)),
    CommandPattern(program="git", args=("push",), flags=("--delete",)),
    CommandPattern(program="git", args=("push", "+*")),
    CommandPattern(program="git", args=("push", ":*")),  # `origin :branch` deletes it
    CommandPattern(program="git", args=("push",), flags=("--prune",)),
    CommandPattern(program=("tar", "bsdtar", "gtar"), flags=("--remove-files",)),
    CommandPattern(program="zip", flags=("-m",)),
    CommandPattern(program=("7z", "7za", "7zz", "7zr"), args=("-sdel",)),
    *(CommandPattern(program="rsync", args=(option,)) for option in _RSYNC_DELETES),
    CommandPattern(program="git", args=("reset",), flags=("--hard",)),
    CommandPattern(program="git", args=("clean",), flags=("-f",)),
    CommandPattern(program="crontab", flags=("-r",)),
    CommandPattern(program="crontab", args=("[!-]*",)),  # `crontab FILE` replaces the table
    CommandPattern(program="crontab", args=("-",)),
    CommandPattern(program="kill", args=("-1",)),  # `kill -9 -1`: every process of the user
    CommandPattern(program=("shutdown", "reboot", "halt", "poweroff", "killall5")),
    *(CommandPattern(program=("systemctl", "loginctl"), args=(target,)) for target in _TARGETS),
    CommandPattern(program="systemctl", args=("isolate",)),
    *(
        CommandPattern(program=("init", "telinit"), args=(level,))
        for level in ("0", "6", "1", "[sS]")
    ),
)
"""The built-in destructive-command set (`destructive: deny` or `ask` turns it on)."""

RulePattern = str | CommandPattern | list[CommandPattern]


class Rule(BaseModel):
    """One rule: exactly one of `allow`, `deny`, `ask`, and an optional `reason`.

    The value is a tool glob (`'read_*'`, `'fs_write(path: "/tmp/*")'`), a command pattern
    (`{program: rm, flags: [-r, -f]}`) or a list of command patterns (any of them).
    """

    model_config = ConfigDict(extra="forbid")

    allow: RulePattern | None = None
    deny: RulePattern | None = None
    ask: RulePattern | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _one_decision(self) -> Rule:
        given = [d for d in ("allow", "deny", "ask") if getattr(self, d) is not None]
        if len(given) != 1:
            raise ValueError("a rule has exactly one of allow, deny, ask (with a pattern)")
        if isinstance(self.pattern, str):
            parse(self.pattern)
        elif isinstance(self.pattern, list) and not self.pattern:
            raise ValueError(f"{self.decision}: [] names no command; give at least one")
        return self

    @property
    def decision(self) -> Decision:
        """What the rule decides."""
        if self.deny is not None:
            return "deny"
        return "ask" if self.ask is not None else "allow"

    @property
    def pattern(self) -> RulePattern:
        """The rule's pattern, as written."""
        value = {"allow": self.allow, "deny": self.deny, "ask": self.ask}[self.decision]
        assert value is not None  # _one_decision
        return value

    @property
    def commands(self) -> tuple[CommandPattern, ...]:
        """The command patterns of the rule (empty for a tool glob)."""
        pattern = self.pattern
        if isinstance(pattern, str):
            return ()
        return (pattern,) if isinstance(pattern, CommandPattern) else tuple(pattern)


class ToolGuardConfig(BaseModel):
    """The rules, the decisions when none matches or a command cannot be judged, the shells."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    default: Decision = "allow"
    opaque: Literal["ask", "deny"] = "ask"
    destructive: Literal["off", "ask", "deny"] = "off"
    shell_tools: list[str] = Field(default_factory=lambda: list(SHELL_TOOLS))
    command_keys: list[str] = Field(default_factory=lambda: list(COMMAND_KEYS))

    @model_validator(mode="after")
    def _no_text_globs_on_shells(self) -> ToolGuardConfig:
        shells = [name.lower() for name in self.shell_tools]
        for index, rule in enumerate(self.rules, start=1):
            if not isinstance(rule.pattern, str):
                continue
            parsed = parse(rule.pattern)
            keys = [name for name, _ in parsed.arguments if name in self.command_keys]
            if not keys or not any(fnmatchcase(s, parsed.tool.lower()) for s in shells):
                continue
            glob = dict(parsed.arguments)[keys[0]]
            raise ValueError(
                f"rule {index} ({rule.decision}: {rule.pattern!r}) matches the text of a "
                f"shell command, which other spellings slip past (rm -fr, `echo; rm`, "
                f"$(rm)); shell commands are parsed and judged by program, so write "
                f"`{rule.decision}: {_suggest(glob)}` (see docs/builtins.md, tool-guard)"
            )
        return self


def _suggest(glob: str) -> str:
    words = glob.split()
    if not words:
        return "{program: '*'}"
    if words[-1] == "*":
        words.pop()
    elif len(words) > 1 or words[0].rstrip("*"):
        words[-1] = words[-1].rstrip("*") or words[-1]
    program = words[0].rstrip("*") or "*"
    flags: list[str] = []
    args: list[str] = []
    for word in words[1:]:
        if word.startswith("--"):
            flags.append(word)
        elif word.startswith("-") and len(word) > 1:
            flags.extend("-" + c for c in word[1:])
        else:
            args.append(word)
    return str(CommandPattern(program=program, flags=tuple(flags), args=tuple(args)))


@dataclass(frozen=True)
class Pattern:
    """A parsed tool glob: a tool-name glob and argument globs."""

    tool: str
    arguments: tuple[tuple[str, str], ...]

    def matches(self, call: ToolCall) -> bool:
        """Whether `call` fits: the tool name and every named argument."""
        if not fnmatchcase(call.tool_name, self.tool):
            return False
        for name, glob in self.arguments:
            if name not in call.arguments:
                return False
            value = call.arguments[name]
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            if not fnmatchcase(text, glob):
                return False
        return True


def parse(pattern: str) -> Pattern:
    """`tool(arg: "glob", ...)` as a `Pattern`; `ValueError` says what is wrong."""
    match = _RULE.match(pattern)
    if match is None:
        raise ValueError(f"{pattern!r}: a rule is a tool glob, optionally with "
                         '(argument: "glob", ...), or a command pattern '
                         "{program: ..., flags: [...], args: [...]}")  # fmt: skip
    arguments = []
    rest = (match.group("args") or "").strip()
    while rest:
        part = _ARG.match(rest)
        if part is None or not part.group(0):
            raise ValueError(f'{pattern!r}: cannot read the arguments at {rest!r}; write '
                             'them as name: "glob", separated by commas')  # fmt: skip
        try:
            arguments.append((part.group("name"), _unquote(part.group("value"))))
        except ValueError as error:
            raise ValueError(f"{pattern!r}: {error}") from None
        rest = rest[part.end() :].strip()
    return Pattern(match.group("tool"), tuple(arguments))


def _unquote(value: str) -> str:
    if value.startswith('"'):
        try:
            return str(json.loads(value))
        except ValueError as error:
            raise ValueError(f"{value}: not a JSON string ({error})") from None
    if value.startswith("'"):
        return value[1:-1]
    return value


@dataclass(frozen=True)
class _Compiled:
    decision: Decision
    label: str  # "rule 2" or "the destructive set"
    reason: str
    tool: Pattern | None  # a tool glob, or
    shapes: tuple[_Shape, ...]  # command shapes
    programs: Globs | None  # basename globs of shapes that need no writes
    writers: Globs | None  # those of shapes that need a written file
    quick: bool  # whether the two answer "no" for sure (no path globs)
    written: str  # the pattern as written, for tool globs

    @classmethod
    def of(
        cls,
        decision: Decision,
        label: str,
        reason: str,
        pattern: str | Sequence[CommandPattern],
    ) -> _Compiled:
        if isinstance(pattern, str):
            return cls(decision, label, reason, parse(pattern), (), None, None, False, pattern)
        shapes = tuple(_Shape.of(p) for p in pattern)
        # An allow shape covers commands with no writes, so its globs count as no-write ones.
        needs = [bool(p.writes) and decision != "allow" for p in pattern]
        programs = _compile([g for p, n in zip(pattern, needs, strict=True) if not n
                             for g in p.programs])  # fmt: skip
        writers = _compile([g for p, n in zip(pattern, needs, strict=True) if n
                            for g in p.programs])  # fmt: skip
        quick = not any("/" in g for p in pattern for g in p.programs)
        return cls(decision, label, reason, None, shapes, programs, writers, quick, "")

    def might_match(self, command: _shell.Command) -> bool:
        """False when no shape of the rule can match `command` (most commands, most rules)."""
        if not self.quick:
            return True
        if self.programs is not None and self.programs.match(command.program):
            return True
        return (
            bool(command.writes)
            and self.writers is not None
            and self.writers.match(command.program)
        )


class ToolGuard(Plugin):
    """Decides tool calls by rules; shell commands are parsed. See the module documentation."""

    name = "tool-guard"
    version = "2.0"
    config_model = ToolGuardConfig

    def __init__(self, config: ToolGuardConfig | None = None) -> None:
        self.config = config or ToolGuardConfig()
        rules: list[_Compiled] = []
        if self.config.destructive != "off":
            destructive = self.config.destructive
            rules.append(
                _Compiled.of(destructive, "the destructive set", "destructive", DESTRUCTIVE)
            )
        for index, rule in enumerate(self.config.rules, start=1):
            pattern = rule.pattern if isinstance(rule.pattern, str) else rule.commands
            rules.append(_Compiled.of(rule.decision, f"rule {index}", rule.reason, pattern))
        self._rules = tuple(rules)
        self._shells = frozenset(name.lower() for name in self.config.shell_tools)
        self._keys = tuple(self.config.command_keys)
        self._decided: dict[_Key, tuple[Decision, str]] = {}

    def on_pre_tool_call(self, call: ToolCall, ctx: HookContext) -> Any:
        # The same calls come again and again (`ls`, `git status`): decided once. The
        # decision depends on the call alone (rules are compiled, parsing is pure).
        key = _key(call)
        if key is None:
            return _decide(*self._decision(call))
        decided = self._decided.get(key)
        if decided is None:
            decided = self._decision(call)
            if len(self._decided) >= _DECIDED:
                self._decided.clear()
            self._decided[key] = decided
        return _decide(*decided)

    def _decision(self, call: ToolCall) -> tuple[Decision, str]:
        if call.tool_name.lower() not in self._shells:
            return self._whole_call(call)
        analysis = self._analyse(call)
        if not analysis.commands and not analysis.opaque:
            return self._whole_call(call)
        tools = [rule.tool is not None and rule.tool.matches(call) for rule in self._rules]
        verdict: _Verdict | None = None
        for part in analysis.opaque:
            found = _Verdict(
                self.config.opaque, f"cannot judge part of the command: {part.why}", True
            )
            verdict = _worse(verdict, found)
        for command in analysis.commands:
            verdict = _worse(verdict, self._judge(command, tools))
            if verdict.decision == "deny" and verdict.by_rule:
                break
        assert verdict is not None  # the analysis found commands or opaque parts
        return verdict.decision, verdict.why

    def _whole_call(self, call: ToolCall) -> tuple[Decision, str]:
        for rule in self._rules:
            if rule.tool is not None and rule.tool.matches(call):
                return rule.decision, _why(rule, rule.written, "")
        default = self.config.default
        return default, f"no rule matched; the default is {default}"

    def _judge(self, command: _shell.Command, tools: list[bool]) -> _Verdict:
        """The first rule that matches `command` (a tool glob matching the call does)."""
        for rule, tool_matches in zip(self._rules, tools, strict=True):
            if rule.tool is not None:
                if tool_matches:
                    return _Verdict(rule.decision, _why(rule, rule.written, _name(command)), True)
                continue
            if not rule.might_match(command):
                continue
            if rule.decision == "allow":
                for shape in rule.shapes:
                    if shape.covers(command):
                        return _Verdict("allow", _why(rule, shape.label, _name(command)), True)
                continue
            best = max(((p.match(command), p) for p in rule.shapes), key=lambda m: m[0])
            if best[0] is _Match.YES:
                return _Verdict(rule.decision, _why(rule, best[1].label, _name(command)), True)
            if best[0] is _Match.MAYBE:
                decision = min(rule.decision, self.config.opaque, key=_SEVERITY.__getitem__)
                why = (f"cannot judge {_name(command)}: words not known before it runs could "
                       f"match {rule.label} ({rule.decision}: {best[1].label})")  # fmt: skip
                return _Verdict(decision, why, True)
        default = self.config.default
        why = f"no rule matched {_name(command)}; the default is {default}"
        return _Verdict(default, why, False)

    def _analyse(self, call: ToolCall) -> _shell.Analysis:
        """Every command the call's command arguments run, parsed once per distinct text."""
        given = [key for key in self._keys if key in call.arguments]
        if len(given) == 1 and isinstance(call.arguments[given[0]], str):
            return _shell.analyse_script(call.arguments[given[0]])  # the common shape
        texts: list[str] = []
        vectors: list[list[str]] = []
        opaque: list[_shell.Opaque] = []
        for key in self._keys:
            if key not in call.arguments:
                continue
            value = call.arguments[key]
            if isinstance(value, str):
                texts.append(value)
            elif _is_words(value):
                vectors.append(list(value))
            else:
                opaque.append(_shell.Opaque(f"{key}: {_brief(value)}",
                                            "neither text nor a list of words"))  # fmt: skip
        if not texts and not vectors and not opaque:
            keys = ", ".join(self._keys)
            opaque.append(_shell.Opaque(call.tool_name, f"no command argument ({keys})"))
        if len(texts) + len(vectors) > 1:
            # A program under one key and its arguments under another (`{command: rm, args:
            # -rf x}`) run as one command: judged joined, in key order; each value of a key
            # other than `args` is judged alone as well, in case it is a command by itself.
            parts: list[tuple[str, str | list[str]]] = []
            for key in self._keys:
                value = call.arguments.get(key)
                if isinstance(value, str):
                    parts.append((key, value))
                elif _is_words(value):
                    parts.append((key, list(value)))
            alone = [value for key, value in parts if key != "args"]
            texts = [value for value in alone if isinstance(value, str)]
            vectors = [value for value in alone if not isinstance(value, str)]
            if all(not isinstance(value, str) for _, value in parts):
                vectors.append(
                    [w for _, value in parts if not isinstance(value, str) for w in value]
                )
            else:
                texts.append(" ".join(value if isinstance(value, str) else shlex.join(value)
                                      for _, value in parts))  # fmt: skip
        analyses = [_shell.analyse_script(text) for text in texts]
        analyses += [_shell.analyse_argv(words) for words in vectors]
        if len(analyses) == 1 and not opaque:
            return analyses[0]
        return _shell.Analysis(
            tuple(c for a in analyses for c in a.commands),
            tuple(opaque) + tuple(o for a in analyses for o in a.opaque),
        )


_Key = tuple[str, tuple[tuple[str, str], ...]]
_DECIDED = 1024  # decisions kept; past it they are forgotten all at once
_KEYED_CHARS = 4096  # calls whose arguments are longer text are decided each time


def _key(call: ToolCall) -> _Key | None:
    """The call as a key for its decision, when its arguments are all text and short (text
    equal means the same decision; `1 == True` does not); None otherwise."""
    items: list[tuple[str, str]] = []
    size = 0
    for name, value in call.arguments.items():
        if type(value) is not str:
            return None
        items.append((name, value))
        size += len(value)
    return (call.tool_name, tuple(items)) if size <= _KEYED_CHARS else None


def _is_words(value: object) -> TypeGuard[Sequence[str]]:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes) and all(
        isinstance(word, str) for word in value
    )  # fmt: skip


def _brief(value: object) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, Mapping) else "{...}"
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True, slots=True)
class _Verdict:
    decision: Decision
    why: str
    by_rule: bool  # a rule (or `opaque`) decided, not the default


def _worse(current: _Verdict | None, found: _Verdict) -> _Verdict:
    """The more severe verdict; at equal severity, one a rule gave names more."""
    if current is None:
        return found
    rank = (_SEVERITY[found.decision], found.by_rule)
    return found if rank > (_SEVERITY[current.decision], current.by_rule) else current


def _name(command: _shell.Command) -> str:
    # The program only: a command's text may hold what the audit log must never keep.
    return f"the `{command.program}` command" if command.program else "a redirection"


def _why(rule: _Compiled, pattern: str, text: str) -> str:
    matches = f" matches {text}" if text else ""
    because = f": {rule.reason}" if rule.reason else ""
    return f"{rule.label} ({rule.decision}: {pattern}){matches}{because}"


def _decide(decision: Decision, why: str) -> Any:
    if decision == "allow":
        return None
    if decision == "deny":
        return Block(f"tool guard: {why}")
    return Ask(f"tool guard asks: {why}. Allow it?")
