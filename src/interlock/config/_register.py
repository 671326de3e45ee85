"""Registering a config's plugins all or none: in file order, each set where its first
member stands, the file's defaults applied where they fit, and every key a registration
refuses reported at its own line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .. import (
    ConfigProblem,
    DuplicatePluginError,
    HookSpec,
    InterlockError,
    Member,
    PluginManager,
    PluginSet,
)
from ..hooks import CATALOG
from ._schema import Entry, Options
from ._source import Source
from ._validate import Checked

_CONTEXT_ROOTS = frozenset({"session", "hook", "turn"})


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
