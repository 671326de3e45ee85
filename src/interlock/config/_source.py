"""Reading a config file: YAML with line numbers, `${VAR}` from the environment, JSON data
only, and messages that never show what came from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from .. import ConfigError, ConfigProblem

_ENV = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^${}]*))?\}|\$\{")
_MAX_NODES = 100_000  # a config is small; this stops alias bombs
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class Source:
    """The parsed file: its data, where each part came from, and the secrets to hide."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.data: Any = {}
        self.lines: dict[tuple[Any, ...], int] = {}
        self.secrets: dict[str, str] = {}  # value from the environment -> ${NAME}

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
        """`text` with every value that came from the environment hidden."""
        for value in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(value, self.secrets[value])
        return text


def parse(text: str, file: str, environ: Mapping[str, str]) -> Source:
    """Read the file's text into a `Source`; raises `ConfigError` when it is not usable."""
    source = Source(file)
    found: list[tuple[tuple[Any, ...], int, str]] = []
    try:
        loader = yaml.SafeLoader(text)  # reading starts here: it may raise too
        try:
            node = loader.get_single_node()
            if node is not None:
                source.data = _Walker(source, loader, environ, found).value(node, ())
        finally:
            loader.dispose()
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        problem = ConfigProblem(file, _error_line(error), None, _yaml_message(error))
        raise ConfigError([problem]) from None
    if found:  # now that the data is built, problems can name their entries
        problems = [source.problem(path, message) for path, _, message in found]
        raise ConfigError(
            [
                ConfigProblem(p.file, line, p.entry, p.message)
                for p, (_, line, _) in zip(problems, found, strict=True)
            ]
        )
    if not isinstance(source.data, dict):
        message = "the file must be a mapping with a 'plugins:' list"
        raise ConfigError([ConfigProblem(file, 1, None, message)])
    return source


class _Walker:
    """Builds the data from the node tree: JSON types only, `${VAR}` filled in, lines kept."""

    def __init__(
        self,
        source: Source,
        loader: yaml.SafeLoader,
        environ: Mapping[str, str],
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
        self.count += 1
        if self.count > _MAX_NODES:
            if self.count == _MAX_NODES + 1:
                self._problem(node, "the file is too large (do aliases repeat a lot of it?)")
            return None
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
                key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str):
                    self._problem(key_node, "keys are text; put this key in quotes")
                    continue
                if key in data:
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
        if "$" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            whole, name, default = match.group(0), match.group(1), match.group(2)
            if whole == "$${":
                return "${"
            if name is None:
                self._problem(node, "a '${' that is not a ${NAME} or ${NAME:-default}; "
                              "write $${ for a literal ${")  # fmt: skip
                return whole
            if name in self.environ:
                filled = self.environ[name]
                if filled:
                    self.source.secrets.setdefault(filled, f"${{{name}}}")
                return filled
            if default is not None:
                return default
            self._problem(node, f"the environment variable {name} is not set; set it, or give "
                          f"a default: ${{{name}:-...}}")  # fmt: skip
            return ""

        return _ENV.sub(replace, value)

    def _problem(self, node: yaml.Node, message: str) -> None:
        self.found.append((self.path, node.start_mark.line + 1, message))


def _error_line(error: BaseException) -> int | None:
    mark = getattr(error, "problem_mark", None)
    return mark.line + 1 if mark is not None else None


def _yaml_message(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "the file nests too deeply to read"
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"not valid YAML: {problem}"
