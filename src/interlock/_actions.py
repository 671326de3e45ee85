"""What handlers answer (actions) and what `invoke` returns to the host (`HookResult`).

Actions are flow control only: they never carry side effects. A handler returns `None` or
`Continue()` to let the event pass, `Modify(new_payload)` to change it, `Block(reason)` to
stop it, and on the hooks that declare them `Respond(response)` (answer instead of the
model) or `Ask(question)` (let the host's approver decide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, NamedTuple, TypeAlias, TypeVar

P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Continue:
    """Let the event pass unchanged; returning `None` means the same."""


@dataclass(frozen=True, slots=True)
class Modify(Generic[P]):
    """Replace the payload for the handlers after this one and for the host.

    The new payload must be of the hook's payload type and may only differ in the fields
    the hook declares writable (plus any the registration was granted):

        return Modify(payload.replace(arguments={**payload.arguments, "dry_run": True}))
    """

    payload: P


@dataclass(frozen=True, slots=True)
class Block:
    """Stop the event. Ends a modify chain; the host sees `result.blocked` and the reason.

    Without a reason, interlock fills in one naming the hook and the plugin.
    """

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Respond(Generic[R]):
    """Answer in place of the model (`pre_llm_call`): the model is not called."""

    response: R


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask the host's approver before going on (`pre_tool_call`).

    The chain continues, so a later handler can still block, and every plugin's question
    reaches the approver; a host without an approver treats an `Ask` as a `Block`.
    """

    question: str


Action: TypeAlias = Continue | Modify[Any] | Block | Respond[Any] | Ask
"""Any handler answer other than `None`."""

FailureKind = Literal["exception", "timeout", "invalid_action", "circuit_open"]


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """One handler call that went wrong, attributed to its plugin."""

    plugin: str
    hook: str
    kind: FailureKind
    message: str
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    """A block a `permissive` registration would have made, recorded and not honoured."""

    plugin: str
    hook: str
    action: Literal["block", "ask"]
    reason: str


class HookResult(NamedTuple, Generic[P]):
    """What `invoke` tells the host about one event (an immutable named tuple).

    `payload` is the payload as handlers modified it, or `None` when none did, so hosts
    write `payload = result.payload or payload`. When nothing was registered, or every
    handler just continued, `invoke` returns one shared empty result without allocating.
    """

    payload: P | None = None
    modified_by: tuple[str, ...] = ()
    blocked_by: str | None = None
    reason: str | None = None
    response: Any = None
    responded_by: str | None = None
    asks: tuple[tuple[str, str], ...] = ()
    errors: tuple[HandlerFailure, ...] = ()
    violations: tuple[Violation, ...] = ()

    @property
    def empty(self) -> bool:
        """True when no handler did anything but continue (nothing to log or act on)."""
        return not (
            self.modified_by
            or self.blocked_by
            or self.responded_by
            or self.asks
            or self.errors
            or self.violations
        )

    @property
    def blocked(self) -> bool:
        """True when a handler blocked the event (`blocked_by` and `reason` say who, why)."""
        return self.blocked_by is not None

    @property
    def modified(self) -> bool:
        """True when a handler replaced the payload."""
        return self.payload is not None

    @property
    def responded(self) -> bool:
        """True when a handler answered in place of the model (`Respond`)."""
        return self.responded_by is not None

    @property
    def asked(self) -> bool:
        """True when a handler wants the host's approver to decide (`Ask`).

        `asks` holds each asking plugin with its question, in chain order; `question`
        joins them for the approver.
        """
        return bool(self.asks)

    @property
    def question(self) -> str | None:
        """Every `Ask` question, one per line, or `None`."""
        return "\n".join(question for _, question in self.asks) if self.asks else None


EMPTY_RESULT: HookResult[Any] = HookResult()
