"""`TraceEvent`: what the agent tells a live view (the CLI's trace) as it works."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal["hook", "model", "tool", "system_item", "notification", "reply", "stream"]


@dataclass(frozen=True)
class TraceEvent:
    """One step of an agent's work, for display; the durable record is the session log.

    `kind` says what happened and `name` to what: a hook name (`detail["result"]` is its
    `HookResult`, `detail["payload"]` the payload the host goes on with, `None` when
    blocked), a model name (`detail["request"]` as sent, then `detail["usage"]`; the answer's
    text comes only as the plugins left it), a tool name, a system item's kind, a
    notification's level, or `"delivered"` / `"undelivered"` for the reply.

    A streamed answer comes as `"stream"` events named after the model: `detail["text"]`
    is the next piece to show, as the `llm_stream_chunk` plugins left it (never the model's
    own text), or `detail["stopped_by"]` and `detail["reason"]` when a plugin stopped the
    display. The hook itself sends no `"hook"` event per chunk.
    """

    kind: EventKind
    name: str
    session_id: str
    turn: int
    detail: Mapping[str, Any] = field(default_factory=dict)
