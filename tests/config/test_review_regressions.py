"""Regression tests for problems a review of the config loader found."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from interlock import ConfigError, MessageEvent, PluginManager, hooks
from interlock.config import load_config, load_config_text

from . import plugins_for_tests

P = "tests.config.plugins_for_tests"


def problems(text: str, **options: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(dedent(text), file="t.yaml", plugins={}, **options)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def test_environment_values_are_hidden_in_every_message() -> None:
    secret = "hunter2-very-secret"
    env = {"S": secret}
    found = problems(f"""
        plugins:
          - name: keyed
            use: {P}:NeedsKey
            config: {{api_key: "${{S}}"}}
          - name: gate
            use: {P}:Counter
            when: {{tool_name: ["${{S}}", 7]}}
            capabilities: ["${{S}}"]
          - name: "${{S}}"
            use: "${{S}}"
    """, environ=env)  # fmt: skip
    assert found
    assert not any(secret in p for p in found), found
    assert any("${S}" in p for p in found)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2024-01-01", "'2024-01-01' is read as a date, which is not JSON data; quote it"),
        ("!!binary aGVsbG8=", "is read as a bytes"),
        ("!!set {a, b}", "a set is not JSON data"),
    ],
)
def test_yaml_values_that_are_not_json_are_problems(value: str, message: str) -> None:
    manager = PluginManager()
    manager.register(lambda p, c: None, hook="turn_end", name="existing")
    with pytest.raises(ConfigError, match=message) as info:
        load_config_text(f"plugins:\n  - name: z\n    use: {P}:Counter\n  - name: a\n"
                         f"    use: {P}:Counter\n    config: {{d: {value}}}\n",
                         file="t.yaml", plugins={}, manager=manager)  # fmt: skip
    assert info.value.problems[0].line in (5, 6)
    assert [r.plugin for r in manager.registrations()] == ["existing"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "an alias refers to the mapping or list that holds it"),
        ("[" * 5000, "nests too deeply"),
        (f"version: {'9' * 5000}\n", "cannot read this value"),
        (
            "a: &a [x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
            "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
            "f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
            "too large",
        ),
    ],
)
def test_hostile_yaml_ends_in_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config_text(text, file="t.yaml", plugins={})


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("plugins: []\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_every_stage_reports_at_once() -> None:
    found = problems(f"""
        plugins:
          - name: a
            use: {P}:Counter
            modee: enforce
          - name: b
            use: no_such_module:X
          - name: c
            use: {P}:Guard
            config: {{deny: 3}}
          - name: d
            use: {P}:one_argument
            hook: turn_end
    """)
    assert len(found) == 4, found
    assert [p.split(":")[1] for p in found] == ["5", "7", "10", "11"]


def test_members_of_a_set_keep_their_place_in_file_order() -> None:
    manager = load_config_text(f"""
plugins:
  - name: first
    use: {P}:first
  - name: second
    use: {P}:second
sets:
  s: {{plugins: [first]}}
""", file="t.yaml", plugins={})  # fmt: skip
    plugins_for_tests.ORDER.clear()
    manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert plugins_for_tests.ORDER == ["first", "second"]


def test_defaults_apply_where_they_can() -> None:
    manager = load_config_text(f"""
defaults:
  when: {{tool_name: "shell*"}}
  capabilities: [system_items]
  writable: [arguments]
plugins:
  - name: msg
    use: {P}:shout
  - name: counter
    use: {P}:Counter
""", file="t.yaml", plugins={})  # fmt: skip
    regs = {r.plugin: r for r in manager.registrations()}
    assert regs["msg"].when is None and regs["msg"].writable == frozenset()
    assert regs["counter"].capabilities == {"system_items"}


def test_dollar_escapes_and_bad_placeholders() -> None:
    manager = load_config_text(f"""
plugins:
  - name: g
    use: {P}:Guard
    config: {{deny: ["rm$${{IFS}}-rf"]}}
""", file="t.yaml", plugins={}, environ={})  # fmt: skip
    [guard] = [r for r in manager.registrations() if r.plugin == "g"]
    assert guard.config == {"deny": ("rm${IFS}-rf",)}
    found = problems("plugins:\n  - name: a\n    use: ${A:-${B}}\n", environ={"A": "x"})
    assert any("a '${' that is not a ${NAME}" in p for p in found), found


def test_keys_that_are_not_text_are_explained_at_their_line() -> None:
    found = problems(f"plugins:\n  - name: a\n    use: {P}:Counter\n    config:\n      on: 1\n")
    assert found == ["t.yaml:5: plugin 'a': keys are text; put this key in quotes"]
