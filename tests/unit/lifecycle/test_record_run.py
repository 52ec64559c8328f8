"""The pipeline records a finished run's checkpoints; a registry error costs one line."""

from __future__ import annotations

import logging
from pathlib import Path

from tests.unit.lifecycle.helpers import lifecycle_checkpoint
from tests.unit.live.helpers import make_strategy_registry

from evotrader.config import TrainingConfig
from evotrader.lifecycle.states import CANDIDATE
from evotrader.lifecycle.store import REGISTRY_FILE, ModelRegistry
from evotrader.strategies.spec import StrategySpec
from evotrader.training.pipeline import StageResult, record_run

SPEC = StrategySpec.build("trend-following/macd", ["GOOG"])


def _results(run_dir: Path) -> dict[str, StageResult]:
    data = {"source": "embedded", "symbol": "GOOG", "options": {}}
    figures = {"sharpe": 0.5}
    results = {}
    for seed, (stage, name) in enumerate(
        (("stage_1_ppo", "stage_1_ppo"), ("stage_4_autonomous", "autonomous_final"))
    ):
        path = run_dir / f"GOOG_{name}.pth"
        lifecycle_checkpoint(path, seed, extra={"stage": stage, "data": data})
        results[stage] = StageResult(str(path), figures, 1.0)
    strategies = make_strategy_registry(run_dir / "strategies.sqlite", SPEC)
    results["strategy_search"] = StageResult(str(strategies), figures, 1.0)
    return results


def test_every_checkpoint_of_a_run_is_recorded_once(tmp_path: Path, caplog) -> None:
    config = TrainingConfig(run_name="run", runs_dir=str(tmp_path))
    results = _results(tmp_path / "run")
    caplog.set_level(logging.INFO, "evotrader")
    record_run(config, results)
    record_run(config, results)  # a rerun of the finished run records nothing new
    with ModelRegistry(tmp_path / REGISTRY_FILE) as registry:
        entries = registry.entries()
        assert [(e.path, e.strategy_id, e.state) for e in entries] == [
            (results["stage_1_ppo"].checkpoint, None, CANDIDATE),
            (results["stage_4_autonomous"].checkpoint, None, CANDIDATE),
            (results["strategy_search"].checkpoint, SPEC.spec_id, CANDIDATE),  # validated
        ]
        assert registry.history(1)[0].reason == "recorded by run run"
    assert (
        "entries 1 stage_1_ppo (candidate), 2 stage_4_autonomous (candidate), 3 strategy"
        in caplog.text
    )


def test_a_registry_error_is_one_warning_and_the_run_stands(tmp_path: Path, caplog) -> None:
    config = TrainingConfig(run_name="run", registry_url="nosuchdialect://user:secret@host/db")
    record_run(config, _results(tmp_path))
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "run run not recorded" in warning.getMessage()
    assert "registry record PATH" in warning.getMessage()
    assert "secret" not in warning.getMessage()
