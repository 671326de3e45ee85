"""What the handlers of one invocation did: actions checked and applied, failures recorded.

An `Outcome` is created only when a handler does something other than continue, so an
invocation where every handler continues allocates nothing for its result.
"""

from __future__ import annotations

import asyncio
import reprlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._actions import (
    EMPTY_RESULT,
    Ask,
    Block,
    Continue,
    FailureKind,
    HandlerFailure,
    HookResult,
    Modify,
    Respond,
    Violation,
)
from ._exceptions import (
    CircuitOpenError,
    HandlerFailureError,
    HookTimeoutError,
    InvalidActionError,
)
from ._log import logger
from ._registry import follow_code

if TYPE_CHECKING:
    from ._context import HookContext
    from ._registry import Plan, Registration
    from ._spec import HookSpec


_ACTION_TYPES = (Continue, Modify, Block, Respond, Ask)


class Outcome:
    """The running result of one invocation (private)."""

    __slots__ = (
        "asks",
        "blocked_by",
        "changed",
        "changer",
        "entries",
        "errors",
        "held",
        "modified_by",
        "payload",
        "pending",
        "probes",
        "reason",
        "rechecks",
        "responded_by",
        "response",
        "settled",
        "spec",
        "stopped",
        "violations",
    )

    def __init__(self, spec: HookSpec[Any], payload: Any) -> None:
        self.spec = spec
        self.payload = payload
        self.stopped = False
        self.modified_by: list[str] = []
        self.blocked_by: str | None = None
        self.reason: str | None = None
        self.response: Any = None
        self.responded_by: str | None = None
        self.asks: list[tuple[str, str]] = []
        self.errors: list[HandlerFailure] = []
        self.violations: list[Violation] = []
        # Gates judge the final payload (see `_recheck`). `changer`: the
        # registration whose Modify last changed the payload in the current pass;
        # `changed`: every one that changed it; `settled`: those not asked again (they
        # failed, or their block was recorded as a violation); `entries`: the current
        # recheck pass's registrations (None in the first pass: the whole plan);
        # `probes`: the copies in it that ask a registration once more about its own
        # change, by id, with the registration; `pending`: the last such change, to set
        # aside if its probe changes the payload again (registration, payload before it,
        # changer before it, length of `modified_by` before it).
        self.changer: Registration | None = None
        self.changed: list[Registration] = []
        self.settled: list[Registration] = []
        self.entries: tuple[Registration, ...] | None = None
        self.rechecks = 0
        self.probes: dict[int, Registration] = {}
        self.held: tuple[Any, str | None] | None = None  # a Respond while rechecks run
        self.pending: tuple[Registration, Any, Registration | None, int] | None = None

    def apply(self, reg: Registration, action: Any, duration: float) -> None:
        """Take one handler's answer; sets `stopped` when it ends the chain."""
        kind = type(action)
        try:
            if kind is Modify and kind in self.spec.accepts:
                problem = self._invalid_modify(reg, action.payload)
            else:
                problem = self._invalid(reg, action)
        except Exception as error:  # a plugin-made value broke the check itself
            problem = f"{_where(reg)} returned {kind.__name__} that could not be checked: "
            problem += f"{type(error).__name__}: {_text(error)}"
        if problem is not None:
            count_failure(reg, duration, timeout=False)
            self.fail(reg, InvalidActionError(problem, plugin=reg.plugin, hook=self.spec.name))
            return
        reg.counters.succeeded(duration)
        if kind is Modify:
            self._modify(reg, action.payload)
        elif kind is Block:
            self._block(
                reg, action.reason or f"blocked by plugin {reg.plugin!r} at hook {self.spec.name!r}"
            )
        elif kind is Respond:
            self.response = action.response
            self.responded_by = reg.plugin
            self.stopped = True
        elif kind is Ask:
            self._ask(reg, action.question)

    def fail(self, reg: Registration, error: HandlerFailureError) -> None:
        """Record a failed call; a fail-closed registration on a modify hook blocks."""
        kind = _failure_kind(error)
        if kind != "circuit_open":  # logged once, when the circuit opened
            log_failure(reg, error)
        message = _text(error)
        self.settled.append(self.original(reg))
        self.errors.append(HandlerFailure(reg.plugin, self.spec.name, kind, message, error))
        if reg.on_error == "block" and self.spec.kind == "modify":
            self._block(
                reg,
                f"plugin {reg.plugin!r} failed at hook {self.spec.name!r} and fails closed: "
                f"{message}",
            )

    def result(self) -> HookResult[Any]:
        """The host's view of this invocation."""
        response, responded_by = self.response, self.responded_by
        if responded_by is None and self.held is not None and self.blocked_by is None:
            response, responded_by = self.held  # a Respond the rechecks let stand
        return HookResult(
            payload=self.payload if self.modified_by else None,
            modified_by=tuple(self.modified_by),
            blocked_by=self.blocked_by,
            reason=self.reason,
            response=response,
            responded_by=responded_by,
            asks=tuple(self.asks),
            errors=tuple(self.errors),
            violations=tuple(self.violations),
        )

    def _block(self, reg: Registration, reason: str) -> None:
        if reg.mode == "permissive":
            self._violate(reg, "block", reason)
            return
        reg.counters.blocks += 1
        self.blocked_by = reg.plugin
        self.reason = reason
        self.stopped = True

    def _modify(self, reg: Registration, new: Any) -> None:
        if new is self.payload or new == self.payload:
            # Changes nothing, so the payload stays the one the handlers saw: an equal
            # value of another type (`True` for `1`) never slips past them.
            if self.entries is None:  # asked again, it just agrees: not listed twice
                self.modified_by.append(reg.plugin)
                reg.counters.modifications += 1
            return
        original = self.probes.get(id(reg)) if self.probes else None
        if original is not None:
            pending = self.pending
            if pending is not None and pending[0] is original:
                # Asked once more, it changed its own change again: it adds rather than
                # fixes (an appender), and what it added the first time stands. Its answers
                # in this pass are set aside.
                self.payload, self.changer, cut = pending[1], pending[2], pending[3]
                del self.modified_by[cut:]
                self.pending = None
                return
            reg = original
        elif self.entries is not None and any(r is reg for r in self.changed):
            self.pending = (reg, self.payload, self.changer, len(self.modified_by))
        self.payload = new
        self.changer = reg
        self.changed.append(reg)
        self.modified_by.append(reg.plugin)
        reg.counters.modifications += 1

    def original(self, reg: Registration) -> Registration:
        """The registration a recheck pass's probe copy stands for (or `reg` itself)."""
        return self.probes.get(id(reg), reg) if self.probes else reg

    def unsettled(self, reg: Registration) -> None:
        """End an invocation whose plugins kept changing the payload: no gate has seen a
        version nobody changed after, so nothing reaches the host, whatever the modes."""
        reg.counters.blocks += 1
        self.blocked_by = reg.plugin
        self.reason = (
            f"plugins kept changing the payload at hook {self.spec.name!r} (last "
            f"{reg.plugin!r}; changed by {', '.join(dict.fromkeys(self.modified_by))}), so "
            "no gate saw its final version; make them agree (e.g. one of them, not both)"
        )
        self.stopped = True

    def _ask(self, reg: Registration, question: str) -> None:
        if reg.mode == "permissive":
            self._violate(reg, "ask", question)
        elif (reg.plugin, question) not in self.asks:  # a gate asked again asks once
            self.asks.append((reg.plugin, question))

    def _violate(self, reg: Registration, action: Any, reason: str) -> None:
        self.settled.append(self.original(reg))  # enforced, it would have ended the chain
        reg.counters.violations += 1
        self.violations.append(Violation(reg.plugin, self.spec.name, action, reason))
        logger.info(
            "permissive plugin %r would %s at hook %r: %s",
            reg.plugin,
            action,
            self.spec.name,
            reason,
            extra={"interlock_plugin": reg.plugin, "interlock_hook": self.spec.name},
        )

    def _invalid(self, reg: Registration, action: Any) -> str | None:
        spec = self.spec
        kind = type(action)
        if kind is Continue:
            return None
        if kind not in spec.accepts:
            return _unaccepted(reg, action)
        if kind is Modify:
            return self._invalid_modify(reg, action.payload)
        if kind is Respond and not isinstance(action.response, spec.response_type or object):
            return (
                f"{_where(reg)} responded with {type(action.response).__name__}; this hook's "
                f"Respond carries {getattr(spec.response_type, '__name__', 'a response')}"
            )
        if kind is Ask and not isinstance(action.question, str):
            return f"{_where(reg)} returned Ask with a non-str question {action.question!r}"
        if kind is Block and not isinstance(action.reason, str | None):
            return f"{_where(reg)} returned Block with a non-str reason {action.reason!r}"
        return None

    def _invalid_modify(self, reg: Registration, new: Any) -> str | None:
        old = self.payload
        if type(new) is not type(old):
            return (
                f"{_where(reg)} returned Modify({type(new).__name__}); this hook's payload is "
                f"{type(old).__name__}"
            )
        values = reg.protected_values
        # Tuples compare element by element, each by identity first, then by ==: the
        # same test as the loop below, which runs only to name the changed field.
        unchanged = values is None or values(old) == values(new)
        for name in () if unchanged else reg.protected:
            before, after = getattr(old, name), getattr(new, name)
            if before is not after and before != after:
                writable = ", ".join(sorted(self.spec.writable or ()))
                return (
                    f"{_where(reg)} changed field {name!r}, which this hook does not let plugins "
                    f"write (writable: {writable}); grant it with writable={{{name!r}}} "
                    "when registering if the plugin should"
                )
        for name, allowed in reg.scalar_types:
            value = getattr(new, name)
            if not isinstance(value, allowed):
                return (
                    f"{_where(reg)} set field {name!r} to a {type(value).__name__}; it takes "
                    f"{' or '.join(t.__name__ for t in allowed)}"
                )
        for rule in reg.rules:
            problem = rule.check(old, new)
            if problem is not None:
                return (
                    f"{_where(reg)} {problem}, which this hook forbids ({rule.description}); grant "
                    f"it with writable={{{rule.name!r}}} when registering if the plugin should"
                )
        return None


def check_action(ctx: HookContext, payload: Any, action: Any) -> str | None:
    """What is wrong with `action` as the answer of `ctx`'s handler to `payload`, or None:
    the checks every answer gets, for callers that must know before acting on it."""
    if action is None:
        return None
    return Outcome(ctx.hook, payload)._invalid(ctx._reg, action)


def account(
    out: Outcome | None,
    spec: HookSpec[Any],
    payload: Any,
    reg: Registration,
    action: Any,
    error: BaseException | None,
    duration: float,
    *,
    inline: bool = False,
) -> Outcome | None:
    """Account for one finished handler call that did more than quietly continue;
    `inline`: it finished in its first step, with no timer on it."""
    if duration > reg.limit and not isinstance(error, HookTimeoutError):
        if inline and reg.is_async and reg.timeout is not None and duration > reg.timeout:
            # It finished without waiting, so no timer could stop it; its time is up all
            # the same, and an answer past the timeout is discarded. (One that waited had
            # a timer, which already checked it, setup time excluded.)
            error = late(reg, duration)
        else:
            _log_slow(reg, duration)
    if error is not None:
        if reg.code is not None:  # it got no context: reloaded, it may read one now
            follow_code((reg,))
        failure = wrap(error, reg)
        count_failure(reg, duration, timeout=isinstance(failure, HookTimeoutError))
        out = Outcome(spec, payload) if out is None else out
        out.fail(reg, failure)
        return out
    if action is None or type(action) is Continue:
        reg.counters.succeeded(duration)
        return out
    out = Outcome(spec, payload) if out is None else out
    out.apply(reg, action, duration)
    return out


def modified(
    out: Outcome | None,
    spec: HookSpec[Any],
    payload: Any,
    reg: Registration,
    action: Modify[Any],
    duration: float,
) -> Outcome:
    """`account` for a `Modify` from a `quick` registration in a chain's first pass: the
    checks, the counting and the change in one step. Anything out of the ordinary (a check
    that fails or raises, a recheck pass, a slow call, a breaker counting failures) goes
    the whole way through `account`."""
    if out is None:
        out = Outcome(spec, payload)
    new, old = action.payload, out.payload
    counters = reg.counters
    values = reg.protected_values
    try:
        # The same tests as `Outcome._invalid_modify` and `Outcome._modify`, in one place.
        usual = type(new) is type(old) and (values is None or values(old) == values(new))
        same = usual and (new is old or new == old)
    except Exception:
        usual = False
    if not usual or out.entries is not None or duration > reg.limit or counters.failures_in_row:
        taken = account(out, spec, payload, reg, action, None, duration)
        return out if taken is None else taken
    counters.calls += 1  # Counters.succeeded, inlined: the circuit is closed
    counters.time_total += duration
    if duration > counters.time_max:
        counters.time_max = duration
    counters.modifications += 1
    out.modified_by.append(reg.plugin)
    if not same:  # an equal payload stays the one the handlers saw (see `_modify`)
        out.payload = new
        out.changer = reg
        out.changed.append(reg)
    return out


def refuse(out: Outcome | None, spec: HookSpec[Any], payload: Any, reg: Registration) -> Outcome:
    """Account for a call the open circuit breaker turned away."""
    policy = reg.counters.policy
    error = CircuitOpenError(
        f"plugin {reg.plugin!r} at hook {reg.hook.name!r} is suspended after "
        f"{policy.failure_threshold} failures in a row; it gets a trial call "
        f"{policy.cooldown:g}s after the last failure",
        plugin=reg.plugin,
        hook=reg.hook.name,
    )
    out = Outcome(spec, payload) if out is None else out
    out.fail(reg, error)
    return out


def finish(out: Outcome | None) -> HookResult[Any]:
    """The result of an invocation: the shared empty one when nothing happened."""
    return EMPTY_RESULT if out is None else out.result()


def wrap(error: BaseException, reg: Registration) -> HandlerFailureError:
    """Attribute an exception raised by a handler to its plugin and hook."""
    if isinstance(error, HandlerFailureError):
        return error
    message = f"{type(error).__name__}: {_text(error)}"
    wrapped = HandlerFailureError(message, plugin=reg.plugin, hook=reg.hook.name)
    wrapped.__cause__ = error
    return wrapped


def late(reg: Registration, seconds: float) -> HookTimeoutError:
    """The failure of a handler that ran past its timeout."""
    return HookTimeoutError(
        f"plugin {reg.plugin!r} at hook {reg.hook.name!r} ran past its {reg.timeout:g}s "
        f"timeout ({seconds:.3f}s); its answer is discarded",
        plugin=reg.plugin,
        hook=reg.hook.name,
    )


def count_failure(reg: Registration, duration: float, *, timeout: bool) -> None:
    """Count a failed call; log when this failure suspends the registration."""
    if not reg.counters.failed(duration, timeout=timeout):
        return
    policy = reg.counters.policy
    logger.warning(
        "suspending plugin %r at hook %r after %d failures in a row; trial call in %gs",
        reg.plugin,
        reg.hook.name,
        reg.counters.failures_in_row,
        policy.cooldown,
        extra={"interlock_plugin": reg.plugin, "interlock_hook": reg.hook.name},
    )


def log_failure(reg: Registration, error: HandlerFailureError) -> None:
    """Log a handler failure with the plugin and hook as structured fields."""
    logger.warning(
        "plugin %r failed at hook %r: %s",
        reg.plugin,
        reg.hook.name,
        _text(error),
        exc_info=error.__cause__ if isinstance(error.__cause__, Exception) else None,
        extra={"interlock_plugin": reg.plugin, "interlock_hook": reg.hook.name},
    )


def _unaccepted(reg: Registration, action: Any) -> str:
    kind = type(action)
    if kind in _ACTION_TYPES:
        accepted = ", ".join(sorted(t.__name__ for t in reg.hook.accepts)) or "no actions"
        return f"{_where(reg)} returned {kind.__name__}; this hook accepts {accepted}"
    if asyncio.iscoroutine(action):
        action.close()  # never awaited: close it so Python does not warn
        return f"{_where(reg)} returned a coroutine; declare the handler with async def"
    return (
        f"{_where(reg)} returned {_text(action, reprlib.repr)}; handlers return None or an action"
    )


def _text(value: object, render: Callable[[object], str] = str) -> str:
    """`render(value)` for messages, never raising: plugin objects may break str/repr."""
    try:
        return render(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


def _where(reg: Registration) -> str:
    return f"plugin {reg.plugin!r} at hook {reg.hook.name!r}"


def _failure_kind(error: HandlerFailureError) -> FailureKind:
    if isinstance(error, HookTimeoutError):
        return "timeout"
    if isinstance(error, InvalidActionError):
        return "invalid_action"
    if isinstance(error, CircuitOpenError):
        return "circuit_open"
    return "exception"


def log_slow_loop(plan: Plan, duration: float) -> None:
    """Log an untimed loop of handlers slower than the lowest threshold among them.

    A loop of one handler took that handler's time: its line is exact. Of several, which
    took the time is not known, so each handler whose threshold the loop passed gets its
    own line ("up to" the loop's time, naming the others); the next invocation times each
    one."""
    if len(plan.entries) == 1:
        _log_slow(plan.entries[0], duration)
        return
    for reg in plan.entries:
        others = ", ".join(repr(other.plugin) for other in plan.entries if other is not reg)
        _log_slow(reg, duration, f" together with {others}; the next call times each one")


def _log_slow(reg: Registration, duration: float, shared: str = "") -> None:
    """Log a call slower than the slow threshold or than its timeout; `shared`: the time
    is that of an untimed loop of several handlers, and says which.

    A sync handler run inline cannot be stopped, so its answer counts even when it comes
    after its timeout; the log line says how to make the timeout apply.
    """
    past_timeout = reg.timeout is not None and duration > reg.timeout
    if not past_timeout and duration <= reg.counters.policy.slow_threshold:
        return
    hint = ""
    if past_timeout:
        hint = f" (past its {reg.timeout:g}s timeout; register it with thread=True to enforce it)"
    logger.warning(
        "slow plugin %r at hook %r: %s%.3fs%s%s",
        reg.plugin,
        reg.hook.name,
        "up to " if shared else "",
        duration,
        shared,
        hint,
        extra={
            "interlock_plugin": reg.plugin,
            "interlock_hook": reg.hook.name,
            "interlock_duration": duration,
        },
    )
