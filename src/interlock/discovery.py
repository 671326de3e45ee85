"""Finding plugins: built-ins, installed packages (entry points) and named drop-in folders.

- A package ships a plugin with an entry point in the `interlock.plugins` group:

      [project.entry-points."interlock.plugins"]
      tool-guard = "my_package.guard:ToolGuard"

  interlock's own plugins (`interlock.plugins.*`) are listed as *built-in*.

- A drop-in plugin is a folder with a `plugin.yaml` and its module, inside a plugin
  directory that a config (`plugin_dirs:`) or the command line (`--plugin-dir DIR`) names:

      plugins/no-sudo/plugin.yaml     name: no-sudo
                                      entry: guard:NoSudo
                                      tools: [guard:uptime]     # optional
      plugins/no-sudo/guard.py

  A drop-in that only gives the agent tools leaves `entry:` out; it registers under its
  name with no handlers.

Where plugins come from is explicit: no folder is searched unless it is named (not the
current directory, not the user's home), so nothing in the current directory shadows a
built-in or an installed plugin. A name that two sources claim (a drop-in and an entry
point, two drop-ins, two packages) hides neither: loading it by name raises
`PluginNameClash`, naming both sources and the fix.

Discovery only lists what exists; nothing is imported until a plugin is loaded.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

ENTRY_POINT_GROUP = "interlock.plugins"
"""The entry point group installed packages register their plugins under."""

SourceKind = Literal["built-in", "entry point", "directory"]
"""Where a named plugin comes from: interlock itself, an installed package, a drop-in folder."""

_BUILTIN_DISTRIBUTION = "interlock"
_BUILTIN_PACKAGE = "interlock.plugins."


class PluginLoadError(Exception):
    """A discovered plugin that cannot be loaded; the message says what and where."""


class PluginNameClash(PluginLoadError):
    """A plugin name that two or more sources claim: none of them is loaded by that name.

    `name` is the name, `sources` every source that claims it (the message names them all
    and says how to choose one).
    """

    def __init__(self, name: str, sources: tuple[PluginSource, ...]) -> None:
        self.name = name
        self.sources = sources
        super().__init__(_clash_message(name, sources))


@dataclass(frozen=True)
class PluginSource:
    """A plugin that can be loaded by name: a built-in, an entry point or a drop-in folder.

    `location` is the distribution (built-ins and entry points) or the folder (drop-ins);
    `clashes` holds the other sources that claim the same name, if any: then the name is
    ambiguous and `load()` raises `PluginNameClash`.
    """

    name: str
    kind: SourceKind
    location: str
    target: str
    description: str = ""
    version: str = ""
    tool_targets: tuple[str, ...] = field(default=())
    clashes: tuple[PluginSource, ...] = field(default=(), compare=False)

    def describe(self) -> str:
        """Where the plugin comes from, in words: `built-in`, `entry point (dist 1.0)`,
        `drop-in /path/to/folder`."""
        if self.kind == "built-in":
            return "built-in"
        if self.kind == "entry point":
            dist = " ".join(p for p in (self.location, self.version) if p) or "unknown package"
            return f"entry point ({dist})"
        return f"drop-in {self.location}"

    def summary(self) -> str:
        """What the plugin does, in a line, read without importing it: a drop-in's
        `description:`, else the first paragraph of the plugin object's docstring (read
        from its source file), else `description` (for an entry point, the summary of
        the package that ships it)."""
        if (self.kind == "directory" and self.description) or self.target.startswith("!"):
            return self.description
        module, _, attribute = self.target.partition(":")
        if self.kind == "directory":
            source = _module_file(Path(self.location), module)
        else:
            source = _find_source(module)
        return (_docstring(source, attribute) if source else "") or self.description

    def load(self) -> Any:
        """Import the plugin object (a function, `Plugin` class or instance, module...).
        A drop-in with tools and no `entry:` is a `Plugin` class with no handlers."""
        self._refuse_clash()
        if self.kind == "directory" and not self.target:
            return _tools_only(self.name, self.description)
        if self.kind == "directory":
            return _load_from(Path(self.location), self.target, self.name)
        return _load_entry_point(self)

    def tools(self) -> list[Callable[..., Any]]:
        """The tool functions a drop-in plugin contributes to the agent runtime."""
        self._refuse_clash()
        return [_load_from(Path(self.location), target, self.name) for target in self.tool_targets]

    def clash(self) -> PluginNameClash | None:
        """The error that loading this name raises when other sources claim it too."""
        if not self.clashes:
            return None
        return PluginNameClash(self.name, (replace(self, clashes=()), *self.clashes))

    def _refuse_clash(self) -> None:
        clash = self.clash()
        if clash is not None:
            raise clash


def discover(directories: Iterable[str | Path] | None = None) -> dict[str, PluginSource]:
    """Every plugin available by name: the drop-ins in `directories` (only those: no
    folder is searched unless named), the built-ins and the installed entry points.

    A name claimed by more than one source maps to a source whose `clashes` are the
    others; loading it raises `PluginNameClash`. A folder named twice counts once. Raises
    `PluginLoadError` when a named directory does not exist.
    """
    claims: dict[str, list[PluginSource]] = {}
    seen: set[tuple[str, ...]] = set()  # a folder (resolved) or an entry point, once
    for directory in directories or ():
        for source in _drop_ins(Path(directory)):
            key: tuple[str, ...] = (str(Path(source.location).resolve()),)
            if key not in seen:
                seen.add(key)
                claims.setdefault(source.name, []).append(source)
    for source in _entry_points():
        key = (source.name, source.location, source.target)
        if key not in seen:
            seen.add(key)
            claims.setdefault(source.name, []).append(source)
    found = {}
    for name, (first, *rest) in sorted(claims.items()):
        found[name] = replace(first, clashes=tuple(rest))
    return found


def read_manifest(folder: Path) -> PluginSource:
    """Read one drop-in plugin's `plugin.yaml`; raises `PluginLoadError` if it is wrong.

    It is read as a config is (docs/config.md, "Limits"): a file over 1 MiB is refused
    unread, aliases cannot blow it up, and its values are JSON data (no `${VAR}`).
    """
    from ._exceptions import ConfigError
    from .config._source import load_yaml, read

    manifest = folder / "plugin.yaml"
    try:
        data = load_yaml(read(manifest, what="manifest"), str(manifest), what="manifest").data
    except ConfigError as error:  # unreadable, too large, not UTF-8, not YAML, not JSON data
        reason = "; ".join(p.message if p.line is None else f"line {p.line}: {p.message}"
                           for p in error.problems)  # fmt: skip
        raise PluginLoadError(f"{manifest}: cannot be read ({reason})") from None
    data = data or {}
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
    if entry is None and tools:
        entry = ""  # it only gives tools: nothing to import for its hooks
    elif not isinstance(entry, str) or not _in_folder(entry):
        raise PluginLoadError(
            f"{manifest}: entry must be 'module:attribute' with the module in this folder, "
            f"got {entry!r} (a plugin that only gives tools leaves entry out)"
        )
    if not isinstance(tools, list) or not all(isinstance(t, str) and _in_folder(t) for t in tools):
        raise PluginLoadError(
            f"{manifest}: tools must be a list of 'module:function', modules in this folder"
        )
    return PluginSource(
        str(data.get("name") or folder.name),
        "directory",
        str(folder),
        entry,
        str(data.get("description") or ""),
        str(data.get("version") or ""),
        tuple(tools),
    )


def _tools_only(name: str, description: str) -> type[Any]:
    from ._plugin import TOOLS_ONLY, Plugin

    doc = description or f"The drop-in plugin {name!r}: it gives the agent tools, no handlers."
    return type("ToolsOnly", (Plugin,), {"name": name, "__doc__": doc, TOOLS_ONLY: True})


def _in_folder(target: str) -> bool:
    """`module:attribute` where the module is a plain name: a file or package in the
    plugin's own folder, never a path out of it."""
    module, colon, attribute = target.partition(":")
    return bool(colon) and module.isidentifier() and bool(attribute)


def _drop_ins(directory: Path) -> list[PluginSource]:
    if not directory.is_dir():
        raise PluginLoadError(f"{directory}: the plugin directory does not exist")
    directory = directory.absolute()
    sources = []
    for folder in sorted(p for p in directory.iterdir() if (p / "plugin.yaml").is_file()):
        try:
            sources.append(read_manifest(folder))
        except PluginLoadError as error:  # listed, and reported when someone loads it
            sources.append(PluginSource(folder.name, "directory", str(folder), f"!{error}"))
    return sources


def _entry_points() -> list[PluginSource]:
    sources = []
    # Each `dist.name` and `dist.version` parses the distribution's metadata anew: once
    # per distribution instead (it is on the path of every `interlock claude-hook`).
    named: dict[str, tuple[str, str, str]] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        dist_name, version, summary = "", "", ""
        if dist is not None:
            where = str(getattr(dist, "_path", "")) or str(id(dist))
            if where not in named:
                metadata = dist.metadata
                named[where] = (metadata["Name"] or "", metadata["Version"] or "",
                                metadata["Summary"] or "")  # fmt: skip
            dist_name, version, summary = named[where]
        builtin = (
            _normalized(dist_name) == _BUILTIN_DISTRIBUTION
            and entry_point.value.startswith(_BUILTIN_PACKAGE)
        )  # fmt: skip
        sources.append(
            PluginSource(
                entry_point.name,
                "built-in" if builtin else "entry point",
                dist_name,
                entry_point.value,
                summary,
                version,
            )
        )
    return sources


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _load_entry_point(source: PluginSource) -> Any:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=source.name):
        dist_name = entry_point.dist.name if entry_point.dist else ""
        if entry_point.value != source.target or dist_name != source.location:
            continue  # another package's entry point of this name: not the one listed
        try:
            return entry_point.load()
        except (Exception, SystemExit) as error:
            raise PluginLoadError(
                f"entry point {source.name!r} ({source.target}) failed to import: "
                f"{type(error).__name__}: {error}"
            ) from error
    raise PluginLoadError(
        f"no entry point {source.name!r} ({source.target}) in group {ENTRY_POINT_GROUP!r}"
    )


def _clash_message(name: str, sources: tuple[PluginSource, ...]) -> str:
    claimants = [_claimant(s) for s in sources]
    listed = ", ".join(claimants[:-1]) + f" and {claimants[-1]}"
    fixes = []
    if any(s.kind == "directory" for s in sources):
        fixes.append("rename the drop-in (`name:` in its plugin.yaml)")
    if sum(s.kind == "directory" for s in sources) > 1:
        fixes.append("name only one of these folders in plugin_dirs / --plugin-dir")
    packaged = [s.target for s in sources if s.kind != "directory"]
    if len(packaged) > 1:
        fixes.append("uninstall one of the packages")
    if packaged:
        fixes.append("refer to the one you mean by import path: " +
                     " or ".join(f"use: {t}" for t in packaged))  # fmt: skip
    return (
        f"the plugin name {name!r} is claimed by {len(sources)} sources: {listed}; interlock "
        f"does not pick one. Fix: {'; or '.join(fixes)}"
    )


def _claimant(source: PluginSource) -> str:
    if source.kind == "directory":
        return f"the drop-in folder {source.location}"
    if source.kind == "built-in":
        return f"the built-in {source.target}"
    return f"the entry point {source.target} of {source.location or 'an unknown package'}"


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


def _module_file(folder: Path, module_name: str) -> Path | None:
    """A drop-in's module: `NAME.py` or the package `NAME/` in its folder."""
    for path in (folder / f"{module_name}.py", folder / module_name / "__init__.py"):
        if path.is_file():
            return path
    return None


def _find_source(module: str) -> Path | None:
    """The source file of an importable `module`, found as `import` finds it but
    without running any code of it or of its parent packages."""
    parts = module.split(".")
    search: list[str] | None = None
    spec: ModuleSpec | None = None
    for depth in range(len(parts)):
        if depth and search is None:
            return None  # the parent is a module, not a package
        spec = _find_spec(".".join(parts[: depth + 1]), search)
        if spec is None:
            return None
        locations = spec.submodule_search_locations
        search = list(locations) if locations is not None else None
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _find_spec(name: str, search: list[str] | None) -> ModuleSpec | None:
    loaded = sys.modules.get(name)
    if loaded is not None:
        return getattr(loaded, "__spec__", None)
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec: ModuleSpec | None = find(name, search)
        except Exception:  # a finder that fails on a name it does not know
            continue
        if spec is not None:
            return spec
    return None


def _docstring(source: Path, attribute: str) -> str:
    """The first paragraph of the docstring of the class or function `attribute`
    defined at the top of `source`, else of the module's; "" when there is none or
    the file cannot be parsed."""
    try:
        tree = ast.parse(source.read_bytes(), str(source))
    except (OSError, SyntaxError, ValueError):
        return ""
    kinds = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    nodes = [n for n in tree.body if isinstance(n, kinds) and n.name == attribute]
    text = ast.get_docstring(nodes[-1] if nodes else tree) or ""
    if not text and nodes:
        text = ast.get_docstring(tree) or ""
    return " ".join(text.split("\n\n", 1)[0].split())


def _import_file(folder: Path, module_name: str) -> ModuleType:
    path = _module_file(folder, module_name)
    if path is None:
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
