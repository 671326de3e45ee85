"""The `interlock` command line: the outermost layer, built on the public API only."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

import interlock

from ._options import AsJson, ConfigFile, DataDir, PluginDirs, StoreUrl
from ._output import Commands, new_console
from ._plugins import discover_plugins, load_plugins
from ._run import model_backend, run_once, session_metadata, session_tags, storable
from ._serve_args import find_served, load_served, served_config, served_tokens
from ._session_log import (
    data_folder,
    has_session,
    open_store,
    session_stats,
    show_command,
    store_target,
)

app = typer.Typer(
    cls=Commands,
    help="interlock: typed, capability-safe hooks and plugins for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(interlock.__version__)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """interlock: typed, capability-safe hooks and plugins for LLM agents."""


@app.command()
def demo(
    ctx: typer.Context,
    config: ConfigFile = None,
    plugin: Annotated[
        list[str] | None,
        typer.Option(help="A plugin to add: an import path (module:attr) or a plugin name."),
    ] = None,
    plugin_dir: PluginDirs = None,
    data_dir: DataDir = None,
    store_url: StoreUrl = None,
) -> None:
    """Run a short offline agent session with the built-in plugins, tracing every hook.

    The model is scripted and the tools only pretend: no network, no API key. The
    session is logged under the data dir, like any other. Try your own plugins in the
    scene with --config and --plugin, as for `run`: they join the built-ins, and one
    named like a built-in takes its place (the scene's tools stay the pretend ones).
    """
    from ._demo import run

    console = new_console()
    directory = data_folder(data_dir)
    manager, _, _, _ = load_plugins(config, plugin or [], plugin_dir or [])
    yours = ", ".join(sorted({r.plugin for r in manager.registrations()}))
    cast = f"the built-in plugins and yours ({yours})" if yours else "six built-in plugins"
    console.print(Text.assemble(("interlock demo", "bold"),
                                f": a scripted agent, {cast}, every hook traced"))  # fmt: skip
    store = open_store(store_target(data_dir, store_url))
    try:
        session_id = asyncio.run(run(console, directory, store, manager))
    finally:
        store.close()
    console.print(Text.assemble(
        f"\nSession log: {store.location}\nShow it with: ",
        (show_command(ctx, session_id, store), "bold"),
        f"\nAudit log: {directory / 'audit.jsonl'}",
    ))  # fmt: skip


@app.command()
def run(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="The user message (after -- if it starts with -).")],
    model: Annotated[
        str, typer.Option(help="scripted | scripted:SCRIPT.json | openai:MODEL")
    ] = "scripted",
    base_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1")
    ] = None,
    session: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            help="A tag for the session (repeatable), as plugins' tag:GLOB scopes and "
            "`when: {session.tags: ...}` match them, e.g. tenant-acme."
        ),
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE",
            help="A field of the session's metadata (repeatable), as plugins' "
            "metadata.FIELD scopes read them, e.g. user=ada.",
        ),
    ] = None,
    config: ConfigFile = None,
    plugin: Annotated[
        list[str] | None,
        typer.Option(help="A plugin to add: an import path (module:attr) or a plugin name."),
    ] = None,
    plugin_dir: PluginDirs = None,
    system: Annotated[str, typer.Option(help="The system prompt.")] = "",
    stream: Annotated[bool, typer.Option(help="Stream the model's answer.")] = False,
    trace: Annotated[bool, typer.Option(help="Trace every hook as it fires.")] = True,
    data_dir: DataDir = None,
    store_url: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """Run the agent on one message and print its reply.

    The session's id follows on stderr (in --json, the `session` field). Exits with 1
    when the reply was not delivered or the turn did not end in an answer.
    """
    from interlock.runtime import Agent, SessionLogError, ToolSet

    from ._trace import Trace

    console = new_console(stderr=as_json)
    if session is not None and not storable(session):
        raise typer.BadParameter(f"{session!r} is not valid UTF-8 text", param_hint="--session")
    tags, metadata = session_tags(tag or []), session_metadata(meta or [])
    backend = model_backend(model, base_url)
    manager, tools, _, _ = load_plugins(config, plugin or [], plugin_dir or [])
    try:
        toolset = ToolSet(tools)
    except ValueError as error:  # two drop-ins offer a tool of the same name
        raise typer.BadParameter(str(error), param_hint="--config/--plugin") from None
    store = open_store(store_target(data_dir, store_url))
    try:
        trace_view = Trace(console) if trace else None
        agent = Agent(backend, tools=toolset.tools(), manager=manager, system_prompt=system,
                      store=store, stream=stream, on_event=trace_view)  # fmt: skip
        session_id, result = asyncio.run(run_once(agent, prompt, session, tags, metadata))
    except SessionLogError as error:  # the log went away mid-turn: nothing more was done
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({
            "session": session_id, "turn": result.turn, "reply": result.reply,
            "delivered": result.delivered, "stopped": result.stopped, "reason": result.reason,
            "tool_calls": result.tool_calls,
            "usage": {"input_tokens": result.usage.input_tokens,
                      "output_tokens": result.usage.output_tokens},
        }))  # fmt: skip
    elif result.delivered:
        typer.echo(result.reply)
    else:
        console.print(Text.assemble(("not delivered", "red"), f": {result.reason}"))
    if not as_json:  # on stderr: the reply alone is what `$(interlock run ...)` captures
        typer.echo(f"Show this session with: {show_command(ctx, session_id, store)}", err=True)
    if result.stopped != "answered" or not result.delivered:
        raise typer.Exit(1)


@app.command()
def log(
    session_id: Annotated[str | None, typer.Argument(help="Show this session's records.")] = None,
    data_dir: DataDir = None,
    store_url: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """List sessions, or show one session's log (system items marked)."""
    from ._log import list_sessions, show_session

    path = store_target(data_dir, store_url)
    if isinstance(path, Path) and not path.is_file():
        if session_id is None and as_json:
            typer.echo("[]")
            return
        typer.echo(f"no session log at {path} yet; run `interlock demo` or `interlock run`",
                   err=session_id is not None)  # fmt: skip
        raise typer.Exit(1 if session_id else 0)
    store = open_store(path, create=False)  # a reader: creates nothing
    try:
        if session_id is None:
            list_sessions(store, new_console(), as_json)
        elif not has_session(store, session_id):
            missing = f"no session {session_id!r} in {store.location}"
            typer.echo(f"{missing}; `interlock log` lists them", err=True)
            raise typer.Exit(1)
        else:
            show_session(store, session_id, new_console(), as_json)
    finally:
        store.close()


@app.command()
def hooks(
    schema: Annotated[
        bool, typer.Option("--schema", help="Print each payload's JSON schema.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """List the hook catalog: payload fields, accepted actions, writable fields."""
    from ._inspect import show_hooks

    show_hooks(new_console(), schema=schema, as_json=as_json)


@app.command()
def plugins(
    config: ConfigFile = None,
    plugin_dir: PluginDirs = None,
    session: Annotated[
        str | None, typer.Option(help="Show the plugin statistics a session logged.")
    ] = None,
    data_dir: DataDir = None,
    store_url: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """List the plugins available by name and where each comes from (built-in, entry
    point, drop-in folder), a config's registrations, and a session's plugin stats."""
    from ._inspect import show_plugins

    if config is not None:
        manager, _, available, uses = load_plugins(config, [], plugin_dir or [])
    else:
        manager, available, uses = None, discover_plugins(plugin_dir or []), {}
    target = store_target(data_dir, store_url)
    stats = session_stats(target, session) if session is not None else None
    try:
        show_plugins(new_console(), available, manager, stats, uses, as_json=as_json)
    finally:
        if manager is not None:
            manager.close()  # stops any external plugin the config started


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="The config file to check.")],
    plugin_dir: PluginDirs = None,
) -> None:
    """Check a config file: load every plugin it names, register nothing for real.

    Exits with 1 and lists every problem (file, line, plugin, what to fix) when it is wrong.
    """
    from ._check import check_file

    check_file(file, plugin_dir or [])


@app.command()
def serve(
    target: Annotated[
        str, typer.Argument(help="The plugin: module:attribute, or an installed plugin's name.")
    ],
    stdio: Annotated[bool, typer.Option("--stdio", help="Serve one host on stdin/stdout.")] = False,
    http: Annotated[
        str | None,
        typer.Option("--http", metavar="HOST:PORT", help="Serve over HTTP (port 0: any free one)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="INTERLOCK_TOKEN", help="HTTP: the bearer token callers must send."),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="FILE",
            help="HTTP: bearer tokens, one a line; give each host its own, its sessions apart.",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="HTTP: serve without a token on an address others can reach."
        ),
    ] = False,
    request_timeout: Annotated[
        float,
        typer.Option(min=0.001, help="HTTP: seconds for a request's headers, then its body."),
    ] = 10.0,
    max_connections: Annotated[
        int, typer.Option(min=1, help="HTTP: connections served at once; more get 503.")
    ] = 512,
    keep_alive: Annotated[
        int, typer.Option(min=1, help="HTTP: seconds an idle connection is kept open.")
    ] = 5,
    shutdown_timeout: Annotated[
        int, typer.Option(min=0, help="HTTP: seconds calls in flight get on SIGTERM/Ctrl-C.")
    ] = 10,
    plugin_config: Annotated[
        str | None, typer.Option("--plugin-config", metavar="JSON", help="The plugin's config.")
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            metavar="URL",
            envvar="INTERLOCK_STATE",
            help="HTTP: keep sessions' ctx.state in this store (redis://...), shared by replicas.",
        ),
    ] = None,
    deployment: Annotated[
        str, typer.Option(help="HTTP: the namespace of --state's keys (replicas share one).")
    ] = "default",
    name: Annotated[str | None, typer.Option(help="The name to serve it under.")] = None,
    plugin_dir: PluginDirs = None,
    max_message_bytes: Annotated[
        int, typer.Option(min=1, help="The bound on one message, in bytes.")
    ] = 1_000_000,
) -> None:
    """Serve a Python plugin out of process, over stdio (for one host) or HTTP (for many).

    The same plugin class then runs in process or out of it, unchanged. Over stdio
    without --plugin-config, the plugin is built with the config the host sends (its
    entry's `config:`). Over HTTP the address is printed once the server listens; an
    address other machines can reach needs --token or --token-file (or --insecure).
    """
    from ._serve import serve_http, serve_stdio

    if stdio == (http is not None):
        raise typer.BadParameter("give exactly one of --stdio and --http HOST:PORT")
    if stdio and (token is not None or token_file is not None or insecure):
        raise typer.BadParameter(
            "--token, --token-file and --insecure are for --http; over stdio the host is the parent"
        )
    if stdio and state is not None:
        raise typer.BadParameter("--state is for --http replicas; over stdio one process serves")
    tokens = served_tokens(token, token_file) if http is not None else []
    config = served_config(plugin_config)
    available = discover_plugins(plugin_dir or [])
    if stdio and config is None:  # built with the host's config; found now, so typos show
        find_served(target, available)
        serve_stdio(lambda sent: load_served(target, sent, available), name=name,
                    limit=max_message_bytes)  # fmt: skip
        return
    plugin = load_served(target, config or {}, available)
    if http is not None:
        serve_http(
            plugin,
            http,
            tokens=tokens,
            insecure=insecure,
            name=name,
            limit=max_message_bytes,
            config=config or {},
            request_timeout=request_timeout,
            max_connections=max_connections,
            keep_alive=keep_alive,
            shutdown_timeout=shutdown_timeout,
            state=state,
            deployment=deployment,
        )
    else:
        serve_stdio(plugin, name=name, limit=max_message_bytes, config=config)


@app.command("mcp-gateway")
def mcp_gateway(
    upstream: Annotated[
        list[str],
        typer.Argument(metavar="-- COMMAND...", help="The upstream MCP server's command."),
    ],
    config: ConfigFile = None,
    plugin: Annotated[
        list[str] | None,
        typer.Option(help="A plugin to add: an import path (module:attr) or a plugin name."),
    ] = None,
    plugin_dir: PluginDirs = None,
) -> None:
    """Serve an MCP server on stdio that offers an upstream server's tools, each call
    judged by the plugins (pre_tool_call, post_tool_call).

    Point any MCP client at it: `interlock mcp-gateway --config interlock.yaml -- python
    server.py`. A blocked call is an error result carrying the reason.
    """
    from ._mcp import serve_gateway

    manager, _, _, _ = load_plugins(config, plugin or [], plugin_dir or [])
    serve_gateway(manager, upstream)


@app.command("claude-hook")
def claude_hook(
    config: ConfigFile = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            metavar="DIR",
            help="Where per-session plugin state is kept.",
            show_default="$INTERLOCK_DATA_DIR/claude-code",
        ),
    ] = None,
    deadline: Annotated[
        float | None,
        typer.Option(
            "--deadline",
            metavar="SECONDS",
            min=0.001,
            help="Past it (waiting for the session included) the event is refused; keep "
            "it under the hook's timeout in settings.json.",
            show_default="30",
        ),
    ] = None,
) -> None:
    """A Claude Code command hook: read one hook event on stdin, run the config's plugins
    on the matching hook, answer as Claude Code expects.

    In .claude/settings.json: "command": "interlock claude-hook --config
    .claude/interlock.yaml". A tool call the plugins block is denied with the reason; a
    config that fails to load denies too.
    """
    from ._claude import claude_hook as run_hook

    raise typer.Exit(run_hook(config, state_dir, deadline))


@app.command("new-plugin")
def new_plugin(
    name: Annotated[str, typer.Argument(help="The plugin's name, e.g. no-sudo.")],
    directory: Annotated[Path, typer.Option(help="Where to create it.")] = Path(),
) -> None:
    """Create a plugin package: one hook, a config model, tests, and an entry point."""
    from ._scaffold import scaffold

    try:
        root = scaffold(name, directory)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="NAME") from None
    console = new_console()
    # The path and the command are copied: each on one line, whatever the width (soft
    # wrap: the terminal's); the note wraps at spaces.
    console.print(Text(f"created {root}"), soft_wrap=True)
    console.print(Text(f"  cd {root} && pip install -e '.[test]' && python -m pytest"),
                  soft_wrap=True)  # fmt: skip
    console.print(Text(f"in the environment interlock is installed in ({sys.prefix}): "
                       "interlock is not on PyPI yet, so the package's dependency on it is "
                       "met there only"))  # fmt: skip


@app.command()
def version() -> None:
    """Print the interlock version."""
    typer.echo(interlock.__version__)


def main() -> None:
    """Entry point of the `interlock` console script."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:  # never die printing text the terminal cannot show
            reconfigure(errors="backslashreplace")
    app()
