"""Checking a parsed config file: its settings, each entry on its own, and how entries and
sets relate (names unique, one source per entry, sets naming real entries), so that one
bad value hides no other problem."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import pydantic
from pydantic import BaseModel

from .. import ConfigProblem
from ._schema import ConfigFile, Entry, External, Options, SetEntry
from ._source import Source


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
    `_construct.StandIn`), by entry name: the dry run checks their entries' options
    against their hooks; they are never registered for real."""

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
            problems += external_relations(entry.external, source, (*path, "external"))
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


def external_relations(
    external: External, source: Source, path: tuple[Any, ...]
) -> list[ConfigProblem]:
    """What is wrong in how an `external:` entry's keys go together (its kind, and the
    keys that are for other kinds), each at its key under `path`."""
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
