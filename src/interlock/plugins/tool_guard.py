"""`tool_guard`: allow, deny or ask about tool calls, by rules on the tool and its arguments.

    plugins:
      - name: tool-guard
        use: tool-guard
        config:
          rules:                                    # the first rule that matches decides
            - deny: 'shell(command: "rm -rf *")'
              reason: destructive
            - ask: 'shell(command: "git push*")'
            - allow: 'shell(command: "ls*")'
            - allow: 'read_*'                       # any arguments
          default: deny                             # when no rule matches

A rule is a tool-name glob, optionally followed by argument globs in parentheses:
`name(arg: "glob", other: "glob")`. Every argument named must be there and match (a
value that is not text is matched as its JSON); arguments not named are not looked at.
Globs are case-sensitive shell patterns (`*`, `?`, `[abc]`) on the whole value, and `*`
matches anything, `/` and `;` included: `allow: 'shell(command: "ls*")'` also allows
`ls; rm -rf ~`, and `"/tmp/*"` matches `/tmp/../etc`. So deny the dangerous shapes before
you allow broad ones, and prefer `default: deny` with narrow allows. A double-quoted glob
is a JSON string (`\"` and `\\` escape); a single-quoted one is taken as written. A denied
call reaches the model as an error tool result naming the rule; `ask` goes to the host's
approver.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import Ask, Block, HookContext, Plugin, ToolCall

Decision = Literal["allow", "deny", "ask"]

_RULE = re.compile(r"^\s*(?P<tool>[^\s()]+)\s*(?:\((?P<args>.*)\))?\s*$", re.S)
_ARG = re.compile(
    r"\s*(?P<name>\w+)\s*:\s*(?P<value>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^,]*?)\s*(?:,|$)", re.S
)


class Rule(BaseModel):
    """One rule: exactly one of `allow`, `deny`, `ask` (a pattern), and a `reason`."""

    model_config = ConfigDict(extra="forbid")

    allow: str | None = None
    deny: str | None = None
    ask: str | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _one_decision(self) -> Rule:
        given = [d for d in ("allow", "deny", "ask") if getattr(self, d) is not None]
        if len(given) != 1:
            raise ValueError("a rule has exactly one of allow, deny, ask (with a pattern)")
        parse(self.pattern)
        return self

    @property
    def decision(self) -> Decision:
        """What the rule decides."""
        if self.deny is not None:
            return "deny"
        return "ask" if self.ask is not None else "allow"

    @property
    def pattern(self) -> str:
        """The rule's pattern, as written."""
        return str(self.allow if self.allow is not None else self.deny or self.ask)


class ToolGuardConfig(BaseModel):
    """The rules, in the order they are tried, and the decision when none matches."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    default: Decision = "allow"


@dataclass(frozen=True)
class Pattern:
    """A parsed rule pattern: a tool-name glob and argument globs."""

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
                         '(argument: "glob", ...)')  # fmt: skip
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


class ToolGuard(Plugin):
    """Decides tool calls by rules; see the module documentation."""

    name = "tool-guard"
    version = "1.0"
    config_model = ToolGuardConfig

    def __init__(self, config: ToolGuardConfig | None = None) -> None:
        self.config = config or ToolGuardConfig()
        self._rules = [(rule, parse(rule.pattern)) for rule in self.config.rules]

    def on_pre_tool_call(self, call: ToolCall, ctx: HookContext) -> Any:
        for index, (rule, pattern) in enumerate(self._rules, start=1):
            if pattern.matches(call):
                why = f"rule {index} ({rule.decision}: {rule.pattern}){_because(rule.reason)}"
                return _decide(rule.decision, why)
        return _decide(
            self.config.default, f"no rule matched; the default is {self.config.default}"
        )


def _decide(decision: Decision, why: str) -> Any:
    if decision == "allow":
        return None
    if decision == "deny":
        return Block(f"tool guard: {why}")
    return Ask(f"tool guard asks: {why}. Allow it?")


def _because(reason: str) -> str:
    return f": {reason}" if reason else ""
