"""`rate_limit`: at most so many calls per interval, per tool or model, per session, per
user, per tenant tag or for everyone; over the limit, block or wait.

    store: redis://127.0.0.1:6379/0           # windows shared by every process (optional)
    plugins:
      - name: rate-limit
        use: rate-limit
        timeout: 30s                          # above max_wait, when waiting
        config:
          tools:
            "web_*": {calls: 10, per: 1m}                   # each session, each matching tool
            shell: {calls: 30, per: 1m, scope: global}      # everyone together
          models:
            "gpt-4o*": {calls: 60, per: 1m, scope: "tag:tenant-*"}  # each tenant tag
            "*": {calls: 100, per: 1m, scope: metadata.user}        # each user
          mode: wait                          # or block
          max_wait: 20s
          on_store_error: block               # or allow, when the store is unreachable

Limits are sliding windows. A tool or model that several globs match counts against each,
and a call is admitted into all of its windows or into none. `scope` says whose calls share
a window: `session` (the default), `global` (`across_sessions: true` says the same),
`tag:GLOB` (each session tag matching GLOB has its own window; sessions with none are not
limited by it) or `metadata.FIELD` (each value of that field of the session's metadata,
say the user; sessions without it are not limited by it).

Windows live in the plugin's store: this process's memory unless interlock.yaml names a
`store:`, in which case every process using it shares them, exactly (an atomic admit on the
store's clock). When the store cannot be reached, calls are blocked with the reason
(`on_store_error: block`, the default) or let through (`allow`), until it is back.

In `wait` mode a call waits for a free slot up to `max_wait` (4 s by default), then is
blocked. A wait longer than the registration's timeout (5 s by default) is cut short by
it, and the call is blocked (these handlers fail closed): raise `timeout` with `max_wait`.
A session's own windows are dropped at its end.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .. import Block, HookContext, LLMRequest, Plugin, SessionEnd, SessionInfo, ToolCall, hook
from ..config import parse_duration
from ..store import MemoryStore, StateStore, StoreError, Window, key

logger = logging.getLogger("interlock.plugins.rate_limit")

Seconds = Annotated[float, BeforeValidator(functools.partial(parse_duration, endless=False))]
"""A duration that ends: `"250ms"`, `"2s"`, `"1m"`, or a number of seconds."""

_SCOPE = re.compile(r"^(session|global|tag:.+|metadata\.[^.]+)$")
_KNOWN_MAX = 256  # names whose windows a session keeps found, before it finds them anew


class Limit(BaseModel):
    """`calls` per `per` (a duration), counted in windows of `scope`."""

    model_config = ConfigDict(extra="forbid")

    calls: int = Field(gt=0)
    per: Seconds
    scope: str = Field(default="session", pattern=_SCOPE.pattern)
    """`session`, `global`, `tag:GLOB` or `metadata.FIELD`."""
    across_sessions: bool = False
    """The same as `scope: global`."""

    @model_validator(mode="after")
    def _one_scope(self) -> Limit:
        if self.across_sessions:
            if self.scope not in ("session", "global"):
                raise ValueError(f"across_sessions: true and scope: {self.scope} disagree; "
                                 "keep scope only")  # fmt: skip
            self.scope = "global"
        return self


class RateLimitConfig(BaseModel):
    """Limits by tool glob and by model glob; what to do over them."""

    model_config = ConfigDict(extra="forbid")

    tools: dict[str, Limit] = Field(default_factory=dict)
    models: dict[str, Limit] = Field(default_factory=dict)
    mode: Literal["block", "wait"] = "block"
    max_wait: Seconds = 4.0
    """Below the default 5 s timeout of a registration; raise both together."""
    on_store_error: Literal["block", "allow"] = "block"
    """When the store cannot be reached: block calls (fail closed) or let them through."""


class RateLimit(Plugin):
    """Limits call rates; see the module documentation.

    `store` holds the windows (a `MemoryStore` of this process by default; the config
    loader passes the one interlock.yaml names). `clock` and `sleep` drive the default
    store and the waits.
    """

    name = "rate-limit"
    version = "1.1"
    config_model = RateLimitConfig

    def __init__(
        self,
        config: RateLimitConfig | None = None,
        *,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config or RateLimitConfig()
        self.store = store if store is not None else MemoryStore(plugin=self.name, clock=clock)
        self._clock = clock
        self._sleep = sleep

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

    async def on_session_end(self, event: SessionEnd, ctx: HookContext) -> None:
        """Forget the session's own windows."""
        keys = [_window_key(what, ("session", event.session_id), glob, limit)
                for what, limits in (("tool", self.config.tools), ("model", self.config.models))
                for glob, limit in limits.items() if limit.scope == "session"]  # fmt: skip
        try:
            await self.store.delete(*keys)
        except StoreError as error:  # they expire by themselves after their period
            logger.warning("rate-limit: could not drop the windows of session %r: %s",
                           event.session_id, error)  # fmt: skip

    async def aclose(self) -> None:
        """Close the store's connections."""
        await self.store.aclose()

    async def _admit(self, what: str, name: str, limits: dict[str, Limit], ctx: HookContext) -> Any:
        if not limits:
            return None
        windows, described = _known(ctx.state, ctx.session, what, name, limits)
        if not windows:
            return None
        # one event, however often it asks (a retry takes one slot); random, so a forked
        # process never repeats its parent's
        member = os.urandom(16).hex()
        deadline = self._clock() + (self.config.max_wait if self.config.mode == "wait" else 0)
        while True:
            try:
                admission = await self.store.admit(windows, member)
            except StoreError as error:
                return self._unreachable(error, what, name)
            if admission.full is None:
                return None
            if self._clock() + admission.retry_after > deadline:
                return Block(f"rate limit: {what} {name!r} may make "
                             f"{described[admission.full]}")  # fmt: skip
            await self._sleep(admission.retry_after)

    def _unreachable(self, error: StoreError, what: str, name: str) -> Block | None:
        if self.config.on_store_error == "allow":
            logger.debug("rate-limit: %s %r let through unchecked: %s", what, name, error)
            return None
        return Block(f"rate limit: {what} {name!r} cannot be checked, so it is blocked "
                     f"(on_store_error: block): {error}")  # fmt: skip


def _known(
    state: dict[str, Any],
    session: SessionInfo | None,
    what: str,
    name: str,
    limits: dict[str, Limit],
) -> tuple[list[Window], list[str]]:
    """`_windows` of a call, found once per session and name: kept in the session's state
    with the (frozen) session facts they were found for, at most `_KNOWN_MAX` names."""
    found = state.get("windows")
    if found is None or found[0] is not session or len(found[1]) >= _KNOWN_MAX:
        found = state["windows"] = (session, {})
    known: dict[tuple[str, str], tuple[list[Window], list[str]]] = found[1]
    windows = known.get((what, name))
    if windows is None:
        applying = _windows(what, name, limits, session)
        windows = known[what, name] = ([w for w, _ in applying], [d for _, d in applying])
    return windows


def _windows(
    what: str, name: str, limits: dict[str, Limit], session: SessionInfo | None
) -> list[tuple[Window, str]]:
    """The windows a call of `name` (a `what`: tool or model) counts in, each with the
    words that describe its limit."""
    windows = []
    for glob, limit in limits.items():
        if not fnmatchcase(name, glob):
            continue
        for owner, whose in _owners(limit.scope, session):
            calls = "1 call" if limit.calls == 1 else f"{limit.calls} calls"
            described = f"{calls} per {limit.per:g}s {whose} ({glob!r})"
            windows.append((Window(_window_key(what, owner, glob, limit), limit.calls,
                                   limit.per), described))  # fmt: skip
    return windows


def _owners(scope: str, session: SessionInfo | None) -> list[tuple[tuple[object, ...], str]]:
    """Whose window(s) a call counts in under `scope`: a key part and the words for it."""
    if scope == "global":
        return [(("global",), "across sessions")]
    if scope == "session":
        return [(("session", session.id if session is not None else ""), "in this session")]
    if session is None:
        return []
    if scope.startswith("tag:"):
        pattern = scope.removeprefix("tag:")
        return [(("tag", t), f"for tag {t!r}") for t in session.tags if fnmatchcase(t, pattern)]
    field = scope.removeprefix("metadata.")
    value = session.metadata.get(field)
    if value is None:
        return []
    return [(("metadata", field, value), f"for {field} {value!r}")]


def _window_key(what: str, owner: tuple[object, ...], glob: str, limit: Limit) -> str:
    # Tool and model limits of one glob and period are two windows, never one.
    return key("window", what, *owner, glob, f"{limit.per:g}")
