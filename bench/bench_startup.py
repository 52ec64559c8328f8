"""Start-up cost: ``--help`` of the scripts, and what importing a light module drags in.

Each command runs ``--runs`` times in a fresh interpreter, alternating with the others so a
busy machine slows them alike; it prints the median wall time (target: under 0.5 s for the
scripts' ``--help``) beside the interpreter's own start (``python -c pass``, the floor) and
``import torch`` (what the scripts used to pay first). Then, per import, which heavy libraries
a fresh interpreter holds afterwards: ``import evotrader.backtest.engine`` should hold no torch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from common import ROOT

HEAVY = ("torch", "matplotlib", "hydra", "ray", "backtesting", "nautilus_trader", "sqlalchemy")
REPORT = f"import json, sys; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
COMMANDS = {
    "python -c pass (floor)": ["-c", "pass"],
    "run_backtest.py --help": ["run_backtest.py", "--help"],
    "run_live_bot.py --help": ["run_live_bot.py", "--help"],
    "import torch (peer)": ["-c", "import torch"],
}
IMPORTS = (
    "evotrader.cli",
    "evotrader.backtest.engine",
    "evotrader.memory",
    "evotrader.live.session",
)


def wall_seconds(args: list[str]) -> float:
    """One fresh interpreter running ``args``, timed from spawn to exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def heavy_after(module: str) -> list[str]:
    """The heavy libraries a fresh interpreter holds after importing ``module``."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}\n{REPORT}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per command")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():
        wall_seconds(command)  # warm the file cache once
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            times[name].append(wall_seconds(command))
    print(f"python {sys.version.split()[0]}; {args.runs} runs each, alternated; wall seconds")
    print(f"{'command':<26}{'median':>8}{'min':>8}{'max':>8}")
    for name, values in times.items():
        print(f"{name:<26}{statistics.median(values):>8.3f}{min(values):>8.3f}{max(values):>8.3f}")
    print("heavy libraries loaded by one import in a fresh interpreter:")
    for module in IMPORTS:
        print(f"  import {module:<28} -> {', '.join(heavy_after(module)) or 'none'}")


if __name__ == "__main__":
    main()
