"""`rate_limit`: at most so many calls per interval, per tool or model, per session or for
the whole process; over the limit, block or wait.

    plugins:
      - name: rate-limit
        use: rate-limit
        timeout: 30s                          # above max_wait, when waiting
        config:
          tools:
            "web_*": {calls: 10, per: 1m}           # each session, each matching tool
            shell: {calls: 30, per: 1m, across_sessions: true}
          models:
            "gpt-4o*": {calls: 60, per: 1m, across_sessions: true}
          mode: wait                          # or block
          max_wait: 20s

Limits are sliding windows. A tool or model that several globs match counts against each.
In `wait` mode a call waits for a free slot up to `max_wait` (4 s by default), then is
blocked. A wait longer than the registration's timeout (5 s by default) is cut short by
it, and the call is blocked (these handlers fail closed): raise `timeout` with `max_wait`.
A session's windows are dropped at its end.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Awaitable, Callable
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .. import Block, HookContext, LLMRequest, Plugin, SessionEnd, ToolCall, hook
from ..config import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration)]
"""A duration: `"250ms"`, `"2s"`, `"1m"`, or a number of seconds."""


class Limit(BaseModel):
    """`calls` per `per` (a duration), counted per session unless `across_sessions`."""

    model_config = ConfigDict(extra="forbid")

    calls: int = Field(gt=0)
    per: Seconds
    across_sessions: bool = False


class RateLimitConfig(BaseModel):
    """Limits by tool glob and by model glob; what to do over them."""

    model_config = ConfigDict(extra="forbid")

    tools: dict[str, Limit] = Field(default_factory=dict)
    models: dict[str, Limit] = Field(default_factory=dict)
    mode: Literal["block", "wait"] = "block"
    max_wait: Seconds = 4.0
    """Below the default 5 s timeout of a registration; raise both together."""


class RateLimit(Plugin):
    """Limits call rates; see the module documentation."""

    name = "rate-limit"
    version = "1.0"
    config_model = RateLimitConfig

    def __init__(
        self,
        config: RateLimitConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config or RateLimitConfig()
        self._clock = clock
        self._sleep = sleep
        self._windows: dict[tuple[str, str, str], collections.deque[float]] = {}
        self._lock = threading.Lock()

    # Fail closed: a wait cut short by the registration's timeout must not let the call
    # through over the limit.
    @hook("pre_tool_call", on_error="block")
    async def tools(self, call: ToolCall, ctx: HookContext) -> Any:
        """Admit a tool call, or wait for a slot, or block it."""
        if ctx.recheck:  # admitted (or waited for) when first asked; count it once
            return None
        return await self._admit("tool", call.tool_name, self.config.tools, ctx)

    @hook("pre_llm_call", on_error="block")
    async def models(self, request: LLMRequest, ctx: HookContext) -> Any:
        """Admit a model call, or wait for a slot, or block it."""
        if ctx.recheck:
            return None
        return await self._admit("model", request.model, self.config.models, ctx)

    def on_session_end(self, event: SessionEnd, ctx: HookContext) -> None:
        """Forget the session's own windows."""
        with self._lock:
            for key in [k for k in self._windows if k[0] == event.session_id]:
                del self._windows[key]

    async def _admit(self, what: str, name: str, limits: dict[str, Limit], ctx: HookContext) -> Any:
        applying = [(glob, limit) for glob, limit in limits.items() if fnmatchcase(name, glob)]
        if not applying:
            return None
        session = ctx.session.id if ctx.session is not None else ""
        deadline = self._clock() + (self.config.max_wait if self.config.mode == "wait" else 0)
        while True:
            wait, full = self._take(applying, session)
            if full is None:
                return None
            if self._clock() + wait > deadline:
                glob, limit = full
                scope = "across sessions" if limit.across_sessions else "in this session"
                return Block(f"rate limit: {what} {name!r} may make {limit.calls} calls per "
                             f"{limit.per:g}s {scope} ({glob!r})")  # fmt: skip
            await self._sleep(wait)

    def _take(
        self, applying: list[tuple[str, Limit]], session: str
    ) -> tuple[float, tuple[str, Limit] | None]:
        """Take a slot in every window, or none: (0, None) when taken, else how long until
        the fullest window has room, and its limit."""
        now = self._clock()
        with self._lock:
            windows = []
            for glob, limit in applying:
                key = ("*" if limit.across_sessions else session, glob, str(limit.per))
                window = self._windows.setdefault(key, collections.deque())
                while window and window[0] <= now - limit.per:
                    window.popleft()  # (an emptied window stays: it is about to be used)
                if len(window) >= limit.calls:
                    return window[0] + limit.per - now, (glob, limit)
                windows.append(window)
            for window in windows:
                window.append(now)
        return 0.0, None
