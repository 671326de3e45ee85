"""Out-of-process plugins: any language, over stdio, HTTP or one command per event.

    from interlock.external import StdioTransport, connect

    guard = connect(StdioTransport(["node", "guard.js"]), name="guard")
    manager.register(guard, capabilities=["notify"], timeout=2.0)

An external plugin registers like any other, so priorities, conditions, timeouts,
`on_error` and the circuit breaker apply to it unchanged; what it answers is validated
before the host sees it. The wire protocol is in `interlock.external.protocol` and
docs/protocol.md; `PluginServer` (what `interlock serve` runs) puts any in-process plugin
behind it.
"""

from ._adapter import CommandPlugin, ExternalPlugin, Transport, command_plugin, connect
from .command import CommandRunner
from .http import HttpTransport
from .serve import PluginServer, http_app, serve_stdio
from .stdio import StdioTransport

__all__ = [
    "CommandPlugin",
    "CommandRunner",
    "ExternalPlugin",
    "HttpTransport",
    "PluginServer",
    "StdioTransport",
    "Transport",
    "command_plugin",
    "connect",
    "http_app",
    "serve_stdio",
]
