"""What the benches share: the repository root, training through run_training.py, timing."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_training(*overrides: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """``python run_training.py <overrides>`` from the repository root, as a user runs it;
    CalledProcessError when it fails. ``capture`` keeps its output in the result's ``stdout``
    instead of printing it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run_training.py"), *overrides],
        cwd=ROOT,
        capture_output=capture,
        text=True,
        check=True,
    )


def medians(runs: Mapping[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function over ``repeats`` alternated rounds, after a warm-up."""
    for function in runs.values():
        function()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, function in runs.items():
            start = time.perf_counter()
            function()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in seconds.items()}


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """The median of ``repeats`` timings of ``function``, after one warm-up call."""
    return medians({"function": function}, repeats)["function"]


def stepping(env: Any, actions: Iterable[Any], seed: int) -> Callable[[], None]:
    """One run of a single env: ``actions`` stepped from a seeded reset, resetting whenever an
    episode ends (what the env benches time)."""

    def run() -> None:
        env.reset(seed=seed)
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()

    return run


def vector_stepping(env: Any, actions: Iterable[Any], seed: int) -> Callable[[], None]:
    """One run of a vector env: each batch of ``actions`` stepped from a seeded reset."""

    def run() -> None:
        env.reset(seed=seed)
        for batch in actions:
            env.step(batch)

    return run
