"""`interlock claude-hook` cold start: one process per Claude Code hook event.

    python benchmarks/bench_claude_hook.py [--runs N]

Each row starts a fresh Python process N times, feeding it a PreToolUse event for
`ls -la` (let through), and reports the median and minimum wall time and the median CPU
time (user + system, from the children's rusage: steadier than wall time on a busy
machine). Bytecode is cached (as an installed package has it), in a directory of its own.
Rows: bare Python; `import interlock`; the hook with an empty config; with tool-guard;
with the built-ins a coding agent would use (tool-guard and content-policy); and the
same through the typer command line (`interlock.cli.main`), which the `interlock`
script skips for `claude-hook`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENT = (
    b'{"hook_event_name": "PreToolUse", "session_id": "bench", "cwd": "/tmp", '
    b'"tool_name": "Bash", "tool_input": {"command": "ls -la"}, "tool_use_id": "toolu_1"}'
)
CONFIGS = {
    "empty": "plugins: []\n",
    "tool-guard": "plugins:\n  - {name: tool-guard, use: tool-guard, "
    "config: {destructive: deny}}\n",
    "built-ins": "plugins:\n  - {name: tool-guard, use: tool-guard, "
    "config: {destructive: deny}}\n  - {name: content-policy, use: content-policy}\n",
}


def measure(command: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """(median wall, min wall, median CPU) in milliseconds."""
    subprocess.run(command, input=EVENT, env=env, capture_output=True, check=True)  # warm
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, input=EVENT, env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    ms = 1000.0
    return statistics.median(walls) * ms, min(walls) * ms, statistics.median(cpus) * ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        env["INTERLOCK_DATA_DIR"] = str(folder / "data")
        hook = [sys.executable, "-c", "import sys; from interlock._console import main; main()"]
        rows: list[tuple[str, list[str]]] = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("import interlock", [sys.executable, "-c", "import interlock"]),
        ]
        for name, text in CONFIGS.items():
            path = folder / f"{name}.yaml"
            path.write_text(text)
            rows.append((f"claude-hook, {name}", [*hook, "claude-hook", "--config", str(path)]))
        typer = [sys.executable, "-c", "from interlock.cli import main; main()", "claude-hook"]
        rows.append(("via typer, built-ins", [*typer, "--config", str(folder / "built-ins.yaml")]))
        print(f"{'':28s} {'wall p50':>9s} {'wall min':>9s} {'CPU p50':>9s}   ({runs} runs)")
        for name, command in rows:
            wall, low, cpu = measure(command, env, runs)
            print(f"{name:28s} {wall:7.0f}ms {low:7.0f}ms {cpu:7.0f}ms")


if __name__ == "__main__":
    main()
