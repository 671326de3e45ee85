"""Read-only snapshots of what registrations have done: `manager.stats()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._registry import Registration

CircuitState = Literal["closed", "open", "half-open"]


@dataclass(frozen=True, slots=True)
class RegistrationStats:
    """Counters of one registration at the moment `stats()` was called.

    `calls` counts every call that ran (failed ones included); `skipped` counts calls the
    open circuit breaker turned away; `dropped` counts background calls that never ran
    because the background queue was full. Times are in seconds.
    """

    plugin: str
    hook: str
    scope: str | None
    mode: str
    priority: int
    calls: int
    errors: int
    timeouts: int
    blocks: int
    modifications: int
    violations: int
    skipped: int
    circuit: CircuitState
    time_total: float
    time_max: float
    dropped: int = 0

    @property
    def time_mean(self) -> float:
        """Mean seconds per call (0 before the first call)."""
        return self.time_total / self.calls if self.calls else 0.0

    @classmethod
    def of(cls, reg: Registration) -> RegistrationStats:
        """Snapshot the counters of `reg`."""
        c = reg.counters
        c.settle()  # time of untimed invocations not yet spread over the handlers
        return cls(
            plugin=reg.plugin,
            hook=reg.hook.name,
            scope=reg.scope,
            mode=reg.mode,
            priority=reg.priority,
            calls=c.calls,
            errors=c.errors,
            timeouts=c.timeouts,
            blocks=c.blocks,
            modifications=c.modifications,
            violations=c.violations,
            skipped=c.skipped,
            circuit=c.circuit,  # type: ignore[arg-type]
            time_total=c.time_total,
            time_max=c.time_max,
            dropped=c.dropped,
        )


@dataclass(frozen=True, slots=True)
class ManagerStats:
    """Everything `manager.stats()` reports; `background_dropped` is the sum of every
    registration's `dropped`, those no longer registered included."""

    registrations: tuple[RegistrationStats, ...]
    background_pending: int
    background_dropped: int

    def for_plugin(self, plugin: str) -> tuple[RegistrationStats, ...]:
        """The stats of every registration of `plugin`."""
        return tuple(s for s in self.registrations if s.plugin == plugin)

    def get(self, plugin: str, hook: str) -> RegistrationStats:
        """The stats of `plugin` at `hook`; raises `KeyError` when there is no such one."""
        for stats in self.registrations:
            if stats.plugin == plugin and stats.hook == hook:
                return stats
        raise KeyError(f"no registration of plugin {plugin!r} at hook {hook!r}")
