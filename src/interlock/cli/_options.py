"""The options several commands share: where the session log is, the config and plugin
folders to load, and --json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="INTERLOCK_DATA_DIR",
        help="Where session logs live.",
        show_default="~/.local/share/interlock",
    ),
]
StoreUrl = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="INTERLOCK_STORE",
        metavar="URL",
        # `\[`: rich would read [postgres] as markup, and drop it
        help="The session log: a SQLite file (or sqlite:///PATH) or postgresql://HOST/DATABASE "
        "(needs interlock\\[postgres]). Default: sessions.db in the data dir.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead.")]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", envvar="INTERLOCK_CONFIG", help="An interlock.yaml to load."),
]
PluginDirs = Annotated[
    list[Path] | None,
    typer.Option(
        "--plugin-dir",
        metavar="DIR",
        exists=True,
        file_okay=False,
        help="A folder of drop-in plugins (plugin.yaml + module) to find plugins in by name; "
        "repeatable. No folder is searched unless named here or in a config's plugin_dirs.",
    ),
]
