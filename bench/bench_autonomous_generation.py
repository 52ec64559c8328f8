"""Seconds per generation of the autonomous stage, population 8, with 1, 2, ... Ray workers.

Runs stage_4_autonomous (quick profile, embedded GOOG) with Ray limited to k CPUs for each
worker count k (1, 2, 4, ... up to the machine's cores), ``--repeats`` times, and reports the
median wall time of the generations after the first (the first also pays for starting the
workers), the parallel efficiency t1 / (k * tk), and the driver's serial share: the part of
a generation before its first job is submitted and after its last result arrives (parents
loaded, the last checkpoint, trials, breeding, the archive, TensorBoard), as the stage logs it.
Efficiency only means something on cores nobody else is using: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
from pathlib import Path

from common import run_training

GENERATION = re.compile(r"generation (\d+) +\((\d+(?:\.\d+)?)s(?:, driver (\d+(?:\.\d+)?)s)?\)")


def generation_seconds(
    workers: int, population: int, generations: int, runs_dir: Path, name: str
) -> list[tuple[float, float | None]]:
    """(seconds, driver seconds) of each generation after the first, in one fresh run."""
    done = run_training(
        f"runs_dir={runs_dir}",
        f"run_name={name}",
        "stages=[stage_4_autonomous]",
        f"stage_4_autonomous.population={population}",
        f"stage_4_autonomous.generations={generations}",
        f"ray.num_cpus={workers}",
        capture=True,
    )
    found = [
        (float(seconds), float(driver) if driver else None)
        for step, seconds, driver in GENERATION.findall(done.stdout)
        if int(step) > 1
    ]
    if not found:
        raise RuntimeError(f"no generation time in the output:\n{done.stdout[-2000:]}")
    return found


def default_workers() -> list[int]:
    """1, 2, 4, ... up to the machine's cores (at least 1 and 2)."""
    cores, counts = os.cpu_count() or 2, [1, 2]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=3, help="timed: all but the first")
    parser.add_argument("--repeats", type=int, default=3, help="runs per worker count")
    parser.add_argument("--workers", type=int, nargs="+", default=default_workers())
    args = parser.parse_args()
    if args.generations < 2:
        parser.error("--generations must be >= 2 (the first is not timed)")
    samples: dict[int, list[tuple[float, float | None]]] = {k: [] for k in args.workers}
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    with tempfile.TemporaryDirectory() as runs:
        for repeat in range(args.repeats):  # worker counts alternate, so load drifts hit all
            for k in args.workers:
                found = generation_seconds(
                    k, args.population, args.generations, Path(runs), f"w{k}r{repeat}"
                )
                samples[k] += found
                times = ", ".join(f"{s:.1f}" for s, _ in found)
                print(f"  {k} workers, run {repeat + 1}: {times} s", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    one = statistics.median(s for s, _ in samples[args.workers[0]]) * args.workers[0]
    print(
        f"population {args.population}, median of {args.repeats} runs x "
        f"{args.generations - 1} timed generations (efficiency against {args.workers[0]} "
        "worker(s)):"
    )
    for k in args.workers:
        seconds = [s for s, _ in samples[k]]
        tk = statistics.median(seconds)
        shares = [d / s for s, d in samples[k] if d is not None]
        share = f"{statistics.median(shares):.0%}" if shares else "not logged"
        print(
            f"{k:>3} workers: {tk:6.1f} s/generation (range {min(seconds):.1f}-"
            f"{max(seconds):.1f}), speed-up {one / tk:.2f}x, efficiency {one / (k * tk):.0%}, "
            f"driver serial share {share}"
        )


if __name__ == "__main__":
    main()
