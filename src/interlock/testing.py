"""What plugin authors need to test their plugins: sample payloads, a harness that runs a
plugin in a manager of its own and records its side effects, and a recording plugin.

    from interlock.testing import Harness

    def test_blocks_rm() -> None:
        with Harness(NoRm()) as harness:
            result = harness.invoke("pre_tool_call", tool_name="shell",
                                    arguments={"command": "rm -rf /"})
            assert result.blocked

With pytest, the `interlock_harness` and `interlock_manager` fixtures are ready to use
(interlock registers them as a pytest plugin).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from . import (
    ErrorEvent,
    HookContext,
    HookResult,
    HookSpec,
    Level,
    LLMRequest,
    LLMResponse,
    ManagerStats,
    Message,
    MessageEvent,
    Plugin,
    PluginManager,
    RegistrationStats,
    SessionEnd,
    SessionStart,
    StreamChunk,
    ToolCall,
    ToolResult,
    TurnEnd,
    hooks,
)

__all__ = ["Conformance", "Expected", "Harness", "RecordingPlugin", "sample"]

_SAMPLES: dict[str, Callable[[], Any]] = {
    "session_start": lambda: SessionStart("test-session"),
    "session_end": lambda: SessionEnd("test-session"),
    "message_received": lambda: MessageEvent("hello"),
    "message_sending": lambda: MessageEvent("hi there", role="assistant"),
    "pre_llm_call": lambda: LLMRequest("test-model", (Message("user", "hello"),)),
    "post_llm_call": lambda: LLMResponse("test-model", "hi there"),
    "llm_stream_chunk": lambda: StreamChunk("test-model", 0, "hi"),
    "pre_tool_call": lambda: ToolCall("shell", {"command": "ls"}, "call-1"),
    "post_tool_call": lambda: ToolResult("shell", {"command": "ls"}, "call-1", "a.txt"),
    "turn_end": lambda: TurnEnd(1, "hi there"),
    "error": lambda: ErrorEvent("RuntimeError", "something failed", "tool_call"),
}


def sample(hook: str | HookSpec[Any], /, **fields: Any) -> Any:
    """A payload for a catalog hook with everyday values; `fields` replace some of them.

    sample("pre_tool_call", arguments={"command": "rm -rf /"})
    """
    spec = hook if isinstance(hook, HookSpec) else hooks.get(hook)
    make = _SAMPLES.get(spec.name) if spec in hooks.CATALOG else None
    if make is None:
        return spec.payload_type(**fields)  # a host's own hook: its fields are required
    payload = make()
    return payload.replace(**fields) if fields else payload


class Harness:
    """One plugin registered in a manager of its own, inside a session scope, with
    recording writers for `system_items` and `notify`.

    Unless `capabilities=` is given, the plugin is granted every capability its hooks
    offer. `specs` declares a host's own hook points; other keyword arguments are
    `PluginManager.register`'s options.
    """

    def __init__(
        self,
        plugin: object,
        *,
        specs: Iterable[HookSpec[Any]] = (),
        session_id: str = "test-session",
        **options: Any,
    ) -> None:
        self.manager = PluginManager(specs=specs)
        self.system_items: list[tuple[str, str]] = []
        self.notifications: list[tuple[str, Level]] = []
        if "capabilities" not in options:
            probe = self.manager.register(plugin, **options)
            self.manager.unregister(probe)
            offered = {c for r in probe.registrations for c in r.hook.capabilities}
            options["capabilities"] = sorted(offered)
        self.handle = self.manager.register(plugin, **options)
        writers = _Writers(self)
        handles = {"system_items": writers, "notify": writers, "stats": writers}
        self._scope = self.manager.session(session_id, capabilities=handles)
        self._scope.open()

    def invoke(
        self, hook: str | HookSpec[Any], payload: Any = None, /, **fields: Any
    ) -> HookResult[Any]:
        """Fire `hook` with `payload`, or a `sample` built from `fields`."""
        spec = self.manager.spec(hook)
        chosen = sample(spec, **fields) if payload is None else payload
        return self.manager.invoke_sync(spec, chosen, scope=self._scope)

    async def ainvoke(
        self, hook: str | HookSpec[Any], payload: Any = None, /, **fields: Any
    ) -> HookResult[Any]:
        """`invoke` for async tests."""
        spec = self.manager.spec(hook)
        chosen = sample(spec, **fields) if payload is None else payload
        return await self.manager.invoke(spec, chosen, scope=self._scope)

    @property
    def state(self) -> dict[str, dict[str, Any]]:
        """Per-plugin session state, by plugin name (what handlers see as `ctx.state`)."""
        return self._scope.states

    def stats(self) -> ManagerStats:
        """The plugin's counters."""
        return self.manager.stats()

    def close(self) -> None:
        """Close the session scope and the manager."""
        self._scope.close()
        self.manager.close()

    def __enter__(self) -> Harness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Writers:
    def __init__(self, harness: Harness) -> None:
        self._harness = harness

    def write_system_item(self, kind: str, text: str, *, plugin: str) -> None:
        self._harness.system_items.append((kind, text))

    def write_notification(self, text: str, *, level: Level, plugin: str) -> None:
        self._harness.notifications.append((text, level))

    def read_stats(self) -> tuple[RegistrationStats, ...]:
        return self._harness.manager.stats().registrations


class RecordingPlugin(Plugin):
    """Records every catalog hook it sees, in order: `events` holds (hook name, payload).
    Events only: a recheck (`ctx.recheck`, the same event asked about again) is not
    recorded."""

    name = "recorder"

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def names(self) -> list[str]:
        """The hook names seen, in order."""
        return [name for name, _ in self.events]


def _recorder(hook_name: str) -> Callable[[RecordingPlugin, Any, HookContext], None]:
    def handler(self: RecordingPlugin, payload: Any, ctx: HookContext) -> None:
        if not ctx.recheck:  # asked again about the same event: not a new one
            self.events.append((hook_name, payload))

    handler.__name__ = f"on_{hook_name}"
    return handler


for _spec in hooks.CATALOG:
    setattr(RecordingPlugin, f"on_{_spec.name}", _recorder(_spec.name))


@dataclasses.dataclass(frozen=True)
class Expected:
    """The events a scripted conversation produces, for `Conformance.check`: user
    messages, model calls, tool calls, and (on a streaming path) streamed chunks."""

    user_messages: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    chunks: int | None = None


class Conformance:
    """Checks that an adapter fires each hook it claims exactly once per event.

    Give it the hooks the adapter claims; run the host with `manager` (where a recording
    plugin sees every hook), then `check` what was recorded against what the scripted
    conversation did; `reset` before the next path (sync, async, streaming).

        kit = Conformance(["message_received", "pre_llm_call", "post_llm_call",
                           "pre_tool_call", "post_tool_call"])
        agent = build_agent(adapter(kit.manager))
        agent.run_sync("list the files")          # one message, two model calls, one tool
        kit.check(Expected(user_messages=1, model_calls=2, tool_calls=1))
    """

    def __init__(self, claims: Iterable[str]) -> None:
        self.claims = frozenset(hooks.get(name).name for name in claims)
        self.recorder = RecordingPlugin()
        self.manager = PluginManager()
        self.manager.register(self.recorder)

    def reset(self) -> None:
        """Forget what was recorded (before the next path)."""
        self.recorder.events.clear()

    def check(self, expected: Expected) -> None:
        """Raise `AssertionError` naming every way the recorded hooks differ from what
        `expected` events should fire: counts per claimed hook, hooks fired that the
        adapter does not claim, `message_received` before the first model call, and each
        `post_tool_call` following a `pre_tool_call` of the same call id."""
        problems = self._counts(expected) + self._order() + self._pairs()
        if problems:
            raise AssertionError("adapter conformance:\n- " + "\n- ".join(problems))

    def _counts(self, expected: Expected) -> list[str]:
        seen = Counter(self.recorder.names())
        want = {
            "message_received": expected.user_messages,
            "pre_llm_call": expected.model_calls,
            "post_llm_call": expected.model_calls,
            "pre_tool_call": expected.tool_calls,
            "post_tool_call": expected.tool_calls,
        }
        if expected.chunks is not None:
            want["llm_stream_chunk"] = expected.chunks
        problems = [
            f"{name} fired {seen[name]} times for {count} events"
            for name, count in want.items()
            if name in self.claims and seen[name] != count
        ]
        problems += [
            f"{name} fired {seen[name]} times, but the adapter does not claim it"
            for name in sorted(seen)
            if name not in self.claims
        ]
        return problems

    def _order(self) -> list[str]:
        names = self.recorder.names()
        if "message_received" not in self.claims or "pre_llm_call" not in names:
            return []
        first_call = names.index("pre_llm_call")
        if "message_received" in names[:first_call]:
            return []
        return ["no message_received before the first pre_llm_call"]

    def _pairs(self) -> list[str]:
        if not {"pre_tool_call", "post_tool_call"} <= self.claims:
            return []
        problems: list[str] = []
        open_ids: list[str] = []
        for name, payload in self.recorder.events:
            if name == "pre_tool_call":
                if not payload.call_id:
                    problems.append(f"pre_tool_call of {payload.tool_name!r} has no call id")
                open_ids.append(payload.call_id)
            elif name == "post_tool_call":
                if payload.call_id not in open_ids:
                    problems.append(
                        f"post_tool_call of {payload.tool_name!r} (call id "
                        f"{payload.call_id!r}) follows no pre_tool_call of that id"
                    )
                else:
                    open_ids.remove(payload.call_id)
        return problems
