"""Recheck passes: gates judge the payload a modify chain ends with, not an older one.

A chain in which a handler changed the payload after others judged it is not over: those
others are asked again about the changed payload (`ctx.recheck`), pass after pass, until
a pass changes nothing (`next_pass`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._actions import HookResult
    from ._conditions import Condition
    from ._context import Call
    from ._outcome import Outcome
    from ._registry import Plan, Registration

# Recheck passes before plugins that keep changing each other's output are stopped: a
# redactor and a rewriter after it settle in two; a cascade of fixes needs one per fix.
MAX_RECHECKS = 8


def next_pass(
    plan: Plan, call: Call, out: Outcome, changer: Registration
) -> HookResult[Any] | None:
    """Set `out` up to ask again the handlers that judged an older payload than the one
    the chain ends with (its `entries`, run from the start); or the result, when none is
    to be asked or the passes are used up.

    A gate's decision must hold for what actually runs. After a pass in which a handler
    changed the payload, the registrations that saw an older version run again on the
    changed one, with `ctx.recheck` set: after the first pass those before the last change,
    after a later pass every one but the last to change it (a change there left both sides
    behind). Registrations that changed the payload are asked too, since a redactor must
    see what a later plugin added; a change they make then is probed (see below) so that
    an appender does not append twice. Passes end when one changes nothing; plugins that
    keep changing it after `MAX_RECHECKS` passes end the invocation blocked. Registrations
    that failed, or whose block was recorded as a permissive violation, are not asked again.
    """
    out.changer = out.pending = None
    if out.stopped:  # by a Respond: it stands only if the gates pass what it answered
        out.held = (out.response, out.responded_by)
        out.response = out.responded_by = None
        out.stopped = False
    if out.rechecks >= MAX_RECHECKS:
        out.unsettled(changer)
        return out.result()
    if out.entries is None:
        entries = plan.entries[: position(plan.entries, changer)]
    else:
        entries = tuple(reg for reg in plan.entries if reg is not changer)
    settled = {id(reg) for reg in out.settled}
    changed = {id(reg) for reg in out.changed}
    out.probes = {}
    asked: list[Registration] = []
    for reg in entries:
        if id(reg) in settled:
            continue
        asked.append(reg)
        if id(reg) in changed:
            # It changed the payload before. Should it change it now, it is asked once
            # more about that change: a fix (a redactor) changes nothing further and
            # stands; an addition (an appender) would grow again and is set aside.
            probe = dataclasses.replace(reg, direct=False, condition=_probing(out, reg))
            out.probes[id(probe)] = reg
            asked.append(probe)
    if not asked:
        return out.result()
    out.entries = tuple(asked)
    out.rechecks += 1
    call.rechecking = True
    return None


def _probing(out: Outcome, reg: Registration) -> Condition:
    """The condition of `reg`'s probe: it runs only right after `reg` changed the payload
    in this pass (and where `reg` itself would run)."""
    own = reg.condition

    def probe_due(payload: Any, call: Call) -> bool:
        pending = out.pending
        if pending is None or pending[0] is not reg:
            return False
        return own is None or own(payload, call)

    return probe_due


def position(entries: tuple[Registration, ...], reg: Registration) -> int:
    """The index of `reg` in `entries`, by identity (probe copies compare equal)."""
    return next(i for i, entry in enumerate(entries) if entry is reg)
