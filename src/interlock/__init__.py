"""interlock: typed, capability-safe hooks and plugins for LLM agents.

from interlock import Block, PluginManager, hook, hooks

@hook("pre_tool_call", when={"tool_name": "shell"})
def no_rm(payload, ctx):
    if "rm -rf" in payload.arguments.get("command", ""):
        return Block("destructive shell command")

manager = PluginManager()
manager.register(no_rm)
result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("shell", {"command": "rm -rf /"}))
assert result.blocked
"""

from typing import TYPE_CHECKING

from . import hooks
from ._actions import (
    Action,
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
from ._capabilities import (
    Level,
    NotificationWriter,
    Notifier,
    StatsReader,
    StatsView,
    SystemItemSink,
    SystemItemWriter,
)
from ._context import HookContext, SessionInfo
from ._exceptions import (
    CapabilityError,
    CircuitOpenError,
    ConditionError,
    ConfigError,
    ConfigProblem,
    DuplicatePluginError,
    HandlerFailureError,
    HandlerSignatureError,
    HookTimeoutError,
    IncompatiblePluginError,
    InterlockError,
    InvalidActionError,
    PayloadTypeError,
    PortalError,
    ProtocolError,
    RegistrationError,
    SpecError,
    UnknownHookError,
    UnknownPluginError,
)
from ._frozen import FrozenDict, JsonValue
from ._manager import PluginHandle, PluginManager, SessionScope
from ._payloads import (
    ErrorEvent,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    Payload,
    Role,
    SessionEnd,
    SessionStart,
    StreamChunk,
    ToolCall,
    ToolResult,
    ToolSchema,
    TurnEnd,
    Usage,
)
from ._plugin import API_VERSION, Member, Plugin, PluginSet, hook
from ._registry import Registration
from ._spec import HookSpec, Kind, Mode, OnError, WriteRule
from ._stats import ManagerStats, RegistrationStats

if TYPE_CHECKING:
    from .config import load_config

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "Action",
    "Ask",
    "Block",
    "CapabilityError",
    "CircuitOpenError",
    "ConditionError",
    "ConfigError",
    "ConfigProblem",
    "Continue",
    "DuplicatePluginError",
    "ErrorEvent",
    "FailureKind",
    "FrozenDict",
    "HandlerFailure",
    "HandlerFailureError",
    "HandlerSignatureError",
    "HookContext",
    "HookResult",
    "HookSpec",
    "HookTimeoutError",
    "IncompatiblePluginError",
    "InterlockError",
    "InvalidActionError",
    "JsonValue",
    "Kind",
    "LLMRequest",
    "LLMResponse",
    "Level",
    "ManagerStats",
    "Member",
    "Message",
    "MessageEvent",
    "Mode",
    "Modify",
    "NotificationWriter",
    "Notifier",
    "OnError",
    "Payload",
    "PayloadTypeError",
    "Plugin",
    "PluginHandle",
    "PluginManager",
    "PluginSet",
    "PortalError",
    "ProtocolError",
    "Registration",
    "RegistrationError",
    "RegistrationStats",
    "Respond",
    "Role",
    "SessionEnd",
    "SessionInfo",
    "SessionScope",
    "SessionStart",
    "SpecError",
    "StatsReader",
    "StatsView",
    "StreamChunk",
    "SystemItemSink",
    "SystemItemWriter",
    "ToolCall",
    "ToolResult",
    "ToolSchema",
    "TurnEnd",
    "UnknownHookError",
    "UnknownPluginError",
    "Usage",
    "Violation",
    "WriteRule",
    "__version__",
    "hook",
    "hooks",
    "load_config",
]


def __getattr__(name: str) -> object:
    # load_config needs PyYAML and pydantic: imported on first use, not with interlock.
    if name == "load_config":
        from .config import load_config

        return load_config
    raise AttributeError(f"module 'interlock' has no attribute {name!r}")
