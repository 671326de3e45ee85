"""Tools: plain typed Python functions, described to the model by a JSON schema.

    def read_file(path: str, max_bytes: int = 10_000) -> str:
        '''Read a text file.'''
        ...

    tools = ToolSet([read_file])      # schema from the type hints, description from the doc

A tool that raises, or is called with arguments that do not fit its signature, produces an
error result for the model; it never breaks the agent's loop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from interlock import ToolCall, ToolResult, ToolSchema


@dataclass(frozen=True)
class Tool:
    """A callable the model may ask for, with its name, description and argument model."""

    name: str
    description: str
    fn: Callable[..., Any] = field(repr=False)
    arguments: type[pydantic.BaseModel] = field(repr=False)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, name: str | None = None) -> Tool:
        """Describe `fn` from its signature and type hints; the docstring's first paragraph
        is the description."""
        tool_name = name or fn.__name__
        signature = inspect.signature(fn)
        hints = _hints(fn)
        fields: dict[str, Any] = {}
        for param in signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"tool {tool_name!r}: *args and **kwargs cannot be described")
            annotation = hints.get(param.name, Any)
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (annotation, default)
        model = pydantic.create_model(
            f"{tool_name}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields
        )
        doc = inspect.getdoc(fn) or ""
        return cls(tool_name, doc.split("\n\n", 1)[0].strip(), fn, model)

    def schema(self) -> ToolSchema:
        """The tool as the model sees it."""
        parameters = self.arguments.model_json_schema()
        parameters.pop("title", None)
        return ToolSchema(self.name, self.description, parameters)

    async def run(self, call: ToolCall) -> ToolResult:
        """Run the tool for `call`; any failure becomes an error result."""
        return (await self.attempt(call))[0]

    async def attempt(self, call: ToolCall) -> tuple[ToolResult, str | None]:
        """`run`, and for a failure its kind (telemetry's `error.type`): the exception's
        class name, or `invalid_arguments`."""
        try:
            arguments = self.arguments.model_validate(dict(call.arguments))
            kwargs = {name: getattr(arguments, name) for name in type(arguments).model_fields}
            if inspect.iscoroutinefunction(self.fn):
                value = await self.fn(**kwargs)
            else:  # tools block (files, processes): keep them off the event loop
                value = await asyncio.to_thread(self.fn, **kwargs)
        except pydantic.ValidationError as error:
            text = f"invalid arguments for tool {self.name!r}: {_brief(error)}"
            return _error(call, text), "invalid_arguments"
        except Exception as error:
            kind = type(error).__name__
            return _error(call, f"tool {self.name!r} failed: {kind}: {error}"), kind
        return ToolResult(call.tool_name, call.arguments, call.call_id, _text(value)), None


class ToolSet:
    """The tools an agent offers, by name."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._schemas: tuple[ToolSchema, ...] | None = None
        for item in tools:
            tool = item if isinstance(item, Tool) else Tool.from_function(item)
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            self._tools[tool.name] = tool

    def schemas(self) -> tuple[ToolSchema, ...]:
        """Every tool's schema, in the order given (built once)."""
        if self._schemas is None:
            self._schemas = tuple(tool.schema() for tool in self._tools.values())
        return self._schemas

    def names(self) -> tuple[str, ...]:
        """The tool names, in the order given."""
        return tuple(self._tools)

    def tools(self) -> tuple[Tool, ...]:
        """The tools, in the order given."""
        return tuple(self._tools.values())

    async def run(self, call: ToolCall) -> ToolResult:
        """Run the tool `call` names; an unknown tool is an error result."""
        return (await self.attempt(call))[0]

    async def attempt(self, call: ToolCall) -> tuple[ToolResult, str | None]:
        """`run`, and for a failure its kind (see `Tool.attempt`; `unknown_tool` too)."""
        tool = self._tools.get(call.tool_name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            text = f"no tool is called {call.tool_name!r}; available: {known}"
            return _error(call, text), "unknown_tool"
        return await tool.attempt(call)


def _hints(fn: Callable[..., Any]) -> Mapping[str, Any]:
    try:
        return inspect.get_annotations(fn, eval_str=True)
    except Exception:  # annotations that do not resolve: describe the arguments as Any
        return {}


def _error(call: ToolCall, text: str) -> ToolResult:
    return ToolResult(call.tool_name, call.arguments, call.call_id, text, is_error=True)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _brief(error: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in error.errors()
    )
