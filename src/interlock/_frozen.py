"""Read-only JSON data, frozen once at construction.

Payloads freeze their nested data when they are built, so handing the same payload to every
handler costs nothing per handler: no copies, no deep copies. Mappings become `FrozenDict`,
lists become tuples, and anything that is not JSON data is refused with the path to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

from typing_extensions import TypeAliasType

# Sequence and Mapping are resolved from this module when pydantic builds a schema.
JsonValue = TypeAliasType(
    "JsonValue",
    "bool | int | float | str | Sequence[JsonValue] | Mapping[str, JsonValue] | None",
)
"""JSON data as payloads hold it: scalars, tuples and read-only mappings, nested."""

_SCALARS = (str, int, float, bool, type(None))


class FrozenDict(dict[str, Any]):
    """A `dict` that cannot be changed after construction; its values are frozen too.

    It is a real `dict` for reading (fast lookups, `json.dumps`, `isinstance(x, dict)`), and
    every mutating method raises `TypeError`. To change one, build a new mapping:

        >>> args = FrozenDict({"command": "ls"})
        >>> new_args = {**args, "command": "ls -la"}
    """

    __slots__ = ()

    def __new__(cls, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), /) -> FrozenDict:
        frozen: FrozenDict = freeze_json(data if isinstance(data, Mapping) else dict(data))
        return frozen

    def __init__(self, data: Any = (), /) -> None:
        # Construction happens in __new__; dict.__init__ would otherwise refill the mapping.
        pass

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "FrozenDict is read-only; build a new mapping instead, e.g. {**old, key: value}"
        )

    __setitem__ = _read_only
    __delitem__ = _read_only
    __ior__ = _read_only
    clear = _read_only
    pop = _read_only
    popitem = _read_only
    setdefault = _read_only
    update = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def copy(self) -> dict[str, Any]:
        """Return a plain, mutable `dict` with the same items (values stay frozen)."""
        return dict(self)

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Validate as a JSON object, then freeze; serialize as a plain dict."""
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(
            cls,
            handler(dict[str, JsonValue]),
            serialization=core_schema.plain_serializer_function_ser_schema(dict),
        )


def freeze_json(value: Any, path: str = "value") -> Any:
    """Return `value` as frozen JSON data: mappings to `FrozenDict`, sequences to tuples.

    Raises `TypeError` naming the path (from `path`) of the first value that is not JSON.
    """
    try:
        return _freeze(value)
    except _NotJson:
        where, culprit = _find_culprit(value, path)
        raise TypeError(
            f"{where}: {culprit} is not JSON data; payloads hold str, int, float, bool, None, "
            "lists/tuples and str-keyed mappings"
        ) from None


class _NotJson(Exception):
    """Raised inside freezing; `freeze_json` turns it into a TypeError with the path."""


_PLAIN = frozenset({str, int, float, bool, type(None), FrozenDict})


def _freeze(value: Any) -> Any:
    # Exact-type checks first: this runs for every value of every payload the host builds.
    cls = value.__class__
    if cls in _PLAIN:
        return value
    if cls is dict or isinstance(value, Mapping):
        return _fill(dict.__new__(FrozenDict), value.items())
    if cls is list or cls is tuple:
        return tuple([_freeze(item) for item in value])
    if isinstance(value, _SCALARS):
        return value
    raise _NotJson


def _fill(target: FrozenDict, items: Iterable[tuple[Any, Any]]) -> FrozenDict:
    frozen = {k: v if v.__class__ in _PLAIN else _freeze(v) for k, v in items}
    for key in frozen:
        if key.__class__ is not str and not isinstance(key, str):
            raise _NotJson
    dict.update(target, frozen)
    return target


def _find_culprit(value: Any, path: str) -> tuple[str, str]:
    """Walk `value` again, slowly, to name the first part that is not JSON data."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return path, f"the key {key!r} ({type(key).__name__}, keys must be str)"
            try:
                _freeze(item)
            except _NotJson:
                return _find_culprit(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            try:
                _freeze(item)
            except _NotJson:
                return _find_culprit(item, f"{path}[{index}]")
    return path, type(value).__name__


EMPTY = FrozenDict()
"""The shared empty mapping (tool arguments default to it)."""


def freeze_mapping(value: Mapping[str, Any] | None, field: str) -> FrozenDict:
    """Freeze a mapping field; `None` becomes an empty mapping (tool arguments are never None)."""
    if value is None:
        return EMPTY
    if value.__class__ is FrozenDict:
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"{field}: expected a mapping, got {type(value).__name__}")
    frozen: FrozenDict = freeze_json(value, field)
    return frozen


def freeze_items(value: Iterable[Any], item_type: type[Any], field: str) -> tuple[Any, ...]:
    """Freeze a sequence field of payload values into a tuple, checking each item's type."""
    if isinstance(value, str | bytes):
        raise TypeError(f"{field}: expected a sequence of {item_type.__name__}, got a string")
    items = value if type(value) is tuple else tuple(value)
    for index, item in enumerate(items):
        if not isinstance(item, item_type):
            raise TypeError(
                f"{field}[{index}]: expected {item_type.__name__}, got {type(item).__name__}"
            )
    return items
