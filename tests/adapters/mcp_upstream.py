"""A small MCP server the gateway tests put behind `interlock mcp-gateway` (over stdio).

Its first argument, when given, names a file it writes its process id to, so the test can
check that the gateway ended it (and end it itself if not).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("upstream")


@server.tool()
def shell(command: str) -> str:
    """Pretends to run a shell command."""
    return f"ran {command!r}; questions to admin@example.com"


if __name__ == "__main__":
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(str(os.getpid()))
    server.run("stdio")
