"""tool_guard through the reference runtime, and its tool-glob patterns."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from interlock import ToolCall
from interlock.config import ConfigError, load_config_text
from interlock.plugins.tool_guard import ToolGuard, ToolGuardConfig, parse
from interlock.runtime import Step

from .helpers import run

CONFIG = """
plugins:
  - name: tool-guard
    use: tool-guard
    config:
      rules:
        - deny: {program: rm, flags: [-r, -f]}
          reason: destructive
        - ask: {program: git, args: [push]}
        - allow: {program: ls}
        - allow: 'read_*'
      default: deny
"""


def calls(*commands: str) -> list[Step | str]:
    return [Step(tool_calls=(("shell", {"command": c}),)) for c in commands] + ["done"]


async def test_rules_decide_in_order_and_blocks_reach_the_model_with_the_rule() -> None:
    manager = load_config_text(CONFIG)
    result = await run([], calls("ls -la", "ls; rm -fr /", "git push", "make"), ["go"],
                       manager=manager)  # fmt: skip
    outputs = [r["output"] for r in result.kinds("tool_result")]
    assert outputs[0] == "ran: ls -la"
    assert outputs[1].endswith(
        "tool guard: rule 1 (deny: {program: rm, flags: [-r, -f]}) matches the `rm` command: "
        "destructive"
    )
    asks = "tool guard asks: rule 2 (ask: {program: git, args: [push]}) matches the `git` "
    assert asks in outputs[2]
    assert "tool guard: no rule matched the `make` command; the default is deny" in outputs[3]
    sent = [m.content for m in result.model.requests[-1].messages if m.role == "tool"]
    assert sent == outputs  # what the model was told


@pytest.mark.parametrize(
    ("pattern", "call", "matches"),
    [
        ('run(command: "rm -rf *")', ToolCall("run", {"command": "rm -rf /"}), True),
        ('run(command: "rm -rf *")', ToolCall("run", {"command": "ls; rm -rf /"}), False),
        ('run(command: "rm -rf *")', ToolCall("run", {}), False),
        ("fs_*", ToolCall("fs_write", {"path": "x"}), True),
        ("fs_*", ToolCall("shell"), False),
        ('get(url: "https://*", n: "3")', ToolCall("get", {"url": "https://a", "n": 3}), True),
        ("write(path: '/etc/*')", ToolCall("write", {"path": "/etc/passwd"}), True),
        ('Shell(command: "*")', ToolCall("shell", {"command": "x"}), False),
    ],
)  # fmt: skip
def test_patterns(pattern: str, call: ToolCall, matches: bool) -> None:
    assert parse(pattern).matches(call) is matches


def test_bad_rules_are_refused_with_what_to_write() -> None:
    with pytest.raises(ValidationError, match="exactly one of allow, deny, ask"):
        ToolGuardConfig.model_validate({"rules": [{"allow": "x", "deny": "y"}]})
    with pytest.raises(ValidationError, match='write them as name: "glob"'):
        ToolGuardConfig.model_validate({"rules": [{"deny": 'run(command "x")'}]})
    assert ToolGuard().config.default == "allow"


def test_a_bad_quoted_glob_names_the_rule() -> None:
    with pytest.raises(ValueError, match="not a JSON string") as raised:
        parse('shell(command: "rm \\q")')
    assert str(raised.value).startswith("'shell(command: \"rm \\\\q\")': ")


def test_an_old_text_glob_on_a_shell_fails_the_config_load_with_the_rule_to_write() -> None:
    old = CONFIG.replace(
        "- deny: {program: rm, flags: [-r, -f]}", "- deny: 'shell(command: \"rm -rf *\")'"
    )
    with pytest.raises(ConfigError) as raised:
        load_config_text(old)
    text = str(raised.value)
    assert "plugin 'tool-guard'" in text
    assert "rule 1 (deny: 'shell(command: \"rm -rf *\")')" in text
    assert "write `deny: {program: rm, flags: [-r, -f]}`" in text


def decide(guard: ToolGuard, call: ToolCall) -> object:
    return guard.on_pre_tool_call(call, None)  # type: ignore[arg-type]


def test_a_decision_remembered_for_a_call_is_never_given_to_a_different_one() -> None:
    # Decisions are kept per call, and a value that only equals another (`1 == True`, with
    # the same hash) is not the same call: the tool glob reads it as `1` or as `true`.
    rules = [{"deny": 'fs_write(force: "true")'}, {"deny": "shell"}]
    guard = ToolGuard(ToolGuardConfig.model_validate({"rules": rules}))
    forced, counted = ToolCall("fs_write", {"force": True}), ToolCall("fs_write", {"force": 1})
    for _ in range(2):  # the second round asks what the first decided
        assert decide(guard, forced) is not None
        assert decide(guard, counted) is None
        assert decide(guard, ToolCall("shell", {"command": "ls"})) is not None


def test_remembered_decisions_are_bounded() -> None:
    from interlock.plugins import tool_guard

    guard = ToolGuard()
    for number in range(tool_guard._DECIDED + 10):
        assert decide(guard, ToolCall("shell", {"command": f"echo {number}"})) is None
    assert 0 < len(guard._decided) <= tool_guard._DECIDED
