"""The payload types of the built-in hook catalog.

Payloads are frozen, slotted dataclasses whose nested data is frozen at construction
(tuples and `FrozenDict`), so every handler can be handed the same object: nothing one
handler does can change what another handler or the host sees. A handler that wants a
different payload returns `Modify(payload.replace(...))`.

Validation and JSON schema come from pydantic at the boundaries (the wire, config files):
`pydantic.TypeAdapter(ToolCall)` works on every type here.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from ._frozen import EMPTY, JsonValue, freeze_items, freeze_mapping

Role = Literal["system", "user", "assistant", "tool"]
"""Who wrote a message, in the chat-completions sense."""

_set = object.__setattr__  # frozen dataclasses are filled in once, in __post_init__
_ROLES = frozenset(typing.get_args(Role))


def _check_role(role: object) -> None:
    if role not in _ROLES:
        raise ValueError(f"role must be one of {', '.join(sorted(_ROLES))}, got {role!r}")


@dataclass(frozen=True, slots=True)
class Payload:
    """Base of the catalog's payload types: frozen, with a `replace` helper for `Modify`."""

    def replace(self, **changes: Any) -> Self:
        """Return a copy with `changes` applied; nested data given here is frozen too.

        >>> call = ToolCall("shell", {"command": "ls"})
        >>> call.replace(arguments={"command": "ls -la"}).arguments["command"]
        'ls -la'
        """
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ToolCall(Payload):
    """A tool call the model asked for: the `pre_tool_call` payload.

    `arguments` is never None: a missing or None value becomes an empty mapping.
    """

    tool_name: str
    arguments: Mapping[str, JsonValue] = field(default=EMPTY)
    call_id: str = ""

    def __post_init__(self) -> None:
        _set(self, "arguments", freeze_mapping(self.arguments, "arguments"))


@dataclass(frozen=True, slots=True)
class Message(Payload):
    """One chat message as the model sees it."""

    role: Role
    content: str = ""
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    def __post_init__(self) -> None:
        _check_role(self.role)
        _set(self, "tool_calls", freeze_items(self.tool_calls, ToolCall, "tool_calls"))


@dataclass(frozen=True, slots=True)
class ToolSchema(Payload):
    """A tool offered to the model: its name, description and JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: Mapping[str, JsonValue] = field(default=EMPTY)

    def __post_init__(self) -> None:
        _set(self, "parameters", freeze_mapping(self.parameters, "parameters"))


@dataclass(frozen=True, slots=True)
class Usage(Payload):
    """Token counts reported for one model call."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class LLMRequest(Payload):
    """A model call about to be made: the `pre_llm_call` payload.

    `messages` includes the system messages; handlers may change the other messages and
    `params`, not the system messages, `tools` or `model`, unless their registration was
    granted those with `writable=`.
    """

    model: str
    messages: tuple[Message, ...] = ()
    tools: tuple[ToolSchema, ...] = ()
    params: Mapping[str, JsonValue] = field(default=EMPTY)
    stream: bool = False

    def __post_init__(self) -> None:
        _set(self, "messages", freeze_items(self.messages, Message, "messages"))
        _set(self, "tools", freeze_items(self.tools, ToolSchema, "tools"))
        _set(self, "params", freeze_mapping(self.params, "params"))


@dataclass(frozen=True, slots=True)
class LLMResponse(Payload):
    """What the model answered: the `post_llm_call` payload, and what `Respond` carries."""

    model: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"

    def __post_init__(self) -> None:
        _set(self, "tool_calls", freeze_items(self.tool_calls, ToolCall, "tool_calls"))


@dataclass(frozen=True, slots=True)
class StreamChunk(Payload):
    """One piece of a streamed model answer: the `llm_stream_chunk` payload.

    `delta` is the chunk's text, the one field a `Modify` may change: what the host shows
    is the `delta` the plugins leave. `index` counts the chunks of one answer from 0 (0
    starts a new stream); `done` marks its last chunk, when a plugin that held text back
    must let the rest of it go.
    """

    model: str
    index: int
    delta: str = ""
    done: bool = False


@dataclass(frozen=True, slots=True)
class ToolResult(Payload):
    """What a tool returned: the `post_tool_call` payload. `output` is what the model sees."""

    tool_name: str
    arguments: Mapping[str, JsonValue] = field(default=EMPTY)
    call_id: str = ""
    output: str = ""
    is_error: bool = False

    def __post_init__(self) -> None:
        _set(self, "arguments", freeze_mapping(self.arguments, "arguments"))


@dataclass(frozen=True, slots=True)
class MessageEvent(Payload):
    """A message between the user and the agent: `message_received` and `message_sending`."""

    content: str
    role: Role = "user"
    channel: str = ""
    metadata: Mapping[str, JsonValue] = field(default=EMPTY)

    def __post_init__(self) -> None:
        _check_role(self.role)
        _set(self, "metadata", freeze_mapping(self.metadata, "metadata"))


@dataclass(frozen=True, slots=True)
class SessionStart(Payload):
    """A session began: the `session_start` payload."""

    session_id: str
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, JsonValue] = field(default=EMPTY)

    def __post_init__(self) -> None:
        _set(self, "tags", freeze_items(self.tags, str, "tags"))
        _set(self, "metadata", freeze_mapping(self.metadata, "metadata"))


@dataclass(frozen=True, slots=True)
class SessionEnd(Payload):
    """A session ended: the `session_end` payload."""

    session_id: str
    reason: str = "completed"
    turns: int = 0


@dataclass(frozen=True, slots=True)
class TurnEnd(Payload):
    """One user message has been fully handled: the `turn_end` payload."""

    turn: int
    content: str = ""
    tool_calls: int = 0
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class ErrorEvent(Payload):
    """Something failed in the agent: the `error` payload.

    `stage` says where (`"llm_call"`, `"tool_call"`, a hook name, ...); `plugin` names the
    plugin at fault when there is one.
    """

    error_type: str
    message: str
    stage: str = ""
    plugin: str | None = None
