"""Hostile config files and manifests: too large, alias bombs, and environment values
escaped so that plain redaction would miss them."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from interlock import ConfigError
from interlock.cli import app
from interlock.config import MAX_BYTES, _source, load_config, load_config_text, read_config
from interlock.discovery import PluginLoadError, discover, read_manifest

P = "tests.config.plugins_for_tests"

# Lists of ten aliases of the list before: 200,000 strings from a few hundred bytes, all
# in one value (a manifest's allowed keys are the only place it can hide).
BOMB = (
    "[&a [x, x], "
    + "".join(
        f"&{name} [{', '.join([f'*{before}'] * 10)}], "
        for before, name in zip("abcd", "bcde", strict=True)
    )
    + f"[{', '.join(['*e'] * 10)}]]"
)


def padded(head: str, size: int) -> str:
    """`head`, then comment lines up to exactly `size` bytes of valid YAML."""
    line = "# " + "x" * 77 + "\n"
    text = head + line * ((size - len(head)) // len(line))
    rest = size - len(text)
    return text + ("#" + " " * (rest - 2) + "\n" if rest >= 2 else "\n" * rest)


@pytest.fixture
def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if a YAML parser is even constructed."""

    def refuse(text: str) -> Any:
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(_source, "_Loader", refuse)


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    return CliRunner(env={"INTERLOCK_DATA_DIR": str(tmp_path), "COLUMNS": "200"})


def drop_in(root: Path, manifest: str) -> Path:
    folder = root / "big"
    folder.mkdir()
    (folder / "plugin.yaml").write_text(manifest, encoding="utf-8")
    (folder / "code.py").write_text("def gate(payload, ctx):\n    return None\n")
    return folder


# -- size ------------------------------------------------------------------------------


def test_a_file_at_the_limit_loads(tmp_path: Path) -> None:
    config = tmp_path / "interlock.yaml"
    config.write_text(padded(f"plugins:\n  - name: c\n    use: {P}:Counter\n", MAX_BYTES))
    assert config.stat().st_size == MAX_BYTES
    manager = load_config(config, environ={})
    assert {r.plugin for r in manager.registrations()} == {"c"}


@pytest.mark.usefixtures("no_parsing")
def test_a_file_over_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    config = tmp_path / "interlock.yaml"
    config.write_text(padded("plugins: []\n", MAX_BYTES + 1))
    with pytest.raises(ConfigError) as info:
        load_config(config, environ={})
    (problem,) = info.value.problems
    assert problem.file == str(config) and problem.line is None
    assert "the file is 1,048,577 bytes, over the limit of 1,048,576 bytes (1 MiB)" in str(
        info.value
    )
    assert "not read" in problem.message and "keep large data" in problem.message


@pytest.mark.usefixtures("no_parsing")
def test_text_over_the_limit_is_refused_before_parsing() -> None:
    # Counted in UTF-8 bytes: 350,014 characters, but 1,050,014 bytes (a snowman is three).
    text = "plugins: []\n#" + "\u2603" * 350_000 + "\n"
    with pytest.raises(ConfigError, match=r"the file is 1,050,014 bytes, over the limit"):
        load_config_text(text, file="big.yaml", plugins={}, environ={})


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs an endless file")
def test_a_file_without_a_size_is_read_no_further_than_the_limit() -> None:
    with pytest.raises(ConfigError, match="the file is more than 1,048,576 bytes, over the"):
        read_config("/dev/zero")


@pytest.mark.usefixtures("no_parsing")
@pytest.mark.parametrize("command", [["check"], ["run", "hi", "--config"], ["plugins", "--config"]])
def test_the_command_line_refuses_a_file_over_the_limit(
    cli: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "interlock.yaml"
    config.write_text(padded("plugins: []\n", MAX_BYTES + 100))
    out = cli.invoke(app, [*command, str(config)])
    assert out.exit_code == 1, out.output
    assert f"{config}: the file is 1,048,676 bytes, over the limit of 1,048,576" in out.output
    assert "Traceback" not in out.output


@pytest.mark.usefixtures("no_parsing")
def test_a_manifest_over_the_limit_is_refused_and_discovery_goes_on(tmp_path: Path) -> None:
    folder = drop_in(tmp_path, padded("entry: code:gate\n", MAX_BYTES + 1))
    with pytest.raises(PluginLoadError) as info:
        read_manifest(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / 'plugin.yaml'}: cannot be read (the file is 1,048,577")
    assert "over the limit of 1,048,576 bytes (1 MiB)" in message and "manifest" in message
    source = discover([tmp_path])["big"]  # listed anyway, and failing when loaded
    with pytest.raises(PluginLoadError, match="over the limit"):
        source.load()


# -- alias bombs and other YAML in manifests ----------------------------------------------


def test_an_alias_bomb_in_a_manifest_is_refused(tmp_path: Path) -> None:
    folder = drop_in(tmp_path, f"entry: code:gate\nname: {BOMB}\n")
    expected = r"plugin\.yaml: cannot be read \(line 2: the file is too large: over 100,000 keys"
    with pytest.raises(PluginLoadError, match=expected):
        read_manifest(folder)
    with pytest.raises(PluginLoadError, match="aliases"):
        discover([tmp_path])["big"].load()


def test_a_manifest_keeps_dollar_signs_and_refuses_non_json_values(tmp_path: Path) -> None:
    folder = drop_in(tmp_path, "entry: code:gate\ndescription: costs ${PRICE}\n")
    assert read_manifest(folder).description == "costs ${PRICE}"  # no environment here
    (folder / "plugin.yaml").write_text("entry: code:gate\nversion: 2024-01-01\n")
    with pytest.raises(PluginLoadError, match="line 2: '2024-01-01' is read as a date"):
        read_manifest(folder)


# -- environment values, however they are escaped -----------------------------------------

VALUES = [
    "pa\\ss",
    "it's",
    'say "hi"',
    "both ' and \" and \\",
    "caf\u00e9 \u2603 \U0001f511",
    "line one\nline two",
    "tab\there\r\n",
    "back\\\\slashes\\n",
    "\u2028ctl\x1b[0m\x7f",
]
IDS = ["backslash", "apostrophe", "quotes", "both-quotes", "unicode", "newline", "tab-crlf",
       "escaped-looking", "controls"]  # fmt: skip


def shown_forms(value: str) -> list[str]:
    """The renderings a leak would take, computed independently of the code under test."""
    forms = [
        value,
        repr(value),
        repr(value)[1:-1],
        ascii(value)[1:-1],
        json.dumps(value),
        json.dumps(value, ensure_ascii=False),
        repr(repr(value)),
        repr(value.encode())[2:-1],
        yaml.dump(value, default_style='"', allow_unicode=True, width=1 << 30).strip(),
        yaml.dump(value, default_style='"', width=1 << 30).strip(),
    ]
    return [f for f in forms if len(f) > 2]


def assert_hidden(text: str, value: str) -> None:
    for form in shown_forms(value):
        assert form not in text, f"{form!r} shown in:\n{text}"


CONFIG = f"""\
plugins:
  - name: typed
    use: {P}:Counter
    priority: ${{S}}
  - name: moded
    use: {P}:Counter
    mode: "x${{S}}y"
  - name: keyed
    use: {P}:NeedsKey
    config: {{api_key: "${{S}}"}}
  - name: timed
    use: {P}:Counter
    timeout: "${{S}}"
"""


@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_environment_values_never_show_in_load_config_errors(tmp_path: Path, value: str) -> None:
    config = tmp_path / "interlock.yaml"
    config.write_text(CONFIG)
    with pytest.raises(ConfigError) as info:
        load_config(config, environ={"S": value}, plugins={})
    text = str(info.value)
    assert len(info.value.problems) == 4, text
    assert_hidden(text, value)
    for problem in info.value.problems:
        assert "${S}" in problem.message, text


@pytest.mark.parametrize("value", [v for v in VALUES if "\x1b" not in v], ids=IDS[:-1])
def test_environment_values_never_show_in_interlock_check(
    cli: CliRunner, tmp_path: Path, value: str
) -> None:
    config = tmp_path / "interlock.yaml"
    config.write_text(CONFIG)
    out = cli.invoke(app, ["check", str(config)], env={"S": value})
    assert out.exit_code == 1, out.output
    assert out.output.count("${S}") >= 4, out.output
    assert_hidden(out.output, value)


@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_every_rendering_of_a_value_is_hidden(value: str) -> None:
    source = _source.load_yaml(dedent("""\
        a: "<${S}>"
    """), "t.yaml", {"S": value})  # fmt: skip
    inner = f"<{value}>"
    renderings = [
        inner,
        repr(inner),
        ascii(inner),
        repr([inner, "x'y"]),
        repr(repr(inner)),
        json.dumps({"k": inner}),
        json.dumps({"k": inner}, ensure_ascii=False),
        json.dumps(json.dumps(inner)),
        repr(inner.encode()),
        yaml.dump({"k": inner}, default_style='"', width=1 << 30),
        yaml.dump({"k": inner}, default_style='"', allow_unicode=True, width=1 << 30),
        yaml.dump({"k": inner}, default_style="'", allow_unicode=True, width=1 << 30),
    ]
    for shown in renderings:
        redacted = source.redact(f"got {shown} here")
        assert_hidden(redacted, value)
        assert "${S}" in redacted, (shown, redacted)


def test_a_name_inside_a_value_is_not_replaced_twice() -> None:
    source = _source.load_yaml('a: "${A}"\nb: "${B}"\n', "t.yaml", {"A": "S", "B": "x-S-y"})
    assert source.redact("got 'x-S-y' and S") == "got '${B}' and ${A}"


@pytest.mark.parametrize("value", ["\udcff", "bad\ud800byte", "\udcffx'y\\"])
def test_values_that_are_not_unicode_text_are_hidden_too(value: str) -> None:
    # os.environ holds undecodable bytes as lone surrogates; they are escaped as well.
    with pytest.raises(ConfigError) as info:
        load_config_text(CONFIG, file="t.yaml", environ={"S": value}, plugins={})
    text = str(info.value)
    for form in (value, repr(value)[1:-1], ascii(value)[1:-1], json.dumps(value)[1:-1]):
        assert form not in text, text
    assert text.count("${S}") >= 4, text


def flow_list(values: int) -> str:
    """A mapping of `plugins:` to a list: `values` keys and values in all."""
    return "plugins: [" + "1, " * (values - 4) + "1]\n"


def flow_mapping(values: int) -> str:
    """A mapping and `values - 1` keys and values (`values` odd)."""
    return "{" + ", ".join(f"k{i}: 0" for i in range((values - 1) // 2)) + "}\n"


@pytest.mark.parametrize(("make", "most"), [(flow_list, 1_000), (flow_mapping, 999)])
@pytest.mark.parametrize("counted_first", [True, False], ids=["counted", "walked"])
def test_the_value_limit_is_exact_before_and_after_building_nodes(
    monkeypatch: pytest.MonkeyPatch, make: Any, most: int, counted_first: bool
) -> None:
    monkeypatch.setattr(_source, "_MAX_NODES", 1_000)  # the same code, at a hundredth the cost
    if not counted_first:  # the walk alone draws the line at the same place
        monkeypatch.setattr(_source, "_count_values", lambda text, file: None)
    data = _source.load_yaml(make(most), "t.yaml", {}).data  # at the limit: read
    if make is flow_list:
        assert len(data["plugins"]) == most - 3
    else:
        assert len(data) == (most - 1) // 2
    with pytest.raises(ConfigError, match=r"t\.yaml:1: the file is too large: over 1,000 keys"):
        _source.load_yaml(make(most + 2), "t.yaml", {})


def test_too_many_values_are_refused_before_any_node_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Counting(_source._Loader):  # type: ignore[name-defined,misc]
        def get_single_node(self) -> Any:
            raise AssertionError("nodes were built")

    monkeypatch.setattr(_source, "_Loader", Counting)
    with pytest.raises(ConfigError, match="too large: over 100,000 keys and values"):
        load_config_text(flow_list(100_001), file="t.yaml", plugins={}, environ={})


def test_a_short_value_is_hidden_as_a_word_not_inside_words() -> None:
    # TOKEN=x once turned `max_wait` into `ma${TOKEN}_wait` in a message about a typo.
    source = _source.load_yaml('a: "${T}"\nb: "${L}"\n', "t.yaml", {"T": "x", "L": "longsecret"})
    assert source.redact("takes max_wait, got x") == "takes max_wait, got ${T}"
    assert source.redact("url redis://:x@h and ?xlongsecretx") == (
        "url redis://:${T}@h and ?x${L}x"
    )
