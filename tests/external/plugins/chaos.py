"""A stdio plugin that misbehaves on request, for the transport's hardening tests.

Options: `--protocol N` and `--hooks a,b` change its `initialize` answer (`--hooks ""`:
none); `--slow-start S` answers `initialize` only after S seconds. At pre_tool_call, by tool name:
- "escape": starts a helper in a session of its own (`setsid`) that keeps the plugin's
  stdin, stdout and stderr open, says `helper PID` on stderr, and answers;
- "fork-exit": the same, then exits without answering;
- "crash": exits at once (code 3), without answering;
- "flood": writes `arguments["lines"]` replies nobody asked for, then answers;
- anything else: answers with a block whose reason is the tool name.
"""

import argparse
import json
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--protocol", type=int, default=1)
parser.add_argument("--hooks", default="pre_tool_call")
parser.add_argument("--slow-start", type=float, default=0.0)
options = parser.parse_args()


def send(message: dict) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    sys.stdout.flush()


def helper() -> None:
    # Inherits fds 0, 1 and 2: the plugin's pipes outlive the plugin while it runs. The
    # sleep stands in for a helper that lingers; the host must find and end it.
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    print(f"helper {child.pid}", file=sys.stderr, flush=True)


for line in sys.stdin:
    message = json.loads(line)
    id, method = message["id"], message["method"]
    if method == "initialize":
        time.sleep(options.slow_start)  # stands in for a plugin that loads slowly
        hooks = [h for h in options.hooks.split(",") if h]
        send({"id": id, "result": {"protocol": options.protocol, "hooks": hooks}})
        continue
    if method != "invoke":
        send({"id": id, "result": None})
        if method == "shutdown":
            break
        continue
    payload = message["params"]["payload"]
    tool = payload["tool_name"]
    if tool == "crash":
        sys.exit(3)
    if tool in ("escape", "fork-exit"):
        helper()
        if tool == "fork-exit":
            sys.exit(4)
    if tool == "flood":
        junk = json.dumps({"jsonrpc": "2.0", "id": 10**9, "result": None}) + "\n"
        sys.stdout.write(junk * int(payload["arguments"]["lines"]))
    send({"id": id, "result": {"action": {"type": "block", "reason": tool}}})
