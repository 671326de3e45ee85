"""`HookSpec`: a declared place in the host's lifecycle, and the rules of what happens there."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from ._actions import Ask, Block, Continue, Modify, Respond
from ._exceptions import SpecError, UnknownHookError

P = TypeVar("P")

Kind = Literal["modify", "observe"]
"""`modify` hooks run handlers in order and chain their answers; `observe` hooks run them
concurrently and accept no action."""

OnError = Literal["ignore", "block"]
"""What a failing handler means: `ignore` (log, count, continue) or `block` (fail closed)."""

Mode = Literal["enforce", "permissive", "disabled"]
"""`enforce` honours blocks, `permissive` records them as violations, `disabled` never runs."""

KINDS: frozenset[str] = frozenset({"modify", "observe"})
ON_ERROR: frozenset[str] = frozenset({"ignore", "block"})
MODES: frozenset[str] = frozenset({"enforce", "permissive", "disabled"})

_ACTIONS: frozenset[type[Any]] = frozenset({Modify, Block, Respond, Ask})


@dataclass(frozen=True, slots=True)
class WriteRule:
    """A finer limit on `Modify` than writable fields, lifted by granting its `name`.

    `check(old, new)` returns `None` when the change is allowed, else what was wrong.
    """

    name: str
    check: Callable[[Any, Any], str | None]
    description: str = ""


@dataclass(frozen=True, eq=False, slots=True)
class HookSpec(Generic[P]):
    """A hook point: its name, payload type, kind, accepted actions and capability slots.

    Hosts declare their own with `PluginManager.declare`:

        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Compiled:
        ...     source: str
        >>> ON_COMPILE = HookSpec("on_compile", Compiled, kind="modify",
        ...                       accepts={Modify, Block}, writable={"source"})

    `writable` names the payload fields a `Modify` may change (`None`: all of them);
    `rules` add finer limits; a registration may be granted more with `writable=`.
    `on_error` is the default for registrations that do not choose (gates that guard side
    effects fail closed). Specs compare by identity.
    """

    name: str
    payload_type: type[P]
    kind: Kind = "observe"
    accepts: Collection[type[Any]] = frozenset()
    capabilities: Collection[str] = frozenset()
    aliases: tuple[str, ...] = ()
    writable: Collection[str] | None = None
    rules: tuple[WriteRule, ...] = ()
    on_error: OnError = "ignore"
    response_type: type[Any] | None = None
    description: str = ""
    fields: tuple[str, ...] = field(init=False, repr=False)
    scalar_types: tuple[tuple[str, tuple[type[Any], ...]], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise SpecError(f"hook name {self.name!r} must be a Python identifier")
        if self.kind not in KINDS:
            raise SpecError(f"hook {self.name!r}: kind must be 'modify' or 'observe'")
        if self.on_error not in ON_ERROR:
            raise SpecError(f"hook {self.name!r}: on_error must be 'ignore' or 'block'")
        accepts = frozenset(self.accepts) - {Continue}
        self._check_accepts(accepts)
        names = _field_names(self.payload_type)
        writable = None if self.writable is None else frozenset(self.writable)
        if writable is not None and names is None:
            raise SpecError(f"hook {self.name!r}: writable fields need a dataclass payload type")
        if writable is not None and names is not None and not writable <= set(names):
            unknown = ", ".join(sorted(writable - set(names)))
            raise SpecError(
                f"hook {self.name!r}: writable fields {unknown} are not fields of "
                f"{self.payload_type.__name__}"
            )
        object.__setattr__(self, "accepts", accepts)
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))
        object.__setattr__(self, "writable", writable)
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "fields", names or ())
        object.__setattr__(self, "scalar_types", _scalar_types(self.payload_type))

    def _check_accepts(self, accepts: frozenset[type[Any]]) -> None:
        unknown = accepts - _ACTIONS
        if unknown:
            names = ", ".join(sorted(t.__name__ for t in unknown))
            raise SpecError(f"hook {self.name!r}: {names} are not actions")
        if self.kind == "observe" and accepts:
            raise SpecError(f"hook {self.name!r}: observe hooks accept no actions")
        if Respond in accepts and self.response_type is None:
            raise SpecError(f"hook {self.name!r}: accepting Respond needs a response_type")

    @property
    def keys(self) -> tuple[str, ...]:
        """The name and every alias this hook can be addressed by."""
        return (self.name, *self.aliases)

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of this hook's payload type (needs pydantic, imported here)."""
        from pydantic import TypeAdapter

        schema: dict[str, Any] = TypeAdapter(self.payload_type).json_schema()
        return schema

    def __repr__(self) -> str:
        return f"HookSpec({self.name!r}, {self.payload_type.__name__}, kind={self.kind!r})"


def _field_names(payload_type: type[Any]) -> tuple[str, ...] | None:
    if not dataclasses.is_dataclass(payload_type):
        return None
    return tuple(f.name for f in dataclasses.fields(payload_type))


_SCALARS = (str, int, float, bool)


def _scalar_types(payload_type: type[Any]) -> tuple[tuple[str, tuple[type[Any], ...]], ...]:
    """Fields annotated with scalar types (or optional ones), to check values plugins return.

    A `Modify` payload is built by a plugin, so its scalars are checked before the host
    sees them; mappings and sequences are already checked when the payload is built.
    """
    if not dataclasses.is_dataclass(payload_type):
        return ()
    try:
        hints = typing.get_type_hints(payload_type)
    except Exception:  # unresolvable annotations: nothing to check against
        return ()
    checks = []
    for name in _field_names(payload_type) or ():
        hint = hints.get(name)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        options = typing.get_args(hint) if union else (hint,)
        allowed = tuple(
            type(None) if option is type(None) else option
            for option in options
            if option in _SCALARS or option is type(None)
        )
        if allowed and len(allowed) == len(options):
            checks.append((name, allowed))
    return tuple(checks)


def unknown_hook(name: str, known: Collection[Any]) -> UnknownHookError:
    """Build the error for an unknown hook name, suggesting the closest known names."""
    close = difflib.get_close_matches(name, [k for k in known if isinstance(k, str)], n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UnknownHookError(f"no hook is called {name!r}{hint}", hook=name)
