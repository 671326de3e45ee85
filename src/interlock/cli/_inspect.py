"""`interlock hooks` and `interlock plugins`: what exists, what is configured, what ran."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from interlock import PluginManager, Registration, hooks
from interlock.discovery import PluginSource


def show_hooks(console: Console, *, schema: bool, as_json: bool) -> None:
    """The hook catalog: kind, payload fields, accepted actions, writable fields, capabilities."""
    if schema:
        typer.echo(json.dumps({spec.name: spec.json_schema() for spec in hooks.CATALOG}, indent=2))
        return
    rows = [_hook_row(spec) for spec in hooks.CATALOG]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        row["payload"] = f"{row['payload']}({', '.join(row['fields'])})"
        for key in ("accepts", "writable", "capabilities", "aliases"):
            row[key] = ", ".join(row[key]) or "-"
    columns = ("hook", "kind", "payload", "accepts", "writable", "capabilities", "aliases")
    console.print(
        _table("the hook catalog (JSON schemas: interlock hooks --schema)", columns, rows)
    )


def _hook_row(spec: Any) -> dict[str, Any]:
    accepts = (
        ["Continue", *sorted(t.__name__ for t in spec.accepts)] if spec.kind == "modify" else []
    )
    return {
        "hook": spec.name,
        "kind": spec.kind,
        "payload": spec.payload_type.__name__,
        "fields": [f.name for f in dataclasses.fields(spec.payload_type)],
        "accepts": accepts,
        "writable": sorted(spec.writable or ()),
        "capabilities": sorted(spec.capabilities),
        "aliases": list(spec.aliases),
        "on_error": spec.on_error,
    }


def show_plugins(
    console: Console,
    available: Mapping[str, PluginSource],
    manager: PluginManager | None,
    stats: list[dict[str, Any]] | None,
    uses: Mapping[str, str] | None = None,
    *,
    as_json: bool,
) -> None:
    """Discovered plugins with their sources, configured registrations (with what each
    was loaded from), and a session's plugin statistics.

    `uses` maps a registered plugin's name to what loaded it: a `use:` value (a plugin
    name or an import path) or `external:KIND`.
    """
    found = [_source_row(s, c) for s in available.values() for c in (s, *s.clashes)]
    clashes = [_clash(s) for s in available.values() if s.clashes]
    configured = [
        _registration_row(r, _origin((uses or {}).get(r.plugin), available))
        for r in (manager.registrations() if manager else ())
    ]
    if as_json:
        report = {"discovered": found, "clashes": clashes, "configured": configured,
                  "stats": stats}  # fmt: skip
        typer.echo(json.dumps(report, indent=2))
        return
    if found:
        columns: tuple[str, ...] = ("name", "source", "target", "version", "description")
        console.print(_table("discovered plugins", columns, found))
    else:
        hint = "entry points in the group interlock.plugins; drop-in folders are searched "
        hint += "only when named with --plugin-dir or a config's plugin_dirs"
        console.print(f"no plugins discovered ({hint})")
    for clash in clashes:
        console.print(Text(f"not usable by name: {clash['message']}", style="red"))
    if manager is not None:
        columns = ("plugin", "source", "hook", "mode", "priority", "on_error", "timeout",
                   "capabilities")  # fmt: skip
        console.print(_table("configured registrations", columns, configured))
    if stats is not None:
        columns = ("plugin", "hook", "calls", "blocks", "modifications", "errors")
        columns += ("timeouts", "circuit", "mean µs")
        rows = [{**row, "mean µs": f"{row['time_mean'] * 1e6:.1f}"} for row in stats]
        console.print(_table("plugin statistics of the session", columns, rows))


def _table(title: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Table:
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(Text(str(row[column])) for column in columns))
    return table


def _source_row(source: PluginSource, claimant: PluginSource) -> dict[str, Any]:
    return {
        "name": claimant.name,
        "source": claimant.describe() + (" (name claimed twice)" if source.clashes else ""),
        "kind": claimant.kind,
        "location": claimant.location,
        "target": claimant.target.removeprefix("!"),
        "version": claimant.version,
        "description": claimant.description,
    }


def _clash(source: PluginSource) -> dict[str, str]:
    return {"name": source.name, "message": str(source.clash())}


def _origin(use: str | None, available: Mapping[str, PluginSource]) -> str:
    """Where a configured plugin came from, in the words the discovered table uses."""
    if use is None:
        return "-"
    if use.startswith("external:"):
        return f"external ({use.removeprefix('external:')})"
    if ":" in use:
        return f"import path {use}"
    source = available.get(use)
    return source.describe() if source is not None else "-"


def _registration_row(reg: Registration, origin: str) -> dict[str, Any]:
    return {
        "plugin": reg.plugin,
        "source": origin,
        "hook": reg.hook.name,
        "mode": reg.mode,
        "priority": reg.priority,
        "on_error": reg.on_error,
        "timeout": "none" if reg.timeout is None else f"{reg.timeout:g}s",
        "capabilities": ", ".join(sorted(reg.capabilities)) or "-",
    }
