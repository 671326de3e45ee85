"""`interlock new-plugin NAME`: a plugin package whose tests pass as generated."""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from pathlib import Path

from interlock.discovery import discover

NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "0.1.0"
description = "An interlock plugin."
requires-python = ">=3.11"
dependencies = ["interlock"]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-asyncio>=0.24"]

[project.entry-points."interlock.plugins"]
{name} = "{package}:{cls}Plugin"

[tool.hatch.build.targets.wheel]
packages = ["src/{package}"]

[tool.pytest.ini_options]
pythonpath = ["src"]
asyncio_default_fixture_loop_scope = "function"
"""

MODULE = '''\
"""{name}: an interlock plugin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from interlock import Block, HookContext, Plugin, ToolCall


class {cls}Config(BaseModel):
    """What operators set under `config:` in interlock.yaml; a key it does not know is
    an error, so that a typo is reported rather than ignored."""

    model_config = ConfigDict(extra="forbid")

    blocked_tools: list[str] = ["shell"]


class {cls}Plugin(Plugin):
    """Blocks the tools named in its config."""

    name = "{name}"
    version = "0.1.0"
    config_model = {cls}Config

    def __init__(self, config: {cls}Config | None = None) -> None:
        self.config = config or {cls}Config()

    def on_pre_tool_call(self, payload: ToolCall, ctx: HookContext) -> Block | None:
        if payload.tool_name in self.config.blocked_tools:
            return Block(f"{{self.name}} blocks the tool {{payload.tool_name!r}}")
        return None
'''

TESTS = """\
from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from interlock.testing import Harness
from {package} import {cls}Config, {cls}Plugin


def test_blocks_a_listed_tool() -> None:
    with Harness({cls}Plugin({cls}Config(blocked_tools=["shell"]))) as harness:
        result = harness.invoke("pre_tool_call", tool_name="shell")
    assert result.blocked
    assert result.reason == "{name} blocks the tool 'shell'"


def test_lets_other_tools_through() -> None:
    with Harness({cls}Plugin()) as harness:
        assert not harness.invoke("pre_tool_call", tool_name="read_file").blocked


def test_with_the_pytest_fixture(interlock_harness: Callable[..., Harness]) -> None:
    harness = interlock_harness({cls}Plugin({cls}Config(blocked_tools=[])))
    assert not harness.invoke("pre_tool_call", tool_name="shell").blocked


def test_a_misspelt_config_key_is_an_error() -> None:
    with pytest.raises(ValidationError, match="blockd_tools"):
        {cls}Config.model_validate({{"blockd_tools": ["shell"]}})
"""

README = """\
# {name}

An interlock plugin: it blocks the tools named in its config.

interlock is not on PyPI yet, so install it first, from its checkout, into the
environment this plugin is for; then this package, and run its tests:

    pip install -e '<interlock checkout>'
    pip install -e '.[test]'
    python -m pytest

Once installed, an `interlock.yaml` enables it by name (`interlock check interlock.yaml`
checks the file; a key its config does not know is reported):

    plugins:
      - name: {name}
        use: {name}
        config: {{blocked_tools: [shell]}}
"""


def scaffold(name: str, directory: Path) -> Path:
    """Write the package for plugin `name` under `directory`; returns its folder."""
    if not NAME.match(name):
        raise ValueError(
            f"{name!r} is not a plugin name: use lower-case letters, digits and dashes, "
            "starting with a letter (e.g. no-sudo)"
        )
    taken = discover().get(name)
    if taken is not None:
        owner = ("a built-in plugin" if taken.kind == "built-in"
                 else f"an installed plugin ({taken.describe()})")  # fmt: skip
        raise ValueError(f"{name!r} is already the name of {owner}: installed, a plugin of the "
                         f"same name would make `use: {name}` ambiguous in every config that "
                         f"names it; choose another name (e.g. my-{name})")  # fmt: skip
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or package in sys.stdlib_module_names:
        raise ValueError(f"{name!r} would make a package named {package!r}, which Python "
                         "already uses; choose another name")  # fmt: skip
    if importlib.util.find_spec(package) is not None:
        raise ValueError(f"a module named {package!r} is already installed here, which a "
                         "plugin package of that name would hide; choose another name")  # fmt: skip
    root = directory / name
    if root.exists():
        raise ValueError(f"{root} already exists; choose another name or directory")
    cls = "".join(part.capitalize() for part in name.split("-"))
    values = {"name": name, "package": package, "cls": cls}
    files = {
        root / "pyproject.toml": PYPROJECT,
        root / "README.md": README,
        root / "src" / package / "__init__.py": MODULE,
        root / "tests" / f"test_{package}.py": TESTS,
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values))
    return root
