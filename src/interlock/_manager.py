"""`PluginManager`: the one object a host holds; and `SessionScope`, its per-session view."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar, overload

from ._actions import EMPTY_RESULT, HookResult
from ._background import Background
from ._conditions import applicable, unknown_key, valid_key
from ._context import Call, SessionInfo
from ._dispatch import begin, run_awaited, run_background, start
from ._exceptions import (
    DuplicatePluginError,
    InterlockError,
    PayloadTypeError,
    RegistrationError,
    SpecError,
    UnknownHookError,
    UnknownPluginError,
)
from ._frozen import JsonValue
from ._log import logger
from ._plugin import HookRef, Member, Plugin, PluginSet, collect, plugin_name
from ._portal import Portal
from ._registry import (
    CLOSED,
    Options,
    Overflow,
    Plan,
    Policy,
    Registration,
    build_plans,
    build_registration,
    grantable,
    reads_context,
)
from ._spec import HookSpec, Mode, OnError, unknown_hook
from ._stats import ManagerStats, RegistrationStats
from .hooks import CATALOG

P = TypeVar("P")

_NO_HANDLES: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True, eq=False)
class PluginHandle:
    """What `register` returns: the plugin's name and its registrations.

    Pass it (or the name) to `unregister`. For a `PluginSet`, `plugins` lists the set's
    members, which register and unregister together; `objects` are the plugin objects.
    """

    name: str
    plugins: tuple[str, ...]
    registrations: tuple[Registration, ...]
    scope: str | None = None
    objects: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class _Request:
    """One `register` call's arguments, as passed down to every member of a set."""

    name: str | None
    hook: HookRef | None
    options: Options
    capabilities: tuple[str, ...]
    writable: tuple[str, ...]
    config: Mapping[str, Any] | None


class PluginManager:
    """Holds hook specs and registrations, and invokes hooks for the host.

        manager = PluginManager()
        manager.register(no_rm)
        if manager.has(hooks.PRE_TOOL_CALL):       # skip building the payload otherwise
            result = await manager.invoke(hooks.PRE_TOOL_CALL, call)
            if result.blocked:
                ...                                # result.reason, result.blocked_by
            call = result.payload or call
        await manager.aclose()

    Settings: `default_timeout` (seconds, `math.inf` for none) applies to registrations that
    do not set one; `slow_threshold` is when a handler call gets a "slow plugin" log line;
    after `failure_threshold` failures in a row a registration is suspended for `cooldown`
    seconds, then gets one trial call; at most `background_limit` background calls wait,
    further ones are dropped and counted, or (`overflow="wait"` registrations) wait for
    room. `clock` (monotonic seconds) drives the breaker.
    """

    has: Callable[[HookRef], bool]
    """`manager.has(hook)`: whether any registration could fire for `hook` (O(1)).

    Ask it before building a payload: when it is False, `invoke` would do nothing. It is
    a bound `frozenset.__contains__`, swapped on every registration change, so the
    question costs about as much as a dict lookup.
    """

    def __init__(
        self,
        *,
        specs: Iterable[HookSpec[Any]] = (),
        default_timeout: float = 5.0,
        slow_threshold: float = 0.5,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        background_limit: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if default_timeout is None or not default_timeout > 0:
            raise ValueError(
                f"default_timeout must be a positive number of seconds (math.inf for no "
                f"timeout), got {default_timeout!r}"
            )
        if failure_threshold < 1 or cooldown < 0 or background_limit < 1 or slow_threshold < 0:
            raise ValueError(
                "failure_threshold and background_limit must be >= 1, cooldown and "
                "slow_threshold >= 0"
            )
        self._default_timeout = default_timeout
        self._policy = Policy(failure_threshold, cooldown, slow_threshold, clock)
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self._specs: dict[object, HookSpec[Any]] = {}
        self._handles: dict[str, PluginHandle] = {}
        self._registrations: tuple[Registration, ...] = ()
        self._plans: dict[object, Plan | None] = {}  # None: declared, nobody registered
        self._version = 0  # of the global registrations: scopes' plans are built over them
        self._scopes: set[SessionScope] = set()
        # Hook keys of the open scopes' registrations, counted: with the global ones, what
        # `has` answers. Opening or closing a scope touches its own keys only.
        self._listening: frozenset[object] = frozenset()
        self._scoped_keys: Counter[object] = Counter()
        self._scope_var: ContextVar[SessionScope | None] = ContextVar(
            f"interlock_scope_{id(self):x}", default=None
        )
        self._states: dict[str, dict[str, Any]] = {}
        self._background = Background(background_limit)
        self._portal = Portal()
        # Set by `interlock.observability.instrument`: wraps each handler as registered.
        self._wrap: Callable[[Registration], Callable[..., Any]] | None = None
        # A manager dropped without close() must not leave its helper thread behind.
        weakref.finalize(self, self._portal.close)
        self.declare(*CATALOG, *specs)

    # -- hook specs -------------------------------------------------------------------

    def declare(self, *specs: HookSpec[Any]) -> None:
        """Add host-defined hook points; their names and aliases must be new."""
        with self._lock:
            for spec in specs:
                if not isinstance(spec, HookSpec):
                    raise SpecError(f"declare() takes HookSpec objects, got {spec!r}")
                for key in spec.keys:
                    other = self._specs.get(key)
                    if other is not None and other is not spec:
                        raise SpecError(
                            f"hook {spec.name!r}: the name {key!r} is already declared by "
                            f"hook {other.name!r}"
                        )
                self._specs[spec] = spec
                for key in spec.keys:
                    self._specs[key] = spec
            self._changed()

    def spec(self, hook: HookRef) -> HookSpec[Any]:
        """The declared spec for a hook name, alias or spec; raises `UnknownHookError`."""
        if isinstance(hook, HookSpec):
            if self._specs.get(hook) is not hook:
                raise UnknownHookError(
                    f"hook {hook.name!r} is not declared on this manager; declare it first "
                    "with PluginManager(specs=[...]) or manager.declare(spec)",
                    hook=hook.name,
                )
            return hook
        spec = self._specs.get(hook)
        if spec is None:
            raise unknown_hook(hook, self._specs)
        return spec

    def specs(self) -> tuple[HookSpec[Any], ...]:
        """Every declared hook point, the catalog first."""
        return tuple(dict.fromkeys(self._specs.values()))

    # -- registration -----------------------------------------------------------------

    def register(
        self,
        plugin: object,
        *,
        name: str | None = None,
        hook: HookRef | None = None,
        priority: int | None = None,
        mode: Mode | None = None,
        on_error: OnError | None = None,
        timeout: float | None = None,
        when: Mapping[str, str | Sequence[str]] | None = None,
        background: bool | None = None,
        thread: bool | None = None,
        overflow: Overflow | None = None,
        capabilities: Iterable[str] = (),
        writable: Iterable[str] = (),
        config: Mapping[str, JsonValue] | None = None,
        scope: SessionScope | None = None,
    ) -> PluginHandle:
        """Attach a handler, a `Plugin`, an object or module with `@hook` handlers, or a
        `PluginSet`. Options given here override the plugin author's `@hook` options.

        - `priority`: lower runs first; ties run in registration order.
        - `mode`: `enforce` | `permissive` (blocks recorded as violations) | `disabled`.
        - `on_error`: `ignore` (fail open) | `block` (fail closed); default from the hook.
        - `timeout`: seconds; async handlers and `thread=True` sync handlers are stopped at
          it, and any answer that arrives later is discarded (`math.inf`: no timeout).
        - `when`: glob conditions on payload/context fields, checked before the call.
        - `background`: fire-and-forget after the invocation; `drain()` waits for it.
        - `thread`: run a sync handler in a worker thread, so its timeout can apply.
        - `overflow`: what a background call does when the background queue is full:
          `drop` (the default; counted, logged, told to the plugin) or `wait` for room
          (back-pressure: the invocation waits while the queue makes progress, and drops
          only when no background call finished for the registration's timeout, or 5 s
          without one).
        - `capabilities`: handles this plugin may receive (`system_items`, `notify`).
        - `writable`: payload fields (or rules) it may change beyond the hook's own.
        - `config`: read-only mapping the handlers see as `ctx.config`.
        - `scope`: an active `manager.session(...)` to register into instead of globally.

        Raises a `RegistrationError` subclass naming the plugin and hook; on error nothing
        is registered.
        """
        request = _Request(
            name=name,
            hook=hook,
            options=Options(priority, mode, on_error, timeout, when, background, thread, overflow),
            capabilities=tuple(capabilities),
            writable=tuple(writable),
            config=config,
        )
        with self._lock:
            if scope is not None:
                if scope._manager is not self or scope not in self._scopes:
                    raise InterlockError(
                        f"session {scope.info.id!r} is not open on this manager; register "
                        "into it while it is open (scope.open() or `with manager.session(...)`)"
                    )
                return scope._register(plugin, request)
            handle = self._build(plugin, request, None, self._names_in_use(None))
            _check_reach(request, handle)
            self._handles[handle.name] = handle
            self._registrations += handle.registrations
            self._changed()
        return handle

    def unregister(self, plugin: PluginHandle | str) -> None:
        """Remove a plugin (or plugin set) by its handle or name; running calls finish."""
        name = plugin.name if isinstance(plugin, PluginHandle) else plugin
        scope = self._scope_var.get()
        chain = scope.chain() if scope is not None else []
        with self._lock:
            # This context's sessions first, then the globals; never another session's.
            for owner in (*chain, None):
                handles = self._handles if owner is None else owner._handles
                handle = handles.get(name)
                if handle is not None and (
                    handle is plugin or not isinstance(plugin, PluginHandle)
                ):
                    break
            else:
                raise _not_registered(name, self._handles.values())
            if owner is not None:
                owner._unregister(name)
                return
            del self._handles[name]
            gone = set(handle.registrations)
            self._registrations = tuple(r for r in self._registrations if r not in gone)
            self._changed()

    def registrations(self) -> tuple[Registration, ...]:
        """Every global registration, plus those of session scopes active in this context."""
        scope = self._scope_var.get()
        return self._registrations + (scope.chain_registrations() if scope else ())

    def session(
        self,
        session_id: str,
        *,
        plugins: Iterable[object] = (),
        tags: Iterable[str] = (),
        metadata: Mapping[str, JsonValue] | None = None,
        capabilities: Mapping[str, object] | None = None,
    ) -> SessionScope:
        """A scope whose plugins fire only for invocations made inside it.

            async with manager.session("s-1", plugins=[TokenBudget()], tags=["prod"]):
                await manager.invoke(hooks.PRE_LLM_CALL, request)   # ctx.session.id == "s-1"

        The scope follows the context (contextvars), so concurrent sessions in one event
        loop see only their own plugins. `capabilities` are the host's handles offered to
        plugins in this session (each plugin still needs the grant). Leaving the scope
        unregisters its plugins and drops their per-session state.
        """
        info = SessionInfo(session_id, tuple(tags), metadata or {})
        return SessionScope(self, info, tuple(plugins), capabilities or _NO_HANDLES)

    # -- invocation -------------------------------------------------------------------

    @overload
    async def invoke(
        self,
        hook: HookSpec[P],
        payload: P,
        *,
        session: SessionInfo | None = None,
        turn: int | None = None,
        capabilities: Mapping[str, object] | None = None,
        scope: SessionScope | None = None,
        recheck: bool = False,
    ) -> HookResult[P]: ...

    @overload
    async def invoke(
        self,
        hook: str,
        payload: Any,
        *,
        session: SessionInfo | None = None,
        turn: int | None = None,
        capabilities: Mapping[str, object] | None = None,
        scope: SessionScope | None = None,
        recheck: bool = False,
    ) -> HookResult[Any]: ...

    async def invoke(
        self,
        hook: HookRef,
        payload: Any,
        *,
        session: SessionInfo | None = None,
        turn: int | None = None,
        capabilities: Mapping[str, object] | None = None,
        scope: SessionScope | None = None,
        recheck: bool = False,
    ) -> HookResult[Any]:
        """Fire `hook` with `payload` and return what the handlers decided.

        `session` and `turn` are facts for the context (inside `manager.session(...)` the
        session comes from the scope); `capabilities` are the host's writers for this call.
        `scope` names an open session scope explicitly, for hosts that run several sessions
        in one task; otherwise the scope is the one the context is in, if any. `recheck`
        tells the handlers (`ctx.recheck`) that they judged this event before and are asked
        again about a changed payload: for hosts that relay another host's recheck, such as
        a plugin server. Handler failures never raise here: they are in `result.errors`.
        With nothing registered this returns a shared empty result and allocates nothing.
        """
        try:
            plans = self._scoped_plans(scope) if self._scopes or scope else self._plans
            plan = plans[hook]
        except KeyError:
            return self._undeclared(hook)
        if plan is None:
            return EMPTY_RESULT
        call = plan.unseen
        if call is None:
            call = self._call(plan, payload, scope, session, turn, capabilities, recheck)
        elif type(payload) is not plan.spec.payload_type:
            _check_payload(plan.spec, payload)
        try:
            if plan.awaited:
                result = await run_awaited(plan, payload, call)
            else:
                step = begin(plan, payload, call)
                result = step if isinstance(step, HookResult) else await step.finish()
            if plan.background:
                waiting = self._schedule(
                    plan, result.payload or payload, call, result, portal=False
                )
                if waiting is not None:  # the queue is full and a registration waits for room
                    await waiting
        finally:
            call.revoke()
        return result

    @overload
    def invoke_sync(
        self,
        hook: HookSpec[P],
        payload: P,
        *,
        session: SessionInfo | None = None,
        turn: int | None = None,
        capabilities: Mapping[str, object] | None = None,
        scope: SessionScope | None = None,
        recheck: bool = False,
    ) -> HookResult[P]: ...

    @overload
    def invoke_sync(
        self,
        hook: str,
        payload: Any,
        *,
        session: SessionInfo | None = None,
        turn: int | None = None,
        capabilities: Mapping[str, object] | None = None,
        scope: SessionScope | None = None,
        recheck: bool = False,
    ) -> HookResult[Any]: ...

    def invoke_sync(
        self,
        hook: HookRef,
        payload: Any,
        *,
        session: SessionInfo | None = None,
        turn: int | None = None,
        capabilities: Mapping[str, object] | None = None,
        scope: SessionScope | None = None,
        recheck: bool = False,
    ) -> HookResult[Any]:
        """`invoke` for sync hosts; same rules, same result.

        With only sync handlers everything runs in the calling thread. When the plan holds
        async (or `thread=True`) handlers, the invocation runs on interlock's own event
        loop in a helper thread and this call waits for it.
        """
        try:
            plans = self._scoped_plans(scope) if self._scopes or scope else self._plans
            plan = plans[hook]
        except KeyError:
            return self._undeclared(hook)
        if plan is None:
            return EMPTY_RESULT
        call = plan.unseen
        if call is None:
            call = self._call(plan, payload, scope, session, turn, capabilities, recheck)
        elif type(payload) is not plan.spec.payload_type:
            _check_payload(plan.spec, payload)
        try:
            step = start(plan, payload, call)
            result = step if isinstance(step, HookResult) else step.finish_sync(self._portal)
            if plan.background:
                self._schedule(plan, result.payload or payload, call, result, portal=True)
        finally:
            call.revoke()
        return result

    # -- background work and lifecycle --------------------------------------------------

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for background handlers; True when all finished within `timeout` seconds."""
        return await self._background.drain(timeout)

    async def settle(self) -> None:
        """From a background handler: wait until the other background handlers have finished
        (`drain` would wait for the caller too), e.g. to report counts once they are final.

        Call it only from a background call (or what it awaits): each caller counts as one
        of the calls still pending.
        """
        await self._background.settle()

    def drain_sync(self, timeout: float | None = None) -> bool:
        """Blocking `drain` for sync hosts: waits for background work `invoke_sync` started."""
        return self._background.drain_sync(timeout)

    async def aclose(self, timeout: float | None = None) -> None:
        """Drain background work (up to `timeout`), close the registered plugins (their
        `Plugin.aclose`: processes, connections), then stop interlock's helper thread."""
        await self.drain(timeout)
        await self._close_plugins(self._closable())
        await asyncio.to_thread(self._portal.close)

    def close(self, timeout: float | None = None) -> None:
        """Sync `aclose`."""
        self.drain_sync(timeout)
        plugins = self._closable()
        if plugins:
            self._portal.run(self._close_plugins(plugins))
        self._portal.close()

    async def __aenter__(self) -> PluginManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __enter__(self) -> PluginManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> ManagerStats:
        """Per-registration counters (active session scopes included) and background totals."""
        with self._lock:
            regs = self._registrations + tuple(
                r for scope in self._scopes for r in scope.own_registrations()
            )
        return ManagerStats(
            registrations=tuple(RegistrationStats.of(r) for r in regs),
            background_pending=self._background.pending,
            background_dropped=self._background.dropped,
        )

    # -- internals ----------------------------------------------------------------------

    def _closable(self) -> list[Plugin]:
        """Global plugins that hold something to release, each once."""
        with self._lock:
            objects = {id(o): o for h in self._handles.values() for o in h.objects}
        return [
            o
            for o in objects.values()
            if isinstance(o, Plugin) and type(o).aclose is not Plugin.aclose
        ]

    async def _close_plugins(self, plugins: list[Plugin]) -> None:
        """A failure is logged, not raised: one plugin cannot keep the others (or the
        host) from closing."""
        for plugin in plugins:
            try:
                await plugin.aclose()
            except Exception:
                name = plugin_name(plugin)
                logger.exception(
                    "plugin %r failed to close", name, extra={"interlock_plugin": name}
                )

    def _undeclared(self, hook: HookRef) -> HookResult[Any]:
        if isinstance(hook, HookSpec):
            return EMPTY_RESULT  # a spec nobody declared has no registrations either
        raise unknown_hook(hook, self._specs)

    def _scoped_plans(self, scope: SessionScope | None) -> dict[object, Plan | None]:
        if scope is None:
            scope = self._scope_var.get()
            return self._plans if scope is None else scope.plans()
        if scope._manager is not self or scope not in self._scopes:
            raise InterlockError(
                f"session {scope.info.id!r} is not open on this manager; open it first "
                "(scope.open() or `with manager.session(...)`)"
            )
        return scope.plans()

    def _call(
        self,
        plan: Plan,
        payload: Any,
        scope: SessionScope | None,
        session: SessionInfo | None,
        turn: int | None,
        capabilities: Mapping[str, object] | None,
        recheck: bool,
    ) -> Call:
        spec = plan.spec
        if type(payload) is not spec.payload_type:
            _check_payload(spec, payload)
        if scope is None and self._scopes:
            scope = self._scope_var.get()
        if scope is None:
            call = Call(spec, session, turn, capabilities or _NO_HANDLES, self._states)
        else:
            handles = scope.handles
            if capabilities:
                handles = {**handles, **capabilities} if handles else capabilities
            call = Call(spec, session or scope.info, turn, handles, scope.states)
        if recheck:
            call.rechecking = True
        return call

    def _schedule(
        self,
        plan: Plan,
        payload: Any,
        call: Call,
        result: HookResult[Any],
        *,
        portal: bool,
        start: int = 0,
        wait: bool = True,
    ) -> Coroutine[Any, Any, None] | None:
        """Start the background handlers of `plan` (from `start`) for one invocation.

        When the queue is full, a call is dropped; for an `overflow="wait"` registration
        a sync host waits for room here, and an async host gets a coroutine to await that
        waits and schedules the rest (None otherwise: the common path allocates nothing).
        """
        background = self._background
        for reg in plan.background[start:]:
            after = call.follow_up(result)
            if reg.condition is not None and not reg.condition(payload, after):
                continue
            if reg.counters.circuit is not CLOSED and not reg.counters.admit():
                continue
            if not background.admit():
                if reg.overflow_wait is None or not wait:
                    background.drop(reg)
                    continue
                if not portal:
                    return self._schedule_later(plan, payload, call, result, reg)
                if not background.wait_sync(reg.overflow_wait):
                    background.drop(reg)
                    continue
            coro = run_background(reg, payload, after)
            if portal:
                background.track(self._portal.submit(coro))
            else:
                background.track(asyncio.get_running_loop().create_task(coro))
        return None

    async def _schedule_later(
        self, plan: Plan, payload: Any, call: Call, result: HookResult[Any], reg: Registration
    ) -> None:
        """An async host's invocation waits for room for `reg`'s call (overflow="wait"),
        then schedules it and the background handlers after it."""
        background = self._background
        rest = plan.background.index(reg) + 1
        try:
            room = await background.wait(reg.overflow_wait or 0.0)
        except BaseException:  # cancelled while waiting: no more waiting, nothing lost unsaid
            background.drop(reg)
            self._schedule(plan, payload, call, result, portal=False, start=rest, wait=False)
            raise
        if room:
            coro = run_background(reg, payload, call.follow_up(result))
            background.track(asyncio.get_running_loop().create_task(coro))
        else:
            background.drop(reg)
        later = self._schedule(plan, payload, call, result, portal=False, start=rest)
        if later is not None:
            await later

    def _build_plans(
        self, registrations: Iterable[Registration]
    ) -> tuple[dict[object, Plan | None], frozenset[object]]:
        built, listening = build_plans(registrations)
        plans: dict[object, Plan | None] = dict.fromkeys(self._specs)
        plans.update(built)
        return plans, listening

    def _names_in_use(self, scope: SessionScope | None) -> set[str]:
        names = {n for h in self._handles.values() for n in (h.name, *h.plugins)}
        scopes = self._scopes if scope is None else scope.chain()
        for s in scopes:
            names.update(s.names())
        return names

    def _build(
        self, obj: object, request: _Request, scope: str | None, taken: set[str]
    ) -> PluginHandle:
        """Build (not commit) the registrations for `obj`; raise before changing anything."""
        name = request.name or (obj.name if isinstance(obj, PluginSet) else plugin_name(obj))
        if name in taken:
            raise DuplicatePluginError(
                f"a plugin named {name!r} is already registered; unregister it first or "
                "register this one with name=...",
                plugin=name,
            )
        taken.add(name)
        if isinstance(obj, PluginSet):
            members = [self._build_member(member, request, scope, taken) for member in obj.plugins]
            return PluginHandle(
                name=name,
                plugins=tuple(p for m in members for p in (m.name, *m.plugins)),
                registrations=tuple(r for m in members for r in m.registrations),
                scope=scope,
                objects=tuple(o for m in members for o in m.objects),
            )
        handlers = collect(obj, self.spec, name=name, hook=request.hook)
        operator = request.options
        on_drop = None  # a plugin that wants to know of its dropped background calls
        if isinstance(obj, Plugin) and _overrides(obj, "background_dropped"):
            on_drop = obj.background_dropped
        registrations = tuple(
            self._instrumented(
                build_registration(
                    plugin=name,
                    spec=h.spec,
                    fn=h.fn,
                    # The operator's options span the plugin: each hook takes the `when` keys
                    # it has (the author's own `when` is strict for its hook).
                    options=dataclasses.replace(
                        operator, when=applicable(operator.when, h.spec)
                    ).over(h.options),
                    capabilities=request.capabilities,
                    writable=request.writable,
                    config=request.config,
                    scope=scope,
                    seq=next(self._seq),
                    default_timeout=self._default_timeout,
                    policy=self._policy,
                    on_drop=on_drop,
                )
            )
            for h in handlers
        )
        return PluginHandle(name, (), registrations, scope, (obj,))

    def _instrumented(self, reg: Registration) -> Registration:
        """`reg`, its handler wrapped by the manager's instrumentation, if it has one."""
        if self._wrap is None:
            return reg
        wrapped = self._wrap(reg)
        return dataclasses.replace(reg, fn=wrapped, takes_ctx=reads_context(wrapped))

    def _build_member(
        self, member: object, request: _Request, scope: str | None, taken: set[str]
    ) -> PluginHandle:
        """Build one member of a set: the set's options, under the member's own."""
        if not isinstance(member, Member):
            return self._build(
                member, dataclasses.replace(request, name=None, hook=None), scope, taken
            )
        own = _Request(
            name=member.name,
            hook=member.hook,
            options=member.options().over(request.options),
            capabilities=request.capabilities
            if member.capabilities is None
            else member.capabilities,
            writable=request.writable if member.writable is None else member.writable,
            config=request.config if member.config is None else member.config,
        )
        handle = self._build(member.plugin, own, scope, taken)
        if (
            member.capabilities is not None
            or member.writable is not None
            or member.when
            or member.overflow
        ):
            _check_reach(dataclasses.replace(own, options=member.options()), handle)
        return handle

    def _changed(self) -> None:
        """Rebuild the global plans after a global registration change (lock held) and swap
        them in; scopes rebuild theirs over them when next used."""
        self._plans, self._listening = self._build_plans(self._registrations)
        self._version += 1
        self._listen()

    def _scope_changed(
        self, added: Iterable[Registration], removed: Iterable[Registration]
    ) -> None:
        """Account for a scope's registrations coming or going (lock held): the cost does
        not depend on how many other scopes are open."""
        keys = self._scoped_keys
        keys.update(key for r in added for key in (r.hook, *r.hook.keys))
        keys.subtract(key for r in removed for key in (r.hook, *r.hook.keys))
        self._listen()

    def _listen(self) -> None:
        scoped = {key for key, count in self._scoped_keys.items() if count > 0}
        self.has = (self._listening | scoped).__contains__


class SessionScope:
    """Plugins and facts for one session; use it as a (sync or async) context manager.

    Returned by `PluginManager.session`. Inside it, invocations see the global plugins
    plus this scope's (and those of enclosing scopes), `ctx.session` is `info`, and each
    plugin's `ctx.state` is its own for this session.
    """

    def __init__(
        self,
        manager: PluginManager,
        info: SessionInfo,
        plugins: tuple[object, ...],
        handles: Mapping[str, object],
    ) -> None:
        self.info = info
        self.handles: Mapping[str, object] = MappingProxyType(dict(handles))
        self.states: dict[str, dict[str, Any]] = {}
        self._manager = manager
        self._initial = plugins
        self._handles: dict[str, PluginHandle] = {}
        self._parent: SessionScope | None = None
        self._token: Token[SessionScope | None] | None = None
        self._plans: dict[object, Plan | None] = {}  # None: declared, nobody registered
        self._built: tuple[int, ...] = ()
        self._own = 0  # bumped when this scope's registrations change
        self._open = False

    def own_registrations(self) -> tuple[Registration, ...]:
        """Registrations made in this scope (not its parents')."""
        return tuple(r for h in self._handles.values() for r in h.registrations)

    def chain(self) -> list[SessionScope]:
        """This scope and the scopes it is nested in, innermost first."""
        scopes: list[SessionScope] = []
        scope: SessionScope | None = self
        while scope is not None:
            scopes.append(scope)
            scope = scope._parent
        return scopes

    def chain_registrations(self) -> tuple[Registration, ...]:
        """Registrations of this scope and its enclosing scopes."""
        return tuple(r for s in reversed(self.chain()) for r in s.own_registrations())

    def names(self) -> set[str]:
        """Plugin names registered in this scope."""
        return {n for h in self._handles.values() for n in (h.name, *h.plugins)}

    def plans(self) -> dict[object, Plan | None]:
        """Global plus scoped plans, rebuilt only after a change to the global registrations
        or to those of this scope and the scopes it is in; a scope with no plugins of its
        own uses the global plans."""
        manager = self._manager
        stamp = (manager._version, *(s._own for s in self.chain()))
        if self._built != stamp:
            with manager._lock:
                own = self.chain_registrations()
                if own:
                    self._plans = manager._build_plans(manager._registrations + own)[0]
                else:
                    self._plans = manager._plans
                self._built = stamp
        return self._plans

    def open(self) -> SessionScope:
        """Activate the scope without binding it to the current context.

        For hosts that keep several sessions in one task: pass the scope to
        `invoke(..., scope=...)` explicitly, and `close()` it when the session ends.
        """
        manager = self._manager
        with manager._lock:
            if self._open:
                raise InterlockError(f"session {self.info.id!r} is already open")
            for plugin in self._initial:
                self._register(plugin, _Request(None, None, Options(), (), (), None))
            self._open = True
            manager._scopes.add(self)
        return self

    def close(self) -> None:
        """Deactivate the scope: its plugins are unregistered and their state dropped."""
        manager = self._manager
        with manager._lock:
            self._open = False
            manager._scopes.discard(self)
            gone = self.own_registrations()
            self._handles.clear()
            self.states.clear()
            if gone:
                self._own += 1
                manager._scope_changed((), gone)

    def __enter__(self) -> SessionScope:
        manager = self._manager
        with manager._lock:
            if self._open:
                raise InterlockError(f"session {self.info.id!r} is already open")
            self._parent = manager._scope_var.get()
            self.open()
            self._token = manager._scope_var.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        manager = self._manager
        try:
            if self._token is not None:
                manager._scope_var.reset(self._token)
        except ValueError:  # left from another context (a task, a fixture's teardown)
            if manager._scope_var.get() is self:
                manager._scope_var.set(self._parent)
        finally:
            self._token = None
            self.close()

    async def __aenter__(self) -> SessionScope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _register(self, plugin: object, request: _Request) -> PluginHandle:
        """Build and keep a registration for this scope (the manager's lock is held)."""
        manager = self._manager
        taken = manager._names_in_use(self) | self.names()
        handle = manager._build(plugin, request, self.info.id, taken)
        _check_reach(request, handle)
        self._handles[handle.name] = handle
        self._own += 1
        manager._scope_changed(handle.registrations, ())
        return handle

    def _unregister(self, name: str) -> None:
        """Remove one of this scope's plugins (the manager's lock is held)."""
        handle = self._handles.pop(name)
        self._own += 1
        self._manager._scope_changed((), handle.registrations)

    def __repr__(self) -> str:
        return f"<SessionScope {self.info.id!r} plugins={sorted(self.names())}>"


def _check_payload(spec: HookSpec[Any], payload: Any) -> None:
    if not isinstance(payload, spec.payload_type):
        raise PayloadTypeError(
            f"hook {spec.name!r} takes a {spec.payload_type.__name__} payload, "
            f"got {type(payload).__name__}",
            hook=spec.name,
        )


def _check_reach(request: _Request, handle: PluginHandle) -> None:
    """Options given for a whole plugin (or set) must apply to at least one of its hooks."""
    regs = handle.registrations
    specs = list(dict.fromkeys(r.hook for r in regs))
    for key in request.options.when or {}:
        if not any(valid_key(key, spec) for spec in specs):
            raise unknown_key(key, specs, handle.name)
    hooks = ", ".join(s.name for s in specs)
    if request.options.overflow is not None and not any(r.background for r in regs):
        raise RegistrationError(
            f"plugin {handle.name!r}: overflow={request.options.overflow!r} applies to "
            f"background handlers, and none of its handlers ({hooks}) is one; register it "
            "with background=True or leave overflow out",
            plugin=handle.name,
        )
    for grant in request.writable:
        if not any(grant in r.writable for r in regs):
            grantable_here = sorted({g for s in specs for g in grantable(s)})
            raise RegistrationError(
                f"plugin {handle.name!r}: cannot grant writable={grant!r}: none of its hooks "
                f"({hooks}) has it; grantable there: {grantable_here or 'nothing'}",
                plugin=handle.name,
            )
    for capability in request.capabilities:
        if not any(capability in r.capabilities for r in regs):
            offered = sorted({c for s in specs for c in s.capabilities})
            raise RegistrationError(
                f"plugin {handle.name!r}: capability {capability!r} is not offered by any of "
                f"its hooks ({hooks}); offered there: {', '.join(offered) or 'none'}",
                plugin=handle.name,
            )


def _overrides(plugin: Plugin, method: str) -> bool:
    return getattr(type(plugin), method) is not getattr(Plugin, method)


def _not_registered(name: str, handles: Iterable[PluginHandle]) -> UnknownPluginError:
    for handle in handles:
        if name in handle.plugins:
            return UnknownPluginError(
                f"plugin {name!r} is part of plugin set {handle.name!r}; unregister the set",
                plugin=name,
            )
    return UnknownPluginError(f"no plugin named {name!r} is registered", plugin=name)
