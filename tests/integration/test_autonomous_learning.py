"""Evolution finds a planted edge and refuses to invent one on a random walk.

Runs bench/bench_autonomous_learning.py (stage_4_autonomous through run_training.py on a
planted AR(1) series and on a random walk, population 8, 4 generations) and checks its figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_evolution_finds_the_planted_edge_and_no_edge_in_noise(tmp_path: Path) -> None:
    out = tmp_path / "autonomous.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_autonomous_learning.py"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    print(json.dumps(results, indent=2))
    planted, noise = results["AR1"], results["RANDOM_WALK"]

    best = planted["best_fitness_by_generation"]
    best_so_far = [max(best[: i + 1]) for i in range(len(best))]
    assert best_so_far[-1] > best[0]  # a later generation beat the first one's best
    assert planted["test_sharpe"] > planted["test_buy_hold_sharpe"] + 1.0
    assert planted["test_sharpe"] > planted["test_random_sharpe"] + 1.0
    assert planted["dsr"] > 0.95  # the planted edge survives deflation for 32 candidates

    assert noise["dsr"] < 0.95  # on a random walk: no significant edge after selection
    for result in (planted, noise):  # selection favours the fitter half of each generation
        assert result["children_of_better_half"] > result["children_of_worse_half"]
