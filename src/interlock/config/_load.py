"""Loading a checked config: every enabled entry resolved to its plugin (a `use:` one
constructed, an `external:` one connected), every problem recorded at its key.

The steps live in modules of their own (`_validate`, `_construct`, `_external_entry`,
`_register`); the names the package's loaders use are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..discovery import PluginSource
from ._construct import Problem, StandIn, config_folder, construct, from_use, import_target
from ._external_entry import discard, from_external
from ._register import register
from ._source import Source
from ._validate import Checked, external_relations, in_file_order, validate

__all__ = [
    "Problem",
    "config_folder",
    "construct",
    "discard",
    "import_target",
    "in_file_order",
    "register",
    "resolve",
    "validate",
]

# An entry missing one of these (its value wrong) cannot be loaded for the checks of its
# other keys: what it is, or whether it is on, is not known.
_SOURCES = frozenset({"use", "external", "enabled"})


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
            if entry.use is not None or external_relations(entry.external, source, path):
                continue  # already reported by validate()
            plugin, problems = from_external(entry, entry.external, source.file)
        else:
            plugin, problems = from_use(entry, checked.config, folder, available, dropped)
        for problem in problems:
            where = (*path, *problem.field.split("."))
            checked.problems.append(source.problem(where, problem.message))
            if problem.field == "hook":  # its other keys are judged without it
                checked.entries[index] = entry.model_copy(update={"hook": None})
        if plugin is not None and not isinstance(plugin, StandIn):
            loaded[entry.name] = plugin
        elif plugin is not None:
            checked.stand_ins[entry.name] = plugin.plugin
    return loaded
