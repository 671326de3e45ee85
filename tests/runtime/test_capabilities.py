"""The runtime's side of capabilities: what a plugin can make the model see, and nothing else."""

from __future__ import annotations

from typing import Any

from interlock import HookContext, LLMRequest, PluginManager, hook, hooks
from interlock.runtime import Agent, ScriptedBackend

from .helpers import Recorder


def requests(recorder: Recorder) -> list[LLMRequest]:
    return [p for n, p in recorder.events if n == "pre_llm_call"]


async def two_turns(*registrations: tuple[Any, dict[str, Any]]) -> tuple[Recorder, list[Any]]:
    """Two turns in one session with these plugins; what the model got, and the log."""
    manager = PluginManager()
    recorder = Recorder()
    manager.register(recorder)
    for plugin, options in registrations:
        manager.register(plugin, **options)
    agent = Agent(ScriptedBackend(["a", "b"]), manager=manager, system_prompt="You help.")
    async with agent.session("s") as session:
        await session.send("one")
        await session.send("two")
        return recorder, session.records()


async def test_a_system_item_is_logged_and_reaches_the_next_model_call() -> None:
    @hook("turn_end")
    def remind(payload: Any, ctx: HookContext) -> None:
        assert ctx.system_items is not None
        ctx.system_items.append("reminder", "run the tests")

    recorder, records = await two_turns((remind, {"capabilities": ["system_items"]}))
    first, second = requests(recorder)
    assert ("system", "reminder: run the tests") not in [
        (m.role, m.content) for m in first.messages
    ]
    assert ("system", "reminder: run the tests") in [(m.role, m.content) for m in second.messages]
    items = [r.data for r in records if r.kind == "system_item"]
    assert items == [{"kind": "reminder", "text": "run the tests", "plugin": "remind"}] * 2


async def test_notifications_are_logged_and_never_shown_to_the_model() -> None:
    @hook("turn_end")
    def tell(payload: Any, ctx: HookContext) -> None:
        assert ctx.notify is not None
        ctx.notify.notify("secret-for-the-user-only", level="warning")

    recorder, records = await two_turns((tell, {"capabilities": ["notify"]}))
    assert all("secret-for-the-user-only" not in str(r.messages) for r in requests(recorder))
    assert [r.data["level"] for r in records if r.kind == "notification"] == ["warning"] * 2


async def test_without_the_grant_there_is_no_handle() -> None:
    seen: list[object] = []

    @hook("turn_end")
    def curious(payload: Any, ctx: HookContext) -> None:
        seen.extend([ctx.system_items, ctx.notify])

    manager = PluginManager()
    manager.register(curious)
    await Agent(ScriptedBackend(["a"]), manager=manager).run("x")
    assert seen == [None, None]


async def test_every_model_visible_change_is_in_the_log() -> None:
    """No invisible context injection: what reaches the model is logged or is an action."""

    @hook("turn_end")
    def remind(payload: Any, ctx: HookContext) -> None:
        if ctx.system_items is not None:
            ctx.system_items.append("reminder", "stay on task")

    @hook("pre_llm_call")
    def note(payload: LLMRequest, ctx: HookContext) -> Any:
        from interlock import Message, Modify

        return Modify(payload.replace(messages=(*payload.messages, Message("user", "(be brief)"))))

    recorder, records = await two_turns((remind, {"capabilities": ["system_items"]}), (note, {}))
    logged_items = {
        f"{r.data['kind']}: {r.data['text']}" for r in records if r.kind == "system_item"
    }
    modifications = [r for r in records if r.kind == "hook" and r.data["modified_by"] == ("note",)]
    for request in requests(recorder):
        for message in request.messages:
            if message.role == "system":
                assert message.content == "You help." or message.content in logged_items
    assert len(modifications) == 2  # each model-visible Modify is in the log too


async def test_a_context_reaches_no_host_object() -> None:
    seen: list[HookContext] = []

    @hook("pre_llm_call")
    def spy(payload: Any, ctx: HookContext) -> None:
        seen.append(ctx)

    manager = PluginManager()
    manager.register(spy, capabilities=["system_items", "notify"])
    agent = Agent(ScriptedBackend(["a"]), manager=manager)
    await agent.run("x")
    ctx = seen[0]
    reachable = [getattr(ctx, name) for name in dir(ctx) if not name.startswith("_")]
    assert not any(isinstance(v, type(agent)) or hasattr(v, "store") for v in reachable)
    assert ctx.hook is hooks.PRE_LLM_CALL
