"""`interlock mcp-gateway`: an MCP server on stdio, proxying an upstream server's tools
through the configured plugins, for any MCP client (Claude Desktop, Cursor, VS Code)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import typer


def serve_gateway(manager: Any, command: list[str]) -> None:
    """Serve the gateway on this process's stdin/stdout until the client hangs up.

    The SDK's stdio server points fd 1 at stderr while it serves, so a plugin's prints
    (or a child's) never reach the client's end of the pipe.
    """
    try:
        import anyio
        from mcp.server.stdio import stdio_server

        from interlock.adapters.mcp import gateway
    except ImportError:
        typer.echo("the MCP gateway needs the mcp SDK: "
                   "pip install -e '<interlock checkout>[mcp]'", err=True)  # fmt: skip
        raise typer.Exit(1) from None
    _log_to_stderr()
    server = gateway(manager, upstream=command)

    async def run() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    try:
        anyio.run(run)
    except KeyboardInterrupt:
        pass
    finally:
        manager.close()  # stops any external plugin the config started


def _log_to_stderr() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("interlock mcp-gateway: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
