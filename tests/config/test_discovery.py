"""Finding plugins: drop-in folders and installed entry points."""

from __future__ import annotations

import sys
from pathlib import Path
from textwrap import dedent

import pytest

from interlock import PluginManager, ToolCall, hooks
from interlock.config import load_config_text
from interlock.discovery import PluginLoadError, discover, plugin_directories, read_manifest


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


def test_the_project_folder_comes_before_the_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    project, user = plugin_directories(tmp_path)
    assert project == tmp_path / ".interlock" / "plugins"
    assert user == tmp_path / "config" / "interlock" / "plugins"
    drop_in(project, "p", "entry: code:gate\ndescription: project\n", code=GATE)
    drop_in(user, "p2", "name: p\nentry: code:gate\ndescription: user\n", code=GATE)
    monkeypatch.chdir(tmp_path)
    assert discover()["p"].description == "project"


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
    with pytest.raises(PluginLoadError, match="unknown keys"):
        found["intkeys"].load()


def test_same_module_names_in_two_projects_stay_apart(tmp_path: Path) -> None:
    for project in ("one", "two"):
        code = f"from interlock import hook\nWHO = {project!r}\n"
        code += "@hook('turn_end')\ndef h(p, c): return None\n"
        drop_in(tmp_path / project, "guard", "entry: code:h\n", code=code)
    one = discover([tmp_path / "one"])["guard"].load()
    two = discover([tmp_path / "two"])["guard"].load()
    assert sys.modules[one.__module__].WHO == "one"
    assert sys.modules[two.__module__].WHO == "two"
