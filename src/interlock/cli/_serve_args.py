"""`interlock serve`'s arguments: the plugin to serve, found or built as a config entry's
`use:` would be, its --plugin-config and the tokens HTTP callers must send, each told as
a bad parameter when wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

import interlock


def served_config(raw: str | None) -> dict[str, Any] | None:
    """--plugin-config: a JSON object, or None when not given."""
    if raw is None:
        return None
    try:
        config = json.loads(raw)
    except ValueError as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint="--plugin-config") from None
    if not isinstance(config, dict):
        raise typer.BadParameter("give a JSON object", param_hint="--plugin-config")
    return config


def served_tokens(token: str | None, token_file: Path | None) -> list[str]:
    """The tokens `serve --http` accepts: --token's, and each line of --token-file."""
    tokens = []
    if token is not None:
        if not token.strip():
            raise typer.BadParameter("the token is empty", param_hint="--token")
        tokens.append(token)
    if token_file is not None:
        try:
            lines = token_file.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            message = f"cannot read {token_file}: {error}"
            raise typer.BadParameter(message, param_hint="--token-file") from None
        found = [line.strip() for line in lines if line.strip()]
        if not found:
            message = f"{token_file} holds no token: write one per line"
            raise typer.BadParameter(message, param_hint="--token-file")
        tokens += found
    return tokens


def find_served(target: str, available: Any) -> None:
    """Check that TARGET names a plugin, without building it."""
    from interlock.config import find_plugin

    _as_parameter(lambda: find_plugin(target, plugins=available))


def load_served(target: str, config: Any, available: Any) -> Any:
    """The plugin TARGET names, built with `config`."""
    from interlock.config import load_plugin

    return _as_parameter(lambda: load_plugin(target, config=config, plugins=available))


def _as_parameter(load: Callable[[], Any]) -> Any:
    """A plugin that cannot be loaded, told as a bad TARGET, or a bad --plugin-config
    when its config is what does not fit (checked as a config file's `config:` is)."""
    try:
        return load()
    except interlock.ConfigError as error:
        message = "; ".join(p.message for p in error.problems)
        about_config = all(p.message.startswith("config") for p in error.problems)
        hint = "--plugin-config" if about_config else "TARGET"
        raise typer.BadParameter(message, param_hint=hint) from None
