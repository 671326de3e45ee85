"""Loading interlock.yaml: what a good file registers, and every way a file can be wrong."""

from __future__ import annotations

import math
from pathlib import Path
from textwrap import dedent

import pytest

from interlock import ConfigError, PluginManager, ToolCall, TurnEnd, hooks
from interlock.config import load_config, load_config_text, parse_duration

from . import plugins_for_tests

ROOT = Path(__file__).resolve().parents[2]
P = "tests.config.plugins_for_tests"


def load(text: str, **options: object) -> PluginManager:
    return load_config_text(dedent(text), file="test.yaml", plugins={}, **options)  # type: ignore[arg-type]


def problems(text: str, **options: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text, **options)
    return [str(p) for p in info.value.problems]


def test_the_example_file_loads() -> None:
    manager = load_config(ROOT / "examples" / "interlock.yaml", environ={})
    regs = {(r.plugin, r.hook.name): r for r in manager.registrations()}
    gate = regs[("tool-guard", "pre_tool_call")]
    assert (gate.priority, gate.on_error, gate.timeout, gate.mode) == (10, "block", 2.0, "enforce")
    assert regs[("no-rm", "pre_tool_call")].when == {"tool_name": ["fs_*"]}
    assert regs[("workspace", "post_tool_call")].capabilities == {"system_items"}
    assert regs[("workspace", "post_tool_call")].timeout == 0.5
    assert ("audit-later", "turn_end") not in regs  # disabled: never imported
    hook_script = regs[("claude-guard", "pre_tool_call")]
    assert (hook_script.priority, hook_script.on_error) == (20, "block")
    spelled = ToolCall("Bash", {"cmd": "echo hi; sudo /bin/rm -r -f /"})
    blocked = manager.invoke_sync(hooks.PRE_TOOL_CALL, spelled)
    assert blocked.blocked_by == "tool-guard"
    manager.unregister("safety")  # the set registered as one
    assert {r.plugin for r in manager.registrations()} == {"workspace", "claude-guard"}


def test_environment_values_fill_in_and_defaults_apply() -> None:
    path = ROOT / "examples" / "interlock.yaml"
    manager = load_config(path, environ={"SAFETY_MODE": "permissive"})
    in_the_set = ("tool-guard", "no-rm", "redact-email")
    assert {r.mode for r in manager.registrations() if r.plugin in in_the_set} == {"permissive"}


def test_options_config_and_construction() -> None:
    manager = load(f"""
        defaults: {{timeout: 250ms, priority: 3}}
        plugins:
          - name: guard
            use: {P}:Guard
            config: {{deny: ["rm -rf /"]}}
            timeout: none
          - name: counter
            use: {P}:Counter
            config: {{start: 5}}
          - name: reader
            use: {P}:check_config
            hook: turn_end
            config: {{level: high}}
    """)
    regs = {r.plugin: r for r in manager.registrations()}
    assert regs["guard"].timeout is None and regs["guard"].priority == 3
    assert regs["counter"].timeout == 0.25
    assert regs["reader"].config == {"level": "high"}
    manager.invoke_sync(hooks.TURN_END, TurnEnd(1))
    assert "config={'level': 'high'}" in plugins_for_tests.STARTED
    assert manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("x", {"command": "rm -rf /"})).blocked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "plugins:\n  - name: a\n    use: x:y\n    modee: permissive\n",
            "test.yaml:4: plugin 'a': unknown key 'modee'; did you mean 'mode'?",
        ),
        (
            "plugins:\n  - name: a\n    use: x:y\n    timeout: soon\n",
            "test.yaml:4: plugin 'a': timeout: expected a duration like '250ms', '2s', '1m'",
        ),
        (
            "plugins:\n  - name: a\n    use: x:y\n    mode: loud\n",
            "test.yaml:4: plugin 'a': mode must be one of 'enforce', 'permissive' or 'disabled'",
        ),
        (
            "plugins:\n  - name: a\n    use: x:y\n  - name: a\n    use: x:z\n",
            "test.yaml:4: plugin 'a': the name 'a' is used twice (also on line 2)",
        ),
        ("plugins:\n  - name: a\n", "test.yaml:2: plugin 'a': give exactly one of 'use'"),
        (
            "plugins:\n  - name: a\n    use: x:y\n    external: {http: [u]}\n",
            "give exactly one of 'use'",
        ),
        (
            "plugins:\n  - name: a\n    external: {http: [u], command: [c]}\n",
            "external takes exactly one of stdio, http and command",
        ),
        (
            "sets:\n  s:\n    plugins: [ghost]\n",
            "test.yaml:3: set 's' lists 'ghost', which no entry",
        ),
        ("plugins: [1, 2]\n", "test.yaml:1: each entry must be a mapping of keys to values; got 1"),
        (
            "plugins:\n  - name: a\n    use: x:y\n    name: b\n",
            "test.yaml:4: plugin 'b': the key 'name' appears twice",
        ),
        ("plugins:\n  - name: a\n    use: [x\n", "not valid YAML"),
        ("- just\n- a list\n", "the file must be a mapping"),
        (
            "plugins:\n  - name: a\n    use: x:y\n    timeout: ${NOPE}\n",
            "test.yaml:4: plugin 'a': the environment variable NOPE is not set",
        ),
        ("unknown: 1\n", "unknown key 'unknown'"),
    ],
)
def test_schema_problems_name_the_line_the_entry_and_the_fix(text: str, expected: str) -> None:
    found = problems(text, environ={})
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "use: not_a_module_anywhere:X",
            "test.yaml:3: plugin 'a': cannot import 'not_a_module_anywhere': ModuleNotFoundError",
        ),
        (f"use: {P}:Nothing", f"module '{P}' has no 'Nothing'"),
        ("use: no-such-plugin", "no plugin named 'no-such-plugin': not an import path"),
        (
            f"use: {P}:Guard\n    config: {{deny: 3}}",
            "config.deny: Input should be a valid list; got 3",
        ),
        (f"use: {P}:Counter\n    config: {{begin: 1}}", "Counter cannot take this config"),
        (f"use: {P}:Broken", "Broken failed to start: RuntimeError: cannot reach the policy"),
        (f"use: {P}:one_argument\n    hook: turn_end", "must accept two positional arguments"),
        (
            f"use: {P}:shout\n    hook: pre_tool_cal",
            "no hook is called 'pre_tool_cal'; did you mean",
        ),
        (
            f"use: {P}:Counter\n    capabilities: [system_items, notify, files]",
            "capability 'files' is not offered by any of its hooks",
        ),
        (
            "external: {stdio: [no-such-program-anywhere]}",
            "could not start 'no-such-program-anywhere'",
        ),
        ("external: {command: [./hook.sh]}", "say for which with hooks: [pre_tool_call, ...]"),
        ("external: {stdio: [x], token: t}", "token is for http plugins only"),
        ("external: {http: [u], cwd: here}", "cwd is for plugins interlock starts"),
        ("external: {http: [ftp://x]}", "'ftp://x' is not an http:// or https:// URL"),
        ("external: {command: [x], hooks: [pre_tool_cal]}", "no hook is called 'pre_tool_cal'"),
    ],
)
def test_plugin_problems_name_the_entry(entry: str, expected: str) -> None:
    found = problems(f"plugins:\n  - name: a\n    {entry}\n")
    assert any(expected in p for p in found), found
    assert all("plugin 'a'" in p or "'a'" in p for p in found)


def test_every_problem_is_reported_at_once() -> None:
    found = problems("""
        plugins:
          - name: a
            use: x:y
            modee: enforce
          - name: b
            use: x:z
            timeout: forever
    """)
    assert [p.split(": ", 2)[0] for p in found] == [f"test.yaml:{n}" for n in (4, 5, 7, 8)]
    assert [("cannot import 'x'" in p) for p in found] == [True, False, True, False]


def test_a_bad_file_registers_nothing() -> None:
    manager = PluginManager()
    text = f"""
        plugins:
          - name: good
            use: {P}:Counter
          - name: bad
            use: {P}:one_argument
            hook: turn_end
    """
    with pytest.raises(ConfigError):
        load(text, manager=manager)
    assert manager.registrations() == ()


def test_values_from_the_environment_never_appear_in_messages() -> None:
    found = problems("plugins:\n  - name: a\n    use: x:y\n    timeout: ${T}\n",
                     environ={"T": "hunter2-secret"})  # fmt: skip
    assert found and not any("hunter2" in p for p in found)
    found = problems("plugins:\n  - name: a\n    use: x:y\n    mode: ${M}\n",
                     environ={"M": "hunter2-secret"})  # fmt: skip
    assert found and not any("hunter2" in p for p in found)


def test_durations() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2s") == 2.0 and parse_duration(3) == 3.0
    assert parse_duration("1.5m") == 90.0 and parse_duration("1h") == 3600.0
    assert parse_duration("none") == math.inf
    for bad in ("0s", "-1", "2 weeks", True, None):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.yaml")
