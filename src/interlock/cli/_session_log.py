"""Where the session log is (--data-dir, --store), opening it for `demo`, `run`, `log` and
`plugins`, and the command that shows a session from it."""

from __future__ import annotations

import shlex
import sqlite3
from pathlib import Path
from typing import Any

import typer


def data_folder(value: Path | None) -> Path:
    """--data-dir, else the default data dir."""
    from interlock.runtime import default_data_dir

    return value if value is not None else default_data_dir()


def store_target(data_dir: Path | None, store_url: str | None) -> Path | str:
    """`--store` (a URL, or a file path: sqlite:///PATH too), else sessions.db in the
    data dir."""
    if store_url is None:
        return data_folder(data_dir) / "sessions.db"
    scheme, separator, rest = store_url.partition("://")
    if separator and not (scheme == "sqlite" and rest):
        return store_url
    return Path(rest if separator else store_url)


def open_store(target: Path | str, *, create: bool = True) -> Any:
    """The session log at `target`; `create=False` for a reader, which must not make one."""
    from interlock.runtime import SessionLogError, open_session_store

    try:
        return open_session_store(target, create=create)
    except sqlite3.DatabaseError as error:
        typer.echo(f"{target} is not an interlock session log ({error})", err=True)
    except (SessionLogError, ImportError) as error:  # unreachable, or no interlock[postgres]
        typer.echo(str(error), err=True)
    raise typer.Exit(1)


def has_session(store: Any, session_id: str) -> bool:
    """Whether the log holds the session `session_id` (an id it cannot hold: no)."""
    try:
        return bool(store.has_session(session_id))
    except ValueError:
        return False


def session_stats(target: Path | str, session_id: str) -> list[Any]:
    """The plugin statistics the session last logged (none logged: empty)."""
    if isinstance(target, Path) and not target.is_file():
        typer.echo(f"no session log at {target} yet", err=True)
        raise typer.Exit(1)
    store = open_store(target, create=False)
    try:
        if not has_session(store, session_id):
            typer.echo(f"no session {session_id!r} in {store.location}", err=True)
            raise typer.Exit(1)
        logged = [r for r in store.records(session_id) if r.kind == "stats"]
    finally:
        store.close()
    return list(logged[-1].data["registrations"]) if logged else []


def show_command(ctx: typer.Context, session_id: str, store: Any) -> str:
    """`interlock log ID`, with the --store or --data-dir this command was given on its
    command line (set in the environment, they hold for the next command as well); the
    store as shown: without its password."""
    words = ["interlock", "log", session_id]
    sources = {name: ctx.get_parameter_source(name) for name in ("store_url", "data_dir")}
    # By name: typer ships a click of its own, whose ParameterSource is not click's.
    given = {
        name for name, source in sources.items() if getattr(source, "name", "") == "COMMANDLINE"
    }
    if "store_url" in given:
        words += ["--store", store.location]
    elif "data_dir" in given:
        words += ["--data-dir", str(ctx.params["data_dir"])]
    return shlex.join(words)
