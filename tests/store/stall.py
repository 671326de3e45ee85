"""A TCP proxy on loopback in front of a Redis, to play a server that answers too late."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit


class StallingProxy:
    """Forwards every connection to the Redis at `url`. `stall()` swallows the replies on
    the connections open at that moment (their commands still reach Redis and run), as a
    server whose answers come after the client stopped waiting; connections opened later
    pass freely. `url` is the proxy's, with the Redis URL's path and query."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._parts = parts
        self._links: list[_Link] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = self._parts._replace(netloc=f"127.0.0.1:{port}").geturl()
        return self

    def stall(self) -> None:
        for link in self._links:
            link.stalled = True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self._links:
            link.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        link = _Link(writer, up_writer)
        self._links.append(link)
        await asyncio.gather(
            _pipe(reader, up_writer, lambda: True),
            _pipe(up_reader, writer, lambda: not link.stalled),
        )


class _Link:
    """One client connection and its connection to Redis."""

    def __init__(self, down: asyncio.StreamWriter, up: asyncio.StreamWriter) -> None:
        self.down, self.up = down, up
        self.stalled = False

    def close(self) -> None:
        self.down.close()
        self.up.close()


async def _pipe(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, passing: Callable[[], bool]
) -> None:
    try:
        while data := await source.read(65536):
            if passing():
                sink.write(data)
                await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.close()


@contextlib.asynccontextmanager
async def stalling(url: str) -> AsyncIterator[StallingProxy]:
    """A `StallingProxy` in front of `url` for the block."""
    proxy = await StallingProxy(url).start()
    try:
        yield proxy
    finally:
        await proxy.stop()
