"""Reading a config file: YAML with line numbers, `${VAR}` from the environment, JSON data
only, and messages that never show what came from the environment.

The same bounded reader reads drop-in plugins' `plugin.yaml` manifests (without `${VAR}`):
a file over `MAX_BYTES` is refused before it is parsed, and aliases cannot expand a small
file into a large one (`_MAX_NODES`).
"""

from __future__ import annotations

import json
import os
import re
import stat
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .. import ConfigError, ConfigProblem

MAX_BYTES = 1_048_576
"""The largest config file or `plugin.yaml` interlock reads (1 MiB); a larger one is
refused before it is parsed."""

_ENV = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^${}]*))?\}|\$\{")
_MAX_NODES = 100_000  # a config is small; this stops alias bombs
# libyaml parses about 4x faster than the pure-Python parser; both give the same nodes.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class Source:
    """The parsed file: its data, where each part came from, and the secrets to hide."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.data: Any = {}
        self.lines: dict[tuple[Any, ...], int] = {}
        self.secrets: dict[str, str] = {}  # value from the environment -> ${NAME}
        # Values that could not be read (a missing ${VAR}, a key given twice, ...), by
        # where they are: the rest of the file is still checked, but not these again.
        self.unreadable: dict[tuple[Any, ...], list[ConfigProblem]] = {}
        self._hiding: tuple[int, re.Pattern[str] | None, dict[str, str]] = (0, None, {})

    def line(self, path: tuple[Any, ...]) -> int | None:
        """The line of `path`, or of its closest parent that has one."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def entry(self, path: tuple[Any, ...]) -> str | None:
        """The `name` of the plugin entry `path` is in, if any."""
        if len(path) < 2 or path[0] != "plugins" or not isinstance(path[1], int):
            return None
        try:
            name = self.data["plugins"][path[1]].get("name")
        except (AttributeError, IndexError, KeyError, TypeError):
            return None
        return self.redact(name) if isinstance(name, str) else None

    def problem(
        self, path: tuple[Any, ...], message: str, entry: str | None = None
    ) -> ConfigProblem:
        """A problem at `path`, with environment values replaced by their `${NAME}`."""
        name = self.redact(entry) if entry is not None else self.entry(path)
        return ConfigProblem(self.file, self.line(path), name, self.redact(message))

    def redact(self, text: str) -> str:
        """`text` with every value that came from the environment hidden, however it is
        written there: as is, or escaped as `repr()`, `ascii()`, JSON, YAML, bytes or a URL
        write it (also twice over), so a backslash, quote or newline in a value does not
        slip it through."""
        count, pattern, names = self._hiding
        if count != len(self.secrets):  # values are added while the file is read
            names = {}
            for value, name in self.secrets.items():
                for shown in renderings(value):
                    names.setdefault(shown, name)
            # Longest first, one pass: a value inside another's rendering, or inside a
            # `${NAME}` already put in, is never replaced piecemeal.
            alternatives = sorted(names, key=len, reverse=True)
            pattern = re.compile("|".join(map(_hidden, alternatives))) if names else None
            self._hiding = (len(self.secrets), pattern, names)
        return text if pattern is None else pattern.sub(lambda m: names[m.group(0)], text)


_SHORT = 4


def _hidden(shown: str) -> str:
    """The pattern hiding `shown`. A value of one to three characters (`x`, `on`) is hidden
    only where it stands as a word of its own: hidden inside words too, it garbles every
    message (`max_wait` read `ma${TOKEN}_wait` for TOKEN=x), and so short a value is no
    secret."""
    if len(shown) >= _SHORT:
        return re.escape(shown)
    return rf"(?<![0-9A-Za-z_]){re.escape(shown)}(?![0-9A-Za-z_])"


def renderings(value: str) -> set[str]:
    """Every way `value` may be written inside a message: as is, and escaped by each of
    `_ESCAPES` (quotes left off, since the value may be part of a longer string), and each
    of those escaped once more (a message quoting a message)."""
    once = {value} | {shown for escape in _ESCAPES for shown in _escaped(escape, value)}
    twice = {shown for text in once for escape in _ESCAPES[:3] for shown in _escaped(escape, text)}
    return {shown for shown in once | twice if shown}


def _escaped(escape: Callable[[str], list[str]], value: str) -> list[str]:
    try:
        return escape(value)
    except (UnicodeError, yaml.YAMLError):  # a lone surrogate: no such rendering exists
        return []


def _python(value: str, quote: Callable[[str], str]) -> list[str]:
    # Escaped one character at a time (Python's escapes do not depend on their
    # neighbours), in both quoting styles: inside '...' a ' is escaped, inside "..." not.
    # Ending each piece with `"` makes `repr` choose '...'.
    pieces = [quote(c + '"')[1:-2] for c in value]
    return [
        "".join(pieces),
        "".join("'" if c == "'" else p for c, p in zip(value, pieces, strict=True)),
    ]


def _bytes(value: str) -> list[str]:
    data = value.encode("utf-8", "surrogateescape")
    pieces = [repr(bytes([b]) + b'"')[2:-2] for b in data]
    return [
        "".join(pieces),
        "".join("'" if b == 39 else p for b, p in zip(data, pieces, strict=True)),
    ]


def _json(value: str) -> list[str]:
    return [json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]


def _yaml(value: str) -> list[str]:
    shown = []
    for style, unicode in (('"', True), ('"', False), ("'", True)):
        text = yaml.dump(value, default_style=style, allow_unicode=unicode, width=1 << 30)
        end = text.rfind(style)
        if text.startswith(style) and end > 0:  # not when YAML chose another style
            shown.append(text[1:end])
    return [*shown, value.replace("'", "''")]


def _url(value: str) -> list[str]:
    quote = urllib.parse.quote
    return [quote(value, safe=""), quote(value), urllib.parse.quote_plus(value)]


_ESCAPES: tuple[Callable[[str], list[str]], ...] = (
    lambda v: _python(v, repr),
    _json,
    lambda v: _python(v, ascii),
    _bytes,
    _yaml,
    _url,
)


def read(path: str | Path, *, what: str = "config") -> str:
    """The text of a config file (or, with `what="manifest"`, a `plugin.yaml`), refused
    before it is parsed when it is over `MAX_BYTES`; raises `ConfigError` naming the file,
    its size, the limit and what to do."""
    file = str(path)
    try:
        with open(path, "rb") as stream:
            info = os.fstat(stream.fileno())
            regular = stat.S_ISREG(info.st_mode)
            if regular and info.st_size > MAX_BYTES:
                raise ConfigError([_too_large(file, info.st_size, what)])
            data = stream.read(MAX_BYTES + 1)  # a file may grow, or not know its size
        if len(data) > MAX_BYTES:
            raise ConfigError([_too_large(file, None, what)])
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else str(error)
        message = f"cannot read the file: {reason}"
        raise ConfigError([ConfigProblem(file, None, None, message)]) from None


def _too_large(file: str, size: int | None, what: str) -> ConfigProblem:
    size_text = f"more than {MAX_BYTES:,} bytes" if size is None else f"{size:,} bytes"
    if what == "manifest":
        advice = (
            "a plugin.yaml holds a plugin's name, entry, tools, description and version, "
            "no data: check that this is the plugin's manifest and shorten it"
        )
    else:
        advice = (
            "a config names plugins and their options: keep large data (word lists, rules) "
            "in files the plugins read, and name those files in their config"
        )
    message = (f"the file is {size_text}, over the limit of {MAX_BYTES:,} bytes (1 MiB), so "
               f"it was not read; {advice}")  # fmt: skip
    return ConfigProblem(file, None, None, message)


def _check_size(text: str, file: str, what: str) -> None:
    if len(text) * 4 > MAX_BYTES:  # else its UTF-8 cannot be over: spare the encoding
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_BYTES:
            raise ConfigError([_too_large(file, size, what)])


def load_yaml(text: str, file: str, environ: Mapping[str, str] | None = None, *,
              what: str = "config") -> Source:  # fmt: skip
    """Read YAML text into a `Source`: bounded in size and in nodes, JSON data only, with
    lines kept. `environ` fills in `${VAR}`; without it (a manifest) `$` is plain text.
    Raises `ConfigError` when the text is not usable, or any value in it is not."""
    source = _load(text, file, environ, what)
    if source.unreadable:
        raise ConfigError([p for found in source.unreadable.values() for p in found])
    return source


def _load(text: str, file: str, environ: Mapping[str, str] | None, what: str) -> Source:
    """`load_yaml`, with the values that could not be read kept in `Source.unreadable`
    rather than raised. Raises `ConfigError` when the text as a whole is not usable."""
    _check_size(text, file, what)  # before parsing: parsing is what is slow
    source = Source(file)
    found: list[tuple[tuple[Any, ...], int, str]] = []
    overflow = False
    try:
        _count_values(text, file)  # reading starts here: it may raise too
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                source.data = _Walker(source, loader, environ, found).value(node, ())
        except _Overflow:
            overflow = True  # reported in `found`; what was built is a fragment
        finally:
            loader.dispose()
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        if isinstance(error, ConfigError):
            raise
        problem = ConfigProblem(file, _error_line(error), None, _yaml_message(error))
        raise ConfigError([problem]) from None
    for path, line, message in found:  # now that the data is built, they can name entries
        problem = source.problem(path, message)
        problem = ConfigProblem(problem.file, line, problem.entry, problem.message)
        source.unreadable.setdefault(path, []).append(problem)
    if overflow:
        raise ConfigError([p for problems in source.unreadable.values() for p in problems])
    return source


def _count_values(text: str, file: str) -> None:
    """Refuse text of more than `_MAX_NODES` keys and values, counted before any node is
    built (building them is what is slow). Each scalar, alias, mapping and list is at least
    one value once the nodes are walked, so no text the walk would accept is refused."""
    loader = _Loader(text)
    try:
        count = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, _VALUE_EVENTS):
                count += 1
                if count > _MAX_NODES:
                    mark = event.start_mark
                    line = mark.line + 1 if mark is not None else None
                    raise ConfigError([ConfigProblem(file, line, None, _too_many())])
    finally:
        loader.dispose()


_VALUE_EVENTS = (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)


def _too_many() -> str:
    return f"the file is too large: over {_MAX_NODES:,} keys and values (do aliases repeat it?)"


class _Overflow(Exception):
    """The walk passed `_MAX_NODES`: stop it (private)."""


def parse(text: str, file: str, environ: Mapping[str, str]) -> Source:
    """Read the file's text into a `Source`; raises `ConfigError` when it is not usable as
    a whole. Values that cannot be read are in `Source.unreadable`, for `validate` to
    report with every other problem of the file."""
    source = _load(text, file, environ, "config")
    if not isinstance(source.data, dict):
        message = "the file must be a mapping with a 'plugins:' list"
        unreadable = [p for problems in source.unreadable.values() for p in problems]
        raise ConfigError([ConfigProblem(file, 1, None, message), *unreadable])
    return source


class _Walker:
    """Builds the data from the node tree: JSON types only, `${VAR}` filled in, lines kept."""

    def __init__(
        self,
        source: Source,
        loader: Any,
        environ: Mapping[str, str] | None,
        found: list[tuple[tuple[Any, ...], int, str]],
    ) -> None:
        self.source = source
        self.loader = loader
        self.environ = environ
        self.found = found
        self.path: tuple[Any, ...] = ()
        self.active: set[int] = set()
        self.count = 0

    def value(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        self.path = path
        self.source.lines.setdefault(path, node.start_mark.line + 1)
        self._tick(node)
        if id(node) in self.active:
            self._problem(node, "an alias refers to the mapping or list that holds it")
            return None
        self.active.add(id(node))
        try:
            return self._value(node, path)
        finally:
            self.active.discard(id(node))

    def _value(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
            self._problem(node, f"a {node.tag.rsplit(':', 1)[-1]} is not JSON data")
            return None
        if isinstance(node, yaml.MappingNode):
            data: dict[str, Any] = {}
            for key_node, value_node in node.value:
                self._tick(key_node)
                key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str):
                    self._problem(key_node, "keys are text; put this key in quotes")
                    continue
                if key in data:
                    self.path = (*path, key)  # the later value is the one not read
                    self._problem(key_node, f"the key {key!r} appears twice")
                self.source.lines[(*path, key)] = key_node.start_mark.line + 1
                data[key] = self.value(value_node, (*path, key))
                self.path = path
            return data
        if isinstance(node, yaml.SequenceNode):
            items = [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
            self.path = path
            return items
        value = self._scalar(node)
        return self._fill(value, node) if isinstance(value, str) else value

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as error:
            self._problem(node, f"cannot read this value: {str(error).splitlines()[0]}")
            return None
        if value is None or isinstance(value, str | bool | int | float):
            return value
        kind = type(value).__name__
        message = f"{node.value!r} is read as a {kind}, which is not JSON data; quote it"
        self._problem(node, message)
        return None

    def _fill(self, value: str, node: yaml.Node) -> str:
        if "$" not in value or self.environ is None:
            return value
        environ = self.environ

        def replace(match: re.Match[str]) -> str:
            whole, name, default = match.group(0), match.group(1), match.group(2)
            if whole == "$${":
                return "${"
            if name is None:
                self._problem(node, "a '${' that is not a ${NAME} or ${NAME:-default}; "
                              "write $${ for a literal ${")  # fmt: skip
                return whole
            if name in environ:
                filled = environ[name]
                if filled:
                    self.source.secrets.setdefault(filled, f"${{{name}}}")
                return filled
            if default is not None:
                return default
            self._problem(node, f"the environment variable {name} is not set; set it, or give "
                          f"a default: ${{{name}:-...}}")  # fmt: skip
            return ""

        return _ENV.sub(replace, value)

    def _tick(self, node: yaml.Node) -> None:
        self.count += 1
        if self.count > _MAX_NODES:
            self._problem(node, _too_many())
            raise _Overflow

    def _problem(self, node: yaml.Node, message: str) -> None:
        self.found.append((self.path, node.start_mark.line + 1, message))


def _error_line(error: BaseException) -> int | None:
    mark = getattr(error, "problem_mark", None)
    return mark.line + 1 if mark is not None else None


def _yaml_message(error: BaseException) -> str:
    problem = getattr(error, "problem", None) or (str(error).splitlines() or [""])[0]
    if isinstance(error, RecursionError) or "maximum nesting depth" in problem:  # libyaml's
        return "the file nests too deeply to read"
    return f"not valid YAML: {problem}"
