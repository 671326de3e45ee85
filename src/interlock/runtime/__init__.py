"""The reference agent runtime: an agent loop that fires every hook of the catalog.

    from interlock.runtime import Agent, ScriptedBackend

    agent = Agent(ScriptedBackend(["Hello!"]), manager=manager)
    result = await agent.run("hi")

It uses only interlock's public API, as any host would.
"""

from ._agent import Agent, Approver
from ._events import EventKind, TraceEvent
from ._session import Session
from ._store import (
    Record,
    RecordKind,
    SessionLog,
    SessionLogError,
    SessionStore,
    SessionSummary,
    default_data_dir,
    open_session_store,
)
from ._store_postgres import PostgresSessionStore
from ._tools import Tool, ToolSet
from ._turn import TurnResult
from .backends import ModelBackend, OpenAIBackend, ScriptedBackend, Step

__all__ = [
    "Agent",
    "Approver",
    "EventKind",
    "ModelBackend",
    "OpenAIBackend",
    "PostgresSessionStore",
    "Record",
    "RecordKind",
    "ScriptedBackend",
    "Session",
    "SessionLog",
    "SessionLogError",
    "SessionStore",
    "SessionSummary",
    "Step",
    "Tool",
    "ToolSet",
    "TraceEvent",
    "TurnResult",
    "default_data_dir",
    "open_session_store",
]
