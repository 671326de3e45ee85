"""An example plugin: local model servers, started, swapped and stopped on demand.

When a model call names a model listed in `models.yaml`, the plugin makes sure that
model's server is the one running (starting it, or stopping another to make room), sends
the call there with the model's sampling settings, and answers with its reply in place
of the agent's own backend (`Respond`). At the end of the session the server stops.

    plugins:
      - name: llm-switch
        use: llm_switch:LLMSwitch            # with this folder on the path
        timeout: 120s                        # a model may take a while to load
        config: {models: models.yaml}

Each model: `binary` (the server's command), `model` (the weights), `ctx_size`, and
`sampling` (request parameters such as `temperature`). The server is started as
`binary --model MODEL --ctx-size N --host 127.0.0.1 --port PORT`, as llama.cpp's
`llama-server` takes them, and is ready when `GET /health` answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from interlock import HookContext, LLMRequest, Plugin, Respond, SessionEnd
from interlock.runtime import OpenAIBackend


class LocalModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    binary: list[str] = Field(min_length=1)
    model: str
    ctx_size: int = Field(default=4096, gt=0)
    sampling: dict[str, Any] = Field(default_factory=dict)


class Models(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, LocalModel]


class LLMSwitchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: str = "models.yaml"
    """The models file (relative to the working folder); the servers start in its folder."""
    startup_timeout: float = Field(default=60.0, gt=0)


class _Server:
    """One running model server."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], port: int) -> None:
        self.name = name
        self.process = process
        self.backend = OpenAIBackend(name, base_url=f"http://127.0.0.1:{port}/v1", api_key="local")

    async def stop(self) -> None:
        await self.backend.aclose()
        self.process.terminate()
        try:
            await asyncio.to_thread(self.process.wait, 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)


class LLMSwitch(Plugin):
    """Routes model calls for local models to a server it runs; see the module docs."""

    name = "llm-switch"
    config_model = LLMSwitchConfig

    def __init__(self, config: LLMSwitchConfig | None = None) -> None:
        self.config = config or LLMSwitchConfig()
        path = Path(self.config.models)
        self.folder = path.parent
        self.models = Models.model_validate(yaml.safe_load(path.read_text())).models
        self.server: _Server | None = None
        self.started: list[str] = []  # every start, in order: what the example shows
        self._lock = asyncio.Lock()

    async def on_pre_llm_call(self, request: LLMRequest, ctx: HookContext) -> Any:
        local = self.models.get(request.model)
        if local is None:
            return None  # not ours: the agent's own backend answers
        async with self._lock:
            server = await self._serving(request.model, local)
            params = {**request.params, **local.sampling}
            response = await server.backend.complete(request.replace(params=params))
        return Respond(response)

    async def on_session_end(self, event: SessionEnd, ctx: HookContext) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        async with self._lock:
            if self.server is not None:
                await self.server.stop()
                self.server = None

    async def _serving(self, name: str, local: LocalModel) -> _Server:
        if self.server is not None and self.server.name == name:
            return self.server
        if self.server is not None:  # one model at a time: make room
            await self.server.stop()
            self.server = None
        port = _free_port()
        command = [*local.binary, "--model", local.model, "--ctx-size", str(local.ctx_size),
                   "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
        process = subprocess.Popen(command, cwd=self.folder, stdout=subprocess.DEVNULL)
        server = _Server(name, process, port)
        try:
            await asyncio.to_thread(_wait_healthy, process, port, self.config.startup_timeout)
        except BaseException:
            await server.stop()
            raise
        self.server = server
        self.started.append(name)
        return server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_healthy(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Until the server answers `/health` (loading a model takes a while), or it dies."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the model server exited with code {process.returncode}")
        health = f"http://127.0.0.1:{port}/health"
        with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=1) as reply:
            if reply.status == 200:
                return
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    raise TimeoutError(f"the model server was not ready within {timeout:g}s")
