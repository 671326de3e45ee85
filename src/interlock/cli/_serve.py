"""`interlock serve`: run a plugin server in this process until its host is done."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import sys
from typing import Any

import typer

from interlock.external import PluginServer, http_app
from interlock.external import serve_stdio as _serve_stdio
from interlock.store import StateStore, StoreError, open_store, redacted

logger = logging.getLogger("interlock.serve")


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
    tokens: list[str],
    insecure: bool,
    name: str | None,
    limit: int,
    config: dict[str, Any],
    request_timeout: float,
    max_connections: int,
    keep_alive: int,
    shutdown_timeout: int,
    state: str | None = None,
    deployment: str = "default",
) -> None:
    """Serve over HTTP with uvicorn; prints `listening on URL` once connections are taken.

    Closed by default: an address other machines can reach needs a token (or `insecure`,
    which warns). Every request must arrive whole within `request_timeout` seconds (its
    headers, then its body); at most `max_connections` connections are served at once
    (more are answered 503); an idle keep-alive connection is closed after `keep_alive`
    seconds; on SIGTERM or Ctrl-C, calls in flight get `shutdown_timeout` seconds to end.
    With `state` (a store URL), sessions' `ctx.state` is kept there, under `deployment`,
    so that replicas sharing it serve any call of any session.
    """
    try:
        import uvicorn

        protocol = _deadline_protocol(request_timeout)
    except ImportError:
        typer.echo("serving over HTTP needs uvicorn and httptools: "
                   "pip install -e '<interlock checkout>[http]'", err=True)  # fmt: skip
        raise typer.Exit(1) from None
    host, port = _address(address)
    if not tokens and not is_loopback(host) and not insecure:
        raise typer.BadParameter(
            f"{address} can be reached from other machines, and without a token anyone who "
            "reaches it can call the plugin and read, advance or end its sessions' state: "
            "give --token TOKEN (or set INTERLOCK_TOKEN) or --token-file FILE, listen on "
            "127.0.0.1, or add --insecure to serve anyone on a network you trust",
            param_hint="--http",
        )
    server = PluginServer(plugin, name=name, config=config)
    if state is not None:  # checked before anything listens
        server.state = _store(state, deployment, server.served.name)
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
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    app = http_app(server, token=tokens, limit=limit, body_timeout=request_timeout)
    settings = uvicorn.Config(
        app,
        http=protocol,
        log_level="warning",
        lifespan="on",  # its shutdown closes the plugin
        # uvicorn answers 503 once the connections, the new one included, reach the limit
        limit_concurrency=max_connections + 1,
        timeout_keep_alive=keep_alive,
        timeout_graceful_shutdown=shutdown_timeout,
    )
    if not tokens and not is_loopback(host):
        logger.warning(
            "serving http://%s:%d/ without a token (--insecure): anyone who can reach it "
            "can call the plugin and use its sessions", shown, bound,
        )  # fmt: skip
    # Bound and listening already: a caller who reads this line can connect at once.
    typer.echo(f"listening on http://{shown}:{bound}/")
    sys.stdout.flush()
    try:
        uvicorn.Server(settings).run(sockets=[sock])
    finally:
        sock.close()


def _store(url: str, deployment: str, plugin: str) -> StateStore:
    """The store `--state` names, in the served plugin's namespace (nothing connects yet)."""
    if "${" in url:  # a shell leaves ${VAR} as it is in single quotes: say so now
        raise typer.BadParameter(
            f"{redacted(url)!r} holds a ${{...}} the shell did not expand: write the URL "
            "itself, or set INTERLOCK_STATE (which keeps a password out of the process list)",
            param_hint="--state",
        )
    try:
        return open_store(url, deployment=deployment, plugin=plugin)
    except (ValueError, StoreError) as error:
        raise typer.BadParameter(str(error), param_hint="--state") from None


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach: 127.0.0.0/8, ::1, `localhost`.

    Any other name is taken as reachable from elsewhere, whatever it resolves to now.
    """
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


MAX_HEADER_BYTES = 64 * 1024
"""The bound on one request's line and headers (past it: 431, and the connection closed)."""


def _deadline_protocol(timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with a deadline and a size bound on each request's headers.

    uvicorn bounds idle keep-alive connections but not a request whose headers trickle in
    a byte at a time, and such connections count against `limit_concurrency`: so each
    request's headers must arrive within `timeout` seconds of its first byte (of the
    connection, for the first one), else 408 and the connection is closed. The body has
    the same deadline, kept by `http_app`.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class DeadlineProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _waiting: object = None  # the cycle current when the deadline was set
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # a new request begins on a kept-alive connection
            super().data_received(data)
            if self._deadline is None:
                return
            if self.cycle is not self._waiting:  # its headers are in: the app takes over
                self._disarm()
            elif not self.transport.is_closing():
                self._header_bytes += len(data)
                if self._header_bytes > MAX_HEADER_BYTES:
                    self._refuse(431, f"request headers over {MAX_HEADER_BYTES} bytes")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._waiting = self.cycle
            self._header_bytes = 0
            self._deadline = self.loop.call_later(timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self.cycle is self._waiting and not self.transport.is_closing():
                self._refuse(408, f"the request headers did not arrive within {timeout:g} s")

        def _refuse(self, status: int, problem: str) -> None:
            self._disarm()
            body = json.dumps({"jsonrpc": "2.0", "id": None,
                               "error": {"code": -32600, "message": problem}}).encode()  # fmt: skip
            reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, reason, len(body), body)
            )
            self.transport.close()

    return DeadlineProtocol


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
