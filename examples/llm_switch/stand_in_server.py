"""A stand-in for a local model server (llama.cpp's `llama-server` and the like): the same
command-line options and an OpenAI-compatible chat endpoint, but no model — it answers
with what it was started with, so the example and its test can see which server replied.

    python stand_in_server.py --model models/small.gguf --ctx-size 4096 --port 8081
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--ctx-size", type=int, default=2048)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._send({"status": "ok"})
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            asked = next((m["content"] for m in reversed(body["messages"])
                          if m["role"] == "user"), "")  # fmt: skip
            text = (f"{options.model} (context {options.ctx_size}, temperature "
                    f"{body.get('temperature')}) says: {asked}")  # fmt: skip
            self._send({
                "id": "local-1", "object": "chat.completion", "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": len(asked.split()),
                          "completion_tokens": len(text.split()),
                          "total_tokens": len(asked.split()) + len(text.split())},
            })  # fmt: skip

        def _send(self, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return None

    ThreadingHTTPServer((options.host, options.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
