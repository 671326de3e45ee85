"""`interlock check`: load every plugin a config file names, register nothing for real, and
list every problem, or the file's enabled entries in its order."""

from __future__ import annotations

from pathlib import Path

import typer

import interlock


def check_file(file: Path, plugin_dirs: list[Path]) -> None:
    """Check `file`: every problem on stderr and exit 1, or `ok` and its entries' names."""
    from interlock.config import check as check_config
    from interlock.config import load_config_text, read_config

    try:
        text = read_config(file)
        manager = load_config_text(text, file=str(file), plugin_dirs=plugin_dirs)
    except interlock.ConfigError as error:
        for problem in error.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None
    # The entries, not the registrations (a drop-in that only gives tools has none), in
    # the file's order.
    names = [e.name for e in check_config(text, file=str(file))[1].plugins if e.enabled]
    typer.echo(f"ok: {file}: {len(names)} plugin{'s' if len(names) != 1 else ''}"
               f"{': ' + ', '.join(names) if names else ''}")  # fmt: skip
    manager.close()
