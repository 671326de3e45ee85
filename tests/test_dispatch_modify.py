"""The modify chain: order, chaining, blocking, modes, action checks and failure isolation."""

from __future__ import annotations

from typing import Any

import pytest

from interlock import (
    Ask,
    Block,
    Continue,
    HookSpec,
    LLMRequest,
    LLMResponse,
    Message,
    MessageEvent,
    Modify,
    PluginManager,
    Respond,
    ToolCall,
    ToolSchema,
    hook,
    hooks,
)


def tag(name: str, *, priority: int | None = None, **options: Any) -> Any:
    """A handler that appends its name to the message content."""

    @hook("message_received", name=name, priority=priority, **options)
    def handler(payload: MessageEvent, ctx: Any) -> Modify[MessageEvent]:
        return Modify(payload.replace(content=payload.content + name))

    return handler


async def test_priority_order_with_ties_in_registration_order(manager: PluginManager) -> None:
    for name, priority in [("c", 5), ("a", 1), ("d", 5), ("b", 1), ("e", -3)]:
        manager.register(tag(name, priority=priority))
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent(""))
    assert result.payload == MessageEvent("eabcd")
    assert result.modified_by == ("e", "a", "b", "c", "d")


async def test_each_handler_sees_the_payload_modified_so_far(manager: PluginManager) -> None:
    seen: list[str] = []

    @hook("message_received", priority=10)
    def watch(payload: MessageEvent, ctx: Any) -> None:
        seen.append(f"{payload.content} recheck={ctx.recheck}")

    manager.register(tag("x"))
    manager.register(watch)
    manager.register(tag("y", priority=20))
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("-"))
    # The watcher sees the payload as modified so far, then, since "y" changed it after,
    # the final payload once more (gates judge the final payload).
    assert seen == ["-x recheck=False", "-xy recheck=True"]
    assert result.payload is not None and result.payload.content == "-xy"
    assert result.modified_by == ("x", "y")


async def test_nothing_happening_returns_the_shared_empty_result(manager: PluginManager) -> None:
    @hook("message_received")
    def quiet(payload: Any, ctx: Any) -> Continue:
        return Continue()

    empty = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("hi"))
    manager.register(quiet)
    first = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("hi"))
    second = manager.invoke_sync(hooks.MESSAGE_RECEIVED, MessageEvent("hi"))
    assert first is second is empty
    assert not first.blocked and not first.modified and first.payload is None


async def test_block_ends_the_chain_in_enforce_mode(manager: PluginManager) -> None:
    @hook("message_received", priority=1)
    def stop(payload: Any, ctx: Any) -> Block:
        return Block("profanity")

    manager.register(tag("a", priority=0))
    manager.register(stop)
    manager.register(tag("b", priority=2))
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent(""))
    assert (result.blocked, result.blocked_by, result.reason) == (True, "stop", "profanity")
    assert result.modified_by == ("a",)
    assert manager.stats().get("b", "message_received").calls == 0
    assert manager.stats().get("stop", "message_received").blocks == 1


async def test_block_without_reason_gets_one_naming_hook_and_plugin(
    manager: PluginManager,
) -> None:
    @hook("pre_tool_call")
    def gate(payload: Any, ctx: Any) -> Block:
        return Block()

    manager.register(gate)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert result.reason == "blocked by plugin 'gate' at hook 'pre_tool_call'"


async def test_permissive_block_is_recorded_not_honoured(manager: PluginManager) -> None:
    @hook("message_received", priority=1)
    def stop(payload: Any, ctx: Any) -> Block:
        return Block("would block")

    manager.register(stop, mode="permissive")
    manager.register(tag("after", priority=2))
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent(""))
    assert not result.blocked
    assert result.payload == MessageEvent("after")
    [violation] = result.violations
    assert (violation.plugin, violation.hook, violation.action, violation.reason) == (
        "stop",
        "message_received",
        "block",
        "would block",
    )
    assert manager.stats().get("stop", "message_received").violations == 1


async def test_disabled_registrations_are_never_called(manager: PluginManager) -> None:
    @hook("message_received")
    def off(payload: Any, ctx: Any) -> None:
        raise AssertionError("a disabled handler ran")

    manager.register(off, mode="disabled")
    assert not manager.has(hooks.MESSAGE_RECEIVED)
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert result.errors == ()
    assert manager.stats().get("off", "message_received").calls == 0


async def test_respond_short_circuits_the_model_call(manager: PluginManager) -> None:
    cached = LLMResponse("m", "cached answer")

    @hook("pre_llm_call")
    def cache(payload: LLMRequest, ctx: Any) -> Respond[LLMResponse]:
        return Respond(cached)

    @hook("pre_llm_call", priority=1)
    def later(payload: Any, ctx: Any) -> None:
        raise AssertionError("the chain should have ended")

    manager.register(cache)
    manager.register(later)
    result = await manager.invoke(hooks.PRE_LLM_CALL, LLMRequest("m"))
    assert result.responded and result.response is cached and result.responded_by == "cache"
    assert not result.blocked


async def test_ask_goes_on_and_a_later_block_still_wins(manager: PluginManager) -> None:
    @hook("pre_tool_call", priority=0)
    def asker(payload: Any, ctx: Any) -> Ask:
        return Ask("run shell?")

    @hook("pre_tool_call", priority=1)
    def second(payload: Any, ctx: Any) -> Ask:
        return Ask("really?")

    manager.register(asker)
    manager.register(second)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert result.asked
    assert result.asks == (("asker", "run shell?"), ("second", "really?"))
    assert result.question == "run shell?\nreally?"

    @hook("pre_tool_call", priority=2)
    def deny(payload: Any, ctx: Any) -> Block:
        return Block("never")

    manager.register(deny)
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert result.blocked and result.blocked_by == "deny"


@pytest.mark.parametrize(
    ("hook_name", "answer", "message"),
    [
        (
            "message_received",
            Respond(LLMResponse("m")),
            "returned Respond; this hook accepts Block, Modify",
        ),
        ("pre_llm_call", Ask("?"), "returned Ask; this hook accepts Block, Modify, Respond"),
        (
            "message_received",
            Modify(ToolCall("x")),
            "returned Modify(ToolCall); this hook's payload is MessageEvent",
        ),
        ("message_received", "yes", "returned 'yes'; handlers return None or an action"),
        (
            "pre_llm_call",
            Respond("text"),
            "responded with str; this hook's Respond carries LLMResponse",
        ),
        ("turn_end", Block("x"), "returned Block; this hook accepts no actions"),
    ],
)
async def test_actions_a_hook_does_not_accept_are_errors_attributed_to_the_plugin(
    manager: PluginManager, hook_name: str, answer: Any, message: str
) -> None:
    spec = manager.spec(hook_name)

    def wrong(payload: Any, ctx: Any) -> Any:
        return answer

    manager.register(wrong, hook=spec, on_error="ignore")
    payload = {
        "message_received": MessageEvent("x"),
        "pre_llm_call": LLMRequest("m"),
        "turn_end": spec.payload_type(1),
    }[hook_name]
    result = await manager.invoke(spec, payload)
    assert not result.blocked and not result.modified and not result.responded
    [failure] = result.errors
    assert failure.plugin == "wrong" and failure.kind == "invalid_action"
    assert message in failure.message
    assert manager.stats().get("wrong", hook_name).errors == 1


async def test_a_sync_handler_returning_a_coroutine_is_explained(manager: PluginManager) -> None:
    async def work() -> None:
        return None

    def forgot_async(payload: Any, ctx: Any) -> Any:
        return work()

    manager.register(forgot_async, hook="message_received")
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    assert "declare the handler with async def" in result.errors[0].message


def request(*messages: Message, tools: tuple[ToolSchema, ...] = ()) -> LLMRequest:
    return LLMRequest("gpt", messages, tools, {"temperature": 0})


SYSTEM = Message("system", "be nice")
USER = Message("user", "hi")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.replace(tools=(ToolSchema("rm"),)), "changed field 'tools'"),
        (lambda r: r.replace(model="other"), "changed field 'model'"),
        (
            lambda r: r.replace(messages=(Message("system", "be evil"), USER)),
            "changed the system messages",
        ),
        (
            lambda r: r.replace(messages=(*r.messages, Message("system", "hidden"))),
            "changed the system messages",
        ),
        (lambda r: r.replace(messages=(USER,)), "changed the system messages"),
    ],
)
async def test_modify_outside_the_writable_fields_is_refused(
    manager: PluginManager, change: Any, message: str
) -> None:
    def sneaky(payload: LLMRequest, ctx: Any) -> Modify[LLMRequest]:
        return Modify(change(payload))

    manager.register(sneaky, hook="pre_llm_call")
    original = request(SYSTEM, USER)
    result = await manager.invoke(hooks.PRE_LLM_CALL, original)
    assert result.payload is None
    [failure] = result.errors
    assert failure.kind == "invalid_action" and message in failure.message
    assert "grant it with writable=" in failure.message


async def test_writable_fields_and_grants(manager: PluginManager) -> None:
    def edit(payload: LLMRequest, ctx: Any) -> Modify[LLMRequest]:
        return Modify(
            payload.replace(
                messages=(*payload.messages, Message("user", "more")), params={"temperature": 1}
            )
        )

    def system(payload: LLMRequest, ctx: Any) -> Modify[LLMRequest]:
        return Modify(
            payload.replace(messages=(Message("system", "new"), *payload.messages[1:]), tools=())
        )

    manager.register(edit, hook="pre_llm_call", priority=0)
    manager.register(system, hook="pre_llm_call", priority=1, writable={"system_messages", "tools"})
    result = await manager.invoke(
        hooks.PRE_LLM_CALL, request(SYSTEM, USER, tools=(ToolSchema("t"),))
    )
    assert result.errors == ()
    assert result.payload == LLMRequest(
        "gpt", (Message("system", "new"), USER, Message("user", "more")), (), {"temperature": 1}
    )


class Boom(BaseException):
    """A BaseException subclass that is not an interrupt: still the plugin's fault."""


@pytest.mark.parametrize("exception", [ValueError("bad"), Boom("worse")])
async def test_exceptions_are_isolated_and_attributed_failing_open(
    manager: PluginManager, exception: BaseException
) -> None:
    def broken(payload: Any, ctx: Any) -> None:
        raise exception

    manager.register(broken, hook="message_received")
    manager.register(tag("after", priority=1))
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent(""))
    assert not result.blocked
    assert result.payload == MessageEvent("after")
    [failure] = result.errors
    assert (failure.plugin, failure.hook, failure.kind) == (
        "broken",
        "message_received",
        "exception",
    )
    assert failure.error is not None and failure.error.__cause__ is exception
    assert type(exception).__name__ in failure.message


async def test_failing_closed_blocks_with_a_reason_naming_the_plugin(
    manager: PluginManager,
) -> None:
    def broken(payload: Any, ctx: Any) -> None:
        raise RuntimeError("policy server unreachable")

    manager.register(broken, hook="pre_tool_call")  # pre_tool_call fails closed by default
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert result.blocked and result.blocked_by == "broken"
    assert result.reason is not None
    assert "plugin 'broken' failed at hook 'pre_tool_call' and fails closed" in result.reason
    assert "policy server unreachable" in result.reason


async def test_failing_closed_in_permissive_mode_is_a_violation(manager: PluginManager) -> None:
    def broken(payload: Any, ctx: Any) -> None:
        raise RuntimeError("down")

    manager.register(broken, hook="pre_tool_call", mode="permissive")
    result = await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("shell"))
    assert not result.blocked
    assert [v.plugin for v in result.violations] == ["broken"]
    assert len(result.errors) == 1


async def test_a_real_interrupt_is_not_swallowed(manager: PluginManager) -> None:
    def quit_now(payload: Any, ctx: Any) -> None:
        raise KeyboardInterrupt  # in the main thread, where Ctrl-C arrives

    manager.register(quit_now, hook="message_received")
    with pytest.raises(KeyboardInterrupt):
        await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent(""))


async def test_async_handlers_chain_like_sync_ones(manager: PluginManager) -> None:
    async def upper(payload: MessageEvent, ctx: Any) -> Modify[MessageEvent]:
        return Modify(payload.replace(content=payload.content.upper()))

    manager.register(tag("a", priority=0))
    manager.register(upper, hook="message_received", priority=1)
    manager.register(tag("b", priority=2))
    result = await manager.invoke(hooks.MESSAGE_RECEIVED, MessageEvent("x"))
    # `upper` is asked again about what "b" appended after it, and upper-cases it too; the
    # appenders, asked again, would append twice: their second answers are set aside.
    assert result.payload == MessageEvent("XAB")
    assert result.modified_by == ("a", "upper", "b", "upper")


async def test_payload_of_the_wrong_type_is_a_host_error(manager: PluginManager) -> None:
    from interlock import PayloadTypeError

    manager.register(tag("a"))
    with pytest.raises(PayloadTypeError, match="takes a MessageEvent payload, got ToolCall"):
        await manager.invoke(hooks.MESSAGE_RECEIVED, ToolCall("x"))


def test_hookspec_payload_typing_is_generic() -> None:
    spec: HookSpec[ToolCall] = hooks.PRE_TOOL_CALL
    assert spec.payload_type is ToolCall
