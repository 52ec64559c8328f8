"""Seconds per generation of the autonomous stage, population 8, with 1 and 2 Ray workers.

Runs stage_4_autonomous (quick profile, embedded GOOG) for two generations with Ray
limited to 1 and then 2 CPUs, and reports the second generation's wall time (the first
also pays for starting the workers) and the parallel efficiency t1 / (2 * t2).
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from common import run_training


def generation_seconds(workers: int, population: int, runs_dir: Path) -> float:
    done = run_training(
        f"runs_dir={runs_dir}",
        f"run_name=workers{workers}",
        "stages=[stage_4_autonomous]",
        f"stage_4_autonomous.population={population}",
        "stage_4_autonomous.generations=2",
        f"ray.num_cpus={workers}",
        capture=True,
    )
    times = re.findall(r"generation 2 +\((\d+)s\)", done.stdout)
    if not times:
        raise RuntimeError(f"no generation time in the output:\n{done.stdout[-2000:]}")
    return float(times[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as runs:
        one = generation_seconds(1, args.population, Path(runs))
        two = generation_seconds(2, args.population, Path(runs))
    print(f"population {args.population}: 1 worker {one:.0f} s/generation, 2 workers {two:.0f} s")
    print(f"speed-up {one / two:.2f}x, parallel efficiency {one / (2 * two):.0%}")


if __name__ == "__main__":
    main()
