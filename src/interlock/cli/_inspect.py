"""`interlock hooks` and `interlock plugins`: what exists, what is configured, what ran."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import typer
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
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
        row["payload"] = f"{row['payload']} ({', '.join(row['fields'])})"  # a place to wrap
        for key in ("accepts", "writable", "capabilities", "aliases"):
            row[key] = ", ".join(row[key]) or "-"
    columns = ("hook", "kind", "payload", "accepts", "writable", "capabilities", "aliases")
    title = "the hook catalog (JSON schemas: interlock hooks --schema)"
    console.print(table(console, title, columns, rows, keys={"hook"}))


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
        console.print(table(console, "discovered plugins", columns, found, keys={"name"}))
    else:
        hint = "entry points in the group interlock.plugins; drop-in folders are searched "
        hint += "only when named with --plugin-dir or a config's plugin_dirs"
        console.print(f"no plugins discovered ({hint})")
    for clash in clashes:
        console.print(Text(f"not usable by name: {clash['message']}", style="red"))
    if manager is not None:
        columns = ("plugin", "hook", "source", "mode", "priority", "on_error", "timeout",
                   "capabilities")  # fmt: skip
        title = "configured registrations"
        console.print(table(console, title, columns, configured, keys={"plugin", "hook"}))
    if stats is not None:
        console.print(stats_table(console, "plugin statistics of the session", stats))


def stats_table(console: Console, title: str, stats: Sequence[Any]) -> RenderableType:
    """Plugin statistics (`RegistrationStats` as logged: mappings), one row per
    registration, as `interlock plugins --session` and `interlock log` show them."""
    columns = ("plugin", "hook", "calls", "blocks", "modifications", "errors", "timeouts",
               "dropped", "circuit", "mean µs")  # fmt: skip
    rows = [{**row, "dropped": row.get("dropped", 0),
             "mean µs": f"{row['time_mean'] * 1e6:.1f}"} for row in stats]  # fmt: skip
    return table(console, title, columns, rows, keys={"plugin", "hook"}, flow=True)


def table(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Collection[str],
    flow: bool = False,
) -> RenderableType:
    """`rows` as a table that fits the console, or, when it cannot fit without breaking
    a word, as one stacked block per row (`flow`: its fields wrapped together, for rows
    of short values).

    The `keys` columns (the names: plugin, hook) are never wrapped nor cut; the others
    wrap at spaces, each given at least its longest word and the rest of the width in
    proportion to what it holds.
    """
    cells = [[Text(str(row[column])) for column in columns] for row in rows]
    widths = _fit(console.width, columns, cells, [column in keys for column in columns])
    if widths is None:
        return _stacked(console, title, columns, cells, keys, flow)
    shown = Table(title=title)
    for column, width in zip(columns, widths, strict=True):
        shown.add_column(column, width=width, no_wrap=column in keys, overflow="fold")
    for row_cells in cells:
        shown.add_row(*row_cells)
    return shown


def _fit(
    width: int, columns: Sequence[str], cells: list[list[Text]], keys: list[bool]
) -> list[int] | None:
    """Column widths for a table `width` wide (its borders and padding: 3 a column and
    1), or None when the columns' longest words (a key's whole text) do not fit."""
    lowest, highest = [], []
    for index, column in enumerate(columns):
        texts = [column, *(row[index].plain for row in cells)]
        longest = max(cell_len(line) for text in texts for line in text.splitlines() or [""])
        words = [cell_len(word) for text in texts for word in text.split()]
        lowest.append(longest if keys[index] else max(words, default=1))
        highest.append(longest)
    spare = width - (3 * len(columns) + 1) - sum(lowest)
    if spare < 0:
        return None
    wanted = [high - low for low, high in zip(lowest, highest, strict=True)]
    if sum(wanted) <= spare:
        return highest
    # Share the spare width in proportion to what each column would still take.
    given = [spare * want // sum(wanted) for want in wanted]
    left = spare - sum(given)
    for index in sorted(range(len(wanted)), key=lambda i: wanted[i] - given[i], reverse=True):
        if left == 0:
            break
        given[index] += 1
        left -= 1
    return [low + extra for low, extra in zip(lowest, given, strict=True)]


def _stacked(
    console: Console,
    title: str,
    columns: Sequence[str],
    cells: list[list[Text]],
    keys: Collection[str],
    flow: bool,
) -> Group:
    """One block per row: its keys on a line, then the other columns indented, a
    `name  value` line each, or (`flow`) as `name value` pairs wrapped together."""
    labels = [column for column in columns if column not in keys]
    label_width = max(map(cell_len, labels), default=0)
    lines: list[Text] = [Text(title, style="bold")]
    for row in cells:
        named = dict(zip(columns, row, strict=True))
        heading = Text("  ").join(named[key] for key in columns if key in keys)
        heading.stylize("bold")
        lines.append(heading)
        if flow:
            pairs = [Text.assemble((f"{label} ", "dim"), named[label]) for label in labels]
            lines += _indented(console, Text(", ").join(pairs), 2)
            continue
        for label in labels:
            lines += _labelled(console, label, named[label], label_width)
    return Group(*lines)


def _labelled(console: Console, label: str, value: Text, label_width: int) -> list[Text]:
    """`  label  value`, the value wrapped at spaces beside its label; or below the label,
    indented less, when one of its words (an import path, a folder) would not fit beside
    it: what people copy is never cut in two."""
    indent = 4 + label_width
    longest = max((cell_len(word) for word in value.plain.split()), default=0)
    if longest > console.width - indent:
        below = max(min(4, console.width - longest), 0)
        return [Text("  " + label, style="dim"), *_indented(console, value, below)]
    lines = _indented(console, value, indent)
    lines[0] = Text.assemble(("  " + label.ljust(label_width + 2), "dim"), lines[0][indent:])
    lines[0].rstrip()
    return lines


def _indented(console: Console, text: Text, indent: int) -> list[Text]:
    """`text` wrapped at spaces to the console's width less `indent`, each line indented
    (no trailing spaces, unlike a padded renderable)."""
    wrapped = text.wrap(console, max(console.width - indent, 1), overflow="fold")
    lines = [Text(" " * indent) + line for line in wrapped] or [Text()]
    for line in lines:
        line.rstrip()
    return lines


def _source_row(source: PluginSource, claimant: PluginSource) -> dict[str, Any]:
    return {
        "name": claimant.name,
        "source": claimant.describe() + (" (name claimed twice)" if source.clashes else ""),
        "kind": claimant.kind,
        "location": claimant.location,
        "target": claimant.target.removeprefix("!"),
        "version": claimant.version,
        "description": claimant.summary(),
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
