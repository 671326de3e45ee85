"""An `external:` entry's plugin: a stdio, HTTP or command plugin, its program found and
started as the config file's folder says, and stopped again when the config fails to load."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import UnknownHookError
from ._construct import Problem, config_folder
from ._schema import Entry, External

logger = logging.getLogger("interlock.config")


def from_external(entry: Entry, external: External, file: str) -> tuple[Any, list[Problem]]:
    """The plugin an `external:` entry describes (see `external_plugin`), or None; and
    every problem found."""
    problems = []
    if entry.store is not None:
        problems.append(Problem("store", "an external plugin keeps its own state (interlock "
                                "hands it no store): remove store: from this entry"))  # fmt: skip
    try:
        return external_plugin(entry, external, file), problems
    except Problem as problem:
        return None, [*problems, problem]


def external_plugin(entry: Entry, external: External, file: str) -> Any:
    """The plugin an `external:` entry describes. A stdio or HTTP plugin without `hooks`
    is asked for them now (its process starts); otherwise nothing starts until used."""
    from ..external import (
        CommandRunner,
        HttpTransport,
        StdioTransport,
        command_plugin,
        connect,
    )

    argv, cwd, missing = _launch(external, file) if not external.http else ([], None, None)
    limit = external.max_message_bytes
    transport: Any = None
    try:
        if external.command:
            runner = CommandRunner(argv, name=entry.name, cwd=cwd, env=external.env,
                                   limit=limit)  # fmt: skip
            plugin: Any = command_plugin(runner, name=entry.name, hooks=external.hooks or ())
            if missing is not None:  # after the hooks' names: those problems come first
                raise missing
            return plugin
        if missing is not None and external.hooks is None:
            raise missing  # rather than a handshake that cannot start
        if external.stdio:
            transport = StdioTransport(argv, name=entry.name, cwd=cwd, env=external.env,
                                       limit=limit)  # fmt: skip
        else:
            transport = HttpTransport(external.http or (), name=entry.name, token=external.token,
                                      limit=limit)  # fmt: skip
        plugin = connect(transport, name=entry.name, hooks=external.hooks, config=entry.config,
                         timeout=external.handshake_timeout)  # fmt: skip
        if missing is not None:
            raise missing
    except Problem:
        _close(transport)
        raise
    except ImportError as error:
        raise Problem("external", str(error)) from None
    except UnknownHookError as error:
        raise Problem("external", str(error)) from None
    except Exception as error:  # the handshake failed, however it failed
        _close(transport)
        # The problem names the plugin already; so does the transport's message.
        message = str(error).removeprefix(f"plugin {entry.name!r}: ")
        hint = ("check that the server is running and reachable at the URL" if external.http
                else "check the command")  # fmt: skip
        raise Problem("external", f"{message}; {hint}, and that it speaks interlock's "
                                  "protocol (docs/protocol.md)") from None  # fmt: skip
    ungranted = sorted(set(plugin.requested) - set(entry.capabilities or ()))
    if ungranted:
        logger.warning(
            "plugin %r asks for capabilities %s, which its config does not grant; add "
            "capabilities: [%s] to let it use them",
            entry.name,
            ", ".join(ungranted),
            ", ".join(ungranted),
            extra={"interlock_plugin": entry.name},
        )
    return plugin


def _launch(external: External, file: str) -> tuple[list[str], Path | None, Problem | None]:
    """The argv and working folder of a `stdio:` or `command:` plugin, and what keeps its
    program from starting, if anything.

    Like `plugin_dirs`, a relative `cwd` and a program path with a `/` are relative to the
    config file's folder, never to the current directory (the program path is made
    absolute, so it is the same file whatever `cwd` says); a bare program name is looked
    up on PATH (the entry's `env` may set it), as a shell would.
    """
    key = "external.command" if external.command else "external.stdio"
    argv = list(external.command or external.stdio or ())
    base = config_folder(file)
    cwd = None if base is None else base
    no_base = ("is relative, and this config has no file it could be relative to; give an "
               "absolute path, or load the config from its file")  # fmt: skip
    if external.cwd is not None:
        if base is None and not Path(external.cwd).is_absolute():
            return argv, None, Problem("external.cwd", f"cwd {external.cwd!r} {no_base}")
        cwd = Path(external.cwd) if base is None else base / external.cwd
        if not cwd.is_dir():
            message = f"cwd: no folder {external.cwd!r} (looked for {cwd}); create it or fix it"
            return argv, cwd, Problem("external.cwd", message)
    program = argv[0]
    if "/" not in program and os.sep not in program:
        path = (external.env or {}).get("PATH", os.environ.get("PATH", os.defpath))
        if shutil.which(program, path=path) is not None:
            return argv, cwd, None
        beside = base is not None and (base / program).is_file()
        hint = (f"; there is a {program!r} beside the config: write ./{program}" if beside
                else "")  # fmt: skip
        message = (f"could not start {program!r}: no such program on PATH; install it, or "
                   f"give its path (absolute, or relative to the config file's folder)"
                   f"{hint}")  # fmt: skip
        return argv, cwd, Problem(key, message)
    if base is None and not Path(program).is_absolute():
        return argv, cwd, Problem(key, f"the program {program!r} {no_base}")
    resolved = Path(os.path.normpath(program if base is None else base / program))
    argv[0] = str(resolved)
    if not resolved.is_file():
        message = (f"could not start {program!r}: there is no such file (looked for "
                   f"{resolved}; a program path is relative to the config file's folder); "
                   "fix the path or create the file")  # fmt: skip
        return argv, cwd, Problem(key, message)
    if not os.access(resolved, os.X_OK):
        message = (f"could not start {program!r}: {resolved} is not executable; make it so "
                   f"(chmod +x {program}) or run it through its interpreter, e.g. "
                   f"[sh, {program}]")  # fmt: skip
        return argv, cwd, Problem(key, message)
    return argv, cwd, None


def discard(loaded: Mapping[str, Any]) -> None:
    """Stop what constructing these plugins started (a config that failed to load)."""
    for plugin in loaded.values():
        _close(getattr(plugin, "transport", None))


def _close(transport: Any) -> None:
    close = getattr(transport, "close", None)
    if close is not None:
        close()
