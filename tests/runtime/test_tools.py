from __future__ import annotations

import asyncio

import pytest

from interlock import ToolCall
from interlock.runtime import Tool, ToolSet


def read_file(path: str, max_bytes: int = 100) -> str:
    """Read a text file.

    The rest of the docstring is not part of the description.
    """
    return f"{path}:{max_bytes}"


async def add(a: int, b: int = 1) -> int:
    await asyncio.sleep(0)
    return a + b


def broken(reason: str) -> str:
    raise RuntimeError(reason)


def test_schema_from_type_hints_and_docstring() -> None:
    schema = Tool.from_function(read_file).schema()
    assert schema.name == "read_file"
    assert schema.description == "Read a text file."
    assert schema.parameters["properties"]["path"]["type"] == "string"
    assert schema.parameters["properties"]["max_bytes"]["default"] == 100
    assert schema.parameters["required"] == ("path",)
    assert schema.parameters["additionalProperties"] is False


async def test_sync_and_async_tools_run_with_validated_arguments() -> None:
    tools = ToolSet([read_file, add])
    assert tools.names() == ("read_file", "add")
    result = await tools.run(ToolCall("add", {"a": 2, "b": "3"}, "c1"))
    assert (result.output, result.is_error, result.call_id) == ("5", False, "c1")
    assert (await tools.run(ToolCall("read_file", {"path": "x"}))).output == "x:100"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (ToolCall("add", {"a": "two"}), "invalid arguments for tool 'add': a: Input should be"),
        (ToolCall("add", {"a": 1, "c": 2}), "c: Extra inputs are not permitted"),
        (ToolCall("add", {}), "a: Field required"),
        (
            ToolCall("broken", {"reason": "disk full"}),
            "tool 'broken' failed: RuntimeError: disk full",
        ),
        (ToolCall("missing"), "no tool is called 'missing'; available: add, broken"),
    ],
)
async def test_failures_become_error_results(call: ToolCall, message: str) -> None:
    result = await ToolSet([add, broken]).run(call)
    assert result.is_error
    assert message in result.output


def test_tool_set_errors() -> None:
    with pytest.raises(ValueError, match="two tools are named 'add'"):
        ToolSet([add, add])

    def variadic(*args: int) -> None:
        return None

    with pytest.raises(TypeError, match=r"\*args and \*\*kwargs cannot be described"):
        Tool.from_function(variadic)


async def test_results_that_are_not_text_become_json() -> None:
    def info() -> dict[str, object]:
        return {"files": ["a", "b"], "count": 2}

    result = await ToolSet([info]).run(ToolCall("info"))
    assert result.output == '{"files": ["a", "b"], "count": 2}'
