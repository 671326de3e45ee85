"""The program of a `stdio:` or `command:` entry: found relative to the config file's
folder (never the current directory), and reported by `interlock check` when it is not
there."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlock import ConfigError, ToolCall, hooks
from interlock.cli import app
from interlock.config import load_config, load_config_text

PLUGINS = Path(__file__).resolve().parents[1] / "external" / "plugins"

BLOCK_ALL = "#!/bin/sh\ncat >/dev/null\necho 'the impostor in the current directory' >&2\nexit 2\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A config folder holding a Claude Code hook script under hooks/."""
    folder = tmp_path / "project"
    (folder / "hooks").mkdir(parents=True)
    shutil.copy(PLUGINS / "claude_guard.sh", folder / "hooks" / "guard.sh")
    return folder


def write_config(folder: Path, external: str) -> Path:
    config = folder / "interlock.yaml"
    config.write_text(f"""\
plugins:
  - name: guard
    external:
      {external}
      hooks: [pre_tool_call]
""")
    return config


def check(config: Path | str) -> tuple[int, str]:
    out = CliRunner().invoke(app, ["check", str(config)])
    return out.exit_code, out.output


def rm_blocked_by(config: Path | str) -> str | None:
    manager = load_config(config)
    try:
        result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("Bash", {"command": "rm -rf /"}))
    finally:
        manager.close()
    assert result.blocked, result.errors
    return result.reason


def test_check_reports_a_command_program_that_does_not_exist(tmp_path: Path) -> None:
    config = write_config(tmp_path, "command: [./hooks/missing.sh]")
    code, output = check(config)
    assert code == 1
    assert f"{config}:4: plugin 'guard': could not start './hooks/missing.sh'" in output
    assert f"looked for {tmp_path / 'hooks' / 'missing.sh'}" in output
    assert "fix the path or create the file" in output


def test_check_reports_a_stdio_program_missing_from_path(tmp_path: Path) -> None:
    # With `hooks:` given, nothing starts at load: the program is looked for all the same.
    config = write_config(tmp_path, "stdio: [no-such-program-for-interlock, plugin.js]")
    code, output = check(config)
    assert code == 1
    assert f"{config}:4: plugin 'guard': could not start 'no-such-program-for-interlock': no " \
           "such program on PATH; install it, or give its path" in output  # fmt: skip


def test_a_bare_name_beside_the_config_is_not_run_but_named_in_the_fix(project: Path) -> None:
    shutil.copy(project / "hooks" / "guard.sh", project / "guard.sh")
    code, output = check(write_config(project, "command: [guard.sh]"))
    assert code == 1
    assert "there is a 'guard.sh' beside the config: write ./guard.sh" in output


def test_a_program_that_is_not_executable_is_reported(project: Path) -> None:
    (project / "hooks" / "guard.sh").chmod(0o644)
    code, output = check(write_config(project, "command: [./hooks/guard.sh]"))
    assert code == 1
    assert "is not executable; make it so (chmod +x ./hooks/guard.sh)" in output


def test_a_missing_cwd_is_reported(project: Path) -> None:
    config = project / "interlock.yaml"
    config.write_text("""\
plugins:
  - name: guard
    external:
      command: [./hooks/guard.sh]
      hooks: [pre_tool_call]
      cwd: work
""")
    code, output = check(config)
    assert code == 1
    assert f"{config}:6: plugin 'guard': cwd: no folder 'work'" in output


def test_a_relative_program_is_the_config_folders_from_any_current_directory(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The current directory has a script of the same name: it must never be the one run.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "hooks").mkdir(parents=True)
    (elsewhere / "hooks" / "guard.sh").write_text(BLOCK_ALL)
    (elsewhere / "hooks" / "guard.sh").chmod(0o755)
    config = write_config(project, "command: [./hooks/guard.sh]")
    monkeypatch.chdir(elsewhere)
    assert check(config) == (0, f"ok: {config}: 1 plugin: guard\n")
    assert rm_blocked_by(config) == "Destructive command blocked by claude_guard.sh"


def test_the_program_path_does_not_follow_cwd(project: Path) -> None:
    (project / "work").mkdir()
    config = project / "interlock.yaml"
    config.write_text("""\
plugins:
  - name: guard
    external:
      command: [./hooks/guard.sh]
      hooks: [pre_tool_call]
      cwd: work
""")
    assert rm_blocked_by(config) == "Destructive command blocked by claude_guard.sh"


def test_a_config_loaded_by_a_relative_name_keeps_working_after_a_chdir(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(project, "command: [./hooks/guard.sh]")
    monkeypatch.chdir(project)
    manager = load_config("interlock.yaml")
    monkeypatch.chdir(tmp_path)  # the host moves on; the hook is where the config said
    try:
        result = manager.invoke_sync(hooks.PRE_TOOL_CALL, ToolCall("Bash", {"command": "rm -rf /"}))
    finally:
        manager.close()
    assert result.blocked and result.reason == "Destructive command blocked by claude_guard.sh"


def test_a_stdio_program_path_is_the_config_folders_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "run.sh").write_text(f'#!/bin/sh\nexec "{sys.executable}" rewriter.py\n')
    (folder / "run.sh").chmod(0o755)
    shutil.copy(PLUGINS / "rewriter.py", folder / "rewriter.py")
    config = folder / "interlock.yaml"
    config.write_text("plugins:\n  - name: rewriter\n    external: {stdio: [./run.sh]}\n")
    monkeypatch.chdir(tmp_path)
    manager = load_config(config)  # asks the plugin for its hooks: it must start
    manager.close()
    assert [r.plugin for r in manager.registrations()] == ["rewriter"]


def test_a_relative_program_in_a_config_without_a_file_is_a_problem() -> None:
    text = "plugins:\n  - name: g\n    external: {command: [./guard.sh], hooks: [turn_end]}\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, file="<config>", plugins={})
    [problem] = info.value.problems
    assert (problem.line, problem.entry) == (3, "g")
    assert "'./guard.sh' is relative, and this config has no file" in problem.message


def test_unreachable_http_replicas_say_to_check_the_server_not_a_command() -> None:
    with socket.socket() as bound:  # bound, not listening: a connection is refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}/"
        text = f"plugins:\n  - name: remote\n    external: {{http: ['{url}a', '{url}b']}}\n"
        with pytest.raises(ConfigError) as info:
            load_config_text(text)
    (problem,) = info.value.problems
    assert problem.message.startswith("no replica could be reached"), problem
    assert "check that the server is running and reachable at the URL" in problem.message
    assert "command" not in problem.message
