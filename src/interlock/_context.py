"""`HookContext`: what a handler may know and do besides reading its payload.

A context holds read-only facts (hook, plugin, session, turn, the plugin's config and its
per-session state) and the capability handles the host granted for this call. A handle
exists only where the hook offers it *and* the registration was granted it *and* the host
provided a writer for it; anywhere else the attribute is `None`, so using an ungranted
capability fails loudly instead of doing nothing.

Python cannot stop code from reading private attributes, so this is an authority boundary
for well-behaved plugins; out-of-process plugins are the isolation boundary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._capabilities import Notifier, StatsView, SystemItemSink
from ._frozen import EMPTY, JsonValue, freeze_items, freeze_mapping

if TYPE_CHECKING:
    from ._actions import HookResult
    from ._registry import Registration
    from ._spec import HookSpec


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Read-only facts about the session an event belongs to."""

    id: str
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, JsonValue] = field(default=EMPTY)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", freeze_items(self.tags, str, "tags"))
        object.__setattr__(self, "metadata", freeze_mapping(self.metadata, "metadata"))


_REVOKED: Mapping[str, object] = MappingProxyType({})
_BOUND = {"system_items": SystemItemSink, "notify": Notifier, "stats": StatsView}


class Call:
    """The facts of one invocation, shared by the contexts of its handlers (private)."""

    __slots__ = (
        "handles",
        "rechecking",
        "result",
        "session",
        "spec",
        "states",
        "turn",
    )

    def __init__(
        self,
        spec: HookSpec[Any],
        session: SessionInfo | None,
        turn: int | None,
        handles: Mapping[str, object],
        states: dict[str, dict[str, Any]],
    ) -> None:
        self.spec = spec
        self.session = session
        self.turn = turn
        self.handles = handles
        self.states = states
        self.result: HookResult[Any] | None = None
        self.rechecking = False

    @classmethod
    def unseen(cls, spec: HookSpec[Any]) -> Call:
        """The call every invocation of a plan shares when none of its handlers reads a
        context: no facts, no authority, nothing any handler could see."""
        return cls(spec, None, None, _REVOKED, {})

    @property
    def revoked(self) -> bool:
        """Whether the call's authority ended (`revoke`, `expired`)."""
        return self.handles is _REVOKED

    def revoke(self) -> None:
        """End the call's authority: no more handles, and handles given out stop working."""
        self.handles = _REVOKED

    def expired(self) -> Call:
        """The same facts without authority: what a handler past its timeout is left with."""
        gone = Call(self.spec, self.session, self.turn, _REVOKED, self.states)
        gone.result = self.result
        gone.rechecking = self.rechecking
        return gone

    def follow_up(self, result: HookResult[Any]) -> Call:
        """The call a background handler gets: same facts, the outcome, its own authority.

        The outcome's failures lose their exception objects, whose tracebacks would lead
        to other plugins' frames.
        """
        after = Call(self.spec, self.session, self.turn, self.handles, self.states)
        if result.errors:
            errors = tuple(dataclasses.replace(f, error=None) for f in result.errors)
            result = result._replace(errors=errors)
        after.result = result
        return after


class HookContext:
    """Read-only facts and granted capability handles for one handler call.

    Built by interlock for every call; plugins cannot construct a useful one.

        @hook("pre_tool_call")
        def remind(payload, ctx):
            if ctx.system_items is not None:
                ctx.system_items.append("reminder", "run the tests before committing")
    """

    __slots__ = ("_call", "_reg")

    def __init__(self, call: Call, reg: Registration) -> None:
        self._call = call
        self._reg = reg

    @property
    def hook(self) -> HookSpec[Any]:
        """The hook point being invoked."""
        return self._call.spec

    @property
    def plugin(self) -> str:
        """The name of the plugin this handler belongs to."""
        return self._reg.plugin

    @property
    def session(self) -> SessionInfo | None:
        """The session this event belongs to, if the host gave one."""
        return self._call.session

    @property
    def turn(self) -> int | None:
        """The turn number within the session, if the host gave one."""
        return self._call.turn

    @property
    def recheck(self) -> bool:
        """True when this handler is asked again about the same event because a later
        plugin changed the payload after it answered (gates judge the final payload).

        A handler that counts events (a rate limit, a budget) should not count a recheck
        again; a gate judges the payload as usual.
        """
        return self._call.rechecking

    @property
    def config(self) -> Mapping[str, JsonValue]:
        """The plugin's configuration as registered (read-only)."""
        return self._reg.config

    @property
    def state(self) -> dict[str, Any]:
        """This plugin's own mutable state for the current session scope.

        Each plugin gets its own dict per `manager.session(...)`; outside any session scope
        the dict is shared by all unscoped calls of this plugin.
        """
        states = self._call.states
        state = states.get(self._reg.plugin)
        if state is None:
            state = states[self._reg.plugin] = {}
        return state

    @property
    def system_items(self) -> SystemItemSink | None:
        """The durable, model-visible system-item log, or `None` when not granted here.

        Handles last as long as the call: once the invocation is over, a kept context
        hands out `None` and a kept handle raises `CapabilityError`."""
        handle: SystemItemSink | None = self.capability("system_items")
        return handle

    @property
    def notify(self) -> Notifier | None:
        """The user notifier, or `None` when not granted here."""
        handle: Notifier | None = self.capability("notify")
        return handle

    @property
    def stats(self) -> StatsView | None:
        """The session's plugin statistics (read-only), or `None` when not granted here."""
        handle: StatsView | None = self.capability("stats")
        return handle

    @property
    def capabilities(self) -> frozenset[str]:
        """The capabilities this handler can use here: granted to the registration and
        provided by the host for this call (empty once the call is over)."""
        handles = self._call.handles
        return frozenset(c for c in self._reg.capabilities if handles.get(c) is not None)

    @property
    def result(self) -> HookResult[Any] | None:
        """For background handlers, the outcome of the invocation they follow; else `None`."""
        return self._call.result

    def capability(self, name: str) -> Any:
        """The handle for capability `name` if this hook offers it, the registration holds
        it and the host provided it; otherwise `None`.

        `system_items` and `notify` come as handles bound to this plugin and call (the
        same the properties give); a host-declared capability comes as the host's object.
        """
        if name not in self._reg.capabilities:
            return None
        writer = self._call.handles.get(name)
        if writer is None:
            return None
        bound = _BOUND.get(name)
        return writer if bound is None else bound(writer, self._reg.plugin, self)

    def __repr__(self) -> str:
        return f"<HookContext hook={self.hook.name!r} plugin={self.plugin!r}>"
