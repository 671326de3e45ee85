"""A tiny OpenAI-compatible chat-completions server on loopback, for backend tests.

It answers from a queue of canned replies, in the wire format (JSON, or server-sent
events when the request asks to stream), and keeps the requests it received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: tuple[int, int] = (5, 3)
    pieces: list[str] | None = None  # how the text streams (default: word by word)


class ChatServer:
    """Serves `POST /v1/chat/completions`; `url` is the base URL for the SDK."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                reply = server.replies.pop(0)
                if body.get("stream"):
                    self._stream(body, reply)
                else:
                    self._send(200, "application/json", json.dumps(_completion(body, reply)))

            def _send(self, status: int, kind: str, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], reply: Reply) -> None:
                events = "".join(f"data: {json.dumps(c)}\n\n" for c in _chunks(body, reply))
                self._send(200, "text/event-stream", events + "data: [DONE]\n\n")

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"id": f"call_{i}", "type": "function",
         "function": {"name": name, "arguments": json.dumps(arguments)}}
        for i, (name, arguments) in enumerate(reply.tool_calls)
    ]  # fmt: skip


def _usage(reply: Reply) -> dict[str, int]:
    prompt, completion = reply.usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = _calls(reply)
    finish = "tool_calls" if reply.tool_calls else "stop"
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(reply),
    }  # fmt: skip


def _chunks(body: dict[str, Any], reply: Reply) -> Iterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }  # fmt: skip

    yield chunk({"role": "assistant", "content": ""})
    pieces = reply.pieces or [word + " " for word in reply.text.split(" ") if word]
    for piece in pieces:
        yield chunk({"content": piece})
    for i, call in enumerate(_calls(reply)):
        arguments = call["function"]["arguments"]
        head = {"index": i, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
        yield chunk({"tool_calls": [head]})
        middle = len(arguments) // 2  # the arguments arrive in two pieces
        for piece in (arguments[:middle], arguments[middle:]):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
    final = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
             "model": body["model"], "choices": [], "usage": _usage(reply)}  # fmt: skip
    yield final
