"""The command line: demo, run and log, as a user types them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock.cli import app

from .config.installed import installed
from .runtime.chat_server import ChatServer, Reply


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    return CliRunner(env={"INTERLOCK_DATA_DIR": str(tmp_path), "COLUMNS": "200"})


def sessions(cli: CliRunner) -> list[dict[str, object]]:
    out = cli.invoke(app, ["log", "--json"])
    assert out.exit_code == 0, out.output
    listed: list[dict[str, object]] = json.loads(out.output)
    return listed


def test_demo_traces_every_step_and_logs_the_session(cli: CliRunner, tmp_path: Path) -> None:
    out = cli.invoke(app, ["demo"])
    assert out.exit_code == 0, out.output
    text = out.output
    assert "message_received modified by content-policy" in text
    assert "blocked by tool-guard: tool guard: the destructive set (deny: {program: rm, " in text
    assert "system item (reminder, from task-reminder): Still open on your todo list" in text
    assert "notice from token-budget: the session has used" in text
    assert "its context held 2 system messages" in text  # the reminder reached the model
    assert "I will mail the summary to [email]" in text  # redacted on the way out
    assert "notice from profiler:" in text and "time per model and tool call" in text
    [session] = sessions(cli)
    assert f"interlock log {session['id']}" in text
    assert (tmp_path / "sessions.db").exists()
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert any(r["hook"] == "pre_tool_call" and r["outcome"] == "blocked" for r in audit)
    assert "ada@example.com" not in (tmp_path / "audit.jsonl").read_text()


def test_log_shows_a_session_with_system_items_marked(cli: CliRunner) -> None:
    cli.invoke(app, ["demo"])
    session_id = str(sessions(cli)[0]["id"])
    out = cli.invoke(app, ["log", session_id])
    assert out.exit_code == 0, out.output
    assert "SYSTEM ITEM [reminder] from task-reminder" in out.output
    assert 'tool call shell(command="rm -rf build/") refused' in out.output
    records = [
        json.loads(line)
        for line in cli.invoke(app, ["log", session_id, "--json"]).output.splitlines()
    ]
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    assert {"system_item", "hook", "tool_call", "delivered"} <= {r["kind"] for r in records}


def test_log_explains_what_is_missing(cli: CliRunner) -> None:
    out = cli.invoke(app, ["log"])
    assert out.exit_code == 0 and "no session log at" in out.output
    cli.invoke(app, ["run", "hello", "--no-trace"])
    out = cli.invoke(app, ["log", "nope"])
    assert out.exit_code == 1 and "no session 'nope'" in out.output


def test_run_with_the_scripted_model(cli: CliRunner) -> None:
    out = cli.invoke(app, ["run", "hello there", "--no-trace"])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == "(scripted) You said: hello there"  # the reply alone
    [session] = sessions(cli)
    assert out.stderr == f"Show this session with: interlock log {session['id']}\n"
    out = cli.invoke(app, ["run", "again", "--json", "--no-trace"])
    result = json.loads(out.output)
    assert (result["delivered"], result["stopped"], result["turn"]) == (True, "answered", 1)
    assert result["session"] == sessions(cli)[0]["id"] != session["id"]


def test_run_continues_a_session(cli: CliRunner) -> None:
    cli.invoke(app, ["run", "one", "--session", "s1", "--no-trace"])
    out = cli.invoke(app, ["run", "two", "--session", "s1", "--json", "--no-trace"])
    assert json.loads(out.output)["turn"] == 2


def test_run_with_a_script_file(cli: CliRunner, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["first", {"text": "second"}]))
    out = cli.invoke(app, ["run", "hi", "--model", f"scripted:{script}", "--stream"])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip().endswith("first")
    assert "pre_llm_call" in out.output


def test_run_against_an_openai_compatible_server(cli: CliRunner) -> None:
    with ChatServer([Reply("hello from the server")]) as server:
        out = cli.invoke(app, ["run", "hi", "--model", "openai:local", "--base-url", server.url,
                               "--no-trace"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == "hello from the server"
    assert server.requests[0]["model"] == "local"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("gpt-4", "use scripted, scripted:SCRIPT.json or openai:MODEL"),
        ("scripted:/nope.json", "not a valid model script"),
    ],
)
def test_run_refuses_a_bad_model(cli: CliRunner, model: str, message: str) -> None:
    out = cli.invoke(app, ["run", "hi", "--model", model])
    assert out.exit_code == 2
    assert message in out.output


def test_version(cli: CliRunner) -> None:
    import interlock

    assert cli.invoke(app, ["version"]).output.strip() == interlock.__version__


def test_log_json_without_a_log_is_an_empty_list(cli: CliRunner) -> None:
    out = cli.invoke(app, ["log", "--json"])
    assert (out.exit_code, out.output.strip()) == (0, "[]")


def test_user_text_is_never_read_as_markup(cli: CliRunner) -> None:
    weird = "[/x] [red]evil :thumbs_up: \\"
    out = cli.invoke(app, ["run", weird, "--session", "[red]s"])
    assert out.exit_code == 0, out.output
    assert f"You said: {weird}" in out.output
    listing = cli.invoke(app, ["log"])
    assert listing.exit_code == 0 and "[red]s" in listing.output
    shown = cli.invoke(app, ["log", "[red]s"])
    assert shown.exit_code == 0 and weird in shown.output


def test_a_file_that_is_not_a_log_gets_one_clear_line(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "sessions.db").write_text("hello, not sqlite")
    out = cli.invoke(app, ["log"])
    assert out.exit_code == 1
    assert "is not an interlock session log" in out.output


def test_version_flag(cli: CliRunner) -> None:
    import interlock

    assert cli.invoke(app, ["--version"]).output.strip() == interlock.__version__


def test_a_session_id_that_is_not_text_is_refused(cli: CliRunner) -> None:
    bad = b"s\xff".decode("utf-8", "surrogateescape")
    out = cli.invoke(app, ["run", "hi", "--session", bad, "--no-trace"])
    assert out.exit_code == 2
    assert "not valid UTF-8 text" in out.output


ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "interlock.yaml"


def test_hooks_lists_the_catalog(cli: CliRunner) -> None:
    out = cli.invoke(app, ["hooks"])
    assert out.exit_code == 0 and "pre_tool_call" in out.output and "before_tool_call" in out.output
    rows = json.loads(cli.invoke(app, ["hooks", "--json"]).output)
    gate = next(r for r in rows if r["hook"] == "pre_tool_call")
    assert gate["accepts"] == ["Continue", "Ask", "Block", "Modify"]
    assert gate["fields"] == ["tool_name", "arguments", "call_id"]
    schemas = json.loads(cli.invoke(app, ["hooks", "--schema"]).output)
    assert schemas["pre_tool_call"]["title"] == "ToolCall"


def test_check_accepts_the_example_and_explains_a_bad_file(cli: CliRunner, tmp_path: Path) -> None:
    out = cli.invoke(app, ["check", str(EXAMPLE)])
    assert out.exit_code == 0, out.output
    # In the file's order; the disabled entry is left out.
    assert out.output == (f"ok: {EXAMPLE}: 5 plugins: tool-guard, no-rm, redact-email, "
                          "workspace, claude-guard\n")  # fmt: skip
    bad = tmp_path / "bad.yaml"
    bad.write_text("plugins:\n  - name: a\n    use: x:y\n    timeout: soon\n    modee: enforce\n")
    out = cli.invoke(app, ["check", str(bad)])
    assert out.exit_code == 1
    assert f"{bad}:4: plugin 'a': timeout:" in out.output
    assert "unknown key 'modee'; did you mean 'mode'?" in out.output


@pytest.mark.parametrize("text", ["", "\n# nothing yet\n", "defaults: {timeout: 1s}\n"])
def test_check_refuses_a_file_with_no_plugins_and_no_version(
    cli: CliRunner, tmp_path: Path, text: str
) -> None:
    empty = tmp_path / "interlock.yaml"
    empty.write_text(text)
    out = cli.invoke(app, ["check", str(empty)])
    assert out.exit_code == 1, out.output
    [line] = out.output.splitlines()
    assert line.startswith(str(empty)) and "names no plugins and no version" in line
    empty.write_text("version: 1\nplugins: []\n")  # saying so is fine
    out = cli.invoke(app, ["check", str(empty)])
    assert (out.exit_code, out.output) == (0, f"ok: {empty}: 0 plugins\n")


def test_plugins_lists_discovered_and_configured(cli: CliRunner) -> None:
    out = cli.invoke(app, ["plugins", "--config", str(EXAMPLE), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert {"no-rm", "redact-email", "workspace"} <= {p["name"] for p in report["discovered"]}
    gate = next(r for r in report["configured"] if r["plugin"] == "tool-guard")
    assert (gate["hook"], gate["priority"], gate["on_error"], gate["timeout"]) == (
        "pre_tool_call", 10, "block", "2s")  # fmt: skip


def test_run_uses_config_plugins_and_their_tools_then_plugins_shows_the_stats(
    cli: CliRunner,
) -> None:
    script = str(ROOT / "examples" / "script.json")
    out = cli.invoke(app, ["run", "tidy up", "--config", str(EXAMPLE), "--model",
                           f"scripted:{script}", "--session", "cfg"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "tool list_dir -> " in out.output  # a drop-in plugin's tool
    assert "pre_tool_call blocked by tool-guard" in out.output
    assert "system item (reminder, from workspace)" in out.output
    assert "mail [email] if you want that" in out.output
    report = json.loads(cli.invoke(app, ["plugins", "--session", "cfg", "--json"]).output)
    gate = next(s for s in report["stats"] if s["plugin"] == "tool-guard")
    assert (gate["calls"], gate["blocks"]) == (2, 1)  # list_dir passes, rm -rf does not


def test_run_with_a_plugin_flag(cli: CliRunner, tmp_path: Path) -> None:
    out = cli.invoke(app, ["run", "x", "--plugin", "tests.config.plugins_for_tests:shout"])
    assert out.exit_code == 0, out.output
    out = cli.invoke(app, ["run", "x", "--plugin", "nope:nothing"])
    assert out.exit_code == 2 and "cannot import 'nope'" in out.output
    out = cli.invoke(app, ["run", "x", "--plugin", "no-rm"])  # a drop-in, no --plugin-dir
    text = " ".join(out.output.replace("│", " ").split())
    assert out.exit_code == 2 and "no plugin named 'no-rm'" in text
    assert "config" not in text.split("no plugin named")[0]  # none was given


def test_serve_checks_the_plugin_config_as_a_config_file_does(cli: CliRunner) -> None:
    out = cli.invoke(app, ["serve", "tool-guard", "--http", "127.0.0.1:0",
                           "--plugin-config", '{"destrucive": "deny"}'])  # fmt: skip
    text = " ".join(out.output.replace("│", " ").split())
    assert out.exit_code == 2, out.output
    assert ("Invalid value for --plugin-config: config: unknown key 'destrucive'; did you "
            "mean 'destructive'?") in text  # fmt: skip


def test_serve_says_a_missing_protocol_field_is_missing() -> None:
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {"protocol": 99}},
    ]
    served = subprocess.run([sys.executable, "-m", "interlock", "serve", "tool-guard", "--stdio"],
                            input="".join(json.dumps(line) + "\n" for line in lines),
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    replies = [json.loads(line)["error"]["message"] for line in served.stdout.splitlines()]
    assert replies == [
        "this plugin speaks protocol 1, the host left it out: initialize's 'protocol' field "
        "is missing",
        "this plugin speaks protocol 1, the host sent 99",
    ]


def test_new_plugin_scaffolds_a_package_whose_tests_pass(cli: CliRunner, tmp_path: Path) -> None:
    out = cli.invoke(app, ["new-plugin", "no-sudo", "--directory", str(tmp_path)])
    assert out.exit_code == 0, out.output
    root = tmp_path / "no-sudo"
    assert (root / "src" / "no_sudo" / "__init__.py").exists()
    assert '[project.entry-points."interlock.plugins"]' in (root / "pyproject.toml").read_text()
    # Warning-free: any warning (an unset pytest-asyncio option, say) fails the run.
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-W", "error",
                            "-p", "no:cacheprovider"],
                           cwd=root, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout
    assert "pypi.org" not in (root / "README.md").read_text()  # not published: no such page
    # Its config model forbids unknown keys, so `interlock check` reports a typo.
    config = tmp_path / "interlock.yaml"
    config.write_text("plugins:\n  - name: guard\n    use: no_sudo:NoSudoPlugin\n"
                      "    config: {blockd_tools: [shell]}\n")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    check = subprocess.run([sys.executable, "-m", "interlock", "check", str(config)], env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 1
    assert "config: unknown key 'blockd_tools'; did you mean 'blocked_tools'?" in check.stderr
    again = cli.invoke(app, ["new-plugin", "no-sudo", "--directory", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    assert cli.invoke(app, ["new-plugin", "No Sudo"]).exit_code == 2


@pytest.mark.parametrize(
    ("name", "message"),
    [("class", "which Python already uses"), ("pytest", "already installed here"),
     ("json", "which Python already uses"), ("No Sudo", "is not a plugin name"),
     ("tool-guard", "'tool-guard' is already the name of a built-in plugin")],
)  # fmt: skip
def test_new_plugin_refuses_names_that_would_break(cli: CliRunner, tmp_path: Path, name: str,
                                                   message: str) -> None:  # fmt: skip
    out = cli.invoke(app, ["new-plugin", name, "--directory", str(tmp_path)])
    assert out.exit_code == 2 and message in " ".join(out.output.replace("│", " ").split())
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_refuses_the_name_of_an_installed_plugin(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with installed(monkeypatch, tmp_path / "site", "acme-guards", {"no-sudo": "acme:Guard"},
                   {"acme": "class Guard: ...\n"}):  # fmt: skip
        out = cli.invoke(app, ["new-plugin", "no-sudo", "--directory", str(tmp_path)])
    text = " ".join(out.output.replace("│", " ").split())
    assert out.exit_code == 2, out.output
    assert ("'no-sudo' is already the name of an installed plugin (entry point (acme-guards "
            "1.0.0))") in text  # fmt: skip
    assert not (tmp_path / "no-sudo").exists()


def test_run_with_one_drop_in_used_twice(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "twice.yaml"
    plugins_dir = ROOT / "examples" / "plugins"
    entries = "  - {name: ws-a, use: workspace}\n  - {name: ws-b, use: workspace}\n"
    config.write_text(f"plugin_dirs: [{plugins_dir}]\nplugins:\n{entries}")
    out = cli.invoke(app, ["run", "hi", "--config", str(config), "--no-trace"])
    assert out.exit_code == 0, out.output


def test_plugins_session_without_a_log(cli: CliRunner, tmp_path: Path) -> None:
    out = cli.invoke(app, ["plugins", "--session", "x"])
    assert out.exit_code == 1 and "no session log" in out.output
    assert not (tmp_path / "sessions.db").exists()


# -- where plugins come from ----------------------------------------------------------------

IMPOSTOR = """\
import pathlib
pathlib.Path({marker!r}).write_text("the folder's code ran")
raise RuntimeError("an impostor was imported")
"""


def impostor(folder: Path, name: str, marker: Path) -> Path:
    """A drop-in plugin called `name` whose module marks `marker` and raises when imported."""
    plugin = folder / name
    plugin.mkdir(parents=True)
    (plugin / "plugin.yaml").write_text(f"name: {name}\nentry: impostor:ToolGuard\n")
    (plugin / "impostor.py").write_text(IMPOSTOR.format(marker=str(marker)))
    return plugin


GUARDED = """\
plugins:
  - name: tool-guard
    use: tool-guard
    on_error: block
    config:
      rules:
        - deny: fs_delete
          reason: destructive
"""


def test_a_plugins_folder_in_the_current_directory_never_replaces_a_built_in(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    impostor(tmp_path / ".interlock" / "plugins", "tool-guard", marker)
    impostor(tmp_path / "xdg" / "interlock" / "plugins", "tool-guard", marker)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "guarded.yaml"
    config.write_text(GUARDED)
    script = tmp_path / "script.json"
    calls = [{"name": "fs_delete", "arguments": {"path": "/"}}]
    script.write_text(json.dumps([{"tool_calls": calls}, "done"]))

    out = cli.invoke(app, ["check", str(ROOT / "examples" / "builtins.yaml")])
    assert out.exit_code == 0, out.output
    assert "tool-guard" in out.output
    out = cli.invoke(app, ["run", "clean up", "--config", str(config), "--model",
                           f"scripted:{script}"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "pre_tool_call blocked by tool-guard" in out.output  # the built-in's rule
    out = cli.invoke(app, ["run", "hi", "--plugin", "tool-guard", "--no-trace"])
    assert out.exit_code == 0, out.output
    report = json.loads(cli.invoke(app, ["plugins", "--config", str(config), "--json"]).output)
    guards = [r["source"] for r in report["discovered"] if r["name"] == "tool-guard"]
    assert guards == ["built-in"]
    assert {r["source"] for r in report["configured"]} == {"built-in"}
    assert not marker.exists()

    # Named explicitly, the folder's plugin clashes with the built-in: refused, not imported.
    out = cli.invoke(app, ["check", str(config), "--plugin-dir", ".interlock/plugins"])
    assert out.exit_code == 1
    assert f"{config}:3: plugin 'tool-guard': the plugin name 'tool-guard' is claimed" in out.output
    out = cli.invoke(app, ["run", "hi", "--plugin", "tool-guard", "--plugin-dir",
                           ".interlock/plugins"])  # fmt: skip
    assert out.exit_code == 2 and "claimed by 2 sources" in out.output
    assert not marker.exists()


def test_check_refuses_a_plugin_dir_name_that_an_entry_point_has(
    cli: CliRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    folder = impostor(tmp_path / "plugins", "tool-guard", marker)
    config = tmp_path / "interlock.yaml"
    config.write_text("plugin_dirs: [plugins]\n" + GUARDED)
    out = cli.invoke(app, ["check", str(config)])
    assert out.exit_code == 1
    [line] = out.output.splitlines()
    assert line.startswith(f"{config}:4: plugin 'tool-guard': the plugin name 'tool-guard' is "
                           f"claimed by 2 sources: the drop-in folder {folder} and the built-in "
                           "interlock.plugins.tool_guard:ToolGuard")  # fmt: skip
    assert "rename the drop-in" in line and "use: interlock.plugins.tool_guard:ToolGuard" in line
    out = cli.invoke(app, ["serve", "tool-guard", "--stdio", "--plugin-dir", str(folder.parent)])
    assert out.exit_code == 2 and "claimed by 2 sources" in out.output
    assert not marker.exists()
    # The fix it names works: the built-in by import path.
    fixed = GUARDED.replace("use: tool-guard", "use: interlock.plugins.tool_guard:ToolGuard")
    config.write_text("plugin_dirs: [plugins]\n" + fixed)
    out = cli.invoke(app, ["check", str(config)])
    assert out.exit_code == 0, out.output
    assert not marker.exists()


def test_check_refuses_two_plugin_dirs_with_one_plugin_name(cli: CliRunner, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    one = impostor(tmp_path / "one", "guard", marker)
    two = impostor(tmp_path / "two", "guard", marker)
    config = tmp_path / "interlock.yaml"
    entries = "plugins:\n  - name: g\n    use: guard\n"
    for dirs, extra in ((["one", "two"], []), (["one"], ["--plugin-dir", str(tmp_path / "two")])):
        config.write_text(f"plugin_dirs: {json.dumps(dirs)}\n{entries}")
        out = cli.invoke(app, ["check", str(config), *extra])
        assert out.exit_code == 1
        assert f"{config}:4: plugin 'g': the plugin name 'guard' is claimed by 2 sources" in (
            out.output)  # fmt: skip
        assert f"the drop-in folder {one}" in out.output
        assert f"the drop-in folder {two}" in out.output
        assert "name only one of these folders" in out.output
    assert not marker.exists()


def test_plugins_shows_where_each_plugin_comes_from(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "interlock.yaml"
    plugins_dir = ROOT / "examples" / "plugins"
    config.write_text(
        f"plugin_dirs: ['{plugins_dir}']\nplugins:\n"
        "  - {name: no-rm, use: no-rm}\n"
        "  - {name: budget, use: token-budget}\n"
        "  - {name: shout, use: 'tests.config.plugins_for_tests:shout', hook: turn_end}\n"
    )
    out = cli.invoke(app, ["plugins", "--config", str(config), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    sources = {r["name"]: r["source"] for r in report["discovered"]}
    assert sources["tool-guard"] == "built-in"
    assert sources["no-rm"] == f"drop-in {plugins_dir / 'no-rm'}"
    assert report["clashes"] == []
    configured = {r["plugin"]: r["source"] for r in report["configured"]}
    assert configured == {"no-rm": f"drop-in {plugins_dir / 'no-rm'}", "budget": "built-in",
                          "shout": "import path tests.config.plugins_for_tests:shout"}  # fmt: skip
    text = cli.invoke(app, ["plugins", "--plugin-dir", str(plugins_dir)]).output
    assert "source" in text and "built-in" in text and "drop-in" in text
    # Without a config or --plugin-dir, no folder is listed, however near it is.
    listed = json.loads(cli.invoke(app, ["plugins", "--json"]).output)["discovered"]
    assert {r["kind"] for r in listed} <= {"built-in", "entry point"}


# -- the session a run wrote, and the tags and metadata it gives -----------------------------


def test_run_names_its_session_with_the_store_it_was_given(cli: CliRunner, tmp_path: Path) -> None:
    store = tmp_path / "elsewhere" / "log.db"
    out = cli.invoke(app, ["run", "hi", "--no-trace", "--store", str(store)])
    assert out.exit_code == 0, out.output
    [session] = json.loads(cli.invoke(app, ["log", "--json", "--store", str(store)]).output)
    hint = f"interlock log {session['id']} --store {store}"
    assert out.stderr == f"Show this session with: {hint}\n"
    shown = cli.invoke(app, hint.split()[1:])  # the hint, run as given, shows the session
    assert shown.exit_code == 0 and "You said: hi" in shown.output
    out = cli.invoke(app, ["run", "hi", "--no-trace", "--data-dir", str(tmp_path / "d"),
                           "--session", "it's mine"])  # fmt: skip
    assert out.stderr.endswith(f"interlock log 'it'\"'\"'s mine' --data-dir {tmp_path / 'd'}\n")
    # From the environment, the store holds for the next command: the hint needs no flag.
    out = cli.invoke(app, ["run", "hi", "--no-trace"], env={"INTERLOCK_STORE": str(store)})
    assert out.exit_code == 0 and "--store" not in out.stderr


def test_demo_names_its_session_with_the_store_it_was_given(cli: CliRunner, tmp_path: Path) -> None:
    store = tmp_path / "demo.db"
    out = cli.invoke(app, ["demo", "--store", str(store)])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("interlock demo: a scripted agent")
    [session] = json.loads(cli.invoke(app, ["log", "--json", "--store", str(store)]).output)
    assert f"Show it with: interlock log {session['id']} --store {store}\n" in out.output


LIMITED = """\
plugins:
  - name: rate-limit
    use: rate-limit
    config:
      mode: block
      models: {{"*": {{calls: 1, per: 1h, scope: "{scope}"}}}}
"""


@pytest.mark.parametrize(
    ("scope", "flags", "limited"),
    [
        ("tag:tenant-*", ["--tag", "tenant-acme"], True),
        ("tag:tenant-*", ["--tag", "other", "--meta", "user=ada"], False),
        ("tag:tenant-*", [], False),
        ("metadata.user", ["--meta", "user=ada", "--meta", "team=ops=1"], True),
        ("metadata.user", ["--tag", "tenant-acme"], False),
    ],
)
def test_run_gives_the_session_tags_and_metadata_that_scoped_limits_apply_to(
    cli: CliRunner, tmp_path: Path, scope: str, flags: list[str], limited: bool
) -> None:
    config = tmp_path / "limited.yaml"
    config.write_text(LIMITED.format(scope=scope))
    script = tmp_path / "script.json"  # two model calls: the second is over a limit of one
    script.write_text(json.dumps([{"tool_calls": [{"name": "nothing", "arguments": {}}]}, "done"]))
    out = cli.invoke(app, ["run", "hi", "--config", str(config), "--model", f"scripted:{script}",
                           "--json", "--no-trace", *flags])  # fmt: skip
    result = json.loads(out.stdout)
    if limited:  # the second model call, in the tag's (or the user's) window, is blocked
        assert (out.exit_code, result["stopped"]) == (1, "blocked")
        assert re.fullmatch(r"rate limit: model .* may make 1 call per 3600s for (tag "
                            r"'tenant-acme'|user 'ada') \('\*'\)", result["reason"])  # fmt: skip
    else:
        assert (out.exit_code, result["stopped"], result["reply"]) == (0, "answered", "done")
    [listed] = sessions(cli)
    assert listed["id"] == result["session"]
    assert listed["tags"] == [flags[i + 1] for i, flag in enumerate(flags) if flag == "--tag"]


@pytest.mark.parametrize("meta", ["user", "=ada", " =x"])
def test_run_refuses_metadata_that_is_not_key_value(cli: CliRunner, meta: str) -> None:
    out = cli.invoke(app, ["run", "hi", "--meta", meta])
    assert out.exit_code == 2 and "give KEY=VALUE" in out.output
    assert cli.invoke(app, ["run", "hi", "--tag", " "]).exit_code == 2


def test_reading_a_log_that_is_not_there_creates_nothing(cli: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    for args in (["log", "--store", f"sqlite://{missing}"],
                 ["plugins", "--session", "s", "--store", f"sqlite://{missing}"]):  # fmt: skip
        out = cli.invoke(app, args)
        assert "no session log at" in out.output
        assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")  # a SQLite file without the log's tables
    out = cli.invoke(app, ["log", "--store", str(empty)])
    assert out.exit_code == 1 and f"{empty} holds no interlock session log" in out.output
    with contextlib.closing(sqlite3.connect(empty)) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []
