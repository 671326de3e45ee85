"""Finding plugins: installed packages (entry points) and drop-in plugin directories.

- A package ships a plugin with an entry point in the `interlock.plugins` group:

      [project.entry-points."interlock.plugins"]
      tool-guard = "my_package.guard:ToolGuard"

- A drop-in plugin is a folder with a `plugin.yaml` and its module, in
  `./.interlock/plugins/` (the project) or `~/.config/interlock/plugins/` (the user):

      .interlock/plugins/no-sudo/plugin.yaml     name: no-sudo
                                                 entry: guard:NoSudo
                                                 tools: [guard:uptime]     # optional
      .interlock/plugins/no-sudo/guard.py

Discovery only lists what exists; nothing is imported until a plugin is loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

ENTRY_POINT_GROUP = "interlock.plugins"
"""The entry point group installed packages register their plugins under."""

SourceKind = Literal["entry point", "directory"]


class PluginLoadError(Exception):
    """A discovered plugin that cannot be loaded; the message says what and where."""


@dataclass(frozen=True)
class PluginSource:
    """A plugin that can be loaded by name: from an entry point or a drop-in directory."""

    name: str
    kind: SourceKind
    location: str
    target: str
    description: str = ""
    version: str = ""
    tool_targets: tuple[str, ...] = field(default=())

    def load(self) -> Any:
        """Import the plugin object (a function, `Plugin` class or instance, module...)."""
        if self.kind == "entry point":
            return _load_entry_point(self.name, self.target)
        return _load_from(Path(self.location), self.target, self.name)

    def tools(self) -> list[Callable[..., Any]]:
        """The tool functions a drop-in plugin contributes to the agent runtime."""
        return [_load_from(Path(self.location), target, self.name) for target in self.tool_targets]


def plugin_directories(cwd: Path | None = None) -> list[Path]:
    """Where drop-in plugins are looked for: the project's folder, then the user's."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return [
        (cwd or Path.cwd()) / ".interlock" / "plugins",
        Path(config_home) / "interlock" / "plugins",
    ]


def discover(directories: Iterable[Path] | None = None) -> dict[str, PluginSource]:
    """Every plugin available by name. Drop-ins come first (the project's before the
    user's) and hide an entry point of the same name."""
    found: dict[str, PluginSource] = {}
    for directory in plugin_directories() if directories is None else directories:
        for source in _drop_ins(directory):
            found.setdefault(source.name, source)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(
            entry_point.name,
            PluginSource(
                entry_point.name,
                "entry point",
                entry_point.dist.name if entry_point.dist else "",
                entry_point.value,
                version=entry_point.dist.version if entry_point.dist else "",
            ),
        )
    return found


def read_manifest(folder: Path) -> PluginSource:
    """Read one drop-in plugin's `plugin.yaml`; raises `PluginLoadError` if it is wrong."""
    import yaml

    manifest = folder / "plugin.yaml"
    try:
        data = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    except Exception as error:  # unreadable, not UTF-8, not YAML, a value YAML cannot hold
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PluginLoadError(f"{manifest}: cannot be read ({reason})") from None
    if not isinstance(data, Mapping):
        raise PluginLoadError(f"{manifest}: expected a mapping with name, entry and tools")
    unknown = {str(k) for k in data} - {"name", "entry", "tools", "description", "version"}
    if unknown:
        raise PluginLoadError(
            f"{manifest}: unknown keys {sorted(unknown)}; allowed: name, entry, tools, "
            "description, version"
        )
    entry = data.get("entry")
    tools = data.get("tools") or []
    if not isinstance(entry, str) or ":" not in entry:
        raise PluginLoadError(f"{manifest}: entry must be 'module:attribute', got {entry!r}")
    if not isinstance(tools, list) or not all(isinstance(t, str) and ":" in t for t in tools):
        raise PluginLoadError(f"{manifest}: tools must be a list of 'module:function'")
    return PluginSource(
        str(data.get("name") or folder.name),
        "directory",
        str(folder),
        entry,
        str(data.get("description") or ""),
        str(data.get("version") or ""),
        tuple(tools),
    )


def _drop_ins(directory: Path) -> list[PluginSource]:
    if not directory.is_dir():
        return []
    sources = []
    for folder in sorted(p for p in directory.iterdir() if (p / "plugin.yaml").is_file()):
        try:
            sources.append(read_manifest(folder))
        except PluginLoadError as error:  # listed, and reported when someone loads it
            sources.append(PluginSource(folder.name, "directory", str(folder), f"!{error}"))
    return sources


def _load_entry_point(name: str, target: str) -> Any:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            return entry_point.load()
        except (Exception, SystemExit) as error:
            raise PluginLoadError(
                f"entry point {name!r} ({target}) failed to import: {type(error).__name__}: {error}"
            ) from error
    raise PluginLoadError(f"no entry point {name!r} in group {ENTRY_POINT_GROUP!r}")


def _load_from(folder: Path, target: str, plugin: str) -> Any:
    if target.startswith("!"):  # the manifest itself was wrong
        raise PluginLoadError(target[1:])
    module_name, _, attribute = target.partition(":")
    module = _import_file(folder, module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise PluginLoadError(
            f"{folder}: module {module_name!r} has no attribute {attribute!r}"
        ) from None


def _import_file(folder: Path, module_name: str) -> ModuleType:
    path = folder / f"{module_name}.py"
    if not path.is_file():
        path = folder / module_name / "__init__.py"
    if not path.is_file():
        raise PluginLoadError(f"{folder}: no module {module_name!r} ({module_name}.py) there")
    # A private module name per file (and version of it), so that two drop-ins may both
    # have a `guard.py`, and an edited plugin is imported afresh.
    resolved = path.resolve()
    stamp = f"{resolved}:{resolved.stat().st_mtime_ns}"
    unique = "interlock_dropin_" + hashlib.sha1(stamp.encode()).hexdigest()[:16]
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:
        del sys.modules[unique]
        raise PluginLoadError(
            f"{path} failed to import: {type(error).__name__}: {error}"
        ) from error
    return module
