"""`when=` conditions: glob matches on payload and context fields, compiled at registration.

    when={"tool_name": ["shell", "fs_*"], "session.tags": "prod", "arguments.path": "/etc/*"}

Every key must match (and); a list of globs matches if any glob does (or). A key is a
dotted path: its first part is a payload field, or `session` (`session.id`,
`session.tags`, `session.metadata.<key>`), `hook` or `turn`. A value that is a sequence
(such as tags) matches when any element does. A missing value never matches.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._exceptions import ConditionError

if TYPE_CHECKING:
    from ._context import Call
    from ._spec import HookSpec

Condition = Callable[[Any, "Call"], bool]

_CONTEXT_ROOTS = frozenset({"session", "hook", "turn"})
_MISSING = object()


def compile_when(
    when: Mapping[str, str | Sequence[str]], spec: HookSpec[Any], plugin: str
) -> Condition:
    """Compile `when` for one hook; raise `ConditionError` naming the plugin, hook and key."""
    if not isinstance(when, Mapping):
        raise ConditionError(
            f"plugin {plugin!r}: when= must be a mapping of field paths to globs, "
            f"got {type(when).__name__}",
            plugin=plugin,
            hook=spec.name,
        )
    tests = tuple(_compile_one(key, globs, spec, plugin) for key, globs in when.items())

    def condition(payload: Any, call: Call) -> bool:
        return all(test(payload, call) for test in tests)

    return condition


def applicable(
    when: Mapping[str, str | Sequence[str]] | None, spec: HookSpec[Any]
) -> Mapping[str, str | Sequence[str]] | None:
    """The part of a plugin-wide `when` that applies to `spec` (keys it has), or None."""
    if not isinstance(when, Mapping):
        return when  # malformed: compile_when says what is wrong
    kept = {key: globs for key, globs in when.items() if valid_key(key, spec)}
    return kept or None


def valid_key(key: str, spec: HookSpec[Any]) -> bool:
    """Whether `key` names a payload field of `spec` or a context fact."""
    path = key.split(".")
    if not all(path):
        return False
    return path[0] in _CONTEXT_ROOTS or not spec.fields or path[0] in spec.fields


def unknown_key(key: str, specs: Sequence[HookSpec[Any]], plugin: str) -> ConditionError:
    """The error for a `when` key that no hook of the plugin has."""
    known = ", ".join(sorted({f for spec in specs for f in spec.fields} | _CONTEXT_ROOTS))
    hooks = ", ".join(sorted({spec.name for spec in specs}))
    return ConditionError(
        f"plugin {plugin!r}: when= key {key!r} names no field of its hooks ({hooks}); "
        f"use one of {known} (dotted paths reach nested values)",
        plugin=plugin,
        hook=specs[0].name if len(specs) == 1 else None,
    )


def _compile_one(
    key: str, globs: str | Sequence[str], spec: HookSpec[Any], plugin: str
) -> Condition:
    path = tuple(key.split("."))
    root = path[0]
    if not valid_key(key, spec):
        raise unknown_key(key, [spec], plugin)
    pattern = _pattern(key, globs, spec, plugin)
    # A payload field wins over a context fact of the same name (turn_end's own `turn`).
    from_context = root in _CONTEXT_ROOTS and root not in spec.fields
    walk = path[1:] if from_context else path

    def test(payload: Any, call: Call) -> bool:
        start = _context_root(call, root) if from_context else payload
        return _matches(_resolve(start, walk), pattern)

    return test


def _pattern(
    key: str, globs: str | Sequence[str], spec: HookSpec[Any], plugin: str
) -> re.Pattern[str]:
    items = [globs] if isinstance(globs, str) else globs
    if (
        not isinstance(items, list | tuple)
        or not items
        or not all(isinstance(g, str) for g in items)
    ):
        raise ConditionError(
            f"plugin {plugin!r}, hook {spec.name!r}: when= value for {key!r} must be a glob "
            f"string or a non-empty list of them, got {globs!r}",
            plugin=plugin,
            hook=spec.name,
        )
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in items))


def _context_root(call: Call, root: str) -> Any:
    if root == "session":
        return call.session
    if root == "hook":
        return call.spec.name
    return call.turn


def _resolve(value: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if value is None or value is _MISSING:
            return _MISSING
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        else:
            value = getattr(value, part, _MISSING)
    return value


def _matches(value: Any, pattern: re.Pattern[str]) -> bool:
    if value is None or value is _MISSING:
        return False
    if isinstance(value, tuple | list | frozenset | set):
        return any(_matches(item, pattern) for item in value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    return pattern.match(str(value)) is not None
