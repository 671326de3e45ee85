"""Installing a package with `interlock.plugins` entry points, for one test only."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from textwrap import dedent

import pytest


@contextmanager
def installed(
    monkeypatch: pytest.MonkeyPatch,
    site: Path,
    dist: str,
    entry_points: dict[str, str],
    modules: dict[str, str],
    version: str = "1.0.0",
) -> Iterator[None]:
    """A distribution `dist` on sys.path whose `interlock.plugins` entry points are
    `entry_points` (name -> module:attr), with `modules` (name -> code) beside it."""
    site.mkdir(parents=True, exist_ok=True)
    for module, code in modules.items():
        (site / f"{module}.py").write_text(dedent(code))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[interlock.plugins]\n{lines}")
    monkeypatch.syspath_prepend(str(site))
    try:
        yield
    finally:
        for module in modules:
            sys.modules.pop(module, None)
