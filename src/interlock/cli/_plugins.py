"""The plugins a command runs with: a config's and --plugin's in one manager, the tools
the drop-ins among them give, and what can be named (--plugin-dir)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

import interlock


def discover_plugins(directories: list[Path]) -> Any:
    """The plugins available by name: built-ins, entry points, and the drop-ins in the
    folders named with --plugin-dir (and in no other folder)."""
    from interlock.discovery import PluginLoadError, discover

    try:
        return discover(directories)
    except PluginLoadError as error:
        raise typer.BadParameter(str(error), param_hint="--plugin-dir") from None


def load_plugins(
    config: Path | None, extra: list[str], directories: list[Path]
) -> tuple[Any, list[Any], Any, dict[str, str]]:
    """The manager for `run` (and `plugins`): the config's plugins and `--plugin`s, plus
    the tools the drop-in plugins among them contribute, what can be named, and what
    each registered plugin name was loaded from (its `use:`, or `external:KIND`)."""
    from interlock.config import check as check_config
    from interlock.config import load_config_text, load_plugin, plugin_sources, read_config
    from interlock.discovery import PluginLoadError

    available = discover_plugins(directories) if config is None else {}
    manager = interlock.PluginManager()
    used: list[str] = []
    uses: dict[str, str] = {}
    if config is not None:
        file = str(config)
        try:
            text = read_config(config)  # size-capped
            try:
                parsed = check_config(text, file=file)[1]
            except interlock.ConfigError:  # loading reports it with every other problem
                load_config_text(text, file=file, plugin_dirs=directories)
                raise
            available = plugin_sources(parsed, file, directories)
            load_config_text(text, file=file, manager=manager, plugins=available)
        except interlock.ConfigError as error:
            for problem in error.problems:
                typer.echo(str(problem), err=True)
            raise typer.Exit(1) from None
        used += [entry.use for entry in parsed.plugins if entry.enabled and entry.use]
        for entry in parsed.plugins:
            kind = entry.external.kind() if entry.external is not None else None
            uses[entry.name] = entry.use or f"external:{kind}"
    for spec in extra:
        before = {r.plugin for r in manager.registrations()}
        try:
            manager.register(load_plugin(spec, plugins=available))
        except interlock.ConfigError as error:  # a command-line argument: no config to name
            message = "; ".join(p.message for p in error.problems)
            raise typer.BadParameter(message, param_hint="--plugin") from None
        except (PluginLoadError, interlock.InterlockError) as error:
            raise typer.BadParameter(str(error), param_hint="--plugin") from None
        uses.update(dict.fromkeys({r.plugin for r in manager.registrations()} - before, spec))
        used.append(spec)
    tools = []
    for name in dict.fromkeys(used):  # a drop-in used twice gives its tools once
        source = available.get(name)
        if source is not None and source.kind == "directory":
            try:
                tools += source.tools()
            except PluginLoadError as error:
                raise typer.BadParameter(str(error), param_hint="--plugin") from None
    return manager, tools, available, uses
