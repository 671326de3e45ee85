"""The fleet example (examples/fleet, docs/fleet.md) runs as documented: two plugin-server
replicas sharing state in Redis, and an agent whose limits and budgets live in Redis and
whose session log and audit records go to PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT

BOUND = 120.0  # the most a command here may take before the test fails; never reached
FLEET = ROOT / "examples" / "fleet"
PLUGIN = ROOT / "examples" / "plugins" / "redact-email"


class Replica:
    """`interlock serve redact:redact_email --http` as the compose file runs it."""

    def __init__(self, env: dict[str, str], tokens: Path) -> None:
        command = [sys.executable, "-m", "interlock", "serve", "redact:redact_email"]
        command += ["--http", "127.0.0.1:0", "--token-file", str(tokens)]
        command += ["--deployment", env["DEPLOYMENT"]]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, cwd=ROOT)
        assert self.process.stdout is not None
        first = self.process.stdout.readline().decode()  # printed once it listens
        self.url = first.removeprefix("listening on ").strip()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def fleet(
    shared_redis: tuple[str, str], postgres_url: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The environment of the compose file's workers, with two replicas on loopback."""
    url, deployment = shared_redis
    (tmp_path / "tokens").write_text("t0ken-for-tests\n")
    env = {**os.environ, "PYTHONPATH": str(PLUGIN), "REDIS_URL": url, "DEPLOYMENT": deployment}
    env |= {"INTERLOCK_STATE": url, "PLUGIN_TOKEN": "t0ken-for-tests"}
    replicas = [Replica(env, tmp_path / "tokens") for _ in range(2)]
    try:
        assert all(r.url.startswith("http://127.0.0.1:") for r in replicas)
        env |= {"PLUGINS_A": replicas[0].url, "PLUGINS_B": replicas[1].url}
        env |= {"INTERLOCK_STORE": postgres_url, "AUDIT_URL": postgres_url}
        yield env
    finally:
        for replica in replicas:
            replica.stop()


def interlock(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "interlock", *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=BOUND)  # fmt: skip


def test_the_fleet_config_checks_and_a_worker_runs_through_the_replicas(
    fleet: dict[str, str],
) -> None:
    config = str(FLEET / "interlock.yaml")
    checked = interlock(fleet, "check", config)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    ran = interlock(fleet, "run", "mail bob@example.com the notes", "--config", config,
                    "--session", "f-1", "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    logged = interlock(fleet, "log", "f-1", "--json")
    assert logged.returncode == 0, logged.stderr
    assert "[email]" in logged.stdout  # the replicas' plugin redacted the message
    assert "bob@example.com" not in logged.stdout.replace("\\u0040", "@")
    assert audited(fleet["AUDIT_URL"], "f-1") >= {"message_received", "pre_llm_call"}


def audited(url: str, session: str) -> set[str]:
    """The hooks the audit log recorded for `session`, read from PostgreSQL."""
    import psycopg

    dsn, _, schema = url.rpartition("schema=")  # the fixture's schema comes last
    with psycopg.connect(dsn.rstrip("?&")) as connection:
        rows = connection.execute(
            f'SELECT hook FROM "{schema}".audit_records WHERE session_id = %s', (session,)
        ).fetchall()
    return {hook for (hook,) in rows}


def test_the_compose_file_names_the_example_config_and_the_same_plugin() -> None:
    compose = (FLEET / "compose.yaml").read_text()
    assert "examples/fleet/interlock.yaml" in compose
    assert "redact:redact_email" in compose and "examples/plugins/redact-email" in compose
    assert "--deployment $$DEPLOYMENT" in compose  # the workers' namespace, as in the config
