"""One run reports every problem of a file, in file order, once each, in the file's words;
relative paths in a file are relative to its folder; a drop-in may only give tools."""

from __future__ import annotations

import json
import os
from pathlib import Path
from textwrap import dedent

import pytest

from interlock import ConfigError, PluginManager, hooks
from interlock.config import ConfigPath, load_config, load_config_text
from interlock.plugins.audit_log import AuditLogConfig
from interlock.testing import sample

P = "tests.config.plugins_for_tests"

# A problem of each kind the loader finds, each at its own stage: reading the values
# (${VAR}, a key given twice), the schema, the relations between entries, importing,
# constructing, registering.
BROKEN = f"""\
version: 1
plugin_dirs: [plugins]
defaults:
  timeout: soon
plugins:
  - name: no-rm
    use: no-rm
    when: {{nosuch: x}}
  - name: a
    use: {P}:Counter
    modee: enforce
  - name: a
    use: {P}:Counter
  - name: b
    use: not_a_module_anywhere:X
  - name: c
    use: tool-guard
    config: {{destrucive: deny}}
  - name: d
    use: {P}:Counter
    timeout: ${{NOPE}}
    priority: 1
    priority: 2
  - name: e
    use: {P}:Counter
    hook: turn_end
  - name: f
    use: {P}:Counter
    capabilities: [notify, files]
sets:
  s: {{plugins: [a, zz]}}
"""

EXPECTED = [
    (4, None, "timeout: expected a duration like '250ms', '2s', '1m' or 'none', got 'soon'"),
    (8, "no-rm", "when: key 'nosuch' names no field of its hooks (pre_tool_call)"),
    (11, "a", "unknown key 'modee'; did you mean 'mode'?"),
    (12, "a", "the name 'a' is used twice (also on line 9)"),
    (15, "b", "cannot import 'not_a_module_anywhere'"),
    (18, "c", "config: unknown key 'destrucive'; did you mean 'destructive'?"),
    (21, "d", "the environment variable NOPE is not set"),
    (23, "d", "the key 'priority' appears twice"),
    (26, "e", "hook: is for a plugin that is one function"),
    (29, "f", "capability 'files' is not offered by any of its hooks"),
    (31, None, "set 's' lists 'zz', which no entry is named"),
]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    plugin = tmp_path / "plugins" / "no-rm"
    plugin.mkdir(parents=True)
    (plugin / "plugin.yaml").write_text("name: no-rm\nentry: guard:no_rm\n")
    (plugin / "guard.py").write_text(
        "from interlock import hook\n\n@hook('pre_tool_call')\ndef no_rm(payload, ctx):\n"
        "    return None\n"
    )
    file = tmp_path / "interlock.yaml"
    file.write_text(BROKEN)
    return file


def test_every_problem_of_a_file_is_reported_at_once_in_file_order(broken: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(broken, environ={})
    found = info.value.problems
    assert [(p.line, p.entry) for p in found] == [(line, entry) for line, entry, _ in EXPECTED]
    for problem, (_, _, message) in zip(found, EXPECTED, strict=True):
        assert message in problem.message, problem


def test_problems_speak_of_the_file_not_of_the_python_api(broken: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(broken, environ={})
    for problem in info.value.problems:
        text = str(problem)
        assert text.count(f"plugin {problem.entry!r}") <= 1, text  # never named twice
        for api_word in ("when=", "hook=", "name=", "unregister", "config_model", "Extra inputs"):
            assert api_word not in text, text


def test_a_bad_setting_does_not_make_the_drop_ins_go_missing(tmp_path: Path) -> None:
    (tmp_path / "plugins" / "clock").mkdir(parents=True)
    (tmp_path / "plugins" / "clock" / "plugin.yaml").write_text("tools: [clock:now]\n")
    (tmp_path / "plugins" / "clock" / "clock.py").write_text("def now() -> str:\n    return ''\n")
    file = tmp_path / "interlock.yaml"
    file.write_text("plugin_dirs: [plugins]\ndefaults: {mode: loud}\nplugins:\n"
                    "  - {name: clock, use: clock}\n")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert [p.line for p in info.value.problems] == [2]
    assert "mode must be one of" in info.value.problems[0].message


def test_a_name_already_registered_is_told_in_the_files_words() -> None:
    manager = PluginManager()
    manager.register(lambda payload, ctx: None, name="a", hook="turn_end")
    with pytest.raises(ConfigError) as info:
        load_config_text(f"plugins:\n  - {{name: a, use: '{P}:Counter'}}\n", manager=manager)
    (problem,) = info.value.problems
    assert problem.line == 2
    assert problem.message == (
        "a plugin named 'a' is already registered with the manager this config loads "
        "into; give this entry another name"
    )


def test_paths_in_a_plugins_config_are_relative_to_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "agent"
    folder.mkdir()
    (folder / "interlock.yaml").write_text(
        "plugins:\n  - name: audit\n    use: audit-log\n"
        "    config: {path: logs/audit.jsonl, fsync: always}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    manager = load_config(Path("..") / "agent" / "interlock.yaml")
    manager.invoke_sync(hooks.SESSION_START, sample("session_start"))
    manager.close()
    records = (folder / "logs" / "audit.jsonl").read_text().splitlines()
    assert json.loads(records[0])["hook"] == "session_start"
    assert list(elsewhere.iterdir()) == []


def test_a_config_path_outside_a_file_stays_as_given(tmp_path: Path) -> None:
    home = os.path.expanduser("~")
    assert AuditLogConfig(path="logs/a.jsonl").path == "logs/a.jsonl"
    assert AuditLogConfig(path="~/a.jsonl").path == os.path.join(home, "a.jsonl")
    absolute = str(tmp_path / "a.jsonl")
    context = {"interlock_config_folder": tmp_path / "x"}
    assert AuditLogConfig.model_validate({"path": absolute}, context=context).path == absolute
    assert ConfigPath is not None  # public, for plugin authors' config models


def test_a_drop_in_may_give_tools_and_no_handlers(tmp_path: Path) -> None:
    (tmp_path / "plugins" / "clock").mkdir(parents=True)
    (tmp_path / "plugins" / "clock" / "plugin.yaml").write_text(
        dedent("""\
            name: clock
            description: Tells the time.
            tools: [clock:now]
        """)
    )
    (tmp_path / "plugins" / "clock" / "clock.py").write_text(
        "def now() -> str:\n    '''The time.'''\n    return 'noon'\n"
    )
    file = tmp_path / "interlock.yaml"
    file.write_text("plugin_dirs: [plugins]\nplugins:\n  - {name: clock, use: clock}\n")
    manager = load_config(file)
    assert manager.registrations() == ()  # registered, with nothing to call
    manager.unregister("clock")  # ... under its name
    from interlock.config import check, plugin_sources, read_config

    sources = plugin_sources(check(read_config(file), file=str(file))[1], str(file))
    assert [tool() for tool in sources["clock"].tools()] == ["noon"]


def test_a_plugin_with_no_handlers_and_no_tools_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "plugins" / "empty").mkdir(parents=True)
    (tmp_path / "plugins" / "empty" / "plugin.yaml").write_text("name: empty\n")
    file = tmp_path / "interlock.yaml"
    file.write_text("plugin_dirs: [plugins]\nplugins:\n  - {name: empty, use: empty}\n")
    with pytest.raises(ConfigError, match="a plugin that only gives tools leaves entry out"):
        load_config(file)


# Several mistakes in each entry: each key is judged on its own, whatever else is wrong in
# its entry (the schema, the plugin's config, its store, `hook:`, registration options).
MANY = f"""\
version: 1
plugins:
  - name: guard
    use: tool-guard
    modee: permissive
    config: {{blockd_tools: [shell]}}
  - name: seer
    use: tool-guard
    capabilities: [telepathy]
    when: {{tool_nam: shell}}
  - name: ranked
    use: tool-guard
    priority: high
    when:
      tool_nam: shell
  - name: keeper
    use: tool-guard
    on_error: explode
    store: memory
  - name: dreamer
    use: tool-guard
    config: {{blockd_tools: [shell]}}
    capabilities: [telepathy]
  - name: counter
    use: {P}:Counter
    timeout: ${{NOPE}}
    background: maybe
    overflow: wait
    writable: [nothing]
    config: {{begin: 1}}
  - name: lone
    use: {P}:Counter
    overflow: wait
    hook: turn_end
"""

MANY_EXPECTED = [
    (5, "guard", "unknown key 'modee'; did you mean 'mode'?"),
    (6, "guard", "config: unknown key 'blockd_tools'; did you mean 'shell_tools'?"),
    (9, "seer", "capability 'telepathy' is not offered by any of its hooks (pre_tool_call)"),
    (10, "seer", "when: key 'tool_nam' names no field of its hooks (pre_tool_call)"),
    (13, "ranked", "priority: Input should be a valid integer"),
    (14, "ranked", "when: key 'tool_nam' names no field of its hooks (pre_tool_call)"),
    (18, "keeper", "on_error must be one of 'ignore' or 'block'; got 'explode'"),
    (19, "keeper", "'tool-guard' keeps no shared state"),
    (22, "dreamer", "config: unknown key 'blockd_tools'; did you mean 'shell_tools'?"),
    (23, "dreamer", "capability 'telepathy' is not offered by any of its hooks (pre_tool_call)"),
    (26, "counter", "the environment variable NOPE is not set"),
    # overflow (line 28) is judged against background, which could not be read: not told.
    (27, "counter", "background: Input should be a valid boolean"),
    (29, "counter", "cannot grant writable: 'nothing': none of its hooks (turn_end) has it"),
    (30, "counter", "Counter cannot take this config: got an unexpected keyword argument"),
    (33, "lone", "overflow: 'wait' applies to background handlers"),
    (34, "lone", "hook: is for a plugin that is one function"),
]


def test_every_problem_of_every_key_is_reported_once_at_its_line(tmp_path: Path) -> None:
    file = tmp_path / "interlock.yaml"
    file.write_text(MANY)
    with pytest.raises(ConfigError) as info:
        load_config(file, environ={})
    found = info.value.problems
    assert [(p.line, p.entry) for p in found] == [(line, e) for line, e, _ in MANY_EXPECTED]
    for problem, (_, _, message) in zip(found, MANY_EXPECTED, strict=True):
        assert message in problem.message, problem


def test_a_partly_wrong_entry_is_never_registered(tmp_path: Path) -> None:
    manager = PluginManager()
    text = f"plugins:\n  - {{name: a, use: '{P}:Counter', modee: enforce}}\n"
    with pytest.raises(ConfigError, match="unknown key 'modee'") as info:
        load_config_text(text, manager=manager)
    assert len(info.value.problems) == 1
    assert manager.registrations() == ()
