"""Start-up cost of the command line, beside the floor of any Python httpx client.

Runs, in one go and interleaved (so that machine load hits all alike):

  help   `jobctl --help`
  list   `jobctl list --json` against a running embedded server
  floor  `python -c "import httpx; httpx.get(...)"`: the same GET /api/jobs?limit=20
  python `python -c pass` (for reference)

Each run is a new process (cold interpreter; the OS file cache is warm after the
first round, which is kept out of the figures). The bar: list's median within
1.5x of the floor's. Usage:

  .venv/bin/python bench/cli_startup.py [--runs 20]

It starts its own server on a free loopback port with throwaway config and data
dirs, and stops it by pid at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAR = 1.5
FLOOR = (
    "import os, httpx; httpx.get(os.environ['URL'] + '/api/jobs', params={'limit': 20}, "
    "headers={'Authorization': 'Bearer ' + os.environ['TOKEN']}).raise_for_status()"
)


def start_server(env: dict[str, str], data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobctl", "server", "run", "--port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    state = data_dir / "server.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if state.exists():
            data = json.loads(state.read_text())
            if data["pid"] == proc.pid:
                return proc, str(data["url"])
        if proc.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    raise SystemExit("the server did not answer in 30 s")


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    jobctl = str(Path(sys.executable).parent / "jobctl")
    with tempfile.TemporaryDirectory(prefix="jobctl-bench-") as tmp:
        env = dict(os.environ)
        env.update(
            JOBCTL_CONFIG_DIR=f"{tmp}/config",
            JOBCTL_DATA_DIR=f"{tmp}/data",
            JOBCTL_NO_AUTOSTART="1",
        )
        env.pop("JOBCTL_PROFILE", None)
        env.pop("JOBCTL_API_URL", None)
        env.pop("JOBCTL_TOKEN", None)
        proc, url = start_server(env, Path(tmp) / "data")
        try:
            token = (Path(tmp) / "config" / "server-token").read_text().strip()
            for _ in range(20):  # something to list
                subprocess.run(
                    [jobctl, "submit", "--type", "demo", "--input", '{"steps": 0}', "-q"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    check=True,
                )
            floor_env = dict(env, URL=url, TOKEN=token)
            commands = {
                "help": ([jobctl, "--help"], env),
                "list": ([jobctl, "list", "--json"], env),
                "floor": ([sys.executable, "-c", FLOOR], floor_env),
                "python": ([sys.executable, "-c", "pass"], env),
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            for round_ in range(args.runs + 1):
                for name, (argv, run_env) in commands.items():
                    ms = timed(argv, run_env)
                    if round_ > 0:  # the first round warms the file cache
                        times[name].append(ms)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(20)

    print(f"cold start, {args.runs} runs each, interleaved; wall time in ms")
    print(f"{'command':<8}{'min':>8}{'median':>8}{'p90':>8}")
    for name, values in times.items():
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(f"{name:<8}{ordered[0]:>8.0f}{statistics.median(values):>8.0f}{p90:>8.0f}")
    ratio = statistics.median(times["list"]) / statistics.median(times["floor"])
    verdict = "within" if ratio <= BAR else "OVER"
    print(f"list --json / floor (medians): {ratio:.2f}x ({verdict} the {BAR}x bar)")
    return 0 if ratio <= BAR else 1


if __name__ == "__main__":
    raise SystemExit(main())
