"""Capability handles: the only side effects a plugin can cause, created by interlock.

The host provides *writers* (an object per capability, for a call or a session); a plugin
gets a *handle* bound to itself and to the call. The handle checks what the plugin sends,
tells the writer which plugin it came from, and stops working when the call is over.

    class MyHost:                                    # the host's side
        def write_system_item(self, kind, text, *, plugin): ...
        def write_notification(self, text, *, level, plugin): ...

    ctx.system_items.append("reminder", "run the tests")   # the plugin's side
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, final, runtime_checkable

from ._exceptions import CapabilityError

if TYPE_CHECKING:
    from ._context import HookContext
    from ._stats import RegistrationStats

Level = Literal["info", "warning", "error"]
_LEVELS = frozenset({"info", "warning", "error"})


@runtime_checkable
class SystemItemWriter(Protocol):
    """The host's side of `system_items`: record an item in the session's durable log.

    The item must be stored before this returns, and become part of the model's context
    on the next model call.
    """

    def write_system_item(self, kind: str, text: str, *, plugin: str) -> None:
        """Store one system item from `plugin`."""
        ...


@runtime_checkable
class NotificationWriter(Protocol):
    """The host's side of `notify`: show the user something; never the model."""

    def write_notification(self, text: str, *, level: Level, plugin: str) -> None:
        """Show one notification from `plugin`."""
        ...


@runtime_checkable
class StatsReader(Protocol):
    """The host's side of `stats`: the plugin statistics of the session (read-only)."""

    def read_stats(self) -> tuple[RegistrationStats, ...]:
        """Counters of the registrations this session runs: the global ones and its own."""
        ...


# A `StatsReader` may also define `async def settle(self) -> None`: wait until the background
# calls other than the caller have finished (`PluginManager.settle`). `StatsView.settled`
# awaits it where it exists; not a Protocol member, so that readers without it still match.


def check_system_item(plugin: str, kind: object, text: object) -> None:
    """Raise `CapabilityError` unless `kind` and `text` make a system item."""
    if not isinstance(kind, str) or not kind or not isinstance(text, str):
        raise CapabilityError(
            f"plugin {plugin!r}: system_items.append takes a non-empty kind and a "
            f"text, both str; got {type(kind).__name__} and {type(text).__name__}",
            plugin=plugin,
        )


def check_notification(plugin: str, text: object, level: object) -> None:
    """Raise `CapabilityError` unless `text` and `level` make a notification."""
    if not isinstance(text, str) or not isinstance(level, str) or level not in _LEVELS:
        raise CapabilityError(
            f"plugin {plugin!r}: notify takes a str text and a level among "
            f"{', '.join(sorted(_LEVELS))}; got {type(text).__name__} and {level!r}",
            plugin=plugin,
        )


class _Handle:
    __slots__ = ("_ctx", "_plugin", "_writer")

    def __init__(self, writer: object, plugin: str, ctx: HookContext) -> None:
        self._writer = writer
        self._plugin = plugin
        self._ctx = ctx  # its call ends when the invocation does, or the handler's time is up

    def _check_live(self, capability: str) -> None:
        if self._ctx._call.revoked:
            raise CapabilityError(
                f"plugin {self._plugin!r} used {capability} after its call ended (the "
                "invocation finished, or the handler ran past its timeout); capability "
                "handles last as long as the call, so ask the context again in a later call",
                plugin=self._plugin,
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for plugin {self._plugin!r}>"


@final
class SystemItemSink(_Handle):
    """Capability: append a system item to the session's durable log.

    Appended items become part of the model's context on the next model call and are
    listed to the user with the plugin that added them; this is the only model-visible
    path a plugin has.

        if ctx.system_items is not None:
            ctx.system_items.append("reminder", "run the tests before committing")
    """

    __slots__ = ()

    def append(self, kind: str, text: str) -> None:
        """Append one item of `kind` (a short label such as `"reminder"`) with `text`."""
        self._check_live("system_items")
        check_system_item(self._plugin, kind, text)
        writer: SystemItemWriter = self._writer  # type: ignore[assignment]
        writer.write_system_item(kind, text, plugin=self._plugin)


@final
class Notifier(_Handle):
    """Capability: tell the user something; never shown to the model."""

    __slots__ = ()

    def notify(self, text: str, *, level: Level = "info") -> None:
        """Show `text` to the user at `level` (`info`, `warning` or `error`)."""
        self._check_live("notify")
        check_notification(self._plugin, text, level)
        writer: NotificationWriter = self._writer  # type: ignore[assignment]
        writer.write_notification(text, level=level, plugin=self._plugin)


@final
class StatsView(_Handle):
    """Capability: read what the plugins of this session have done (calls, errors, blocks,
    time per registration). Read-only: a profiler's or a report's view, no side effect.

        if ctx.stats is not None:
            slowest = max(ctx.stats.registrations(), key=lambda s: s.time_max)
    """

    __slots__ = ()

    def registrations(self) -> tuple[RegistrationStats, ...]:
        """A snapshot of the counters of every registration of the session."""
        self._check_live("stats")
        reader: StatsReader = self._writer  # type: ignore[assignment]
        return tuple(reader.read_stats())

    async def settled(self) -> tuple[RegistrationStats, ...]:
        """In a background handler: the snapshot once the other background calls have
        finished, so that a report made at the end of a session counts them all.

            @hook("session_end", background=True, overflow="wait", timeout=None)
            async def report(payload, ctx):
                stats = await ctx.stats.settled()

        Where the host cannot wait for background work, the snapshot at once. Raises
        `CapabilityError` outside a background handler: an awaited handler runs before
        the invocation's own background calls start, and others may be waiting for it.
        """
        self._check_live("stats")
        if self._ctx.result is None:
            raise CapabilityError(
                f"plugin {self._plugin!r} called stats.settled() from a handler that is not "
                f"a background one (hook {self._ctx.hook.name!r}); register that handler with "
                "background=True, or read stats.registrations() for the counters so far",
                plugin=self._plugin,
            )
        settle = getattr(self._writer, "settle", None)
        if settle is not None:
            await settle()
        return self.registrations()
