"""`run_training.py stages=[strategy_search]` offline end to end, then `run_backtest.py --strategy`.

Real processes, real embedded data, the offline generator (no key in the environment), the
registry on SQLite. The search budget is cut to two cycles of three specs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from evotrader.lifecycle.store import ModelRegistry
from evotrader.strategies.registry import Registry
from evotrader.training.strategy_stage import SEARCH_META, Windows

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400
    )


def test_strategy_search_runs_offline_fills_the_registry_and_backtests_its_best(tmp_path) -> None:
    done = _run(
        str(ROOT / "run_training.py"),
        "stages=[strategy_search]",
        f"runs_dir={tmp_path}",
        "run_name=search",
        "strategy_search.evolver.max_cycles=2",
        "strategy_search.evolver.batch_size=3",
        "strategy_search.universes=[[GOOG],[AAPL],[MSFT]]",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "generator offline" in out
    assert "cycle 0: asked 3 explore + 0 exploit" in out and "cycle 1:" in out
    assert "[strategy_search] stopped at max_cycles=2 (cycle 1)" in out
    assert "Strategy leaderboard" in out and "Specs: " in out
    assert "Summary, validation split (used for selection), after costs" in out

    path = tmp_path / "search" / "strategies.sqlite"
    with Registry(path) as registry:
        windows = Windows.from_dict(registry.meta(SEARCH_META)["windows"])
        specs = registry.specs()
        board = registry.leaderboard(limit=None)
        counts = registry.counts()
        screens = [registry.result(s.spec_id, "screen") for s in specs]
        validations = [row.validation for row in board if row.validation is not None]
    assert len(specs) == 6 and all(r is not None for r in screens)
    assert counts["screen"][0] == 6 and counts["validate"][0] >= 1
    assert windows.search_end < windows.validation_start < windows.validation_end
    assert windows.validation_end < windows.test_start
    for result in screens:  # screening never saw the validation or test split
        assert result.equity.index[-1] <= windows.search_end
    for result in validations:  # validation traded the validation split only
        assert result.equity.index[0] == windows.validation_start
        assert result.equity.index[-1] == windows.validation_end
    best = board[0]
    state = json.loads((tmp_path / "search" / "state.json").read_text())
    headline = state["completed"]["strategy_search"]["validation"]
    assert headline["sharpe"] == best.validation.metrics["sharpe"]
    assert headline["buy_hold_return"] == best.validation.benchmark["total_return"]
    assert f"run_backtest.py --strategy {best.spec.spec_id}" in out
    with ModelRegistry(tmp_path / "registry.sqlite") as models:  # the run recorded them
        recorded = {entry.strategy_id for entry in models.entries() if entry.kind == "strategy"}
    passed = {row.spec.spec_id for row in board if row.validation and row.validation.passed}
    assert recorded == passed
    loop = json.loads((tmp_path / "search" / "evolver_state.json").read_text())
    assert (loop["status"], loop["next_cycle"]) == ("stopped", 2)
    assert sorted(loop["tried"]) == sorted(s.spec_id for s in specs)

    tested = _run(
        str(ROOT / "run_backtest.py"), "--strategy", best.spec.spec_id, "--runs-dir", str(tmp_path)
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert "Test split (out of sample, after costs)" in tested.stdout
    report = json.loads(
        (tmp_path / "search" / f"strategy_{best.spec.spec_id}_test.json").read_text()
    )
    assert set(report) >= {"strategy", "buy_and_hold"}
    assert report["buy_and_hold"]["total_return"] != report["strategy"]["total_return"]
