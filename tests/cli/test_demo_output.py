"""`interlock demo` piped into a reader that leaves early, and with the user's plugins."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from interlock.cli import app
from interlock.runtime import SessionStore

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = [sys.executable, "-c", "from interlock.cli import main; main()", "demo"]


def test_a_reader_that_leaves_ends_the_demo_quietly_as_interrupted(tmp_path: Path) -> None:
    read, write = os.pipe()
    # The smallest pipe: the demo's transcript (far more than a page) cannot all fit, so
    # the demo is still writing when the reader leaves, as under `| head -3`.
    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 4096)
    env = {**os.environ, "INTERLOCK_DATA_DIR": str(tmp_path), "COLUMNS": "80"}
    demo = subprocess.Popen(SCRIPT, stdout=write, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    os.close(write)
    seen = b""
    while seen.count(b"\n") < 3:
        chunk = os.read(read, 1)
        assert chunk, "the demo ended before writing three lines"
        seen += chunk
    os.close(read)
    _, errors = demo.communicate(timeout=60)
    assert demo.returncode in (0, 141), errors.decode()
    assert b"Traceback" not in errors and b"Aborted" not in errors, errors.decode()
    store = SessionStore(tmp_path / "sessions.db")
    try:
        [session] = store.sessions()
    finally:
        store.close()
    assert session.end_reason == "interrupted"


def test_the_demo_takes_your_plugins(tmp_path: Path) -> None:
    cli = CliRunner(env={"INTERLOCK_DATA_DIR": str(tmp_path), "COLUMNS": "200"})
    out = cli.invoke(app, ["demo", "--plugin", "tests.config.plugins_for_tests:shout"])
    assert out.exit_code == 0, out.output
    assert "the built-in plugins and yours (shout)" in out.output
    assert "blocked by tool-guard" in out.output  # the built-ins are still there
    # A config's plugin named like a built-in takes its place: this tool-guard lets rm by.
    config = tmp_path / "mine.yaml"
    config.write_text("plugins:\n  - name: tool-guard\n    use: tool-guard\n"
                      "    config: {rules: [{allow: '*'}]}\n")  # fmt: skip
    out = cli.invoke(app, ["demo", "--config", str(config)])
    assert out.exit_code == 0, out.output
    assert "yours (tool-guard)" in out.output
    assert "blocked by tool-guard" not in out.output
    assert "tool shell -> (demo) would run: rm -rf build/" in out.output
    out = cli.invoke(app, ["demo", "--plugin", "nope:nothing"])
    assert out.exit_code == 2 and "cannot import 'nope'" in out.output
