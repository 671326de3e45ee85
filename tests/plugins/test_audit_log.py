"""audit_log through the reference runtime; durability with a killed process; rotation."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from interlock import PluginManager, ToolCall, hook, hooks
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


# -- a burst: every record is written (overflow: wait) or accounted for by a gap record --

BURST = 10_000


def burst_log(tmp_path: Path, overflow: str, *first: object) -> tuple[PluginManager, Path]:
    """A manager with a small background queue and an audit log of tool calls (after the
    plugins `first`)."""
    audit = tmp_path / "audit.jsonl"
    manager = PluginManager(background_limit=50)
    for plugin in first:
        manager.register(plugin)
    config = AuditLogConfig(path=str(audit), fsync="never", hooks=["pre_tool_call"])
    options = {} if overflow == "wait" else {"overflow": overflow}
    manager.register(AuditLog(config), **options)  # type: ignore[arg-type]
    return manager, audit


def tool_call(number: int) -> ToolCall:
    return ToolCall("tool", {}, f"call-{number}")


def accounted(audit: Path, manager: PluginManager) -> tuple[list[int], int]:
    """The call numbers recorded, and the records the gap records say were dropped;
    checks that the two account for the burst and that the stats agree."""
    records = lines(audit)
    numbers = [
        int(r["payload"]["call_id"].removeprefix("call-")) for r in records if "gap" not in r
    ]
    gaps = [r for r in records if "gap" in r]
    dropped = sum(gap["gap"] for gap in gaps)
    assert all(gap["hooks"] == {"pre_tool_call": gap["gap"]} for gap in gaps)
    assert all(gap["from"] <= gap["to"] for gap in gaps)
    assert len(set(numbers)) == len(numbers) and set(numbers) <= set(range(BURST))
    assert len(numbers) + dropped == BURST
    stats = manager.stats()
    assert stats.get("audit-log", "pre_tool_call").dropped == dropped
    assert stats.background_dropped == dropped
    return numbers, dropped


@pytest.mark.parametrize("overflow", ["wait", "drop"])
async def test_an_async_burst_without_yielding_loses_no_record_silently(
    tmp_path: Path, overflow: str
) -> None:
    manager, audit = burst_log(tmp_path, overflow)
    for number in range(BURST):
        await manager.invoke(hooks.PRE_TOOL_CALL, tool_call(number))
    await manager.aclose()
    numbers, dropped = accounted(audit, manager)
    if overflow == "wait":
        assert numbers == list(range(BURST)) and dropped == 0  # all of them, in order
    else:
        assert (len(numbers), dropped) == (50, BURST - 50)  # the loop never let them run


@pytest.mark.parametrize("overflow", ["wait", "drop"])
async def test_a_gathered_async_burst_loses_no_record_silently(
    tmp_path: Path, overflow: str
) -> None:
    manager, audit = burst_log(tmp_path, overflow)
    await asyncio.gather(*(manager.invoke(hooks.PRE_TOOL_CALL, tool_call(n)) for n in range(BURST)))
    await manager.aclose()
    numbers, dropped = accounted(audit, manager)
    if overflow == "wait":
        assert sorted(numbers) == list(range(BURST)) and dropped == 0
    else:
        assert (len(numbers), dropped) == (50, BURST - 50)


def test_a_sync_burst_waits_for_every_record(tmp_path: Path) -> None:
    manager, audit = burst_log(tmp_path, "wait")
    for number in range(BURST):
        manager.invoke_sync(hooks.PRE_TOOL_CALL, tool_call(number))
    manager.close()
    numbers, dropped = accounted(audit, manager)
    assert numbers == list(range(BURST)) and dropped == 0


def holder(release: threading.Event) -> Any:
    @hook("turn_end", background=True, timeout=None)
    async def hold(payload: Any, ctx: Any) -> None:
        release.wait()  # holds interlock's event loop: no record is written meanwhile

    return hold


def test_a_sync_burst_in_drop_mode_writes_what_it_dropped_as_gaps(tmp_path: Path) -> None:
    release = threading.Event()
    manager, audit = burst_log(tmp_path, "drop", holder(release))
    try:
        manager.invoke_sync(hooks.TURN_END, hooks.TURN_END.payload_type(1))
        for number in range(BURST):
            manager.invoke_sync(hooks.PRE_TOOL_CALL, tool_call(number))
    finally:
        release.set()
    manager.close()
    numbers, dropped = accounted(audit, manager)
    # The holder's call and the log's own turn_end call (it records only tool calls) hold
    # two places in the queue; 48 records fit beside them.
    assert (numbers, dropped) == (list(range(48)), BURST - 48)


def test_drops_are_written_before_the_next_record_and_at_close(tmp_path: Path) -> None:
    manager, audit = burst_log(tmp_path, "drop")
    plugin = manager.registrations()[0].fn.__self__  # the AuditLog object
    for _ in range(3):
        plugin.background_dropped("pre_tool_call", 1)  # as the manager does when full
    plugin.background_dropped("turn_end", 1)  # not a hook it records: no gap
    manager.invoke_sync(hooks.PRE_TOOL_CALL, tool_call(3))
    assert manager.drain_sync(timeout=10)
    plugin.background_dropped("pre_tool_call", 2)  # trailing: written at close
    manager.close()
    records = lines(audit)
    assert [r.get("gap") for r in records] == [3, None, 2]
    assert records[1]["payload"]["call_id"] == "call-3"


def test_the_config_entry_chooses_drop_and_the_default_waits(tmp_path: Path) -> None:
    text = """
plugins:
  - name: audit-log
    use: audit-log
    config: {path: "%s"}
"""
    waits = load_config_text(text % (tmp_path / "a.jsonl"))
    assert {r.overflow for r in waits.registrations()} == {"wait"}
    drops = load_config_text((text + "    overflow: drop\n") % (tmp_path / "b.jsonl"))
    assert {r.overflow for r in drops.registrations()} == {"drop"}
    waits.close()
    drops.close()


def test_a_default_overflow_applies_to_plugins_with_background_handlers(tmp_path: Path) -> None:
    manager = load_config_text(f"""
defaults: {{overflow: drop}}
plugins:
  - name: audit-log
    use: audit-log
    config: {{path: "{tmp_path / "audit.jsonl"}"}}
  - name: tool-guard
    use: tool-guard
""")  # tool-guard has no background handler: the default is not its concern
    assert {r.overflow for r in manager.registrations() if r.plugin == "audit-log"} == {"drop"}
    manager.close()


def test_records_are_made_on_the_writer_thread_from_what_the_handler_saw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from interlock.plugins import audit_log

    made_on: list[str] = []
    release = threading.Event()
    make = audit_log.Seen.line

    def held_line(seen: audit_log.Seen) -> bytes:
        made_on.append(threading.current_thread().name)
        release.wait()  # the record is made only after the invocation is long over
        return make(seen)

    monkeypatch.setattr(audit_log.Seen, "line", held_line)
    manager, audit = burst_log(tmp_path, "wait")
    before = audit_log._now()
    manager.invoke_sync(hooks.PRE_TOOL_CALL, tool_call(7))
    assert manager.drain_sync(timeout=10)  # the handler is done; its record not made yet
    after = audit_log._now()
    release.set()
    manager.close()
    [record] = lines(audit)
    assert made_on == ["interlock-audit-log"]
    assert before <= record["ts"] <= after  # when the handler ran, not when it was made
    assert record["payload"] == {"type": "ToolCall", "tool_name": "tool",
                                 "arguments": {"keys": []}, "call_id": "call-7"}  # fmt: skip


def test_a_record_that_cannot_be_made_fails_its_handler_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from interlock.plugins import audit_log

    summary = audit_log.summary

    def fails_on_call_1(payload: Any) -> dict[str, Any]:
        if getattr(payload, "call_id", None) == "call-1":
            raise TypeError("cannot summarise this payload")
        return summary(payload)

    monkeypatch.setattr(audit_log, "summary", fails_on_call_1)
    audit = tmp_path / "audit.jsonl"
    manager = PluginManager()
    manager.register(AuditLog(AuditLogConfig(path=str(audit), fsync="always")))
    for number in range(3):
        manager.invoke_sync(hooks.PRE_TOOL_CALL, tool_call(number))
    manager.close()
    assert [r["payload"]["call_id"] for r in lines(audit)] == ["call-0", "call-2"]
    assert manager.stats().get("audit-log", "pre_tool_call").errors == 1
    assert "cannot make the record of a pre_tool_call invocation" in caplog.text
