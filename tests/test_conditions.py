"""`when=` conditions on payload and context fields."""

from __future__ import annotations

from typing import Any

import pytest

from interlock import (
    ConditionError,
    LLMRequest,
    PluginManager,
    SessionInfo,
    ToolCall,
    hooks,
)


def fired(manager: PluginManager, when: Any, payload: Any, **invoke: Any) -> bool:
    calls: list[object] = []
    spec = hooks.PRE_TOOL_CALL if isinstance(payload, ToolCall) else hooks.PRE_LLM_CALL
    handle = manager.register(lambda p, c: calls.append(p), hook=spec, name="probe", when=when)
    manager.invoke_sync(spec, payload, **invoke)
    manager.unregister(handle)
    return bool(calls)


@pytest.mark.parametrize(
    ("when", "payload", "expected"),
    [
        ({"tool_name": "shell"}, ToolCall("shell"), True),
        ({"tool_name": "shell"}, ToolCall("shell2"), False),
        ({"tool_name": ["shell", "fs_*"]}, ToolCall("fs_write"), True),
        ({"tool_name": ["shell", "fs_*"]}, ToolCall("net"), False),
        ({"tool_name": "SHELL"}, ToolCall("shell"), False),  # case-sensitive
        ({"arguments.command": "rm *"}, ToolCall("shell", {"command": "rm -rf /"}), True),
        ({"arguments.command": "rm *"}, ToolCall("shell", {"command": "ls"}), False),
        ({"arguments.command": "rm *"}, ToolCall("shell"), False),  # missing never matches
        ({"arguments.opts.force": "true"}, ToolCall("t", {"opts": {"force": True}}), True),
        ({"arguments.paths": "/etc/*"}, ToolCall("t", {"paths": ["/tmp", "/etc/x"]}), True),
        ({"tool_name": "shell", "call_id": "c1"}, ToolCall("shell", call_id="c2"), False),
        ({"model": "gpt-*"}, LLMRequest("gpt-4o"), True),
        ({"model": "gpt-*"}, LLMRequest("llama"), False),
        ({"hook": "pre_*"}, ToolCall("shell"), True),
    ],
)
def test_payload_conditions(
    manager: PluginManager, when: Any, payload: Any, expected: bool
) -> None:
    assert fired(manager, when, payload) is expected


def test_context_conditions(manager: PluginManager) -> None:
    prod = SessionInfo("s1", ("prod", "eu"), {"team": "a"})
    dev = SessionInfo("s2", ("dev",))
    assert fired(manager, {"session.tags": "prod"}, ToolCall("t"), session=prod)
    assert not fired(manager, {"session.tags": "prod"}, ToolCall("t"), session=dev)
    assert not fired(manager, {"session.tags": "prod"}, ToolCall("t"))  # no session
    assert fired(manager, {"session.metadata.team": "a"}, ToolCall("t"), session=prod)
    assert fired(manager, {"session.id": "s*"}, ToolCall("t"), session=dev)
    assert fired(manager, {"turn": "3"}, ToolCall("t"), turn=3)


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (
            {"tool": "shell"},
            r"when= key 'tool' names no field of its hooks \(pre_tool_call\); use one of "
            "arguments, call_id",
        ),
        ({"tool_name": []}, "must be a glob string or a non-empty list"),
        ({"tool_name": 3}, "must be a glob string or a non-empty list"),
        ({"arguments..x": "y"}, "names no field"),
        (["tool_name"], "when= must be a mapping"),
    ],
)
def test_bad_conditions_fail_at_registration(
    manager: PluginManager, when: Any, message: str
) -> None:
    with pytest.raises(ConditionError, match=message) as info:
        manager.register(lambda p, c: None, hook="pre_tool_call", name="probe", when=when)
    assert (info.value.plugin, info.value.hook) == ("probe", "pre_tool_call")
