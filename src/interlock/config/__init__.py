"""`interlock.yaml`: turn plugins on and off, order them and scope them without code.

    manager = interlock.load_config("interlock.yaml")

A file is checked as a whole before anything is registered: every problem is reported at
once in one `ConfigError`, each with the file, line, entry and the fix, and nothing from a
bad file is registered. `${VAR}` (or `${VAR:-default}`; `$${` for a literal `${`) in a
string takes the value of an environment variable; values that came from the environment
never appear in messages. The format is in docs/config.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import ConfigError, ConfigProblem, PluginManager
from ..discovery import PluginLoadError, PluginSource, discover
from ._load import (
    Problem,
    config_folder,
    construct,
    discard,
    import_target,
    in_file_order,
    register,
    resolve,
    validate,
)
from ._schema import ConfigFile, ConfigPath, Entry, External, Options, SetEntry, parse_duration
from ._source import MAX_BYTES, Source, parse, read

__all__ = [
    "MAX_BYTES",
    "ConfigFile",
    "ConfigPath",
    "Entry",
    "External",
    "Options",
    "SetEntry",
    "check",
    "find_plugin",
    "load_config",
    "load_config_text",
    "load_plugin",
    "parse_duration",
    "plugin_sources",
    "read_config",
]


def load_config(
    path: str | Path,
    *,
    manager: PluginManager | None = None,
    environ: Mapping[str, str] | None = None,
    plugins: Mapping[str, PluginSource] | None = None,
    plugin_dirs: Iterable[str | Path] = (),
) -> PluginManager:
    """Load a config file into `manager` (a new one by default) and return it.

    `environ` replaces `os.environ` for `${VAR}`. `use: name` names a built-in, an
    installed entry point, or a drop-in in the file's `plugin_dirs` or in `plugin_dirs`
    given here (say, from the command line); no other folder is searched. `plugins`
    replaces that discovery. Raises `ConfigError` listing every problem; on error
    nothing is registered.
    """
    return load_config_text(read_config(path), file=str(path), manager=manager, environ=environ,
                            plugins=plugins, plugin_dirs=plugin_dirs)  # fmt: skip


def load_config_text(
    text: str,
    *,
    file: str = "<config>",
    manager: PluginManager | None = None,
    environ: Mapping[str, str] | None = None,
    plugins: Mapping[str, PluginSource] | None = None,
    plugin_dirs: Iterable[str | Path] = (),
) -> PluginManager:
    """`load_config` for text already in memory; `file` names it in messages (and its
    folder is what relative `plugin_dirs` are relative to)."""
    source = parse(text, file, os.environ if environ is None else environ)
    checked = validate(source)
    available: Mapping[str, PluginSource] = plugins or {}
    if plugins is None:
        available, problems = _sources(checked.config, source, plugin_dirs)
        checked.problems += problems
    loaded = resolve(checked, source, available)
    target = manager if manager is not None else PluginManager()
    # A dry run in a manager of its own first: nothing reaches `target` unless all is well.
    # (It is never closed: closing would close the plugins, which `target` is to keep.)
    scratch = PluginManager(specs=[s for s in target.specs() if s not in _catalog()])
    checked.problems += register(checked, source, loaded, scratch, checked.stand_ins)
    if not checked.problems:
        checked.problems += register(checked, source, loaded, target)  # clashes with its own
    if checked.problems:
        discard(loaded)
        raise ConfigError(in_file_order(checked.problems, file))
    return target


def check(
    text: str, *, file: str = "<config>", environ: Mapping[str, str] | None = None
) -> tuple[Source, ConfigFile]:
    """Parse and validate a config without importing any plugin; raises `ConfigError`."""
    source = parse(text, file, os.environ if environ is None else environ)
    checked = validate(source)
    if checked.problems:
        raise ConfigError(in_file_order(checked.problems, file))
    return source, checked.config.model_copy(update={"plugins": list(checked.entries.values())})


def plugin_sources(
    config: ConfigFile, file: str, plugin_dirs: Iterable[str | Path] = ()
) -> dict[str, PluginSource]:
    """What `use: name` can name: the built-ins, the installed entry points, and the
    drop-ins in the file's `plugin_dirs` (relative to the file's folder) and in
    `plugin_dirs` given here. No other folder is searched, the current directory least
    of all. A name two of them claim cannot be loaded by name (`PluginNameClash`).

    Raises `ConfigError` when a named plugin directory is missing.
    """
    available, problems = _sources(config, Source(file), plugin_dirs)
    if problems:
        raise ConfigError(problems)
    return available


def _sources(
    config: ConfigFile, source: Source, extra: Iterable[str | Path]
) -> tuple[dict[str, PluginSource], list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    directories: list[Path] = []
    # Relative to the file's folder, never to the current directory: a config read from
    # text has no folder, so its plugin_dirs must be absolute.
    base = config_folder(source.file)
    for index, name in enumerate(config.plugin_dirs):
        where = ("plugin_dirs", index)
        if base is None and not Path(name).is_absolute():
            message = (f"plugin_dirs: {name!r} is relative, and this config has no file it "
                       "could be relative to; give an absolute path, or load it from its "
                       "file")  # fmt: skip
            problems.append(source.problem(where, message))
            continue
        directory = Path(name) if base is None else base / name
        if not directory.is_dir():
            message = (f"plugin_dirs: no folder {name!r} (looked for {directory}); create "
                       "it or remove it from the list")  # fmt: skip
            problems.append(source.problem(where, message))
            continue
        directories.append(directory)
    for given in extra:
        if not Path(given).is_dir():
            message = f"no plugin directory {str(given)!r}: create it, or name another"
            problems.append(ConfigProblem("--plugin-dir", None, None, message))
            continue
        directories.append(Path(given))
    try:
        return discover(directories), problems
    except PluginLoadError as error:  # a folder went away since it was checked
        problems.append(source.problem(("plugin_dirs",), str(error)))
        return discover(), problems


def load_plugin(
    use: str,
    *,
    config: Mapping[str, Any] | None = None,
    plugins: Mapping[str, PluginSource] | None = None,
) -> Any:
    """Import and construct one plugin as a config entry's `use:` (and `config:`) would.

    Raises `ConfigError` (one problem) when it cannot.
    """
    target = find_plugin(use, plugins=plugins)
    try:
        return construct(target, Entry(name=use, use=use, config=dict(config or {})))
    except Problem as problem:
        raise ConfigError([ConfigProblem("--plugin", None, use, problem.message)]) from None


def find_plugin(use: str, *, plugins: Mapping[str, PluginSource] | None = None) -> Any:
    """What `use:` names (a class, function, module or object), imported, not constructed.

    Without `plugins`, a name is a built-in's or an installed entry point's: drop-ins are
    found only in folders named to `discover` (or a config's `plugin_dirs`).

    Raises `ConfigError` (one problem) when it cannot be found or imported.
    """
    if not use:
        raise ConfigError([ConfigProblem("--plugin", None, None, "give an import path "
                                         "(module:attribute) or a plugin name")])  # fmt: skip
    try:
        return import_target(use, discover() if plugins is None else plugins)
    except Problem as problem:
        raise ConfigError([ConfigProblem("--plugin", None, use, problem.message)]) from None


def read_config(path: str | Path) -> str:
    """The text of a config file. A file over `MAX_BYTES` (1 MiB) is refused before it is
    read through, and so is one that is not UTF-8: raises `ConfigError` (one problem)."""
    return read(path)


def _catalog() -> set[Any]:
    from ..hooks import CATALOG

    return set(CATALOG)
