"""`ExternalPlugin`: an out-of-process plugin as a manager sees it, one handler per hook.

The handlers are ordinary async handlers, so everything the core does for any plugin
applies: priorities, conditions, timeouts, fail-closed gates, the circuit breaker,
statistics. What a remote plugin sends back is checked twice: by the protocol (is it an
action, does the payload fit its schema?) and by the core (does the hook accept it, are
the changed fields writable?).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from .. import (
    CapabilityError,
    HookContext,
    HookSpec,
    InvalidActionError,
    Plugin,
    ProtocolError,
    hook,
)
from .._capabilities import check_notification, check_system_item
from .._outcome import check_action
from .._spec import unknown_hook
from ..hooks import CATALOG
from .command import CommandRunner
from .protocol import (
    PROTOCOL_VERSION,
    HookOffer,
    InvokeEncoder,
    Request,
    dump_context,
    dump_payload,
    load_hello,
    load_result,
)
from .stdio import StdioTransport

logger = logging.getLogger("interlock.external")

T = TypeVar("T", bound="_Remote")


class Transport(Protocol):
    """What carries requests to a plugin: `StdioTransport`, `HttpTransport` or your own.

    One whose class sets `takes_encoded = True` is handed `invoke` params already
    encoded (`interlock.external.protocol.Encoded`), to put on the wire as they are.
    """

    async def call(self, method: str, params: Any) -> Any:
        """Send one request; its result, or `ProtocolError`."""
        ...

    def call_sync(self, method: str, params: Any, timeout: float = 10.0) -> Any:
        """`call` for code without an event loop (the handshake)."""
        ...

    async def aclose(self) -> None:
        """Stop the process or close the connections."""
        ...


class _Remote(Plugin):
    """A plugin whose decisions are made elsewhere; one handler per hook it offers."""

    async def ask(self, spec: HookSpec[Any], payload: Any, ctx: HookContext) -> Any:
        """The plugin's action and capability requests for one event."""
        raise NotImplementedError

    async def invoke(self, spec: HookSpec[Any], payload: Any, ctx: HookContext) -> Any:
        """Ask the plugin about one event; if its action stands, carry out the capability
        requests it may make (a reply that does not fit has no effect at all)."""
        action, requests = await self.ask(spec, payload, ctx)
        problem = check_action(ctx, payload, action)
        if problem is None:
            problem = next(filter(None, (check_request(r, ctx) for r in requests)), None)
        if problem is not None:
            raise InvalidActionError(problem, plugin=ctx.plugin, hook=spec.name)
        for request in requests:
            grant(request, ctx)
        return action


class ExternalPlugin(_Remote):
    """An out-of-process plugin (stdio or HTTP), ready to register. Build one with
    `connect`; `requested` are the capabilities it asked for in `initialize`."""

    name = "external"

    def __init__(self, transport: Transport, *, requested: Iterable[str] = ()) -> None:
        self.transport = transport
        self.requested = tuple(requested)
        # What the calls share is serialised once, for the transports that take it so.
        self._encoder = InvokeEncoder() if getattr(transport, "takes_encoded", False) else None

    async def ask(self, spec: HookSpec[Any], payload: Any, ctx: HookContext) -> Any:
        """One `invoke` request, its result checked against the hook's schema."""
        if self._encoder is not None:
            params: Any = self._encoder.params(spec, payload, ctx)
        else:
            params = {
                "hook": spec.name,
                "payload": dump_payload(spec, payload),
                "context": dump_context(ctx),
            }
        return load_result(spec, await self.transport.call("invoke", params))

    def close(self) -> None:
        """Stop the plugin's process now, for code without an event loop."""
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        """Stop the plugin's process or connections (`PluginManager.aclose` calls it)."""
        await self.transport.aclose()


class CommandPlugin(_Remote):
    """A command hook: one process per event (see `interlock.external.command`). Build
    one with `command_plugin`."""

    name = "command"

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    async def ask(self, spec: HookSpec[Any], payload: Any, ctx: HookContext) -> Any:
        """Run the command for one event."""
        return await self.runner.run(spec, payload, ctx)


def connect(
    transport: Transport,
    *,
    name: str,
    hooks: Iterable[str] | None = None,
    config: Mapping[str, Any] | None = None,
    specs: Mapping[str, HookSpec[Any]] | None = None,
    timeout: float = 10.0,
) -> ExternalPlugin:
    """An `ExternalPlugin` for `transport`, ready to register.

    Without `hooks`, the plugin is asked now which hooks it handles (`initialize`, given
    `config`); with them, nothing starts until the first call. `specs` are the hook points
    it may name (the catalog by default). Raises `ProtocolError` when the handshake fails.

        plugin = connect(StdioTransport(["node", "guard.js"]), name="guard")
        manager.register(plugin, capabilities=["notify"])
    """
    known = _index(specs)
    params = {"protocol": PROTOCOL_VERSION, "host": {"name": "interlock", "version": _version()},
              "plugin": name, "config": dict(config or {})}  # fmt: skip
    if isinstance(transport, StdioTransport):
        transport.initialize = params  # every process it starts is greeted with it
    if hooks is not None:
        offers = tuple(HookOffer(_known(h, known)) for h in hooks)
        if isinstance(transport, StdioTransport):
            transport.accept = _accept(name, offers, known)  # checked at each start
        return _build(ExternalPlugin, name, offers, known)(transport)
    hello = load_hello(transport.call_sync("initialize", params, timeout), known)
    if isinstance(transport, StdioTransport):  # a process started again must agree too
        transport.accept = _accept(name, hello.hooks, known)
    logger.info("plugin %r is %s %s, handling %s", name, hello.name or "unnamed",
                hello.version or "", ", ".join(o.name for o in hello.hooks),
                extra={"interlock_plugin": name})  # fmt: skip
    for offer in hello.hooks:
        if offer.priority is not None:
            logger.info("plugin %r suggests priority %d at hook %r; its config entry decides "
                        "(set `priority:` there to follow it)", name, offer.priority,
                        offer.name, extra={"interlock_plugin": name})  # fmt: skip
    cls = _build(ExternalPlugin, name, hello.hooks, known)
    return cls(transport, requested=hello.capabilities)


def command_plugin(
    runner: CommandRunner,
    *,
    name: str,
    hooks: Iterable[str],
    specs: Mapping[str, HookSpec[Any]] | None = None,
) -> CommandPlugin:
    """A `CommandPlugin` running `runner` once for each event of `hooks`.

    guard = command_plugin(CommandRunner(["./guard.sh"]), name="guard",
                           hooks=["pre_tool_call"])
    """
    known = _index(specs)
    offers = tuple(HookOffer(_known(h, known)) for h in hooks)
    if not offers:
        raise ValueError(f"command hook {name!r}: say which hooks it runs for (hooks: [...])")
    return _build(CommandPlugin, name, offers, known)(runner)


def check_request(request: Request, ctx: HookContext) -> str | None:
    """What is wrong with a capability request's fields, or None; every request of a
    reply is checked before any is carried out, so a reply applies whole or not at all."""
    fields = request.fields
    try:
        if request.capability == "system_items":
            check_system_item(ctx.plugin, fields.get("kind"), fields.get("text"))
        elif request.capability == "notify":
            check_notification(ctx.plugin, fields.get("text"), fields.get("level", "info"))
    except CapabilityError as error:
        return str(error)
    return None


def grant(request: Request, ctx: HookContext) -> None:
    """Carry out a capability request if this registration holds the capability here."""
    fields = request.fields
    if request.capability == "system_items" and ctx.system_items is not None:
        ctx.system_items.append(fields.get("kind"), fields.get("text"))  # type: ignore[arg-type]
    elif request.capability == "notify" and ctx.notify is not None:
        ctx.notify.notify(fields.get("text"), level=fields.get("level", "info"))  # type: ignore[arg-type]
    else:
        logger.warning(
            "plugin %r asked for the %s capability, which it is not granted at hook %r; refused",
            ctx.plugin,
            request.capability,
            ctx.hook.name,
            extra={"interlock_plugin": ctx.plugin, "interlock_hook": ctx.hook.name},
        )


def _build(
    base: type[T], name: str, offers: Iterable[HookOffer], known: Mapping[str, HookSpec[Any]]
) -> type[T]:
    """A plugin class with one handler per offered hook, made once, at connect time."""
    methods: dict[str, Any] = {"name": name}
    for offer in offers:
        spec = known[offer.name]

        async def handler(
            self: _Remote, payload: Any, ctx: HookContext, _spec: HookSpec[Any] = spec
        ) -> Any:
            return await self.invoke(_spec, payload, ctx)

        # A priority the plugin suggests in `initialize` is advisory (`connect` logs it):
        # the operator's config decides where a remote plugin runs, not the plugin.
        methods[f"handle_{spec.name}"] = hook(spec)(handler)
    safe = re.sub(r"\W", "_", name)
    return type(f"{base.__name__}_{safe}", (base,), methods)


def _accept(
    name: str, offers: Iterable[HookOffer], known: Mapping[str, HookSpec[Any]]
) -> Callable[[Any], None]:
    """The check of a new process's `initialize` result: what `connect` checks at load
    (the protocol version, known hooks, at least one), and that it still handles every
    hook it is registered for."""
    registered = [offer.name for offer in offers]

    def accept(data: Any) -> None:
        hello = load_hello(data, known)
        handled = {known[offer.name].name for offer in hello.hooks}
        missing = [hook for hook in registered if hook not in handled]
        if missing:
            raise ProtocolError(
                f"it does not handle {', '.join(map(repr, missing))}, which it is registered "
                f"for; fix the plugin, or the `hooks:` of {name!r} in the config"
            )

    return accept


def _index(specs: Mapping[str, HookSpec[Any]] | None) -> dict[str, HookSpec[Any]]:
    if specs is not None:
        return dict(specs)
    return {key: spec for spec in CATALOG for key in spec.keys}


def _known(hook_name: str, known: Mapping[str, HookSpec[Any]]) -> str:
    spec = known.get(hook_name)
    if spec is None:
        raise unknown_hook(hook_name, known)
    return spec.name


def _version() -> str:
    from .. import __version__

    return __version__
