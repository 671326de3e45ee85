from __future__ import annotations

import dataclasses
from typing import Any

import pydantic
import pytest

from interlock import (
    FrozenDict,
    HookSpec,
    LLMRequest,
    LLMResponse,
    Message,
    SessionInfo,
    ToolCall,
    ToolResult,
    ToolSchema,
    Usage,
    hooks,
)


def test_tool_arguments_are_never_none() -> None:
    assert ToolCall("shell").arguments == {}
    assert ToolCall("shell", None).arguments == {}  # type: ignore[arg-type]
    assert ToolResult("shell", None).arguments == {}  # type: ignore[arg-type]
    assert isinstance(ToolCall("shell", None).arguments, FrozenDict)  # type: ignore[arg-type]


def test_payloads_are_frozen() -> None:
    call = ToolCall("shell", {"command": "ls"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.tool_name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        call.arguments["command"] = "rm -rf /"  # type: ignore[index]
    # Slotted frozen dataclasses refuse new attributes (CPython 3.11 says so with a TypeError).
    with pytest.raises((AttributeError, TypeError)):
        call.extra = 1  # type: ignore[attr-defined]


def test_sequences_become_tuples_and_are_type_checked() -> None:
    request = LLMRequest("m", [Message("user", "hi")], [ToolSchema("shell")])  # type: ignore[arg-type]
    assert request.messages == (Message("user", "hi"),)
    assert isinstance(request.tools, tuple)
    with pytest.raises(TypeError, match=r"messages\[0\]: expected Message, got dict"):
        LLMRequest("m", [{"role": "user"}])  # type: ignore[list-item]


def test_replace_freezes_new_data() -> None:
    call = ToolCall("shell", {"command": "ls"})
    changed = call.replace(arguments={**call.arguments, "cwd": ["/tmp"]})
    assert changed.arguments == {"command": "ls", "cwd": ("/tmp",)}
    assert isinstance(changed.arguments, FrozenDict)
    assert call.arguments == {"command": "ls"}


def test_usage_total() -> None:
    assert LLMResponse("m", usage=Usage(3, 4)).usage.total_tokens == 7


@pytest.mark.parametrize("spec", hooks.CATALOG, ids=lambda s: s.name)
def test_every_catalog_payload_has_a_json_schema(spec: HookSpec[Any]) -> None:
    schema = spec.json_schema()
    assert schema["title"] == spec.payload_type.__name__
    assert schema["type"] == "object"


def test_pydantic_builds_frozen_payloads_from_wire_data() -> None:
    adapter = pydantic.TypeAdapter(LLMRequest)
    request = adapter.validate_python(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi", "tool_calls": [{"tool_name": "t"}]}],
            "params": {"stop": ["a", "b"]},
        }
    )
    assert request.messages[0].tool_calls[0] == ToolCall("t")
    assert request.params["stop"] == ("a", "b")
    assert adapter.dump_python(request, mode="json")["params"] == {"stop": ["a", "b"]}
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python({"model": "m", "messages": [{"role": "wizard"}]})


def test_session_info_freezes_its_data() -> None:
    info = SessionInfo("s", ["a", "b"], {"k": [1]})  # type: ignore[arg-type]
    assert info.tags == ("a", "b")
    assert info.metadata == {"k": (1,)}
