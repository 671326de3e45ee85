"""`interlock serve`: run a plugin server in this process until its host is done."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from typing import Any

import typer

from interlock.external import PluginServer, http_app
from interlock.external import serve_stdio as _serve_stdio


def serve_stdio(
    plugin: Any,
    *,
    name: str | None,
    limit: int,
    config: dict[str, Any] | None = None,
) -> None:
    """Serve on stdin/stdout; `plugin` is the plugin, or (without `config`) what builds it
    from the host's config. The plugin's own prints go to stderr (the host logs them), so
    nothing but protocol messages ever reaches the host's end of the pipe."""
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    _log_to_stderr()
    if config is None:
        server = PluginServer.later(plugin, name=name)
    else:
        server = PluginServer(plugin, name=name, config=config)
    try:
        asyncio.run(_serve_stdio(server, sys.stdin.buffer, protocol_out, limit=limit))
    except KeyboardInterrupt:
        pass
    finally:
        protocol_out.close()


def serve_http(
    plugin: Any,
    address: str,
    *,
    token: str | None,
    name: str | None,
    limit: int,
    config: dict[str, Any],
) -> None:
    """Serve over HTTP with uvicorn; prints `listening on URL` once connections are taken."""
    try:
        import uvicorn
    except ImportError:
        typer.echo("serving over HTTP needs uvicorn: pip install 'interlock[http]'", err=True)
        raise typer.Exit(1) from None
    host, port = _address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, so asyncio sets TCP_NODELAY on accepted connections (it checks
    # the protocol); without it small replies wait for delayed ACKs, ~40 ms each.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise typer.BadParameter(
            f"cannot listen on {address}: {error}", param_hint="--http"
        ) from None
    sock.listen(128)
    _log_to_stderr()
    server = PluginServer(plugin, name=name, config=config)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    app = http_app(server, token=token, limit=limit)
    settings = uvicorn.Config(app, log_level="warning", lifespan="off")
    # Bound and listening already: a caller who reads this line can connect at once.
    typer.echo(f"listening on http://{shown}:{bound}/")
    sys.stdout.flush()
    try:
        uvicorn.Server(settings).run(sockets=[sock])
    finally:
        sock.close()


def _address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise typer.BadParameter(
            f"{address!r}: give HOST:PORT, e.g. 127.0.0.1:8700 (port 0: any free port)",
            param_hint="--http",
        )
    return host, int(port)


def _log_to_stderr() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
