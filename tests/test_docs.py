"""The README and docs: their examples run, their output is real, their tables match the code."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from interlock import hooks

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# ```python blocks are complete programs and run here; ```py blocks are fragments.
BLOCK = re.compile(r"```(python|text)\n(.*?)```", re.S)


def blocks(path: Path, kind: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(path.read_text()) if lang == kind]


def run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_readme_example_is_the_example_file_and_its_output_is_real() -> None:
    readme = ROOT / "README.md"
    example = (ROOT / "examples" / "quickstart.py").read_text()
    code = blocks(readme, "python")[0]
    assert example.endswith(code)
    assert run(example) == blocks(readme, "text")[0]


@pytest.mark.parametrize(
    ("path", "index"),
    [(p, i) for p in DOCS for i in range(len(blocks(p, "python")))],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_every_python_block_in_the_docs_runs(path: Path, index: int) -> None:
    run(blocks(path, "python")[index])


@pytest.mark.parametrize(
    ("doc", "example"),
    [("README.md", "interlock.yaml"), ("docs/config.md", "interlock.yaml"),
     ("docs/builtins.md", "builtins.yaml")],
)  # fmt: skip
def test_the_config_examples_in_the_docs_are_the_checked_files(doc: str, example: str) -> None:
    text = (ROOT / "examples" / example).read_text()
    yaml_blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / doc).read_text(), re.S)
    assert text in yaml_blocks


def test_the_builtins_example_prints_what_the_page_says() -> None:
    page = ROOT / "docs" / "builtins.md"
    assert run(blocks(page, "python")[0]) == blocks(page, "text")[0]


def test_the_catalog_table_matches_the_code() -> None:
    text = (ROOT / "docs" / "hooks.md").read_text()
    for spec in hooks.CATALOG:
        fields = ", ".join(f.name for f in dataclasses.fields(spec.payload_type))
        row = f"| `{spec.name}` | {spec.kind} | `{spec.payload_type.__name__}`: {fields} |"
        assert row in text, spec.name
        writable = ", ".join(sorted(spec.writable)) if spec.writable else "-"
        line = next(line for line in text.splitlines() if line.startswith(f"| `{spec.name}`"))
        assert f"| {writable}" in line, spec.name
        assert line.rstrip().endswith(f"| {spec.on_error} |"), spec.name


# -- shell commands ---------------------------------------------------------------------------
# Every ```sh, ```bash and ```console block in the README and docs/ runs here, in a folder
# set up as a reader's would be: a copy of examples/, and the plugin `interlock new-plugin
# no-sudo` creates, installed. A block that cannot run offline says why in its doc, in a
# `<!-- not-run: WHY -->` line above it, and is listed in NOT_RUN: skipping one is a
# reviewed decision, never a silent one.
SHELL = re.compile(r"(?:<!-- not-run: (.+?) -->\n)?```(sh|bash|console)\n(.*?)```", re.S)
NOT_RUN = {
    ("README.md", "creates a virtual environment and installs from the network"),
    ("adapters.md", "installs from the network; the gateway then serves an MCP client on stdio"),
    ("adapters.md", "installs from the network"),
    ("runtime.md", "needs OPENAI_API_KEY and the network, or a model server on port 8080"),
    ("fleet.md", "needs a PostgreSQL server at db.internal"),
    ("fleet.md", "a plugin of your own, served on a public address until stopped"),
}
# A server (`--http HOST:PORT`) runs until it listens, on a free loopback port, then stops.
SERVER = re.compile(r"--http\s+\S+")
BOX = re.compile(r"[─│╭╮╰╯]")


def shell_blocks() -> list[tuple[Path, int, str, str, str | None]]:
    """(doc, index in the doc, language, text, why it is not run) of each shell block."""
    return [(path, i, m.group(2), m.group(3), m.group(1))
            for path in DOCS for i, m in enumerate(SHELL.finditer(path.read_text()))]  # fmt: skip


def commands(block: str) -> list[str]:
    """The commands of a block: one a line, `\\`-continued lines joined, comments left out."""
    joined = block.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture
def reader(tmp_path: Path) -> dict[str, str]:
    """A folder as a reader of the docs has it (the current directory of the commands), and
    the environment: the installed CLI first on PATH, nothing of this machine's config."""
    from interlock.cli._scaffold import scaffold

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    scaffold("no-sudo", tmp_path)
    # What `pip install -e ./no-sudo` makes importable: the package and its entry point.
    dist = tmp_path / "site" / "no_sudo-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: no-sudo\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[interlock.plugins]\nno-sudo = no_sudo:NoSudoPlugin\n")
    (tmp_path / "tokens.txt").write_text("a-token-for-the-docs\n")
    unset = ("INTERLOCK_CONFIG", "INTERLOCK_TOKEN", "OPENAI_API_KEY", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=f"{tmp_path / 'site'}{os.pathsep}{tmp_path / 'no-sudo' / 'src'}",
        INTERLOCK_DATA_DIR=str(tmp_path / "data"),
        HOME=str(tmp_path / "home"),
        COLUMNS="200",
    )
    return env


def test_only_the_reviewed_shell_blocks_are_not_run() -> None:
    assert {(p.name, why) for p, _, _, _, why in shell_blocks() if why} == NOT_RUN


def test_commands_are_in_shell_blocks() -> None:
    """A command shown in a ```text block would escape the runs below."""
    for path in DOCS:
        for body in blocks(path, "text"):
            shown = [line for line in body.splitlines() if line.startswith(("interlock ", "$ "))]
            assert not shown, f"{path.name}: put these in a ```sh block: {shown}"


@pytest.mark.parametrize(
    ("language", "block"),
    [pytest.param(lang, body, id=f"{p.name}-{i}") for p, i, lang, body, why in shell_blocks()
     if not why],
)  # fmt: skip
def test_every_shell_block_in_the_docs_runs(
    language: str, block: str, reader: dict[str, str], tmp_path: Path
) -> None:
    if block.startswith("#!"):  # a script, shown whole: it runs, here on an empty event
        script = tmp_path / "script"
        script.write_text(block)
        _run(["sh", str(script)], reader, tmp_path)
    elif language == "console":  # `$ command`, then what it prints
        for command, shown in re.findall(r"^\$ (.+)\n((?:[^$].*\n)*)", block, re.M):
            out = _run(["bash", "-c", command], reader, tmp_path, check=False)
            assert _words(shown) in _words(out.stdout + out.stderr), command
    else:
        for command in commands(block):
            if SERVER.search(command):
                _serve(SERVER.sub("--http 127.0.0.1:0", command), reader, tmp_path)
            else:
                _run(["bash", "-c", command], reader, tmp_path)


def _run(
    argv: list[str], env: dict[str, str], cwd: Path, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, env=env, cwd=cwd, input="", capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert not check or out.returncode == 0, f"{argv[-1]}\n{out.stdout}\n{out.stderr}"
    return out


def _serve(command: str, env: dict[str, str], cwd: Path) -> None:
    """Start a server, wait until it says it listens (or ends), then stop it."""
    server = subprocess.Popen(["bash", "-c", f"exec {command}"], env=env, cwd=cwd, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    watchdog = threading.Timer(60, server.kill)  # a server that never says a word
    watchdog.start()
    try:
        output = []
        for line in server.stdout or ():
            output.append(line)
            if "listening on" in line:
                break
        assert "listening on" in "".join(output), f"{command}\n{''.join(output)}"
    finally:
        watchdog.cancel()
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


def _words(text: str) -> str:
    """Text as words, whatever the terminal's width and the error box around it."""
    return " ".join(BOX.sub(" ", text).split())
