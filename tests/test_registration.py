from __future__ import annotations

from typing import Any

import pytest

from interlock import (
    API_VERSION,
    Block,
    DuplicatePluginError,
    HandlerSignatureError,
    IncompatiblePluginError,
    LLMRequest,
    Plugin,
    PluginManager,
    PluginSet,
    RegistrationError,
    ToolCall,
    UnknownHookError,
    UnknownPluginError,
    hook,
    hooks,
)


def call(manager: PluginManager, name: str = "shell", **arguments: Any) -> Any:
    return manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall(name, arguments))


def test_hook_decorator_with_arguments(manager: PluginManager) -> None:
    @hook("pre_tool_call", priority=3, mode="permissive", timeout=1.5)
    def guard(payload: ToolCall, ctx: Any) -> None:
        return None

    handle = manager.register(guard)
    [reg] = handle.registrations
    assert (reg.plugin, reg.hook, reg.priority, reg.mode, reg.timeout) == (
        "guard",
        hooks.PRE_TOOL_CALL,
        3,
        "permissive",
        1.5,
    )
    assert reg.on_error == "block"  # from the hook spec


def test_bare_decorator_and_plain_functions_take_the_hook_from_the_name(
    manager: PluginManager,
) -> None:
    @hook
    def on_pre_tool_call(payload: ToolCall, ctx: Any) -> None:
        return None

    def before_tool_call(payload: ToolCall, ctx: Any) -> None:
        return None

    assert manager.register(on_pre_tool_call).registrations[0].hook is hooks.PRE_TOOL_CALL
    assert manager.register(before_tool_call).registrations[0].hook is hooks.PRE_TOOL_CALL


def test_a_function_with_no_hook_in_its_name_needs_one(manager: PluginManager) -> None:
    def check(payload: Any, ctx: Any) -> None:
        return None

    with pytest.raises(RegistrationError, match=r"cannot tell which hook function 'check'"):
        manager.register(check)
    assert manager.register(check, hook="turn_end").registrations[0].hook is hooks.TURN_END


def test_one_function_for_several_hooks(manager: PluginManager) -> None:
    @hook("message_received", "message_sending", name="redact")
    def redact(payload: Any, ctx: Any) -> None:
        return None

    handle = manager.register(redact)
    assert handle.name == "redact"
    assert [r.hook.name for r in handle.registrations] == ["message_received", "message_sending"]


def test_registration_options_override_the_authors(manager: PluginManager) -> None:
    @hook("pre_tool_call", priority=3, mode="permissive", when={"tool_name": "shell"})
    def guard(payload: ToolCall, ctx: Any) -> None:
        return None

    [reg] = manager.register(
        guard, priority=-1, mode="enforce", on_error="ignore", when={"call_id": "c*"}
    ).registrations
    assert (reg.priority, reg.mode, reg.on_error) == (-1, "enforce", "ignore")
    assert reg.when == {"tool_name": "shell", "call_id": "c*"}


class Budget(Plugin):
    name = "budget"
    version = "1.2.0"

    def __init__(self, limit: int = 10) -> None:
        self.limit = limit
        self.seen: list[str] = []

    def on_post_llm_call(self, payload: Any, ctx: Any) -> None:
        self.seen.append("post")

    def on_llm_input(self, payload: LLMRequest, ctx: Any) -> None:  # alias of pre_llm_call
        self.seen.append("pre")

    @hook("turn_end", priority=5)
    def report(self, payload: Any, ctx: Any) -> None:
        self.seen.append("turn")

    def helper(self) -> int:  # not a handler
        return self.limit


def test_plugin_class_convention_aliases_and_decorated_methods(manager: PluginManager) -> None:
    plugin = Budget()
    handle = manager.register(plugin)
    assert handle.name == "budget"
    by_hook = {r.hook.name: r for r in handle.registrations}
    assert set(by_hook) == {"post_llm_call", "pre_llm_call", "turn_end"}
    assert by_hook["turn_end"].priority == 5
    manager.invoke_sync("llm_input", LLMRequest("m"))
    assert plugin.seen == ["pre"]


def test_a_mistyped_on_method_is_an_error(manager: PluginManager) -> None:
    class Typo(Plugin):
        def on_pre_tool_cal(self, payload: Any, ctx: Any) -> None:
            return None

    with pytest.raises(RegistrationError, match=r"method 'on_pre_tool_cal'.*pre_tool_call"):
        manager.register(Typo())


def test_a_plugin_without_handlers_is_an_error(manager: PluginManager) -> None:
    class Empty(Plugin):
        pass

    with pytest.raises(RegistrationError, match="plugin 'Empty' has no handlers"):
        manager.register(Empty())


def test_unknown_hook_name_suggests_the_closest(manager: PluginManager) -> None:
    @hook("pre_tool_cal")
    def guard(payload: Any, ctx: Any) -> None:
        return None

    with pytest.raises(UnknownHookError, match="did you mean 'pre_tool_call'"):
        manager.register(guard)


def test_signature_is_checked_at_registration(manager: PluginManager) -> None:
    def one_arg(payload: Any) -> None:
        return None

    with pytest.raises(HandlerSignatureError, match=r"one_arg\(payload: 'Any'\) -> 'None' must"):
        manager.register(one_arg, hook="pre_tool_call")

    def wrong_payload(payload: LLMRequest, ctx: Any) -> None:
        return None

    with pytest.raises(HandlerSignatureError, match="takes a LLMRequest payload, but hook"):
        manager.register(wrong_payload, hook="pre_tool_call")
    assert manager.registrations() == ()


def test_api_version_mismatch_is_refused(manager: PluginManager) -> None:
    class Future(Plugin):
        name = "future"
        api_version = API_VERSION + 1

        def on_turn_end(self, payload: Any, ctx: Any) -> None:
            return None

    with pytest.raises(IncompatiblePluginError, match=r"plugin 'future' was built for plugin"):
        manager.register(Future())


def test_duplicate_names_are_refused(manager: PluginManager) -> None:
    manager.register(Budget())
    with pytest.raises(DuplicatePluginError, match="'budget' is already registered"):
        manager.register(Budget())
    assert manager.register(Budget(), name="budget-2").name == "budget-2"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "loud"}, "mode must be one of disabled, enforce, permissive"),
        ({"on_error": "panic"}, "on_error must be one of block, ignore"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": "2s"}, "timeout must be a positive number"),
        ({"priority": 1.5}, "priority must be an int"),
        ({"capabilities": ["system_items"], "hook": "session_end"}, "not offered"),
        ({"writable": ["nope"]}, r"cannot grant writable='nope': none of its hooks"),
        ({"when": {"nope": "x"}}, "when= key 'nope' names no field"),
    ],
)
def test_bad_options_are_refused_and_nothing_registers(
    manager: PluginManager, options: dict[str, Any], message: str
) -> None:
    def guard(payload: Any, ctx: Any) -> None:
        return None

    options.setdefault("hook", "pre_tool_call")
    with pytest.raises(RegistrationError, match=message) as info:
        manager.register(guard, **options)
    assert info.value.plugin == "guard"
    assert manager.registrations() == ()
    assert not manager.has(options["hook"])


def test_unregister_by_handle_or_name(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    def deny(payload: Any, ctx: Any) -> Block:
        return Block("no")

    handle = manager.register(deny)
    assert call(manager).blocked
    manager.unregister(handle)
    assert not manager.has(hooks.PRE_TOOL_CALL)
    assert not call(manager).blocked
    manager.register(deny)
    manager.unregister("deny")
    assert not call(manager).blocked
    with pytest.raises(UnknownPluginError, match="no plugin named 'deny'"):
        manager.unregister("deny")


def test_plugin_sets_register_and_unregister_as_a_unit(manager: PluginManager) -> None:
    @hook("pre_tool_call")
    def deny(payload: Any, ctx: Any) -> Block:
        return Block("no")

    inner = PluginSet("inner", [deny])
    outer = PluginSet("safety", [inner, Budget()])
    handle = manager.register(outer, mode="permissive")
    assert handle.plugins == ("inner", "deny", "budget")
    assert {r.mode for r in handle.registrations} == {"permissive"}
    result = call(manager)
    assert not result.blocked
    assert [v.plugin for v in result.violations] == ["deny"]
    with pytest.raises(UnknownPluginError, match="part of plugin set 'safety'"):
        manager.unregister("deny")
    with pytest.raises(DuplicatePluginError):
        manager.register(deny)
    manager.unregister(handle)
    assert manager.registrations() == ()


def test_a_failed_set_registers_nothing(manager: PluginManager) -> None:
    def good(payload: Any, ctx: Any) -> None:
        return None

    def bad(payload: Any) -> None:
        return None

    with pytest.raises(RegistrationError):
        manager.register(PluginSet("s", [good, bad]), hook="pre_tool_call")
    assert manager.registrations() == ()


def test_modules_and_objects_with_decorated_functions(manager: PluginManager) -> None:
    class Guards:
        @hook("pre_tool_call")
        def deny(self, payload: Any, ctx: Any) -> Block:
            return Block("object says no")

        def on_pre_tool_call(self, payload: Any, ctx: Any) -> None:
            raise AssertionError("only Plugin subclasses use the on_ convention")

    handle = manager.register(Guards())
    assert handle.name == "Guards"
    assert len(handle.registrations) == 1
    assert call(manager).reason == "object says no"
