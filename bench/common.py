"""What the benches share: the repository root, training through run_training.py, timing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

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


def best_seconds(function: Callable[[], object], repeats: int) -> float:
    """The best of ``repeats`` timings of ``function``, after one warm-up call."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best
