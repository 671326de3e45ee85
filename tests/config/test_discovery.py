"""Finding plugins: drop-in folders and installed entry points."""

from __future__ import annotations

import sys
from pathlib import Path
from textwrap import dedent

import pytest

from interlock import ConfigError, PluginManager, ToolCall, hooks
from interlock.config import load_config, load_config_text
from interlock.discovery import (
    PluginLoadError,
    PluginNameClash,
    discover,
    read_manifest,
)

from .installed import installed


def drop_in(root: Path, name: str, manifest: str, **modules: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "plugin.yaml").write_text(dedent(manifest))
    for module, code in modules.items():
        (folder / f"{module}.py").write_text(dedent(code))
    return folder


GATE = """
    from interlock import Block, hook

    @hook("pre_tool_call")
    def gate(payload, ctx):
        return Block("from a drop-in")

    def clock() -> str:
        '''Tell the time (always noon).'''
        return "12:00"
"""


def test_drop_ins_are_found_loaded_and_contribute_tools(tmp_path: Path) -> None:
    drop_in(tmp_path, "gate", "name: gate\nentry: code:gate\ntools: [code:clock]\n", code=GATE)
    found = discover([tmp_path])
    source = found["gate"]
    assert (source.kind, source.target, source.location) == ("directory", "code:gate",
                                                             str(tmp_path / "gate"))  # fmt: skip
    manager = PluginManager()
    manager.register(source.load())
    assert manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("x")).reason == "from a drop-in"
    [clock] = source.tools()
    assert clock() == "12:00"


def test_two_drop_ins_may_use_the_same_module_name(tmp_path: Path) -> None:
    for name in ("one", "two"):
        code = "from interlock import hook\n@hook('turn_end')\ndef h(p, c): return None\n"
        drop_in(tmp_path, name, "entry: code:h\n", code=code)
    found = discover([tmp_path])
    assert found["one"].load() is not found["two"].load()


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("entry: nocolon\n", "entry must be 'module:attribute'"),
        ("entry: code:x\nsurprise: 1\n", r"unknown keys \['surprise'\]"),
        ("entry: code:x\ntools: code:y\n", "tools must be a list of 'module:function'"),
        ("entry: ../../elsewhere:x\n", "with the module in this folder"),
        ("entry: code:x\ntools: ['/tmp/t:y']\n", "modules in this folder"),
        ("[a list]\n", "expected a mapping"),
        ("entry: [\n", "cannot be read"),
    ],
)
def test_bad_manifests_are_explained(tmp_path: Path, manifest: str, message: str) -> None:
    folder = drop_in(tmp_path, "bad", manifest)
    with pytest.raises(PluginLoadError, match=message):
        read_manifest(folder)
    source = discover([tmp_path])["bad"]  # listed anyway, and failing when loaded
    with pytest.raises(PluginLoadError, match=message):
        source.load()


@pytest.mark.parametrize(
    ("code", "entry", "message"),
    [
        ("raise RuntimeError('no')\n", "code:x", "failed to import: RuntimeError: no"),
        ("x = 1\n", "code:y", "module 'code' has no attribute 'y'"),
        ("x = 1\n", "other:x", "no module 'other'"),
    ],
)
def test_broken_drop_in_code_is_explained(
    tmp_path: Path, code: str, entry: str, message: str
) -> None:
    drop_in(tmp_path, "p", f"entry: {entry}\n", code=code)
    with pytest.raises(PluginLoadError, match=message):
        discover([tmp_path])["p"].load()


def test_no_folder_is_searched_unless_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The folders earlier versions searched on their own: the project's and the user's.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    drop_in(tmp_path / ".interlock" / "plugins", "p", "entry: code:gate\n", code=GATE)
    drop_in(tmp_path / "config" / "interlock" / "plugins", "p2", "entry: code:gate\n", code=GATE)
    drop_in(tmp_path / "home" / ".config" / "interlock" / "plugins", "p3", "entry: code:gate\n",
            code=GATE)  # fmt: skip
    drop_in(tmp_path, "p4", "entry: code:gate\n", code=GATE)
    monkeypatch.chdir(tmp_path)
    for found in (discover(), discover([])):
        assert {s.kind for s in found.values()} <= {"built-in", "entry point"}
        assert not {"p", "p2", "p3", "p4"} & set(found)
    assert discover([tmp_path / ".interlock" / "plugins"])["p"].kind == "directory"


def test_a_named_folder_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PluginLoadError, match="the plugin directory does not exist"):
        discover([tmp_path / "nope"])


MARKED = """
    import pathlib
    pathlib.Path({marker!r}).write_text("imported")
    from interlock import hook

    @hook("pre_tool_call")
    def gate(payload, ctx):
        return None
"""


def test_two_named_folders_claiming_one_name_load_neither(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    one = drop_in(
        tmp_path / "one", "guard", "entry: code:gate\n", code=MARKED.format(marker=str(marker))
    )
    two = drop_in(tmp_path / "two", "other", "name: guard\nentry: code:gate\n",
                  code=MARKED.format(marker=str(marker)))  # fmt: skip
    source = discover([tmp_path / "one", tmp_path / "two"])["guard"]
    assert [s.location for s in (source, *source.clashes)] == [str(one), str(two)]
    with pytest.raises(PluginNameClash) as raised:
        source.load()
    message = str(raised.value)
    assert f"the drop-in folder {one}" in message and f"the drop-in folder {two}" in message
    assert "rename the drop-in" in message and "plugin_dirs / --plugin-dir" in message
    assert raised.value.name == "guard" and len(raised.value.sources) == 2
    with pytest.raises(PluginNameClash):
        source.tools()
    assert not marker.exists()


def test_one_folder_named_twice_is_one_source(tmp_path: Path) -> None:
    drop_in(tmp_path / "one", "guard", "entry: code:gate\n", code=GATE)
    source = discover([tmp_path / "one", tmp_path / "one" / ".." / "one"])["guard"]
    assert source.clashes == ()
    assert source.load() is not None


def test_a_drop_in_and_an_entry_point_of_one_name_load_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"
    folder = drop_in(tmp_path / "mine", "acme-gate", "entry: code:gate\n",
                     code=MARKED.format(marker=str(marker)))  # fmt: skip
    with installed(monkeypatch, tmp_path / "site", "acme-guard", {"acme-gate": "acme_one:gate"},
                   {"acme_one": GATE}, version="1.2.0"):  # fmt: skip
        source = discover([tmp_path / "mine"])["acme-gate"]
        with pytest.raises(PluginNameClash) as raised:
            source.load()
        message = str(raised.value)
        assert f"the drop-in folder {folder}" in message
        assert "the entry point acme_one:gate of acme-guard" in message
        assert "use: acme_one:gate" in message
        assert "acme_one" not in sys.modules and not marker.exists()

        # As a config problem: the file, the line and the entry, and nothing registered.
        config = tmp_path / "interlock.yaml"
        fine = "  - name: fine\n    use: tests.config.plugins_for_tests:shout\n"
        config.write_text(f"plugin_dirs: [mine]\nplugins:\n  - name: g\n    use: acme-gate\n{fine}")
        manager = PluginManager()
        with pytest.raises(ConfigError) as error:
            load_config(config, manager=manager)
        [problem] = error.value.problems
        assert (problem.file, problem.line, problem.entry) == (str(config), 4, "g")
        assert "claimed by 2 sources" in problem.message
        assert manager.registrations() == () and not marker.exists()

        # Named by import path, the package's plugin is used.
        config.write_text("plugin_dirs: [mine]\nplugins:\n  - {name: g, use: 'acme_one:gate'}\n")
        assert load_config(config).invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("x")).blocked
        assert not marker.exists()


def test_two_packages_claiming_one_name_load_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        installed(monkeypatch, tmp_path / "a", "acme-a", {"gate": "acme_a:gate"},
                  {"acme_a": GATE}),
        installed(monkeypatch, tmp_path / "b", "acme-b", {"gate": "acme_b:gate"},
                  {"acme_b": GATE}),
    ):  # fmt: skip
        source = discover()["gate"]
        assert {s.location for s in (source, *source.clashes)} == {"acme-a", "acme-b"}
        with pytest.raises(PluginNameClash) as raised:
            source.load()
        message = str(raised.value)
        assert "the entry point acme_a:gate of acme-a" in message
        assert "the entry point acme_b:gate of acme-b" in message
        assert "uninstall one of the packages" in message and "use: acme_a:gate" in message
        assert "acme_a" not in sys.modules and "acme_b" not in sys.modules


def test_the_built_ins_are_listed_as_built_in() -> None:
    source = discover()["tool-guard"]
    assert (source.kind, source.target) == ("built-in", "interlock.plugins.tool_guard:ToolGuard")
    assert source.describe() == "built-in" and source.clashes == ()
    from interlock.plugins.tool_guard import ToolGuard

    assert source.load() is ToolGuard


def test_a_drop_in_named_like_a_built_in_is_a_config_problem(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    drop_in(tmp_path / "mine", "tool-guard", "entry: code:gate\n",
            code=MARKED.format(marker=str(marker)))  # fmt: skip
    config = tmp_path / "interlock.yaml"
    config.write_text("plugin_dirs: [mine]\nplugins:\n  - name: guard\n    use: tool-guard\n")
    with pytest.raises(ConfigError) as error:
        load_config(config)
    [problem] = error.value.problems
    assert (problem.line, problem.entry) == (4, "guard")
    assert "the built-in interlock.plugins.tool_guard:ToolGuard" in problem.message
    assert "use: interlock.plugins.tool_guard:ToolGuard" in problem.message
    assert not marker.exists()


def test_plugin_dirs_must_exist_and_be_relative_to_a_file(tmp_path: Path) -> None:
    config = tmp_path / "interlock.yaml"
    config.write_text("plugin_dirs:\n  - nope\nplugins: []\n")
    with pytest.raises(ConfigError) as error:
        load_config(config)
    [problem] = error.value.problems
    assert (
        problem.line == 2
        and f"no folder 'nope' (looked for {tmp_path / 'nope'})" in problem.message
    )
    with pytest.raises(ConfigError, match="is relative, and this config has no file"):
        load_config_text("plugin_dirs: [plugins]\n")
    drop_in(tmp_path / "abs", "gate", "entry: code:gate\n", code=GATE)
    manager = load_config_text(
        f"plugin_dirs: ['{tmp_path / 'abs'}']\nplugins: [{{name: g, use: gate}}]\n"
    )
    assert manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("x")).blocked


def test_plugin_dirs_given_besides_the_files(tmp_path: Path) -> None:
    drop_in(tmp_path / "extra", "gate", "entry: code:gate\n", code=GATE)
    config = tmp_path / "interlock.yaml"
    config.write_text("plugins: [{name: g, use: gate}]\n")
    with pytest.raises(ConfigError, match="no plugin named 'gate'"):
        load_config(config)
    manager = load_config(config, plugin_dirs=[tmp_path / "extra"])
    assert manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("x")).blocked
    with pytest.raises(ConfigError, match="no plugin directory"):
        load_config(config, plugin_dirs=[tmp_path / "missing"])


def test_installed_entry_points_are_found_and_used_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "acme_guard").mkdir(parents=True)
    (site / "acme_guard" / "__init__.py").write_text(dedent(GATE))
    dist = site / "acme_guard-1.2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-guard\nVersion: 1.2.0\n")
    (dist / "entry_points.txt").write_text("[interlock.plugins]\nacme-gate = acme_guard:gate\n")
    monkeypatch.syspath_prepend(str(site))
    source = discover([])["acme-gate"]
    assert (source.kind, source.location, source.version) == ("entry point", "acme-guard", "1.2.0")
    assert source.describe() == "entry point (acme-guard 1.2.0)"
    manager = load_config_text("plugins:\n  - name: g\n    use: acme-gate\n", file="t.yaml")
    assert manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("x")).blocked
    sys.modules.pop("acme_guard", None)


def test_config_plugin_dirs_are_relative_to_the_file(tmp_path: Path) -> None:
    drop_in(tmp_path / "mine", "gate", "entry: code:gate\n", code=GATE)
    config = tmp_path / "interlock.yaml"
    config.write_text("plugin_dirs: [mine]\nplugins:\n  - name: g\n    use: gate\n")
    from interlock.config import load_config

    manager = load_config(config)
    assert manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("x")).blocked


def test_a_broken_manifest_never_breaks_discovery(tmp_path: Path) -> None:
    (tmp_path / "latin").mkdir()
    (tmp_path / "latin" / "plugin.yaml").write_bytes(b"name: caf\xe9\nentry: a:b\n")
    drop_in(tmp_path, "intkeys", "1: x\nfoo: y\nentry: a:b\n")
    drop_in(tmp_path, "fine", "entry: code:gate\n", code=GATE)
    found = discover([tmp_path])
    assert {n for n, s in found.items() if s.kind == "directory"} == {"latin", "intkeys", "fine"}
    with pytest.raises(PluginLoadError, match="cannot be read"):
        found["latin"].load()
    with pytest.raises(PluginLoadError, match="line 1: keys are text"):
        found["intkeys"].load()  # read as a config is: keys are text


def test_same_module_names_in_two_projects_stay_apart(tmp_path: Path) -> None:
    for project in ("one", "two"):
        code = f"from interlock import hook\nWHO = {project!r}\n"
        code += "@hook('turn_end')\ndef h(p, c): return None\n"
        drop_in(tmp_path / project, "guard", "entry: code:h\n", code=code)
    one = discover([tmp_path / "one"])["guard"].load()
    two = discover([tmp_path / "two"])["guard"].load()
    assert sys.modules[one.__module__].WHO == "one"
    assert sys.modules[two.__module__].WHO == "two"
