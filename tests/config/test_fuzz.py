"""Whatever the file holds, loading it ends in a manager or in one ConfigError, never another
exception."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock import ConfigError, PluginManager
from interlock.config import load_config_text

P = "tests.config.plugins_for_tests"
USES = [f"{P}:Guard", f"{P}:Counter", f"{P}:shout", f"{P}:one_argument", f"{P}:Broken",
        "no_such_module:X", f"{P}:Missing", "some-plugin-name", "", ":", "a:b:c"]  # fmt: skip
KEYS = ["name", "use", "mode", "on_error", "priority", "timeout", "when", "capabilities",
        "writable", "config", "hook", "enabled", "background", "thread", "external",
        "bogus"]  # fmt: skip

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
    st.sampled_from(["enforce", "permissive", "2s", "0ms", "none", "${X}", "${Y:-1s}", "rm -rf *",
                     "pre_tool_call", "tool_name", "system_items", "[", "deny"]),
    st.text(max_size=8),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
entries = st.dictionaries(
    st.sampled_from(KEYS),
    st.one_of(values, st.sampled_from(USES)),
    max_size=6,
).map(lambda d: {"name": "p", "use": USES[0], **d} if len(d) % 2 else d)
documents = st.fixed_dictionaries(
    {"plugins": st.lists(entries, max_size=4)},
    optional={"defaults": st.dictionaries(st.sampled_from(KEYS), values, max_size=3),
              "sets": st.dictionaries(st.text(max_size=4), values, max_size=2),
              "version": values, "surprise": values},
)  # fmt: skip


def outcome(text: str) -> Any:
    try:
        return load_config_text(text, file="fuzz.yaml", plugins={}, environ={"X": "1s"})
    except ConfigError as error:
        return error if error.problems else None  # an error must say what is wrong


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_structured_documents(document: dict[str, Any]) -> None:
    result = outcome(yaml.safe_dump(document))
    assert isinstance(result, ConfigError | PluginManager)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    assert isinstance(outcome(text), ConfigError | PluginManager)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["plugins:", "  - name: a", "    use: x:y", "    mode: [",
                                 "sets:", "  s: {plugins: [a]}", "\t", "- 1", "? a", "&x 1", "*x",
                                 "defaults: {timeout: 2s}", "'", "${A}"]), max_size=8))  # fmt: skip
def test_yaml_shaped_lines(lines: list[str]) -> None:
    assert isinstance(outcome("\n".join(lines)), ConfigError | PluginManager)
