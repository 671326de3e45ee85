"""audit_log through the reference runtime; durability with a killed process; rotation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from interlock import PluginManager, ToolCall, hooks
from interlock.config import load_config_text
from interlock.plugins.audit_log import AuditLog, AuditLogConfig
from interlock.runtime import Step

from .helpers import run

ROOT = Path(__file__).resolve().parents[2]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_every_hook_outcome_is_recorded_in_order_without_content(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    manager = load_config_text(f"""
plugins:
  - name: audit-log
    use: audit-log
    config: {{path: "{audit}", fsync: never}}
  - name: tool-guard
    use: tool-guard
    config: {{rules: [{{deny: {{program: rm}}, reason: no deleting}}]}}
  - name: content-policy
    use: content-policy
""")
    script = [Step(tool_calls=(("shell", {"command": "rm -rf /"}),)), "mail ada@example.com"]
    await run([], script, ["hi, I am ada@example.com"], manager=manager)  # closes: drains

    records = lines(audit)
    assert [r["hook"] for r in records] == [
        "session_start", "message_received", "pre_llm_call", "post_llm_call", "pre_tool_call",
        "post_tool_call", "pre_llm_call", "post_llm_call", "message_sending", "turn_end",
        "session_end",
    ]  # fmt: skip
    received = records[1]
    assert received["outcome"] == "modified" and received["modified_by"] == ["content-policy"]
    assert received["payload"]["content"] == {"chars": len("hi, I am [email]")}
    gate = records[4]
    assert gate["outcome"] == "blocked" and gate["blocked_by"] == "tool-guard"
    assert gate["reason"].endswith("no deleting")
    assert gate["payload"]["tool_name"] == "shell" and gate["payload"]["arguments"] == {
        "keys": ["command"]
    }
    assert all(r["session"] == "s-1" for r in records)
    assert "ada@example.com" not in audit.read_text() and "rm -rf" not in audit.read_text()


KILLED = """
import sys
from interlock import PluginManager, ToolCall, hooks
from interlock.plugins.audit_log import AuditLog, AuditLogConfig

manager = PluginManager()
manager.register(AuditLog(AuditLogConfig(path=sys.argv[1], fsync="always")))
for number in range(100_000):
    manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("tool", {"n": number}, f"call-{number}"))
    manager.drain_sync()
    print(number, flush=True)  # acknowledged: the record is on disk
"""


def test_acknowledged_records_survive_a_killed_process(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    process = subprocess.Popen([sys.executable, "-c", KILLED, str(audit)],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    assert process.stdout is not None
    acknowledged = -1
    for line in process.stdout:
        acknowledged = int(line)
        if acknowledged == 200:
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()

    text = audit.read_text()
    complete = text.splitlines()[: text.count("\n")]  # a torn last line is not a record
    ids = [json.loads(line)["payload"]["call_id"] for line in complete]
    assert ids[: acknowledged + 1] == [f"call-{n}" for n in range(acknowledged + 1)]


async def test_the_file_rotates_by_size_and_keeps_the_newest(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    plugin = AuditLog(AuditLogConfig(path=str(audit), max_bytes=1500, keep=2, fsync="never"))
    manager = PluginManager()
    manager.register(plugin)
    for number in range(30):
        await manager.invoke(hooks.PRE_TOOL_CALL, ToolCall("tool", {}, f"call-{number}"))
    await manager.aclose()

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 1500 for p in tmp_path.iterdir())
    kept = [r["payload"]["call_id"] for name in reversed(files) for r in lines(tmp_path / name)]
    assert kept == [f"call-{n}" for n in range(30 - len(kept), 30)]  # the newest, in order
