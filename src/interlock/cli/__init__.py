"""The `interlock` command line: the outermost layer, built on the public API only."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shlex
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperArgument, TyperGroup, TyperOption

import interlock


class _OutputClosed(KeyboardInterrupt):
    """Whoever read the output stopped reading (`interlock demo | head -3`): the command
    stops as on Ctrl-C, so a session it runs ends as `interrupted`."""


class _Console(Console):
    def on_broken_pipe(self) -> None:
        self.quiet = True  # rich's default exits with 1, which logs the session as an error
        raise _OutputClosed


class _Commands(TyperGroup):
    """The commands, with help written as other command lines write it (`--model TEXT`,
    a flag without a placeholder, `PROMPT` in the usage line, paragraphs reflowed to the
    terminal), and a closed output ending any command quietly, with status 141 (SIGPIPE)
    as `git log | head` ends."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_placeholders(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_placeholders(command.get_params(ctx))  # the help option too: it is cached
            paragraphs = inspect.cleandoc(command.help or "").split("\n\n")
            command.help = "\n\n".join(" ".join(p.split()) for p in paragraphs) or None
        return command

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (_OutputClosed, BrokenPipeError):
            _silence_stdout()
            raise typer.Exit(141) from None


class _Option(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        if self.metavar is not None:
            return self.metavar
        shown = self.display_type(ctx).strip("<>").removeprefix("list[").split()[0]
        kind = shown.rstrip("]")
        return {"str": "TEXT", "int": "INTEGER"}.get(kind, kind.upper())


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # its name says it

    def _rich_display_name(self) -> str:
        return self.metavar or (self.name or "").upper()

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        if self.nargs != 1 and self.metavar is None:
            name += "..."
        return name if self.required else f"[{name}]"


def _plain_placeholders(params: list[Any]) -> list[Any]:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _Option
        elif type(param) is TyperArgument:
            param.__class__ = _Argument
    return params


def _silence_stdout() -> None:
    """Point stdout at the null device: what is still buffered for a reader that left
    is dropped at exit, not reported as an error."""
    with contextlib.suppress(OSError, ValueError):  # not a file: a test runner's buffer
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


app = typer.Typer(
    cls=_Commands,
    help="interlock: typed, capability-safe hooks and plugins for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
)

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

    console = _console()
    directory = _data_dir(data_dir)
    manager, _, _, _ = _plugins(config, plugin or [], plugin_dir or [])
    yours = ", ".join(sorted({r.plugin for r in manager.registrations()}))
    cast = f"the built-in plugins and yours ({yours})" if yours else "six built-in plugins"
    console.print(Text.assemble(("interlock demo", "bold"),
                                f": a scripted agent, {cast}, every hook traced"))  # fmt: skip
    store = _open_store(_store_target(data_dir, store_url))
    try:
        session_id = asyncio.run(run(console, directory, store, manager))
    finally:
        store.close()
    console.print(Text.assemble(
        f"\nSession log: {store.location}\nShow it with: ",
        (_show_command(ctx, session_id, store), "bold"),
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

    console = _console(stderr=as_json)
    if session is not None and not _storable(session):
        raise typer.BadParameter(f"{session!r} is not valid UTF-8 text", param_hint="--session")
    tags, metadata = _tags(tag or []), _metadata(meta or [])
    backend = _backend(model, base_url)
    manager, tools, _, _ = _plugins(config, plugin or [], plugin_dir or [])
    try:
        toolset = ToolSet(tools)
    except ValueError as error:  # two drop-ins offer a tool of the same name
        raise typer.BadParameter(str(error), param_hint="--config/--plugin") from None
    store = _open_store(_store_target(data_dir, store_url))
    try:
        trace_view = Trace(console) if trace else None
        agent = Agent(backend, tools=toolset.tools(), manager=manager, system_prompt=system,
                      store=store, stream=stream, on_event=trace_view)  # fmt: skip
        session_id, result = asyncio.run(_run_once(agent, prompt, session, tags, metadata))
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
        typer.echo(f"Show this session with: {_show_command(ctx, session_id, store)}", err=True)
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

    path = _store_target(data_dir, store_url)
    if isinstance(path, Path) and not path.is_file():
        if session_id is None and as_json:
            typer.echo("[]")
            return
        typer.echo(f"no session log at {path} yet; run `interlock demo` or `interlock run`",
                   err=session_id is not None)  # fmt: skip
        raise typer.Exit(1 if session_id else 0)
    store = _open_store(path, create=False)  # a reader: creates nothing
    try:
        if session_id is None:
            list_sessions(store, _console(), as_json)
        elif not _known(store, session_id):
            missing = f"no session {session_id!r} in {store.location}"
            typer.echo(f"{missing}; `interlock log` lists them", err=True)
            raise typer.Exit(1)
        else:
            show_session(store, session_id, _console(), as_json)
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

    show_hooks(_console(), schema=schema, as_json=as_json)


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
        manager, _, available, uses = _plugins(config, [], plugin_dir or [])
    else:
        manager, available, uses = None, _discover(plugin_dir or []), {}
    target = _store_target(data_dir, store_url)
    stats = _session_stats(target, session) if session is not None else None
    try:
        show_plugins(_console(), available, manager, stats, uses, as_json=as_json)
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
    from interlock.config import check as check_config
    from interlock.config import load_config_text, read_config

    try:
        text = read_config(file)
        manager = load_config_text(text, file=str(file), plugin_dirs=plugin_dir or [])
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
    tokens = _served_tokens(token, token_file) if http is not None else []
    config = _served_config(plugin_config)
    available = _discover(plugin_dir or [])
    if stdio and config is None:  # built with the host's config; found now, so typos show
        _found(target, available)
        serve_stdio(lambda sent: _load_served(target, sent, available), name=name,
                    limit=max_message_bytes)  # fmt: skip
        return
    plugin = _load_served(target, config or {}, available)
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

    manager, _, _, _ = _plugins(config, plugin or [], plugin_dir or [])
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
    console = _console()
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


async def _run_once(
    agent: Any, prompt: str, session_id: str | None, tags: list[str], metadata: dict[str, str]
) -> tuple[str, Any]:
    """The session's id and the turn's result."""
    try:
        async with agent.session(session_id, tags=tags, metadata=metadata) as session:
            return session.id, await session.send(prompt)
    finally:
        await agent.aclose()


def _tags(given: list[str]) -> list[str]:
    """`--tag`s as the session's tags, each once."""
    for tag in given:
        if not tag.strip():
            raise typer.BadParameter("a tag is empty", param_hint="--tag")
        if not _storable(tag):
            raise typer.BadParameter(f"{tag!r} is not valid UTF-8 text", param_hint="--tag")
    return list(dict.fromkeys(given))


def _metadata(given: list[str]) -> dict[str, str]:
    """`--meta KEY=VALUE`s as the session's metadata (values are text)."""
    metadata = {}
    for item in given:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            message = f"{item!r}: give KEY=VALUE, e.g. user=ada"
            raise typer.BadParameter(message, param_hint="--meta")
        if not _storable(item):
            raise typer.BadParameter(f"{item!r} is not valid UTF-8 text", param_hint="--meta")
        metadata[key.strip()] = value
    return metadata


def _show_command(ctx: typer.Context, session_id: str, store: Any) -> str:
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


def _console(*, stderr: bool = False) -> Console:
    return _Console(stderr=stderr, emoji=False, highlight=False)


def _data_dir(value: Path | None) -> Path:
    from interlock.runtime import default_data_dir

    return value if value is not None else default_data_dir()


def _store_target(data_dir: Path | None, store_url: str | None) -> Path | str:
    """`--store` (a URL, or a file path: sqlite:///PATH too), else sessions.db in the
    data dir."""
    if store_url is None:
        return _data_dir(data_dir) / "sessions.db"
    scheme, separator, rest = store_url.partition("://")
    if separator and not (scheme == "sqlite" and rest):
        return store_url
    return Path(rest if separator else store_url)


def _open_store(target: Path | str, *, create: bool = True) -> Any:
    """The session log at `target`; `create=False` for a reader, which must not make one."""
    from interlock.runtime import SessionLogError, open_session_store

    try:
        return open_session_store(target, create=create)
    except sqlite3.DatabaseError as error:
        typer.echo(f"{target} is not an interlock session log ({error})", err=True)
    except (SessionLogError, ImportError) as error:  # unreachable, or no interlock[postgres]
        typer.echo(str(error), err=True)
    raise typer.Exit(1)


def _known(store: Any, session_id: str) -> bool:
    try:
        return bool(store.has_session(session_id))
    except ValueError:
        return False


def _discover(directories: list[Path]) -> Any:
    """The plugins available by name: built-ins, entry points, and the drop-ins in the
    folders named with --plugin-dir (and in no other folder)."""
    from interlock.discovery import PluginLoadError, discover

    try:
        return discover(directories)
    except PluginLoadError as error:
        raise typer.BadParameter(str(error), param_hint="--plugin-dir") from None


def _plugins(
    config: Path | None, extra: list[str], directories: list[Path]
) -> tuple[Any, list[Any], Any, dict[str, str]]:
    """The manager for `run` (and `plugins`): the config's plugins and `--plugin`s, plus
    the tools the drop-in plugins among them contribute, what can be named, and what
    each registered plugin name was loaded from (its `use:`, or `external:KIND`)."""
    from interlock.config import check as check_config
    from interlock.config import load_config_text, load_plugin, plugin_sources, read_config
    from interlock.discovery import PluginLoadError

    available = _discover(directories) if config is None else {}
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


def _served_config(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        config = json.loads(raw)
    except ValueError as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint="--plugin-config") from None
    if not isinstance(config, dict):
        raise typer.BadParameter("give a JSON object", param_hint="--plugin-config")
    return config


def _served_tokens(token: str | None, token_file: Path | None) -> list[str]:
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


def _found(target: str, available: Any) -> None:
    from interlock.config import find_plugin

    _as_parameter(lambda: find_plugin(target, plugins=available))


def _load_served(target: str, config: Any, available: Any) -> Any:
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


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _session_stats(target: Path | str, session_id: str) -> list[Any]:
    if isinstance(target, Path) and not target.is_file():
        typer.echo(f"no session log at {target} yet", err=True)
        raise typer.Exit(1)
    store = _open_store(target, create=False)
    try:
        if not _known(store, session_id):
            typer.echo(f"no session {session_id!r} in {store.location}", err=True)
            raise typer.Exit(1)
        logged = [r for r in store.records(session_id) if r.kind == "stats"]
    finally:
        store.close()
    return list(logged[-1].data["registrations"]) if logged else []


def _backend(model: str, base_url: str | None) -> Any:
    from interlock.runtime import OpenAIBackend, ScriptedBackend

    kind, _, name = model.partition(":")
    try:
        if kind == "scripted":
            return ScriptedBackend.from_file(name) if name else ScriptedBackend()
        if kind == "openai" and name:
            return OpenAIBackend(name, base_url=base_url)
    except (ValueError, ImportError) as error:
        raise typer.BadParameter(str(error), param_hint="--model") from None
    raise typer.BadParameter(
        f"{model!r}: use scripted, scripted:SCRIPT.json or openai:MODEL", param_hint="--model"
    )
