"""Every exception interlock raises.

The tree::

    InterlockError
    ├── SpecError                  a HookSpec that cannot work (bad kind, unknown field, clash)
    ├── UnknownHookError           a hook name that no spec declares (also LookupError)
    ├── UnknownPluginError         unregistering a plugin that is not registered (also LookupError)
    ├── PayloadTypeError           a hook invoked with the wrong payload type (also TypeError)
    ├── PortalError                invoke_sync called where it would deadlock
    ├── CapabilityError            a capability handle misused: bad arguments, or after its call
    ├── ConfigError                a config file that cannot be loaded: every problem, with lines
    ├── ProtocolError              an out-of-process plugin broke the wire protocol or went away
    ├── RegistrationError          a plugin that cannot be registered as given (also ValueError)
    │   ├── HandlerSignatureError  a handler that does not take (payload, ctx) of the hook's type
    │   ├── IncompatiblePluginError  a plugin built for another plugin API version
    │   ├── DuplicatePluginError   a plugin name already in use
    │   └── ConditionError         a `when=` condition that names no field or is malformed
    └── HandlerFailureError        what went wrong inside one handler call; recorded, never raised
        ├── InvalidActionError     a handler answered with an action its hook does not accept
        ├── HookTimeoutError       a handler ran past its timeout (also TimeoutError)
        └── CircuitOpenError       a handler skipped because its circuit breaker is open

Adapters add their own under the root, in their modules: `UngovernedToolError` (an agent
holds a tool no gate can see; `interlock.adapters.openai_agents`, `.adk`),
`UnmappedRunError` (`.openai_agents`: a run without `ix.run_config`) and
`HermesConfigError` (`.hermes`: no interlock.yaml for the Hermes plugin). Plugin discovery
raises `PluginNameClash` (a `discovery.PluginLoadError`), which config loading reports as a
`ConfigError` problem. The fleet backends add theirs too: `StoreError` and its
`StoreUnavailable` (`interlock.store`: a state store that failed or cannot be reached) and
`SessionLogError` (`interlock.runtime`: a session log, SQLite or PostgreSQL, that could not
keep a record) and `AuditLogError` (`interlock.plugins.audit_log`: an audit sink, file or
PostgreSQL, that cannot be opened or written).

Handler failures are never raised into the host: `invoke` catches them and reports them in
`HookResult.errors`. They are exception classes so that logs and tracebacks carry them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class InterlockError(Exception):
    """Root of every exception interlock raises."""


class SpecError(InterlockError):
    """A `HookSpec` that cannot work: bad kind, unknown writable field, or a name clash."""


class UnknownHookError(InterlockError, LookupError):
    """A hook name (or alias) that no declared `HookSpec` carries."""

    def __init__(self, message: str, *, hook: str) -> None:
        super().__init__(message)
        self.hook = hook


class UnknownPluginError(InterlockError, LookupError):
    """Unregistering a plugin name or handle the manager does not hold."""

    def __init__(self, message: str, *, plugin: str) -> None:
        super().__init__(message)
        self.plugin = plugin


class PayloadTypeError(InterlockError, TypeError):
    """The host invoked a hook with a payload of another type than the hook declares."""

    def __init__(self, message: str, *, hook: str) -> None:
        super().__init__(message)
        self.hook = hook


class PortalError(InterlockError):
    """The thread that runs async handlers for sync hosts cannot serve a call: `invoke_sync`
    was called from that thread, or the thread ended while the call waited."""


class CapabilityError(InterlockError):
    """A plugin misused a capability handle: bad arguments, or used after its call ended."""

    def __init__(self, message: str, *, plugin: str) -> None:
        super().__init__(message)
        self.plugin = plugin


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a config file: where (file, line, entry) and what, with the fix."""

    file: str
    line: int | None
    entry: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        entry = f" plugin {self.entry!r}:" if self.entry else ""
        return f"{where}:{entry} {self.message}"


class ConfigError(InterlockError, ValueError):
    """A config file that cannot be loaded. `problems` lists every problem found; nothing
    from the file was registered."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the config"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class ProtocolError(InterlockError):
    """An out-of-process plugin broke the protocol, crashed, or could not be reached. Raised
    inside its handler, so it is recorded as that plugin's failure."""


class RegistrationError(InterlockError, ValueError):
    """A plugin or handler that cannot be registered as given; names the plugin and hook."""

    def __init__(self, message: str, *, plugin: str, hook: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.hook = hook


class HandlerSignatureError(RegistrationError):
    """A handler that cannot be called as `handler(payload, ctx)` for its hook."""


class IncompatiblePluginError(RegistrationError):
    """A plugin whose `api_version` this interlock does not support."""


class DuplicatePluginError(RegistrationError):
    """A plugin name that is already registered with the same manager or session."""


class ConditionError(RegistrationError):
    """A `when=` condition that is malformed or names a field the hook's payload lacks."""


class HandlerFailureError(InterlockError):
    """Base of the failures recorded for a single handler call (never raised into the host)."""

    def __init__(self, message: str, *, plugin: str, hook: str) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.hook = hook


class InvalidActionError(HandlerFailureError, TypeError):
    """A handler returned something its hook does not accept, or a `Modify` it may not make."""


class HookTimeoutError(HandlerFailureError, TimeoutError):
    """A handler ran longer than its registration's timeout; its answer, if any, is discarded."""


class CircuitOpenError(HandlerFailureError):
    """A handler skipped because it failed too often in a row and its breaker is open."""
