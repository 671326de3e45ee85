"""The built-in hook catalog: every hook point an agent runtime fires.

    >>> from interlock import hooks
    >>> hooks.PRE_TOOL_CALL.kind, hooks.PRE_TOOL_CALL.on_error
    ('modify', 'block')
    >>> hooks.get("before_tool_call") is hooks.PRE_TOOL_CALL
    True

| hook | kind | accepts | capabilities | aliases |
|---|---|---|---|---|
| session_start | observe | - | system_items, notify | on_session_start |
| session_end | observe | - | notify | on_session_end |
| message_received | modify | Continue, Modify, Block | system_items, notify | |
| message_sending | modify | Continue, Modify, Block | notify | |
| pre_llm_call | modify | Continue, Modify, Block, Respond | system_items, notify | llm_input |
| post_llm_call | modify | Continue, Modify, Block | system_items, notify | llm_output |
| llm_stream_chunk | modify | Continue, Modify, Block | - | |
| pre_tool_call | modify | Continue, Modify, Block, Ask | system_items, notify | before_tool_call |
| post_tool_call | modify | Continue, Modify, Block | system_items, notify | after_tool_call |
| turn_end | observe | - | system_items, notify | |
| error | observe | - | notify | |
"""

from __future__ import annotations

from typing import Any

from ._actions import Ask, Block, Modify, Respond
from ._payloads import (
    ErrorEvent,
    LLMRequest,
    LLMResponse,
    MessageEvent,
    SessionEnd,
    SessionStart,
    StreamChunk,
    ToolCall,
    ToolResult,
    TurnEnd,
)
from ._spec import HookSpec, WriteRule, unknown_hook

__all__ = [
    "CATALOG",
    "ERROR",
    "LLM_STREAM_CHUNK",
    "MESSAGE_RECEIVED",
    "MESSAGE_SENDING",
    "POST_LLM_CALL",
    "POST_TOOL_CALL",
    "PRE_LLM_CALL",
    "PRE_TOOL_CALL",
    "SESSION_END",
    "SESSION_START",
    "TURN_END",
    "get",
]

_SYSTEM_ITEMS = "system_items"
_NOTIFY = "notify"
_STATS = "stats"


def _system_messages_unchanged(old: LLMRequest, new: LLMRequest) -> str | None:
    if new.messages is old.messages:
        return None
    before = [m for m in old.messages if m.role == "system"]
    after = [m for m in new.messages if m.role == "system"]
    if before == after:
        return None
    return "changed the system messages"


_SYSTEM_MESSAGES = WriteRule(
    "system_messages",
    _system_messages_unchanged,
    "system messages in `messages` may not be added, removed or changed",
)

SESSION_START: HookSpec[SessionStart] = HookSpec(
    "session_start",
    SessionStart,
    capabilities={_SYSTEM_ITEMS, _NOTIFY, _STATS},
    aliases=("on_session_start",),
    description="A session began.",
)
SESSION_END: HookSpec[SessionEnd] = HookSpec(
    "session_end",
    SessionEnd,
    capabilities={_NOTIFY, _STATS},
    aliases=("on_session_end",),
    description="A session ended.",
)
MESSAGE_RECEIVED: HookSpec[MessageEvent] = HookSpec(
    "message_received",
    MessageEvent,
    kind="modify",
    accepts={Modify, Block},
    capabilities={_SYSTEM_ITEMS, _NOTIFY},
    writable={"content", "metadata"},
    description="A user message arrived, before the agent acts on it.",
)
MESSAGE_SENDING: HookSpec[MessageEvent] = HookSpec(
    "message_sending",
    MessageEvent,
    kind="modify",
    accepts={Modify, Block},
    capabilities={_NOTIFY},
    writable={"content", "metadata"},
    description="The agent is about to deliver a message; a block stops the delivery.",
)
PRE_LLM_CALL: HookSpec[LLMRequest] = HookSpec(
    "pre_llm_call",
    LLMRequest,
    kind="modify",
    accepts={Modify, Block, Respond},
    capabilities={_SYSTEM_ITEMS, _NOTIFY},
    aliases=("llm_input",),
    writable={"messages", "params"},
    rules=(_SYSTEM_MESSAGES,),
    response_type=LLMResponse,
    description="A model call is about to be made; Respond answers in its place.",
)
POST_LLM_CALL: HookSpec[LLMResponse] = HookSpec(
    "post_llm_call",
    LLMResponse,
    kind="modify",
    accepts={Modify, Block},
    capabilities={_SYSTEM_ITEMS, _NOTIFY},
    aliases=("llm_output",),
    writable={"content", "tool_calls"},
    description="The model answered, before the agent acts on the answer.",
)
LLM_STREAM_CHUNK: HookSpec[StreamChunk] = HookSpec(
    "llm_stream_chunk",
    StreamChunk,
    kind="modify",
    accepts={Modify, Block},
    writable={"delta"},
    on_error="block",  # a failing filter stops the display, never shows what it would hide
    description="One chunk of a streamed model answer arrived, before anyone sees it; "
    "Block stops showing the rest of the answer.",
)
PRE_TOOL_CALL: HookSpec[ToolCall] = HookSpec(
    "pre_tool_call",
    ToolCall,
    kind="modify",
    accepts={Modify, Block, Ask},
    capabilities={_SYSTEM_ITEMS, _NOTIFY},
    aliases=("before_tool_call",),
    writable={"arguments"},
    on_error="block",
    description="A tool is about to run; a block or a failing gate stops it.",
)
POST_TOOL_CALL: HookSpec[ToolResult] = HookSpec(
    "post_tool_call",
    ToolResult,
    kind="modify",
    accepts={Modify, Block},
    capabilities={_SYSTEM_ITEMS, _NOTIFY},
    aliases=("after_tool_call",),
    writable={"output", "is_error"},
    description="A tool returned, before the model sees the result.",
)
TURN_END: HookSpec[TurnEnd] = HookSpec(
    "turn_end",
    TurnEnd,
    capabilities={_SYSTEM_ITEMS, _NOTIFY, _STATS},
    description="One user message has been fully handled.",
)
ERROR: HookSpec[ErrorEvent] = HookSpec(
    "error",
    ErrorEvent,
    capabilities={_NOTIFY},
    description="Something failed in the agent.",
)

CATALOG: tuple[HookSpec[Any], ...] = (
    SESSION_START,
    SESSION_END,
    MESSAGE_RECEIVED,
    MESSAGE_SENDING,
    PRE_LLM_CALL,
    POST_LLM_CALL,
    LLM_STREAM_CHUNK,
    PRE_TOOL_CALL,
    POST_TOOL_CALL,
    TURN_END,
    ERROR,
)
"""Every built-in hook, in the order an agent session meets them."""

_BY_KEY: dict[str, HookSpec[Any]] = {key: spec for spec in CATALOG for key in spec.keys}


def get(name: str) -> HookSpec[Any]:
    """Return the catalog hook called `name` (or aliased so); raise `UnknownHookError`."""
    spec = _BY_KEY.get(name)
    if spec is None:
        raise unknown_hook(name, _BY_KEY)
    return spec
