"""interlock in front of an MCP server: the gateway, offline, in one process.

An upstream MCP server (the official SDK's `MCPServer`) offers two tools; `gateway` puts
interlock plugins in front of it; a client connects over the SDK's in-memory transport,
as Claude Desktop or Cursor would over stdio (`interlock mcp-gateway --config
interlock.yaml -- python server.py`).

    python examples/adapters/mcp_example.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from mcp import Client
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from interlock import Block, HookContext, Modify, PluginManager, ToolCall, ToolResult, hook
from interlock.adapters.mcp import gateway

upstream = MCPServer("files")


class Person(BaseModel):
    name: str
    email: str


@upstream.tool()
def shell(command: str) -> str:
    """Pretends to run a shell command."""
    return f"ran {command}"


@upstream.tool()
def lookup(name: str) -> Person:
    """A person's contact."""
    return Person(name=name, email=f"{name}@example.com")


@hook("pre_tool_call", when={"tool_name": "shell"})
def guard(call: ToolCall, ctx: HookContext) -> Any:
    command = str(call.arguments.get("command", ""))
    if "rm -rf" in command:
        return Block("destructive shell command")
    if command == "ls":
        return Modify(call.replace(arguments={"command": "ls -la"}))
    return None


@hook("post_tool_call")
def hide_domains(result: ToolResult, ctx: HookContext) -> Any:
    return Modify(result.replace(output=result.output.replace("example.com", "[hidden]")))


async def main() -> None:
    manager = PluginManager()
    manager.register(guard)
    manager.register(hide_domains)
    server = gateway(manager, upstream=upstream)  # an mcp.server.Server
    async with Client(server) as client:
        blocked = await client.call_tool("shell", {"command": "rm -rf /"})
        print(f"blocked: {blocked.content[0].text}")  # type: ignore[union-attr]
        ran = await client.call_tool("shell", {"command": "ls"})
        print(f"ran: {ran.content[0].text}")  # type: ignore[union-attr]
        person = await client.call_tool("lookup", {"name": "ada"})
        print(f"lookup: {person.structured_content}")


if __name__ == "__main__":
    asyncio.run(main())
