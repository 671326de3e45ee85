"""`interlock.yaml`: turn plugins on and off, order them and scope them without code.

    manager = interlock.load_config("interlock.yaml")

A file is checked as a whole before anything is registered: every problem is reported at
once in one `ConfigError`, each with the file, line, entry and the fix, and nothing from a
bad file is registered. `${VAR}` (or `${VAR:-default}`) in any string takes the value of
an environment variable; values that came from the environment never appear in messages.
The format is in docs/config.md.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from . import ConfigError, ConfigProblem, InterlockError, Member, PluginManager, PluginSet
from .discovery import PluginLoadError, PluginSource, discover, plugin_directories

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_duration(value: object) -> float | None:
    """`"250ms"`, `"2s"`, `"1.5m"`, a number of seconds, or `"none"` (no timeout: inf)."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"expected a duration like '250ms', '2s' or '1m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip().lower() in ("none", "inf", "never"):
        return math.inf
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"expected a duration like '250ms', '2s', '1m' or 'none', got {value!r}")
    if not seconds > 0:
        raise ValueError(f"a duration must be more than zero, got {value!r}")
    return seconds


Duration = Annotated[float, pydantic.BeforeValidator(parse_duration)]
Glob = str | list[str]


class Options(BaseModel):
    """Registration options, as `PluginManager.register` takes them."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["enforce", "permissive", "disabled"] | None = None
    on_error: Literal["ignore", "block"] | None = None
    priority: int | None = None
    timeout: Duration | None = None
    when: dict[str, Glob] | None = None
    background: bool | None = None
    thread: bool | None = None
    capabilities: list[str] | None = None
    writable: list[str] | None = None


class External(BaseModel):
    """An out-of-process plugin: a child process over stdio, HTTP servers, or a command."""

    model_config = ConfigDict(extra="forbid")

    stdio: list[str] | None = None
    http: list[str] | None = None
    command: list[str] | None = None


class Entry(Options):
    """One plugin: where it comes from (`use` or `external`) and how it is registered."""

    name: str = Field(min_length=1)
    use: str | None = None
    external: External | None = None
    hook: str | None = None
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)


class SetEntry(Options):
    """A named group of entries that registers as one `PluginSet`."""

    plugins: list[str] = Field(min_length=1)


class ConfigFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    plugin_dirs: list[str] = Field(default_factory=list)
    defaults: Options = Field(default_factory=Options)
    plugins: list[Entry] = Field(default_factory=list)
    sets: dict[str, SetEntry] = Field(default_factory=dict)


@dataclass
class _Source:
    """What the loader knows about the file while checking it (private)."""

    file: str
    lines: dict[tuple[Any, ...], int]
    secret: set[tuple[Any, ...]]
    data: Any

    def line(self, path: tuple[Any, ...]) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def entry(self, path: tuple[Any, ...]) -> str | None:
        if len(path) >= 2 and path[0] == "plugins" and isinstance(path[1], int):
            try:
                name = self.data["plugins"][path[1]].get("name")
            except (AttributeError, IndexError, KeyError, TypeError):
                return None
            return name if isinstance(name, str) else None
        return None

    def problem(
        self, path: tuple[Any, ...], message: str, entry: str | None = None
    ) -> ConfigProblem:
        return ConfigProblem(self.file, self.line(path), entry or self.entry(path), message)


def load_config(
    path: str | Path,
    *,
    manager: PluginManager | None = None,
    environ: Mapping[str, str] | None = None,
    plugins: Mapping[str, PluginSource] | None = None,
) -> PluginManager:
    """Load a config file into `manager` (a new one by default) and return it.

    `environ` replaces `os.environ` for `${VAR}`; `plugins` replaces discovery (what
    `use: name` can name besides import paths). Raises `ConfigError` listing every
    problem; on error nothing is registered.
    """
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as error:
        problem = ConfigProblem(file, None, None, f"cannot read the file: {error}")
        raise ConfigError([problem]) from None
    return load_config_text(text, file=file, manager=manager, environ=environ, plugins=plugins)


def load_config_text(
    text: str,
    *,
    file: str = "<config>",
    manager: PluginManager | None = None,
    environ: Mapping[str, str] | None = None,
    plugins: Mapping[str, PluginSource] | None = None,
) -> PluginManager:
    """`load_config` for text already in memory; `file` names it in messages."""
    source, config = check(text, file=file, environ=environ)
    loaded = _resolve(config, source, plugin_sources(config, file) if plugins is None else plugins)
    target = manager if manager is not None else PluginManager()
    _register_all(config, source, loaded, target)
    return target


def check(
    text: str, *, file: str = "<config>", environ: Mapping[str, str] | None = None
) -> tuple[_Source, ConfigFile]:
    """Parse and validate a config without importing any plugin; raises `ConfigError`."""
    source = _parse(text, file, os.environ if environ is None else environ)
    try:
        config = ConfigFile.model_validate(source.data)
    except pydantic.ValidationError as error:
        raise ConfigError([_explain(e, source) for e in error.errors()]) from None
    problems = _semantic_problems(config, source)
    if problems:
        raise ConfigError(problems)
    return source, config


# -- parsing: YAML with line numbers, then ${VAR} -------------------------------------------


def _parse(text: str, file: str, environ: Mapping[str, str]) -> _Source:
    try:
        node, data = _compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError([ConfigProblem(file, line, None, f"not valid YAML: {problem}")]) from None
    source = _Source(file, {}, set(), data)
    problems: list[ConfigProblem] = []
    if node is not None:
        _index(node, (), source, problems)
    if not isinstance(data, dict):
        problems.append(
            ConfigProblem(file, 1, None, "the file must be a mapping with a 'plugins:' list")
        )
    if problems:
        raise ConfigError(problems)
    source.data = _interpolate(data, (), environ, source, problems)
    if problems:
        raise ConfigError(problems)
    return source


def _compose(text: str) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree (for line numbers) and the data it holds."""
    loader = yaml.SafeLoader(text)  # reading starts here: it may raise too
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else {}
    finally:
        loader.dispose()


def _index(
    node: yaml.Node, path: tuple[Any, ...], source: _Source, problems: list[ConfigProblem]
) -> None:
    source.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key in seen:
                problems.append(
                    ConfigProblem(
                        source.file,
                        key_node.start_mark.line + 1,
                        None,
                        f"the key {key!r} appears twice",
                    )
                )
            seen.add(key)
            _index(value_node, (*path, key), source, problems)
            source.lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), source, problems)


def _interpolate(
    value: Any,
    path: tuple[Any, ...],
    environ: Mapping[str, str],
    source: _Source,
    problems: list[ConfigProblem],
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), environ, source, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), environ, source, problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        problems.append(
            source.problem(
                path,
                f"the environment variable {name} is not set; "
                f"set it, or give a default: ${{{name}:-...}}",
            )
        )
        return ""

    source.secret.add(path)
    return _ENV.sub(replace, value)


# -- validation -----------------------------------------------------------------------------


def _explain(error: Any, source: _Source) -> ConfigProblem:
    path = tuple(error["loc"])
    kind = error["type"]
    field = path[-1] if path else "file"
    shown = "(from the environment)" if path in source.secret else repr(error.get("input"))
    if kind == "extra_forbidden":
        return source.problem(path, f"unknown key {field!r}{_suggest(field, path)}")
    if kind == "missing":
        return source.problem(path, f"{field!r} is missing")
    if kind == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        return source.problem(path, f"{field} must be one of {allowed}; got {shown}")
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        if path in source.secret:
            message = message.split(", got ")[0] + " (the value came from the environment)"
        return source.problem(path, f"{field}: {message}")
    return source.problem(
        path, f"{'.'.join(map(str, path)) or 'file'}: {error['msg']}; got {shown}"
    )


def _suggest(key: Any, path: tuple[Any, ...]) -> str:
    model: type[BaseModel] = ConfigFile
    if path[:1] == ("plugins",):
        model = Entry
    elif path[:1] == ("sets",):
        model = SetEntry
    elif path[:1] == ("defaults",):
        model = Options
    elif len(path) > 2 and path[-2] == "external":
        model = External
    close = difflib.get_close_matches(str(key), list(model.model_fields), n=1)
    return (
        f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(model.model_fields)}"
    )


def _semantic_problems(config: ConfigFile, source: _Source) -> list[ConfigProblem]:
    problems = []
    names: dict[str, int] = {}
    for index, entry in enumerate(config.plugins):
        path = ("plugins", index)
        if entry.name in names:
            problems.append(
                source.problem(
                    (*path, "name"),
                    f"the name {entry.name!r} is used twice (also on line {names[entry.name]})",
                )
            )
        names.setdefault(entry.name, source.line(path) or 0)
        if (entry.use is None) == (entry.external is None):
            problems.append(
                source.problem(
                    path,
                    "give exactly one of 'use' (an import path or a plugin name) and 'external'",
                )
            )
        if entry.external is not None:
            given = [k for k in ("stdio", "http", "command") if getattr(entry.external, k)]
            if len(given) != 1:
                problems.append(
                    source.problem(
                        (*path, "external"), "external takes exactly one of stdio, http and command"
                    )
                )
    members: dict[str, str] = {}
    for set_name, group in config.sets.items():
        if set_name in names:
            problems.append(
                source.problem(
                    ("sets", set_name), f"the set name {set_name!r} is also a plugin's name"
                )
            )
        for member in group.plugins:
            if member not in names:
                problems.append(
                    source.problem(
                        ("sets", set_name, "plugins"),
                        f"set {set_name!r} lists {member!r}, which no entry is named",
                    )
                )
            elif member in members:
                problems.append(
                    source.problem(
                        ("sets", set_name, "plugins"),
                        f"{member!r} is in two sets: {members[member]!r} and {set_name!r}",
                    )
                )
            members[member] = set_name
    return problems


# -- resolution: import and construct each plugin ------------------------------------------


def _resolve(
    config: ConfigFile, source: _Source, available: Mapping[str, PluginSource]
) -> dict[str, Any]:
    loaded: dict[str, Any] = {}
    problems = []
    for index, entry in enumerate(config.plugins):
        if not entry.enabled:
            continue
        path = ("plugins", index)
        if entry.external is not None:
            problems.append(
                source.problem(
                    (*path, "external"),
                    "external plugins need "
                    "interlock's out-of-process transports, which this "
                    "version does not have yet",
                )
            )
            continue
        try:
            target = _import(str(entry.use), available)
            loaded[entry.name] = _construct(target, entry)
        except _Problem as problem:
            problems.append(source.problem((*path, problem.field), problem.message))
    if problems:
        raise ConfigError(problems)
    return loaded


class _Problem(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _import(use: str, available: Mapping[str, PluginSource]) -> Any:
    if ":" not in use:
        source = available.get(use)
        if source is None:
            known = ", ".join(sorted(available)) or "none installed"
            raise _Problem(
                "use",
                f"no plugin named {use!r}: not an import path "
                f"('module:attribute'), an installed entry point or a drop-in "
                f"plugin (available: {known})",
            )
        try:
            return source.load()
        except PluginLoadError as error:
            raise _Problem("use", str(error)) from None
    module_name, _, attribute = use.partition(":")
    try:
        module = __import__(module_name, fromlist=["_"])
    except Exception as error:
        raise _Problem(
            "use", f"cannot import {module_name!r}: {type(error).__name__}: {error}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise _Problem("use", f"module {module_name!r} has no {attribute!r}") from None
    return target


def _construct(target: Any, entry: Entry) -> Any:
    if not inspect.isclass(target):
        return target  # a function, module or instance; config reaches it as ctx.config
    cls: Any = target
    model = getattr(cls, "config_model", None)
    try:
        if model is not None:
            return cls(model.model_validate(entry.config))
        inspect.signature(cls).bind(**entry.config)
        return cls(**entry.config)
    except pydantic.ValidationError as error:
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in error.errors()
        )
        raise _Problem(
            "config", f"config does not fit {target.__name__}.config_model: {detail}"
        ) from None
    except TypeError as error:
        raise _Problem("config", f"{target.__name__} cannot take this config: {error}") from None
    except Exception as error:
        raise _Problem(
            "use", f"{target.__name__} failed to start: {type(error).__name__}: {error}"
        ) from None


# -- registration: all or nothing ----------------------------------------------------------


def _register_all(
    config: ConfigFile, source: _Source, loaded: Mapping[str, Any], manager: PluginManager
) -> None:
    in_sets = {member for group in config.sets.values() for member in group.plugins}
    index_of = {entry.name: i for i, entry in enumerate(config.plugins)}
    done: list[str] = []
    problems: list[ConfigProblem] = []
    for entry in config.plugins:
        if not entry.enabled or entry.name in in_sets:
            continue
        options = _merge(config.defaults, entry)
        plugin = loaded[entry.name]
        try:
            manager.register(
                plugin, name=entry.name, hook=entry.hook, config=entry.config, **options
            )
        except InterlockError as error:  # RegistrationError, UnknownHookError, ...
            problems.append(source.problem(("plugins", index_of[entry.name]), str(error)))
        else:
            done.append(entry.name)
    for set_name, group in config.sets.items():
        members = []
        for name in group.plugins:
            entry = config.plugins[index_of[name]]
            if entry.enabled:
                member = Member(
                    loaded[name],
                    name=name,
                    hook=entry.hook,
                    config=entry.config,
                    **_member_options(entry),
                )
                members.append(member)
        try:
            manager.register(PluginSet(set_name, members), **_merge(config.defaults, group))
        except InterlockError as error:
            plugin = getattr(error, "plugin", None)
            culprit = plugin if plugin in index_of else None
            path = ("plugins", index_of[culprit]) if culprit else ("sets", set_name)
            problems.append(source.problem(path, str(error), entry=culprit))
        else:
            done.append(set_name)
    if problems:
        for name in reversed(done):
            manager.unregister(name)
        raise ConfigError(problems)


def _merge(defaults: Options, options: Options) -> dict[str, Any]:
    merged = {k: v for k, v in defaults.model_dump().items() if v is not None}
    merged.update(
        {
            k: v
            for k, v in options.model_dump(include=set(Options.model_fields)).items()
            if v is not None
        }
    )
    return merged


def _member_options(entry: Entry) -> dict[str, Any]:
    options = {
        k: v
        for k, v in entry.model_dump(include=set(Options.model_fields)).items()
        if v is not None
    }
    for key in ("capabilities", "writable"):
        if key in options:
            options[key] = tuple(options[key])
    return options


def plugin_sources(config: ConfigFile, file: str) -> dict[str, PluginSource]:
    """What `use: name` can name: drop-ins in the file's `plugin_dirs` (relative to the
    file), then the usual discovery (project and user folders, entry points)."""
    base = Path(file).parent
    return discover([*(base / d for d in config.plugin_dirs), *plugin_directories()])


def load_plugin(
    use: str,
    *,
    config: Mapping[str, Any] | None = None,
    plugins: Mapping[str, PluginSource] | None = None,
) -> Any:
    """Import and construct one plugin as a config entry's `use:` (and `config:`) would.

    Raises `ConfigError` (one problem) when it cannot.
    """
    entry = Entry(name=use, use=use, config=dict(config or {}))
    try:
        return _construct(_import(use, discover() if plugins is None else plugins), entry)
    except _Problem as problem:
        raise ConfigError([ConfigProblem("--plugin", None, use, problem.message)]) from None
