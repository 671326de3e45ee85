"""The README and docs: their examples run, their output is real, their tables match the code."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
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
