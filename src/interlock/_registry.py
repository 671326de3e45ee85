"""Registrations and the immutable per-hook call plans built from them.

Everything that can be decided before a call is decided here, once, at registration:
signature and option checks, condition compiling, which fields a `Modify` may touch,
which capabilities apply, and the sorted order. Invocations read an immutable `Plan`;
registering builds new plans and swaps them in (copy-on-write), so a running invocation
keeps the snapshot it started with.
"""

from __future__ import annotations

import dis
import inspect
import math
import operator
import threading
import types
import typing
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._actions import Modify
from ._conditions import Condition, compile_when
from ._context import Call
from ._exceptions import HandlerSignatureError, RegistrationError
from ._frozen import FrozenDict, freeze_mapping
from ._spec import MODES, ON_ERROR, HookSpec, Mode, OnError, WriteRule

_ADMIT_LOCK = threading.Lock()

Overflow = Literal["drop", "wait"]
"""What a background call does when the background queue is full: `drop` (counted, and
the plugin told through `Plugin.background_dropped`) or `wait` for room (bounded)."""

OVERFLOW: frozenset[str] = frozenset({"drop", "wait"})
OVERFLOW_WAIT = 5.0
"""Seconds an `overflow="wait"` registration without a timeout waits for room at most."""

SAMPLE_EVERY = 16
"""A direct plan times each handler on one invocation in this many (and its first)."""
SAMPLED_LIMIT = 0.01
"""Plans whose handlers have a slow or timeout threshold below this are always timed."""

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class Options:
    """Registration options; `None` means "not set here", so layers can be merged."""

    priority: int | None = None
    mode: Mode | None = None
    on_error: OnError | None = None
    timeout: float | None = None
    when: Mapping[str, str | Sequence[str]] | None = None
    background: bool | None = None
    thread: bool | None = None
    overflow: Overflow | None = None

    def over(self, base: Options) -> Options:
        """These options, falling back to `base` where unset; `when` conditions are merged."""
        when = self.when
        if when is not None and base.when is not None:
            when = {**base.when, **when}
        return Options(
            priority=base.priority if self.priority is None else self.priority,
            mode=base.mode if self.mode is None else self.mode,
            on_error=base.on_error if self.on_error is None else self.on_error,
            timeout=base.timeout if self.timeout is None else self.timeout,
            when=base.when if when is None else when,
            background=base.background if self.background is None else self.background,
            thread=base.thread if self.thread is None else self.thread,
            overflow=base.overflow if self.overflow is None else self.overflow,
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """A manager's failure and slowness settings, shared by its registrations."""

    failure_threshold: int
    cooldown: float
    slow_threshold: float
    clock: Callable[[], float]


class Counters:
    """Mutable per-registration statistics and circuit state (private)."""

    __slots__ = (
        "blocks",
        "calls",
        "circuit",
        "dropped",
        "errors",
        "failures_in_row",
        "modifications",
        "opened_at",
        "policy",
        "samplers",
        "skipped",
        "time_max",
        "time_total",
        "timeouts",
        "violations",
    )

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.calls = 0
        self.errors = 0
        self.timeouts = 0
        self.blocks = 0
        self.modifications = 0
        self.violations = 0
        self.skipped = 0
        self.dropped = 0
        self.time_total = 0.0
        self.time_max = 0.0
        self.failures_in_row = 0
        self.circuit = CLOSED
        self.opened_at = 0.0
        # Samplers of the plans this registration is in, whose pending time is spread
        # before the counters are read (`settle`).
        self.samplers: weakref.WeakSet[Sampler] = weakref.WeakSet()

    def settle(self) -> None:
        """Bring `time_total` up to date with the untimed invocations of its plans."""
        for sampler in tuple(self.samplers):
            sampler.spread()

    def succeeded(self, duration: float) -> None:
        """Count a successful call; the half-open trial's success closes the circuit."""
        self.calls += 1
        self.time_total += duration
        if duration > self.time_max:
            self.time_max = duration
        if self.circuit is OPEN:
            return  # a call admitted before the circuit opened, finishing late
        self.failures_in_row = 0
        self.circuit = CLOSED

    def failed(self, duration: float, *, timeout: bool) -> bool:
        """Count a failure; True when it opens the circuit."""
        self.calls += 1
        self.errors += 1
        self.timeouts += timeout
        self.time_total += duration
        if duration > self.time_max:
            self.time_max = duration
        self.failures_in_row += 1
        if self.circuit is OPEN:
            return False  # a call admitted before the circuit opened, finishing late
        if self.circuit is HALF_OPEN or self.failures_in_row >= self.policy.failure_threshold:
            self.circuit = OPEN
            self.opened_at = self.policy.clock()
            return True
        return False

    def admit(self) -> bool:
        """Whether a call may go through while the circuit is not closed.

        After the cooldown an open circuit lets exactly one trial call through
        (half-open); until that call settles, every other call is turned away.
        """
        with _ADMIT_LOCK:  # only reached while a circuit is open or half-open
            if self.circuit is CLOSED:  # closed meanwhile by another thread
                return True
            if self.circuit is OPEN and (
                self.policy.clock() - self.opened_at >= self.policy.cooldown
            ):
                self.circuit = HALF_OPEN
                return True
            self.skipped += 1
            return False


@dataclass(frozen=True, slots=True, eq=False)
class Registration:
    """One handler attached to one hook, with its resolved options (read-only).

    `manager.registrations()` lists them; `scope` is the session id for session-scoped
    plugins and `None` for global ones. `overflow` is what a background call does when the
    background queue is full: `drop` it (counted), or `wait` for room, at most
    `overflow_wait` seconds.
    """

    plugin: str
    hook: HookSpec[Any]
    priority: int
    mode: Mode
    on_error: OnError
    timeout: float | None
    when: Mapping[str, Any] | None
    background: bool
    thread: bool
    overflow: Overflow
    capabilities: frozenset[str]
    writable: frozenset[str]
    scope: str | None
    fn: Callable[..., Any] = field(repr=False)
    is_async: bool = field(repr=False)
    seq: int = field(repr=False)
    config: FrozenDict = field(repr=False)
    condition: Condition | None = field(repr=False)
    protected: tuple[str, ...] = field(repr=False)
    # The protected fields' values as one tuple (None: no field is protected): a Modify
    # leaves them alone when the two tuples are equal, one C-level comparison.
    protected_values: Callable[[Any], tuple[Any, ...]] | None = field(repr=False)
    scalar_types: tuple[tuple[str, tuple[type[Any], ...]], ...] = field(repr=False)
    rules: tuple[WriteRule, ...] = field(repr=False)
    counters: Counters = field(repr=False)
    limit: float = field(repr=False)  # past this many seconds: log slow, and check the timeout
    direct: bool = field(repr=False)  # a sync, unconditional handler run inline: the fast path
    takes_ctx: bool = field(repr=False)  # False: its code never reads `ctx`, so it gets None
    # The code judged so (None: takes_ctx), to judge again code swapped in (`follow_code`).
    code: types.CodeType | None = field(repr=False)
    # A Modify from it needs no check but the protected fields' (`protected_values`): no
    # scalar types or rules apply, so dispatch takes it in one step (`_outcome.modified`).
    quick: bool = field(repr=False)
    overflow_wait: float | None = field(repr=False)  # None: drop at once when full
    on_drop: Callable[[str, int], None] | None = field(repr=False)  # Plugin.background_dropped


class Sampler:
    """When a plan's direct loop times each handler, and the time it has not yet spread.

    Untimed invocations take one clock pair for the whole loop; their time waits here
    (`pending`) and is spread over the handlers, by the share each took when last timed,
    when stats are read or the plan is replaced. A plan of one handler is timed exactly
    all the same: the loop's time is its handler's, and the slowest loop (`peak`) its
    maximum; in a plan of several, each handler's maximum is at least its share of
    `peak`. `tick` counts invocations; a lost update between threads only moves the next
    sample by one.
    """

    __slots__ = ("__weakref__", "entries", "peak", "pending", "tick")

    def __init__(self, entries: tuple[Registration, ...]) -> None:
        self.entries = entries
        self.tick = 0
        self.pending = 0.0
        self.peak = 0.0
        for reg in entries:
            reg.counters.samplers.add(self)

    def __del__(self) -> None:
        # Its plan was replaced (a registration, a session scope closing): the time it
        # still holds goes to the handlers before it is gone.
        self.spread()

    def spread(self) -> None:
        """Add the pending time to the handlers' totals, in proportion to their means."""
        pending, self.pending = self.pending, 0.0
        peak, self.peak = self.peak, 0.0
        if not pending:
            return
        counters = [reg.counters for reg in self.entries]
        if len(counters) == 1:  # the loops' time is their one handler's: exact
            counters[0].time_total += pending
            counters[0].time_max = max(counters[0].time_max, peak)
            return
        means = [c.time_total / c.calls if c.calls else 0.0 for c in counters]
        total = sum(means)
        for c, mean in zip(counters, means, strict=True):
            share = mean / total if total else 1 / len(counters)
            c.time_total += pending * share
            # The slowest loop's share bounds the handler's estimated time in these calls
            # from above, so its maximum never reads below its mean.
            c.time_max = max(c.time_max, peak * share)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one invocation of one hook runs: an immutable snapshot (private).

    `direct`: every entry is a sync, unconditional handler run inline, so the dispatch
    loop can be the tight one; `sampler` is set when that loop may also skip per-handler
    timing (see `Sampler`), which needs `limit`, the lowest of the entries' slow/timeout
    thresholds, to be well above a loop's own time. `unseen` is set for a plan whose
    handlers never read a context, judge no condition and run in no thread, and that has
    no background handlers: nothing can see the call's facts, so its invocations share
    that one (`Call.unseen`). `awaited`:
    a modify hook with async or threaded handlers, which async hosts run as a coroutine.
    """

    spec: HookSpec[Any]
    entries: tuple[Registration, ...]
    background: tuple[Registration, ...]
    direct: bool = False
    limit: float = math.inf
    sampler: Sampler | None = None
    unseen: Call | None = None
    awaited: bool = False


def build_registration(
    *,
    plugin: str,
    spec: HookSpec[Any],
    fn: Callable[..., Any],
    options: Options,
    capabilities: Iterable[str],
    writable: Iterable[str],
    config: Mapping[str, Any] | None,
    scope: str | None,
    seq: int,
    default_timeout: float,
    policy: Policy,
    on_drop: Callable[[str, int], None] | None = None,
) -> Registration:
    """Check and resolve everything about one handler; raise `RegistrationError` if wrong."""
    is_async = _check_handler(fn, spec, plugin)
    mode = _choice(options.mode, "enforce", MODES, "mode", plugin, spec)
    on_error = _choice(options.on_error, spec.on_error, ON_ERROR, "on_error", plugin, spec)
    timeout = _timeout(default_timeout if options.timeout is None else options.timeout, plugin)
    priority = 0 if options.priority is None else options.priority
    overflow = _choice(options.overflow, "drop", OVERFLOW, "overflow", plugin, spec)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise RegistrationError(
            f"plugin {plugin!r}: priority must be an int, got {priority!r}",
            plugin=plugin,
            hook=spec.name,
        )
    if is_async and options.thread:
        raise RegistrationError(
            f"plugin {plugin!r}, hook {spec.name!r}: thread=True is for sync handlers; "
            "async handlers already run without blocking the event loop",
            plugin=plugin,
            hook=spec.name,
        )
    grants = frozenset(writable) & grantable(spec)
    protected = _protected(spec, grants)
    takes_ctx = reads_context(fn)
    scalar_types = tuple(c for c in spec.scalar_types if c[0] not in protected)
    rules = tuple(rule for rule in spec.rules if rule.name not in grants)
    return Registration(
        plugin=plugin,
        hook=spec,
        priority=priority,
        mode=mode,
        on_error=on_error,
        timeout=timeout,
        when=options.when,
        background=bool(options.background),
        thread=bool(options.thread),
        overflow=overflow,
        capabilities=frozenset(capabilities) & frozenset(spec.capabilities),
        writable=grants,
        scope=scope,
        fn=fn,
        is_async=is_async,
        seq=seq,
        config=freeze_mapping(config, "config"),
        condition=None if options.when is None else compile_when(options.when, spec, plugin),
        protected=protected,
        protected_values=_values_of(protected),
        scalar_types=scalar_types,
        rules=rules,
        counters=Counters(policy),
        limit=min(policy.slow_threshold, math.inf if timeout is None else timeout),
        direct=not is_async and not options.thread and options.when is None,
        takes_ctx=takes_ctx,
        code=None if takes_ctx else _code(fn),
        quick=Modify in spec.accepts and not scalar_types and not rules,
        overflow_wait=None
        if overflow == "drop"
        else (OVERFLOW_WAIT if timeout is None else timeout),
        on_drop=on_drop,
    )


def build_plans(
    registrations: Iterable[Registration],
) -> tuple[dict[object, Plan], frozenset[object]]:
    """Sorted plans for every hook with an enabled registration, keyed by spec, name, alias."""
    by_spec: dict[HookSpec[Any], list[Registration]] = {}
    for reg in registrations:
        if reg.mode != "disabled":
            by_spec.setdefault(reg.hook, []).append(reg)
    plans: dict[object, Plan] = {}
    for spec, regs in by_spec.items():
        follow_code(regs)
        regs.sort(key=lambda r: (r.priority, r.seq))
        entries = tuple(r for r in regs if not r.background)
        direct = bool(entries) and all(r.direct for r in entries)
        limit = min((r.limit for r in entries), default=math.inf)
        sampler = Sampler(entries) if direct and limit >= SAMPLED_LIMIT else None
        plan = Plan(
            spec=spec,
            entries=entries,
            background=tuple(r for r in regs if r.background),
            direct=direct,
            limit=limit,
            sampler=sampler,
            unseen=Call.unseen(spec)
            if regs == list(entries) and all(map(_blind, entries))
            else None,
            awaited=spec.kind == "modify" and any(r.is_async or r.thread for r in entries),
        )
        for key in (spec, *spec.keys):
            plans[key] = plan
    return plans, frozenset(plans)


def _blind(reg: Registration) -> bool:
    """Whether nothing of `reg` can see an invocation's facts: its code never reads the
    context, it has no condition to judge them, and it runs in no thread (which gets a
    context of its own)."""
    return not reg.takes_ctx and reg.condition is None and not reg.thread


def _check_handler(fn: Callable[..., Any], spec: HookSpec[Any], plugin: str) -> bool:
    if not callable(fn):
        raise HandlerSignatureError(
            f"plugin {plugin!r}, hook {spec.name!r}: handler {fn!r} is not callable",
            plugin=plugin,
            hook=spec.name,
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return _is_async(fn)  # builtins without a signature: trust the caller
    try:
        signature.bind(None, None)
    except TypeError:
        raise HandlerSignatureError(
            f"plugin {plugin!r}, hook {spec.name!r}: handler {_name(fn)}{signature} must "
            "accept two positional arguments, (payload, ctx)",
            plugin=plugin,
            hook=spec.name,
        ) from None
    _check_payload_annotation(fn, signature, spec, plugin)
    return _is_async(fn)


def _check_payload_annotation(
    fn: Callable[..., Any], signature: inspect.Signature, spec: HookSpec[Any], plugin: str
) -> None:
    first = next(iter(signature.parameters), None)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations are the author's business, not ours
        return
    annotation = hints.get(first) if first is not None else None
    if not isinstance(annotation, type) or annotation is object or annotation is Any:
        return
    if not issubclass(spec.payload_type, annotation):
        raise HandlerSignatureError(
            f"plugin {plugin!r}: handler {_name(fn)} takes a {annotation.__name__} payload, "
            f"but hook {spec.name!r} passes {spec.payload_type.__name__}; register it for a "
            "hook with that payload or fix the annotation",
            plugin=plugin,
            hook=spec.name,
        )


# Names through which code can reach a frame's locals without naming them (a debugger
# shows them too).
_INTROSPECTION = frozenset(
    {
        "locals",
        "vars",
        "eval",
        "exec",
        "currentframe",
        "_getframe",
        "stack",
        "f_locals",
        "breakpoint",
        "set_trace",
    }
)


def reads_context(fn: Callable[..., Any]) -> bool:
    """Whether `fn` may read its second argument, `ctx`; False only when its code provably
    never does, so that the call can pass None instead of building a context."""
    skip = 1
    if inspect.ismethod(fn):
        fn, skip = fn.__func__, 2
    code = getattr(fn, "__code__", None) if inspect.isfunction(fn) else None
    if code is None or code.co_argcount <= skip:
        return True  # a callable object, a partial, a builtin, or `*args` that takes ctx
    name = code.co_varnames[skip]
    if name in code.co_cellvars or not _INTROSPECTION.isdisjoint(code.co_names):
        return True
    for instruction in dis.get_instructions(code):
        if "FAST" in instruction.opname:
            used = instruction.argval
            if name == used or (isinstance(used, tuple) and name in used):
                return True
    return False


def _code(fn: Callable[..., Any]) -> types.CodeType | None:
    fn = getattr(fn, "__func__", fn)  # a bound method's function
    code = getattr(fn, "__code__", None)
    return code if isinstance(code, types.CodeType) else None


def follow_code(registrations: Iterable[Registration]) -> None:
    """Judge again the handlers judged never to read `ctx` whose function got other code
    since (a reloader such as IPython's autoreload swaps `__code__` in place): one that
    reads it now gets a context from then on. Called as plans are built, on the timed
    invocations of direct loops, and when such a handler fails (say, reading a None
    `ctx`). Until its plan is rebuilt, a plan whose handlers read no context
    (`Plan.unseen`) gives it a context without the call's facts."""
    for reg in registrations:
        if reg.code is not None and _code(reg.fn) is not reg.code:
            takes_ctx = reads_context(reg.fn)
            # The two fields that follow the function's code, on a registration otherwise
            # read-only: written before plans are rebuilt, or as one invocation starts.
            object.__setattr__(reg, "code", None if takes_ctx else _code(reg.fn))
            object.__setattr__(reg, "takes_ctx", takes_ctx)


def _is_async(fn: Callable[..., Any]) -> bool:
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - instances with async __call__
    return inspect.iscoroutinefunction(fn) or (
        not inspect.isroutine(fn) and inspect.iscoroutinefunction(call)
    )


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _choice(
    value: str | None,
    default: str,
    allowed: frozenset[str],
    what: str,
    plugin: str,
    spec: HookSpec[Any],
) -> Any:
    chosen = default if value is None else value
    if chosen not in allowed:
        raise RegistrationError(
            f"plugin {plugin!r}, hook {spec.name!r}: {what} must be one of "
            f"{', '.join(sorted(allowed))}, got {chosen!r}",
            plugin=plugin,
            hook=spec.name,
        )
    return chosen


def _timeout(value: object, plugin: str) -> float | None:
    if value is None or value == math.inf:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise RegistrationError(
            f"plugin {plugin!r}: timeout must be a positive number of seconds or None, "
            f"got {value!r}",
            plugin=plugin,
        )
    return float(value)


def _protected(spec: HookSpec[Any], grants: frozenset[str]) -> tuple[str, ...]:
    """The payload fields a `Modify` from this registration must leave as they were."""
    if spec.writable is None:
        return ()
    writable = frozenset(spec.writable) | grants
    return tuple(f for f in spec.fields if f not in writable)


def _values_of(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]] | None:
    if not names:
        return None
    get = operator.attrgetter(*names)
    if len(names) > 1:
        return get
    return lambda payload: (get(payload),)


def grantable(spec: HookSpec[Any]) -> frozenset[str]:
    """What `writable=` can grant at `spec`: payload fields and rule names (modify hooks)."""
    if spec.kind != "modify":
        return frozenset()
    return frozenset({*spec.fields, *(rule.name for rule in spec.rules)})
