"""Checking a parsed config, constructing its plugins, and registering them all or none."""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel

from .. import (
    ConfigProblem,
    DuplicatePluginError,
    HookSpec,
    InterlockError,
    Member,
    PluginManager,
    PluginSet,
    UnknownHookError,
)
from ..discovery import PluginLoadError, PluginSource
from ..hooks import CATALOG
from ..store import StateStore, StoreError, open_store
from ._schema import CONFIG_FOLDER, ConfigFile, Entry, External, Options, SetEntry
from ._source import Source

logger = logging.getLogger("interlock.config")

_CONTEXT_ROOTS = frozenset({"session", "hook", "turn"})
# An entry missing one of these (its value wrong) cannot be loaded for the checks of its
# other keys: what it is, or whether it is on, is not known.
_SOURCES = frozenset({"use", "external", "enabled"})


@dataclass
class Checked:
    """What validation kept: the valid entries (by file index) and the problems found.

    `names` holds every entry's name as written, valid entry or not, so that a name used
    twice or a set's member is judged against the whole file."""

    config: ConfigFile
    entries: dict[int, Entry] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    dropped: dict[int, frozenset[str]] = field(default_factory=dict)
    """The keys left out of an entry (a value wrong or unreadable), by file index: the
    entry is kept, for the checks of its other keys, and never registered for real."""
    stand_ins: dict[str, Any] = field(default_factory=dict)
    """Plugins that could not be constructed, as instances never initialised (see
    `_StandIn`), by entry name: the dry run checks their entries' options against their
    hooks; they are never registered for real."""

    def index_of(self, name: str) -> int | None:
        return next((i for i, e in self.entries.items() if e.name == name), None)


def validate(source: Source) -> Checked:
    """Validate the file's settings and every entry on its own, so that one bad value
    hides no other problem. A value that could not be read (`Source.unreadable`) is
    reported once: what holds it is checked for its other problems, not loaded."""
    data = source.data
    raw_plugins = data.get("plugins", [])
    unreadable = list(source.unreadable)
    problems = [p for found in source.unreadable.values() for p in found]
    config, errors = _settings({k: v for k, v in data.items() if k != "plugins"})
    problems += [_explain(e, source) for e in errors if not _within(e["loc"], unreadable)]
    checked = Checked(config, problems=problems)
    if "version" not in data and "plugins" not in data:
        # An empty file, or the wrong one: loading it would load nothing, silently.
        message = ("the file names no plugins and no version: is it the right file? A "
                   "config with no plugins says so: version: 1 and plugins: []")  # fmt: skip
        checked.problems.append(source.problem((), message))
    if not isinstance(raw_plugins, list):
        checked.problems.append(source.problem(("plugins",), "'plugins' must be a list of entries"))
        return checked
    for index, raw in enumerate(raw_plugins):
        path = ("plugins", index)
        if isinstance(raw, dict) and isinstance(raw.get("name"), str) and raw["name"]:
            checked.names[index] = raw["name"]
        entry, dropped, errors = _entry(raw, [w[2:] for w in unreadable if w[:2] == path])
        for e in errors:
            e["loc"] = (*path, *e["loc"])
            if not _within(e["loc"], unreadable):
                checked.problems.append(_explain(e, source))
        if entry is not None:
            checked.entries[index] = entry
            if dropped:
                checked.dropped[index] = dropped
    checked.problems += _relations(checked, source)
    return checked


def _entry(
    raw: Any, unread: list[tuple[Any, ...]]
) -> tuple[Entry | None, frozenset[str], list[Any]]:
    """The entry `raw` describes, made of its keys whose values are right, the keys left
    out, and pydantic's errors (each once). A key whose value is wrong or unreadable
    (`unread`: paths within the entry) is left out, so that each of the others is still
    checked, down to constructing and registering the plugin; None when what is left is no
    entry (not a mapping, no name)."""
    dropped = {where[0] for where in unread if where}
    errors: list[Any] = []
    while True:
        data = {k: v for k, v in raw.items() if k not in dropped} if isinstance(raw, dict) else raw
        try:
            entry = Entry.model_validate(data)
            break
        except pydantic.ValidationError as error:
            found = [e for e in error.errors() if not e["loc"] or e["loc"][0] not in dropped]
            errors += found
            if not found or any(not e["loc"] or e["loc"][0] not in data for e in found):
                return None, frozenset(dropped), errors
            dropped |= {e["loc"][0] for e in found}
    if () in unread:  # the entry itself could not be read whole
        return None, frozenset(dropped), errors
    if "background" in dropped:  # overflow is judged against it: not against a guess
        entry = entry.model_copy(update={"overflow": None})
    return entry, frozenset(dropped), errors


def _settings(data: dict[str, Any]) -> tuple[ConfigFile, list[Any]]:
    """The file's settings (all but its entries) and pydantic's errors in them. A bad
    value is left out, not the settings around it, so that (say) a bad default does not
    also make the drop-ins of `plugin_dirs` go missing."""
    errors: list[Any] = []
    while True:
        try:
            return ConfigFile.model_validate({**data, "plugins": []}), errors
        except pydantic.ValidationError as error:
            found = error.errors()
            errors += found
            smaller = data
            for e in found:
                smaller = _without(smaller, tuple(e["loc"]))
            if smaller == data:  # cannot happen with a mapping; never loop on it
                return ConfigFile(), errors
            data = smaller


def _without(data: dict[str, Any], loc: tuple[Any, ...]) -> dict[str, Any]:
    """`data` without the value at `loc`, or the closest mapping key above it (copied)."""
    if not loc or loc[0] not in data:
        return data
    inner = data[loc[0]]
    if len(loc) > 1 and isinstance(inner, dict) and loc[1] in inner:
        return {**data, loc[0]: _without(inner, loc[1:])}
    return {k: v for k, v in data.items() if k != loc[0]}


def _within(loc: Any, paths: list[tuple[Any, ...]]) -> bool:
    where = tuple(loc)
    return any(where[: len(path)] == path for path in paths)


def in_file_order(problems: list[ConfigProblem], file: str) -> list[ConfigProblem]:
    """Problems as an operator reads them: the file's, by line (those of the file as a
    whole first), then those of the command line."""
    return sorted(problems, key=lambda p: (p.file != file, p.line or 0))


def _explain(error: Any, source: Source) -> ConfigProblem:
    path = tuple(error["loc"])
    kind = error["type"]
    field_name = path[-1] if path else "file"
    shown = repr(error.get("input"))
    if kind == "extra_forbidden":
        return source.problem(path, f"unknown key {field_name!r}{_suggest(field_name, path)}")
    if kind == "missing":
        return source.problem(path, f"{field_name!r} is missing")
    if kind == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        return source.problem(path, f"{field_name} must be one of {allowed}; got {shown}")
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        what = "each entry" if path[:1] == ("plugins",) and len(path) == 2 else str(field_name)
        return source.problem(path, f"{what} must be a mapping of keys to values; got {shown}")
    if kind == "value_error":
        return source.problem(
            path, f"{field_name}: {error.get('ctx', {}).get('error', error['msg'])}"
        )
    inner = path[2:] if path[:1] == ("plugins",) else path
    where = ".".join(map(str, inner)) or "file"
    return source.problem(path, f"{where}: {error['msg']}; got {shown}")


def _suggest(key: Any, path: tuple[Any, ...]) -> str:
    model: type[BaseModel] = ConfigFile
    if len(path) > 2 and path[-2] == "external":
        model = External
    elif path[:1] == ("plugins",):
        model = Entry
    elif path[:1] == ("sets",):
        model = SetEntry
    elif path[:1] == ("defaults",):
        model = Options
    close = difflib.get_close_matches(str(key), list(model.model_fields), n=1)
    return (
        f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(model.model_fields)}"
    )


def _relations(checked: Checked, source: Source) -> list[ConfigProblem]:
    """Names unique, exactly one source per entry, sets naming real entries once. An entry
    whose name is taken is reported here and not loaded."""
    problems = []
    first_line: dict[str, int | None] = {}
    taken = []
    for index, name in checked.names.items():
        path = ("plugins", index)
        if name in first_line:
            message = f"the name {name!r} is used twice (also on line {first_line[name]})"
            problems.append(source.problem((*path, "name"), message))
            taken.append(index)
        first_line.setdefault(name, source.line(path))
    for index, entry in checked.entries.items():
        path = ("plugins", index)
        unknown = checked.dropped.get(index, frozenset()) & {"use", "external"}
        if not unknown and (entry.use is None) == (entry.external is None):
            message = "give exactly one of 'use' (an import path or a plugin name) and 'external'"
            problems.append(source.problem(path, message))
        if entry.external is not None:
            problems += _external_relations(entry.external, source, (*path, "external"))
    members: dict[str, str] = {}
    for set_name, group in checked.config.sets.items():
        where = ("sets", set_name)
        if set_name in first_line:
            problems.append(source.problem(where, f"the set name {set_name!r} is also a plugin's"))
        for member in group.plugins:
            if member not in first_line:
                message = f"set {set_name!r} lists {member!r}, which no entry is named"
                problems.append(source.problem((*where, "plugins"), message))
            elif member in members:
                message = f"{member!r} is in two sets: {members[member]!r} and {set_name!r}"
                problems.append(source.problem((*where, "plugins"), message))
            members[member] = set_name
    for index in taken:
        checked.entries.pop(index, None)
    return problems


def _external_relations(
    external: External, source: Source, path: tuple[Any, ...]
) -> list[ConfigProblem]:
    kind = external.kind()
    if kind is None:
        return [source.problem(path, "external takes exactly one of stdio, http and command")]
    problems = []
    if kind == "command" and external.hooks is None:
        message = "a command runs per event: say for which with hooks: [pre_tool_call, ...]"
        problems.append(source.problem(path, message))
    if external.token is not None and kind != "http":
        problems.append(source.problem((*path, "token"), "token is for http plugins only"))
    for url in external.http or ():
        if not url.startswith(("http://", "https://")):
            message = f"{url!r} is not an http:// or https:// URL"
            problems.append(source.problem((*path, "http"), message))
    for key in ("cwd", "env"):
        if getattr(external, key) is not None and kind == "http":
            message = f"{key} is for plugins interlock starts (stdio, command), not http"
            problems.append(source.problem((*path, key), message))
    return problems


# -- construction ---------------------------------------------------------------------------


class Problem(Exception):
    """A problem with one entry, found while importing or constructing it (private).
    `field_name` is the key it is about, dotted within the entry (`external.cwd`)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


def resolve(
    checked: Checked, source: Source, available: Mapping[str, PluginSource]
) -> dict[str, Any]:
    """Import and construct every enabled entry that says where its plugin comes from;
    every problem goes to `checked`, and so do stand-ins for the plugins that could not be
    constructed (`Checked.stand_ins`)."""
    loaded: dict[str, Any] = {}
    folder = config_folder(source.file)
    for index, entry in checked.entries.items():
        dropped = checked.dropped.get(index, frozenset())
        if not entry.enabled or dropped & _SOURCES:
            continue
        path = ("plugins", index)
        if entry.external is not None:
            if entry.use is not None or _external_relations(entry.external, source, path):
                continue  # already reported by validate()
            plugin, problems = _external(entry, entry.external, source.file)
        else:
            plugin, problems = _use(entry, checked.config, folder, available, dropped)
        for problem in problems:
            where = (*path, *problem.field.split("."))
            checked.problems.append(source.problem(where, problem.message))
            if problem.field == "hook":  # its other keys are judged without it
                checked.entries[index] = entry.model_copy(update={"hook": None})
        if plugin is not None and not isinstance(plugin, _StandIn):
            loaded[entry.name] = plugin
        elif plugin is not None:
            checked.stand_ins[entry.name] = plugin.plugin
    return loaded


def _external(entry: Entry, external: External, file: str) -> tuple[Any, list[Problem]]:
    problems = []
    if entry.store is not None:
        problems.append(Problem("store", "an external plugin keeps its own state (interlock "
                                "hands it no store): remove store: from this entry"))  # fmt: skip
    try:
        return external_plugin(entry, external, file), problems
    except Problem as problem:
        return None, [*problems, problem]


@dataclass(frozen=True)
class _StandIn:
    """An instance of a plugin class that was never initialised (private): its handlers
    are its class's methods, so registering it in the dry run checks the entry's
    options against its hooks although its config or store kept it from being built.
    Never called, never registered for real."""

    plugin: Any


def _use(
    entry: Entry,
    config: ConfigFile,
    folder: Path | None,
    available: Mapping[str, PluginSource],
    dropped: frozenset[str],
) -> tuple[Any, list[Problem]]:
    """The plugin a `use:` entry names, constructed, or a `_StandIn` when it cannot be;
    and every problem found: its store, its config and its `hook:` are judged each on
    its own."""
    try:
        target = import_target(str(entry.use), available)
    except Problem as problem:
        return None, [problem]
    problems = []
    store = None
    try:
        store = granted_store(target, entry, config)
    except Problem as problem:
        problems.append(problem)
    plugin: Any = target
    if inspect.isclass(target):
        try:
            if problems and "config" not in dropped:  # checked, not built without its store
                _arguments(target, entry, folder, _placeholder(target))
            elif "config" not in dropped:
                plugin = construct(target, entry, folder, store=store)
        except Problem as problem:
            problems.append(problem)
        if plugin is target:
            plugin = _stand_in(target)
    if plugin is not None and entry.hook is not None and not callable(_unwrapped(plugin)):
        problems.append(Problem("hook", f"hook: is for a plugin that is one function; "
                                f"{entry.use!r} names its own hooks: remove hook:"))  # fmt: skip
    return plugin, problems


def _stand_in(cls: Any) -> _StandIn | None:
    try:
        return _StandIn(cls.__new__(cls))
    except Exception:  # a class that cannot be made without its constructor: not checked
        return None


def _unwrapped(plugin: Any) -> Any:
    return plugin.plugin if isinstance(plugin, _StandIn) else plugin


def _placeholder(cls: Any) -> dict[str, Any]:
    """The `store` argument, for checking a config whose store could not be opened."""
    return {"store": None} if "store" in inspect.signature(cls).parameters else {}


def external_plugin(entry: Entry, external: External, file: str) -> Any:
    """The plugin an `external:` entry describes. A stdio or HTTP plugin without `hooks`
    is asked for them now (its process starts); otherwise nothing starts until used."""
    from ..external import (
        CommandRunner,
        HttpTransport,
        StdioTransport,
        command_plugin,
        connect,
    )

    argv, cwd, missing = _launch(external, file) if not external.http else ([], None, None)
    limit = external.max_message_bytes
    transport: Any = None
    try:
        if external.command:
            runner = CommandRunner(argv, name=entry.name, cwd=cwd, env=external.env,
                                   limit=limit)  # fmt: skip
            plugin: Any = command_plugin(runner, name=entry.name, hooks=external.hooks or ())
            if missing is not None:  # after the hooks' names: those problems come first
                raise missing
            return plugin
        if missing is not None and external.hooks is None:
            raise missing  # rather than a handshake that cannot start
        if external.stdio:
            transport = StdioTransport(argv, name=entry.name, cwd=cwd, env=external.env,
                                       limit=limit)  # fmt: skip
        else:
            transport = HttpTransport(external.http or (), name=entry.name, token=external.token,
                                      limit=limit)  # fmt: skip
        plugin = connect(transport, name=entry.name, hooks=external.hooks, config=entry.config,
                         timeout=external.handshake_timeout)  # fmt: skip
        if missing is not None:
            raise missing
    except Problem:
        _close(transport)
        raise
    except ImportError as error:
        raise Problem("external", str(error)) from None
    except UnknownHookError as error:
        raise Problem("external", str(error)) from None
    except Exception as error:  # the handshake failed, however it failed
        _close(transport)
        # The problem names the plugin already; so does the transport's message.
        message = str(error).removeprefix(f"plugin {entry.name!r}: ")
        hint = ("check that the server is running and reachable at the URL" if external.http
                else "check the command")  # fmt: skip
        raise Problem("external", f"{message}; {hint}, and that it speaks interlock's "
                                  "protocol (docs/protocol.md)") from None  # fmt: skip
    ungranted = sorted(set(plugin.requested) - set(entry.capabilities or ()))
    if ungranted:
        logger.warning(
            "plugin %r asks for capabilities %s, which its config does not grant; add "
            "capabilities: [%s] to let it use them",
            entry.name,
            ", ".join(ungranted),
            ", ".join(ungranted),
            extra={"interlock_plugin": entry.name},
        )
    return plugin


def _launch(external: External, file: str) -> tuple[list[str], Path | None, Problem | None]:
    """The argv and working folder of a `stdio:` or `command:` plugin, and what keeps its
    program from starting, if anything.

    Like `plugin_dirs`, a relative `cwd` and a program path with a `/` are relative to the
    config file's folder, never to the current directory (the program path is made
    absolute, so it is the same file whatever `cwd` says); a bare program name is looked
    up on PATH (the entry's `env` may set it), as a shell would.
    """
    key = "external.command" if external.command else "external.stdio"
    argv = list(external.command or external.stdio or ())
    base = config_folder(file)
    cwd = None if base is None else base
    no_base = ("is relative, and this config has no file it could be relative to; give an "
               "absolute path, or load the config from its file")  # fmt: skip
    if external.cwd is not None:
        if base is None and not Path(external.cwd).is_absolute():
            return argv, None, Problem("external.cwd", f"cwd {external.cwd!r} {no_base}")
        cwd = Path(external.cwd) if base is None else base / external.cwd
        if not cwd.is_dir():
            message = f"cwd: no folder {external.cwd!r} (looked for {cwd}); create it or fix it"
            return argv, cwd, Problem("external.cwd", message)
    program = argv[0]
    if "/" not in program and os.sep not in program:
        path = (external.env or {}).get("PATH", os.environ.get("PATH", os.defpath))
        if shutil.which(program, path=path) is not None:
            return argv, cwd, None
        beside = base is not None and (base / program).is_file()
        hint = (f"; there is a {program!r} beside the config: write ./{program}" if beside
                else "")  # fmt: skip
        message = (f"could not start {program!r}: no such program on PATH; install it, or "
                   f"give its path (absolute, or relative to the config file's folder)"
                   f"{hint}")  # fmt: skip
        return argv, cwd, Problem(key, message)
    if base is None and not Path(program).is_absolute():
        return argv, cwd, Problem(key, f"the program {program!r} {no_base}")
    resolved = Path(os.path.normpath(program if base is None else base / program))
    argv[0] = str(resolved)
    if not resolved.is_file():
        message = (f"could not start {program!r}: there is no such file (looked for "
                   f"{resolved}; a program path is relative to the config file's folder); "
                   "fix the path or create the file")  # fmt: skip
        return argv, cwd, Problem(key, message)
    if not os.access(resolved, os.X_OK):
        message = (f"could not start {program!r}: {resolved} is not executable; make it so "
                   f"(chmod +x {program}) or run it through its interpreter, e.g. "
                   f"[sh, {program}]")  # fmt: skip
        return argv, cwd, Problem(key, message)
    return argv, cwd, None


def config_folder(file: str) -> Path | None:
    """The folder a config's relative paths are relative to: its file's. A config read
    from text has none."""
    path = Path(file)
    return path.absolute().parent if path.is_file() else None


def discard(loaded: Mapping[str, Any]) -> None:
    """Stop what constructing these plugins started (a config that failed to load)."""
    for plugin in loaded.values():
        _close(getattr(plugin, "transport", None))


def _close(transport: Any) -> None:
    close = getattr(transport, "close", None)
    if close is not None:
        close()


def import_target(use: str, available: Mapping[str, PluginSource]) -> Any:
    """What `use:` names: `module:attribute`, or a discovered plugin's name."""
    if ":" not in use:
        source = available.get(use)
        if source is None:
            known = ", ".join(sorted(available)) or "none installed"
            raise Problem("use", f"no plugin named {use!r}: not an import path "
                          f"('module:attribute'), a built-in, an installed entry point or a "
                          f"drop-in plugin in a folder named by plugin_dirs or --plugin-dir "
                          f"(available: {known})")  # fmt: skip
        try:
            return source.load()
        except PluginLoadError as error:
            raise Problem("use", str(error)) from None
    module_name, _, attribute = use.partition(":")
    try:
        target: Any = __import__(module_name, fromlist=["_"])
    except (Exception, SystemExit) as error:
        message = f"cannot import {module_name!r}: {type(error).__name__}: {error}"
        raise Problem("use", message) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise Problem("use", f"module {module_name!r} has no {attribute!r}") from None
    return target


def construct(
    target: Any, entry: Entry, folder: Path | None = None, *, store: StateStore | None = None
) -> Any:
    """A plugin object from what `use:` named: classes are constructed with the config.
    `folder` is the config file's: its `ConfigPath` values are relative to it. `store`
    (see `granted_store`) is passed as the `store` keyword."""
    if not inspect.isclass(target):
        return target  # a function, module or instance; config reaches it as ctx.config
    cls: Any = target
    model = getattr(cls, "config_model", None)
    args, kwargs = _arguments(cls, entry, folder, {} if store is None else {"store": store})
    try:
        return cls(*args, **kwargs)
    except pydantic.ValidationError as error:
        detail = "; ".join(_config_error(e, model) for e in error.errors())
        raise Problem("config", detail) from None
    except TypeError as error:
        raise Problem("config", f"{cls.__name__} cannot take this config: {error}") from None
    except (Exception, SystemExit) as error:
        message = f"{cls.__name__} failed to start: {type(error).__name__}: {error}"
        raise Problem("use", message) from None


def _arguments(
    cls: Any, entry: Entry, folder: Path | None, granted: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments that construct plugin class `cls` with the entry's config (checked
    against its `config_model`, or its constructor's parameters) and `granted`."""
    model = getattr(cls, "config_model", None)
    if model is None:
        try:
            inspect.signature(cls).bind(**entry.config, **granted)
        except TypeError as error:
            raise Problem("config", f"{cls.__name__} cannot take this config: {error}") from None
        return (), {**entry.config, **granted}
    context = {CONFIG_FOLDER: folder} if folder is not None else None
    try:
        return (model.model_validate(entry.config, context=context),), granted
    except pydantic.ValidationError as error:
        detail = "; ".join(_config_error(e, model) for e in error.errors())
        raise Problem("config", detail) from None


def granted_store(target: Any, entry: Entry, config: ConfigFile) -> StateStore | None:
    """The state store a plugin class gets: the entry's `store:`, else the file's, for a
    class whose constructor takes `store`; keys under the file's `deployment` and the
    entry's name, so a plugin reaches its own keys only."""
    url = entry.store or config.store
    takes = inspect.isclass(target) and "store" in inspect.signature(target).parameters
    if url is None or not takes:
        if entry.store is not None:
            raise Problem("store", f"{entry.use!r} keeps no shared state (its constructor "
                          "takes no store): remove store: from this entry")  # fmt: skip
        return None
    try:
        return open_store(url, deployment=config.deployment, plugin=entry.name)
    except StoreError as error:
        raise Problem("store", str(error)) from None


def _config_error(error: Any, model: Any) -> str:
    """One thing wrong in an entry's `config:`, in the words of the file."""
    loc = tuple(error["loc"])
    where = ".".join(map(str, ("config", *loc)))
    if error["type"] == "extra_forbidden":
        known = list(model.model_fields) if len(loc) == 1 else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = (f"; did you mean {close[0]!r}?" if close
                else f"; it takes {', '.join(known)}" if known else "")  # fmt: skip
        parent = ".".join(map(str, ("config", *loc[:-1])))
        return f"{parent}: unknown key {loc[-1]!r}{hint}"
    if error["type"] == "missing":
        return f"{where} is missing"
    return f"{where}: {error['msg']}; got {error.get('input')!r}"


# -- registration ---------------------------------------------------------------------------


def register(
    checked: Checked,
    source: Source,
    loaded: Mapping[str, Any],
    manager: PluginManager,
    stand_ins: Mapping[str, Any] | None = None,
) -> list[ConfigProblem]:
    """Register in file order (a set where its first member stands). On any problem, undo
    what was done and return every problem found, each wrong key of an entry at its own
    line. `stand_ins` (`Checked.stand_ins`, for a dry run only) are registered so that
    their entries' keys are checked; a stand-in's own refusal is not reported."""
    config = checked.config
    stand_ins = stand_ins or {}
    set_of = {member: name for name, group in config.sets.items() for member in group.plugins}
    done: list[str] = []
    tried: set[str] = set()
    problems: list[ConfigProblem] = []
    for index, entry in sorted(checked.entries.items()):
        group_name = set_of.get(entry.name)
        if group_name is None:
            plugin = loaded.get(entry.name, stand_ins.get(entry.name))
            if plugin is None or "hook" in checked.dropped.get(index, ()):
                continue  # nothing to register, or not known for what
            refused, faults = _register_entry(manager, plugin, entry, config.defaults)
            if refused is None:
                done.append(entry.name)
            elif faults or entry.name in loaded:
                problems += [_refusal(e, key, index, checked, source)
                             for key, e in faults or [(None, refused)]]  # fmt: skip
            continue
        if group_name in tried or entry.name not in loaded:
            continue
        tried.add(group_name)
        members = _members(checked, group_name, loaded)
        options = _options(config.defaults, config.sets[group_name], _hooks_of(loaded, members))
        try:
            manager.register(PluginSet(group_name, [m for _, m in members]), **options)
        except _REFUSED as error:
            problems.append(_refusal(error, None, index, checked, source))
            continue
        done.append(group_name)
    if problems:
        for name in reversed(done):
            manager.unregister(name)
    return problems


_REFUSED = (InterlockError, TypeError, ValueError)
# A key judged against another is tried with it.
_NEEDS = {"overflow": ("background",)}


def _register_entry(
    manager: PluginManager, plugin: Any, entry: Entry, defaults: Options
) -> tuple[Exception | None, list[tuple[str | None, Exception]]]:
    """Register one entry's plugin. When it is refused: why, and each of the entry's keys
    that is refused on its own (over the file's defaults, in a manager of its own), so
    that every wrong key is reported, not only the first that registration meets."""
    hooks = _hooks_of({entry.name: plugin}, [entry])
    try:
        manager.register(plugin, name=entry.name, hook=entry.hook, config=entry.config,
                         **_options(defaults, entry, hooks))  # fmt: skip
        return None, []
    except _REFUSED as error:
        refused = error
    specs = [s for s in manager.specs() if s not in CATALOG]

    def alone(options: Options) -> Exception | None:
        try:
            PluginManager(specs=specs).register(plugin, name=entry.name, hook=entry.hook,
                                                config=entry.config,
                                                **_options(defaults, options, hooks))  # fmt: skip
        except _REFUSED as error:
            return error
        return None

    if alone(Options()) is not None:
        return refused, []  # the plugin is refused whatever its keys say
    given = entry.given()
    faults: list[tuple[str | None, Exception]] = []
    for key in given:
        # Constructed, not validated: the values were, and a timeout of `none` is inf.
        options = Options.model_construct(**{k: given[k] for k in (key, *_NEEDS.get(key, ()))
                                             if k in given})  # fmt: skip
        fault = alone(options)
        if fault is not None:
            faults.append((key, fault))
    return refused, faults


def _refusal(
    error: Exception, key: str | None, index: int, checked: Checked, source: Source
) -> ConfigProblem:
    """A registration error as a problem of the entry it names (else the one at `index`),
    at the line of `key` when that key alone is at fault."""
    plugin = getattr(error, "plugin", None)
    culprit = checked.index_of(plugin) if isinstance(plugin, str) else None
    path: tuple[Any, ...] = ("plugins", index if culprit is None else culprit)
    if key is not None:
        path = (*path, key)
    return source.problem(path, _in_config_words(error, plugin), entry=plugin)


# Registration speaks to Python callers: `when=`, `background=True`. A config says `when:`.
_KEYWORD = re.compile(r"\b(" + "|".join(Entry.model_fields) + r")= ?(True|False)?")


def _in_config_words(error: Exception, plugin: str | None) -> str:
    """A registration error told as a problem of a config entry: without the plugin's
    name (the problem names it already), keys written as the config writes them."""
    if isinstance(error, DuplicatePluginError):
        return (f"a plugin named {plugin!r} is already registered with the manager this "
                "config loads into; give this entry another name")  # fmt: skip
    message = str(error)
    if plugin is not None:
        for prefix in (f"plugin {plugin!r}: ", f"plugin {plugin!r}, "):
            message = message.removeprefix(prefix)
    return _KEYWORD.sub(lambda m: f"{m.group(1)}: " + (m.group(2) or "").lower(), message)


def _members(
    checked: Checked, group_name: str, loaded: Mapping[str, Any]
) -> list[tuple[Entry, Member]]:
    """A set's entries in file order, as `Member`s with their own options."""
    members = []
    for _, entry in sorted(checked.entries.items()):
        if entry.name in checked.config.sets[group_name].plugins and entry.name in loaded:
            options = entry.given()
            for key in ("capabilities", "writable"):
                if key in options:
                    options[key] = tuple(options[key])
            member = Member(loaded[entry.name], name=entry.name, hook=entry.hook,
                            config=entry.config, **options)  # fmt: skip
            members.append((entry, member))
    return members


def _options(
    defaults: Options, options: Options, hooks: tuple[list[HookSpec[Any]], bool]
) -> dict[str, Any]:
    """`options` over the file's defaults. Defaults for `when`, `capabilities` and
    `writable` keep only what applies to the plugin's hooks; a default `overflow` applies
    only to plugins with background handlers (`hooks`: see `_hooks_of`)."""
    specs, background = hooks
    merged = _applicable(defaults.given(), specs)
    if not (background or merged.get("background") or options.background):
        merged.pop("overflow", None)
    merged.update(options.given())
    return merged


def _hooks_of(loaded: Mapping[str, Any], entries: list[Any]) -> tuple[list[HookSpec[Any]], bool]:
    """The hooks the plugins of `entries` (entries or (entry, member) pairs) handle, and
    whether any handler is a background one."""
    probe = PluginManager()
    specs: list[HookSpec[Any]] = []
    background = False
    for item in entries:
        entry = item[0] if isinstance(item, tuple) else item
        try:
            handle = probe.register(loaded[entry.name], name=entry.name, hook=entry.hook)
        except (InterlockError, TypeError, ValueError):
            continue  # registering for real reports the problem
        specs += [r.hook for r in handle.registrations]
        background = background or any(r.background for r in handle.registrations)
    return specs, background


def _applicable(options: dict[str, Any], specs: list[HookSpec[Any]]) -> dict[str, Any]:
    if "when" in options:
        when = {k: v for k, v in options["when"].items()
                if any(_has_key(k, spec) for spec in specs)}  # fmt: skip
        options["when"] = when or None
    if "capabilities" in options:
        offered = {c for spec in specs for c in spec.capabilities}
        options["capabilities"] = [c for c in options["capabilities"] if c in offered]
    if "writable" in options:
        grantable = {g for spec in specs if spec.kind == "modify"
                     for g in (*spec.fields, *(rule.name for rule in spec.rules))}  # fmt: skip
        options["writable"] = [w for w in options["writable"] if w in grantable]
    return {k: v for k, v in options.items() if v is not None}


def _has_key(key: str, spec: HookSpec[Any]) -> bool:
    root = key.split(".")[0]
    return root in _CONTEXT_ROOTS or not spec.fields or root in spec.fields
