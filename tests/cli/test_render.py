"""The command line at the widths people use: names whole, tables or stacked blocks that
fit, the stats as a table, help without placeholders, streamed text wrapped at spaces."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from interlock import RegistrationStats, hooks
from interlock.cli import app
from interlock.cli._log import _when
from interlock.cli._trace import Trace
from interlock.plugins.profiler import render
from interlock.runtime import TraceEvent

ROOT = Path(__file__).resolve().parents[2]
BUILT_INS = ("audit-log", "content-policy", "profiler", "rate-limit", "task-reminder",
             "token-budget", "tool-guard")  # fmt: skip


def at(tmp_path: Path, columns: int) -> CliRunner:
    return CliRunner(env={"INTERLOCK_DATA_DIR": str(tmp_path), "COLUMNS": str(columns)})


def shown(cli: CliRunner, *args: str, width: int) -> str:
    out = cli.invoke(app, list(args))
    assert out.exit_code == 0, out.output
    assert "…" not in out.output  # nothing cut
    assert max(map(len, out.output.splitlines())) <= width
    return out.output


def words(text: str) -> set[str]:
    return set(re.findall(r"[\w.:-]+", text))


def demo_session(cli: CliRunner) -> str:
    assert cli.invoke(app, ["demo"]).exit_code == 0
    listed = json.loads(cli.invoke(app, ["log", "--json"]).output)
    return str(listed[0]["id"])


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_hooks_and_plugins_show_every_name_whole(tmp_path: Path, width: int) -> None:
    cli = at(tmp_path, width)
    listed = words(shown(cli, "hooks", width=width))
    assert {spec.name for spec in hooks.CATALOG} <= listed
    assert {"on_session_start", "before_tool_call", "system_items"} <= listed
    assert set(BUILT_INS) <= words(shown(cli, "plugins", width=width))
    config = str(ROOT / "examples" / "interlock.yaml")
    configured = words(shown(cli, "plugins", "--config", config, width=width))
    assert {"no-rm", "redact-email", "tool-guard", "workspace", "pre_tool_call"} <= configured


@pytest.mark.parametrize("width", [60, 80, 200])
def test_session_stats_show_plugin_and_hook_whole(tmp_path: Path, width: int) -> None:
    cli = at(tmp_path, width)
    session = demo_session(cli)
    stats = shown(cli, "plugins", "--session", session, width=width)
    assert {"content-policy", "message_received", "llm_stream_chunk"} <= words(stats)
    log = shown(cli, "log", session, width=width)
    assert "plugin statistics of the session" in log
    assert {"content-policy", "message_received", "audit-log", "modifications"} <= words(log)


def test_a_wide_terminal_gets_tables_a_narrow_one_blocks(tmp_path: Path) -> None:
    wide = shown(at(tmp_path, 200), "hooks", width=200)
    assert re.search(r"│ pre_tool_call +│ modify +│", wide)
    narrow = shown(at(tmp_path, 60), "hooks", width=60)
    assert "\npre_tool_call\n  kind          modify\n" in narrow
    assert "  aliases       before_tool_call\n" in narrow


def test_log_json_keeps_the_stats_record_raw(tmp_path: Path) -> None:
    cli = at(tmp_path, 80)
    session = demo_session(cli)
    records = [json.loads(line) for line in
               cli.invoke(app, ["log", session, "--json"]).output.splitlines()]  # fmt: skip
    [stats] = [r for r in records if r["kind"] == "stats"]
    calls = {(r["plugin"], r["hook"]): r["calls"] for r in stats["data"]["registrations"]}
    assert calls[("content-policy", "message_received")] == 3
    wide = cli.invoke(app, ["log", session], env={"COLUMNS": "200"}).output
    assert re.search(r"│ content-policy +│ message_received +│ 3 +│", wide)


def test_plugins_describe_themselves(tmp_path: Path) -> None:
    report = json.loads(at(tmp_path, 80).invoke(app, ["plugins", "--plugin-dir",
                        str(ROOT / "examples" / "plugins"), "--json"]).output)  # fmt: skip
    described = {row["name"]: row["description"] for row in report["discovered"]}
    assert described["profiler"].startswith("Times model calls, tool calls and plugins")
    assert all(described[name] for name in BUILT_INS)
    assert described["no-rm"] == "Refuses shell commands that match its deny patterns."


def test_help_shows_placeholders_as_other_command_lines_do(tmp_path: Path) -> None:
    cli = at(tmp_path, 200)
    text = cli.invoke(app, ["run", "--help"]).output
    assert "<bool>" not in text and "{prompt}" not in text and "<str>" not in text
    assert "run [OPTIONS] PROMPT" in text
    assert re.search(r"--model +TEXT", text) and re.search(r"--json +Show|--json +Print", text)
    serve = cli.invoke(app, ["serve", "--help"]).output
    # the docstring's own line breaks are gone: the paragraph flows to the width
    assert "unchanged. Over stdio without --plugin-config, the plugin" in serve


def test_streamed_text_wraps_at_spaces() -> None:
    console = Console(width=24, file=io.StringIO(), color_system=None)
    trace = Trace(console)
    text = "build/ holds 3 files and the summary goes out to everyone tomorrow."
    for index in range(0, len(text), 5):  # chunks that cut words
        trace(TraceEvent("stream", "m", "s", 1, {"text": text[index : index + 5]}))
    trace(TraceEvent("reply", "delivered", "s", 1, {"text": "ok"}))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    lines = out.splitlines()[:-1]
    assert max(map(len, lines)) <= 24
    assert " ".join(" ".join(lines).split()) == "streaming " + text
    assert all(word in [*text.split(), "streaming"] for line in lines for word in line.split())


def stats(plugin: str, hook: str, calls: int) -> RegistrationStats:
    return RegistrationStats(plugin=plugin, hook=hook, scope=None, mode="enforce", priority=0,
                             calls=calls, errors=0, timeouts=0, blocks=0, modifications=0,
                             violations=0, skipped=0, circuit="closed", time_total=calls / 1e3,
                             time_max=1e-3, dropped=0)  # fmt: skip


@pytest.mark.parametrize("width", [40, 80, 100, 160])
def test_the_profile_fits_the_width_with_names_whole(width: int) -> None:
    plugins = [stats("content-policy", "message_received", 3), stats("audit-log", "turn_end", 2)]
    text = render([0.001, 0.002], {"list_dir": [0.001]}, plugins, width=width)
    assert "…" not in text and max(map(len, text.splitlines())) <= width
    assert {"content-policy", "message_received", "audit-log", "list_dir"} <= words(text)
    if width >= 80:  # a table: a row per registration
        assert re.search(r"content-policy +message_received +3 ", text)


@pytest.mark.parametrize("width", [40, 60, 80, 200])
def test_log_lists_ids_dates_and_end_reasons_whole(tmp_path: Path, width: int) -> None:
    cli = at(tmp_path, width)
    long_id = "a-rather-long-session-id-for-the-log"
    assert cli.invoke(app, ["run", "hi", "--session", long_id, "--no-trace"]).exit_code == 0
    session = demo_session(cli)
    listing = shown(cli, "log", width=width)
    listed = json.loads(cli.invoke(app, ["log", "--json"]).output)
    dates = {part for s in listed for part in _when(s["created"]).split()}
    assert {long_id, session, "completed", "demo"} | dates <= words(listing)


@pytest.mark.parametrize("width", [60, 80])
def test_plugins_show_import_paths_whole(tmp_path: Path, width: int) -> None:
    cli = at(tmp_path, width)
    report = json.loads(cli.invoke(app, ["plugins", "--json"]).output)
    targets = {row["target"] for row in report["discovered"]}
    assert "interlock.plugins.content_policy:ContentPolicy" in targets
    assert targets <= words(shown(cli, "plugins", width=width))


@pytest.mark.parametrize("width", [60, 80])
def test_new_plugin_wraps_its_note_and_keeps_the_command_whole(tmp_path: Path, width: int) -> None:
    out = at(tmp_path, width).invoke(app, ["new-plugin", "no-sudo", "--directory", str(tmp_path)])
    assert out.exit_code == 0, out.output
    root = tmp_path / "no-sudo"
    command = f"  cd {root} && pip install -e '.[test]' && python -m pytest"
    lines = out.output.splitlines()
    assert lines[:2] == [f"created {root}", command]
    assert all(len(line) <= width for line in lines[2:])
    assert " ".join(" ".join(lines[2:]).split()).endswith("dependency on it is met there only")


@pytest.mark.parametrize("command", ["demo", "run", "log", "plugins"])
def test_help_keeps_the_brackets_of_an_extra(tmp_path: Path, command: str) -> None:
    text = at(tmp_path, 200).invoke(app, [command, "--help"]).output
    assert "(needs interlock[postgres])" in text
