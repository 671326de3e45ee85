"""The shape of `interlock.yaml`, as pydantic models, and durations."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from ..store import check_url

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object, *, endless: bool = True) -> float:
    """`"250ms"`, `"2s"`, `"1.5m"`, a number of seconds, or `"none"` (no timeout: inf).

    Always finite but for the word `none` (`never`, `inf`), and that only where `endless`
    (a timeout may have no end; a window or a hold must: `endless=False`).
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip().lower() in ("none", "inf", "never"):
        if not endless:
            raise ValueError(f"expected a duration like '250ms', '2s' or '1m' (one that "
                             f"ends), got {value!r}")  # fmt: skip
        return math.inf
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        words = "'250ms', '2s', '1m' or 'none'" if endless else "'250ms', '2s' or '1m'"
        raise ValueError(f"expected a duration like {words}, got {value!r}")
    if not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number of seconds more than zero, got "
                         f"{value!r}" + ("; say 'none' for no end" if endless else ""))  # fmt: skip
    return seconds


Duration = Annotated[float, pydantic.BeforeValidator(parse_duration)]
Glob = str | list[str]


class Options(BaseModel):
    """Registration options, as `PluginManager.register` takes them."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["enforce", "permissive", "disabled"] | None = None
    on_error: Literal["ignore", "block"] | None = None
    priority: int | None = None
    timeout: Duration | None = None
    when: dict[str, Glob] | None = None
    background: bool | None = None
    thread: bool | None = None
    overflow: Literal["drop", "wait"] | None = None
    capabilities: list[str] | None = None
    writable: list[str] | None = None

    def given(self) -> dict[str, Any]:
        """The options set here, as `register` keyword arguments."""
        return {k: v for k, v in self.model_dump(include=set(Options.model_fields)).items()
                if v is not None}  # fmt: skip


class External(BaseModel):
    """An out-of-process plugin: a child process over stdio, HTTP servers, or a command.

    `hooks` says which hooks it handles; without it a stdio or HTTP plugin is asked
    (`initialize`) when the config loads. `cwd` (stdio, command) and a program path with a
    `/` are relative to the config file's folder, never to the current directory; a bare
    program name is looked up on PATH. `token` is the HTTP bearer token, best given as
    `${VAR}`.
    """

    model_config = ConfigDict(extra="forbid")

    stdio: list[str] | None = Field(default=None, min_length=1)
    http: list[str] | None = Field(default=None, min_length=1)
    command: list[str] | None = Field(default=None, min_length=1)
    hooks: list[str] | None = Field(default=None, min_length=1)
    cwd: str | None = None
    env: dict[str, str] | None = None
    token: str | None = None
    max_message_bytes: int = Field(default=1_000_000, gt=0)
    handshake_timeout: Duration = 10.0

    def kind(self) -> str | None:
        """Which transport: "stdio", "http" or "command" (None unless exactly one)."""
        given = [k for k in ("stdio", "http", "command") if getattr(self, k)]
        return given[0] if len(given) == 1 else None


StoreUrl = Annotated[str, pydantic.AfterValidator(check_url)]
"""`memory`, or a Redis URL: `redis://`, `rediss://` (TLS), `unix://`."""


class Entry(Options):
    """One plugin: where it comes from (`use` or `external`) and how it is registered."""

    name: str = Field(min_length=1)
    use: str | None = Field(default=None, min_length=1)
    external: External | None = None
    store: StoreUrl | None = None
    hook: str | None = None
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)


class SetEntry(Options):
    """A named group of entries that registers as one `PluginSet`."""

    plugins: list[str] = Field(min_length=1)


class ConfigFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    plugin_dirs: list[str] = Field(default_factory=list)
    defaults: Options = Field(default_factory=Options)
    plugins: list[Entry] = Field(default_factory=list)
    sets: dict[str, SetEntry] = Field(default_factory=dict)
    store: StoreUrl | None = None
    """Where plugins that keep shared state keep it (`memory` when not given)."""
    deployment: str = Field(default="default", min_length=1)
    """The namespace of this deployment's keys in the store."""


# -- paths in a plugin's config --------------------------------------------------------------

CONFIG_FOLDER = "interlock_config_folder"
"""The validation-context key under which loading passes the config file's folder."""


def _from_config_folder(value: str, info: pydantic.ValidationInfo) -> str:
    path = Path(value).expanduser()
    folder = info.context.get(CONFIG_FOLDER) if isinstance(info.context, dict) else None
    return str(path if folder is None or path.is_absolute() else Path(folder) / path)


ConfigPath = Annotated[str, pydantic.AfterValidator(_from_config_folder)]
"""A file or folder named in a plugin's `config:`. Loaded from a config file, a relative
path is relative to that file's folder, like `plugin_dirs`, never to the current
directory; given any other way (Python, `--plugin-config`), it stays as given.

    class Config(BaseModel):
        path: ConfigPath = "logs/audit.jsonl"
"""
