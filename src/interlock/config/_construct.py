"""A `use:` entry's plugin: importing what it names, granting its store, constructing it
with its config, or (when that cannot be done) a stand-in whose hooks are still checked."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from ..discovery import PluginLoadError, PluginSource
from ..store import StateStore, StoreError, open_store
from ._schema import CONFIG_FOLDER, ConfigFile, Entry


class Problem(Exception):
    """A problem with one entry, found while importing or constructing it (private).
    `field_name` is the key it is about, dotted within the entry (`external.cwd`)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class StandIn:
    """An instance of a plugin class that was never initialised (private): its handlers
    are its class's methods, so registering it in the dry run checks the entry's
    options against its hooks although its config or store kept it from being built.
    Never called, never registered for real."""

    plugin: Any


def from_use(
    entry: Entry,
    config: ConfigFile,
    folder: Path | None,
    available: Mapping[str, PluginSource],
    dropped: frozenset[str],
) -> tuple[Any, list[Problem]]:
    """The plugin a `use:` entry names, constructed, or a `StandIn` when it cannot be;
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


def _stand_in(cls: Any) -> StandIn | None:
    try:
        return StandIn(cls.__new__(cls))
    except Exception:  # a class that cannot be made without its constructor: not checked
        return None


def _unwrapped(plugin: Any) -> Any:
    return plugin.plugin if isinstance(plugin, StandIn) else plugin


def _placeholder(cls: Any) -> dict[str, Any]:
    """The `store` argument, for checking a config whose store could not be opened."""
    return {"store": None} if "store" in inspect.signature(cls).parameters else {}


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


def config_folder(file: str) -> Path | None:
    """The folder a config's relative paths are relative to: its file's. A config read
    from text has none."""
    path = Path(file)
    return path.absolute().parent if path.is_file() else None
