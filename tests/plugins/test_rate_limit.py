"""rate_limit through the reference runtime, on a clock the test moves."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from interlock import PluginManager, SessionInfo, ToolCall, hooks
from interlock.plugins.rate_limit import RateLimit, RateLimitConfig
from interlock.runtime import Step

from .helpers import run


class Clock:
    """A monotonic clock; `sleep` moves it instead of waiting."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limited(clock: Clock, **config: object) -> RateLimit:
    return RateLimit(RateLimitConfig.model_validate(config), clock=clock, sleep=clock.sleep)


def shells(count: int) -> list[Step | str]:
    return [Step(tool_calls=(("shell", {"command": f"echo {i}"}),)) for i in range(count)] + ["ok"]


async def test_over_the_limit_a_tool_call_is_blocked_with_the_limit_named() -> None:
    clock = Clock()
    plugin = limited(clock, tools={"sh*": {"calls": 2, "per": "1m"}})
    result = await run([(plugin, {})], shells(3), ["go"])
    outputs = [r["output"] for r in result.kinds("tool_result")]
    assert outputs[:2] == ["ran: echo 0", "ran: echo 1"]
    assert outputs[2].endswith(
        "rate limit: tool 'shell' may make 2 calls per 60s in this session ('sh*')"
    )


async def test_the_window_slides_and_sessions_count_apart_unless_shared() -> None:
    clock = Clock()
    own = limited(clock, tools={"shell": {"calls": 1, "per": 10}})
    first = await run([(own, {})], shells(1), ["go"])
    second = await run([(own, {})], shells(1), ["go"], session_id="s-2")  # its own window
    assert [r["output"] for r in second.kinds("tool_result")] == ["ran: echo 0"]
    assert [r["output"] for r in first.kinds("tool_result")] == ["ran: echo 0"]

    shared = limited(clock, tools={"shell": {"calls": 1, "per": 10, "across_sessions": True}})
    await run([(shared, {})], shells(1), ["go"])
    blocked = await run([(shared, {})], shells(1), ["go"], session_id="s-2")
    assert "across sessions" in blocked.kinds("tool_result")[0]["output"]
    clock.now += 10  # the first call leaves the window
    later = await run([(shared, {})], shells(1), ["go"])
    assert later.kinds("tool_result")[0]["output"] == "ran: echo 0"


async def test_wait_mode_waits_for_a_slot_up_to_max_wait() -> None:
    clock = Clock()
    plugin = limited(clock, tools={"shell": {"calls": 2, "per": 30}}, mode="wait", max_wait=45)
    result = await run([(plugin, {})], shells(5), ["go"])
    outputs = [r["output"] for r in result.kinds("tool_result")]
    assert outputs == [f"ran: echo {i}" for i in range(5)]
    assert clock.slept == [30.0, 30.0]  # the third and fifth waited for a slot

    impatient = limited(clock, models={"scripted": {"calls": 1, "per": 60}}, mode="wait",
                        max_wait=5)  # fmt: skip
    blocked = await run([(impatient, {})], ["one", "two"], ["a", "b"])
    assert blocked.replies[1].reason == (
        "rate limit: model 'scripted' may make 1 call per 60s in this session ('scripted')"
    )


def test_limits_need_positive_calls_and_a_duration() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        RateLimitConfig.model_validate({"tools": {"x": {"calls": 0, "per": 1}}})
    with pytest.raises(ValidationError, match="expected a duration"):
        RateLimitConfig.model_validate({"tools": {"x": {"calls": 1, "per": "soon"}}})


async def test_a_wait_cut_short_by_the_timeout_blocks_the_call() -> None:
    clock = Clock()

    async def forever(seconds: float) -> None:
        import asyncio

        await asyncio.Event().wait()  # a wait the registration's timeout must end

    plugin = RateLimit(RateLimitConfig.model_validate(
        {"models": {"scripted": {"calls": 1, "per": 60}}, "mode": "wait", "max_wait": 3600}
    ), clock=clock, sleep=forever)  # fmt: skip
    result = await run([(plugin, {"timeout": 0.05})], ["one", "two"], ["a", "b"])
    assert result.replies[0].stopped == "answered"
    assert result.replies[1].stopped == "blocked"  # fails closed: never over the limit
    assert not plugin.store._windows  # type: ignore[attr-defined]  # the session's went


async def test_scopes_share_windows_by_tag_and_by_metadata_value() -> None:
    config = {"tools": {"shell": {"calls": 1, "per": 60, "scope": "tag:tenant-*"},
                        "fetch": {"calls": 1, "per": 60, "scope": "metadata.user"}}}  # fmt: skip
    manager = PluginManager()
    manager.register(limited(Clock(), **config))

    async def call(tool: str, session: str, **facts: object) -> str | None:
        async with manager.session(session, **facts):  # type: ignore[arg-type]
            result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall(tool))
            return result.reason if result.blocked else None

    assert await call("shell", "a", tags=["tenant-x"]) is None
    assert await call("shell", "b", tags=["tenant-x"]) == (
        "rate limit: tool 'shell' may make 1 call per 60s for tag 'tenant-x' ('shell')"
    )
    assert await call("shell", "c", tags=["tenant-y"]) is None  # another tenant's window
    assert await call("shell", "d") is None and await call("shell", "e") is None  # untagged
    assert await call("fetch", "f", metadata={"user": "ann"}) is None
    assert await call("fetch", "g", metadata={"user": "ann"}) == (
        "rate limit: tool 'fetch' may make 1 call per 60s for user 'ann' ('fetch')"
    )
    assert await call("fetch", "h", metadata={"user": "bob"}) is None


def test_a_scope_is_one_of_the_known_kinds_and_agrees_with_across_sessions() -> None:
    with pytest.raises(ValidationError, match="should match pattern"):
        RateLimitConfig.model_validate({"tools": {"x": {"calls": 1, "per": 1, "scope": "team"}}})
    with pytest.raises(ValidationError, match="disagree"):
        RateLimitConfig.model_validate({"tools": {"x": {
            "calls": 1, "per": 1, "scope": "tag:t", "across_sessions": True}}})  # fmt: skip
    shared = RateLimitConfig.model_validate(
        {"tools": {"x": {"calls": 1, "per": 1, "across_sessions": True}}}
    )
    assert shared.tools["x"].scope == "global"


@pytest.mark.parametrize("per", ["none", float("inf"), float("nan")])
def test_a_window_has_a_finite_period(per: object) -> None:
    with pytest.raises(ValidationError, match=r"finite|ends"):
        RateLimitConfig.model_validate({"tools": {"x": {"calls": 1, "per": per}}})
    with pytest.raises(ValidationError, match=r"finite|ends"):
        RateLimitConfig.model_validate({"max_wait": per})


async def test_windows_found_once_per_session_count_in_each_sessions_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Calls outside a session scope share one state: each still counts in the windows of
    the session it names; past the names a session keeps found, they are found anew."""
    monkeypatch.setattr("interlock.plugins.rate_limit._KNOWN_MAX", 2)
    config = {"tools": {"*": {"calls": 2, "per": 60, "scope": "tag:team-*"}}}
    manager = PluginManager()
    manager.register(limited(Clock(), **config))
    a, b = SessionInfo("s-a", ("team-a",)), SessionInfo("s-b", ("team-b",))

    async def call(tool: str, session: SessionInfo) -> bool:
        return (await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall(tool), session=session)).blocked

    calls = [("x", a), ("x", b), ("x", b), ("y", a), ("z", a), ("w", a), ("x", b)]
    assert [await call(tool, session) for tool, session in calls] == [
        False, False, False, False, True, True, True
    ]  # fmt: skip
