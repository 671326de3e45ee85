"""A loopback relay in front of the test PostgreSQL server, to lose connections on cue.

`cut()` closes every connection through it (the server's backends go on with what they
were doing); `armed` drops a connection once the server has answered a statement and before
the client reads the answer (the write committed, its acknowledgement was lost), and sets
`dropped`.
"""

from __future__ import annotations

import contextlib
import socket
import threading

# The server's ReadyForQuery message, idle: the last bytes of its answer to a statement.
READY_IDLE = b"Z\x00\x00\x00\x05I"


class Relay:
    """Forwards each connection to `host:port`; `port` is the relay's own."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.dropped = threading.Event()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        held = b""
        try:
            while data := source.recv(65536):
                if answers and self.armed.is_set():
                    held += data
                    if held.endswith(READY_IDLE):
                        self.armed.clear()
                        self.dropped.set()
                        return
                    continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):  # shutdown wakes the other pump, blocked reading
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            source.close()  # each end is the source of one pump

    def cut(self) -> None:
        with self.lock:
            ends, self.sockets = self.sockets, []
        for end in ends:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        self.cut()
