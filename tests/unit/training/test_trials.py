"""The trial ledger counts every validation candidate once, and the summary names its splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evotrader.config import (
    DataConfig,
    TrainingConfig,
    bars_from,
    pipeline_from,
    splits_from,
)
from evotrader.env import EnvSpec
from evotrader.training.evaluation import validate
from evotrader.training.pipeline import StageContext, StageResult, summary_table
from evotrader.training.trials import TrialLedger, stage_counts


def _ledger(tmp_path: Path) -> TrialLedger:
    return TrialLedger(tmp_path / "run" / "trials.jsonl")


def test_a_rescored_candidate_replaces_its_record_instead_of_adding_a_trial(
    tmp_path: Path,
) -> None:
    ledger = _ledger(tmp_path)
    assert ledger.trials() == []
    ledger.record("stage_1_ppo", "iteration 5", np.array([0.01, -0.02]), np.array([0.0, 0.01]))
    ledger.record("stage_1_ppo", "iteration 10", np.array([0.02, 0.0]), np.array([0.0, 0.01]))
    ledger.record("stage_4_autonomous", "agent 0", np.array([0.0, 0.0]), np.array([0.0, 0.01]))
    ledger.record("stage_1_ppo", "iteration 5", np.array([0.03, 0.0]), np.array([0.0, 0.01]))
    trials = ledger.trials()
    assert [t.key for t in trials] == [
        ("stage_1_ppo", "iteration 5"),
        ("stage_1_ppo", "iteration 10"),
        ("stage_4_autonomous", "agent 0"),
    ]
    assert trials[0].returns == (0.03, 0.0)  # the newest evaluation of iteration 5
    assert trials[0].excess == pytest.approx([0.03, -0.01])
    assert stage_counts(trials) == {"stage_1_ppo": 2, "stage_4_autonomous": 1}


def test_a_line_cut_short_by_a_crash_is_skipped_and_later_records_still_read(
    tmp_path: Path,
) -> None:
    ledger = _ledger(tmp_path)
    ledger.record("stage_1_ppo", "iteration 5", np.array([0.01]), np.array([0.0]))
    with open(ledger.path, "a") as handle:
        handle.write('{"stage": "stage_1_ppo", "label": "iteration 10", "retu')
    assert [t.label for t in ledger.trials()] == ["iteration 5"]
    ledger.record("stage_1_ppo", "iteration 10", np.array([0.02]), np.array([0.0]))
    assert [t.label for t in ledger.trials()] == ["iteration 5", "iteration 10"]


def test_returns_and_benchmark_must_cover_the_same_bars(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="buy-and-hold"):
        _ledger(tmp_path).record("stage_1_ppo", "iteration 5", np.zeros(3), np.zeros(4))


class _Writer:
    def add_scalar(self, *args: object) -> None:
        pass


def test_validate_records_each_evaluation_once_per_iteration(tmp_path: Path) -> None:
    config = TrainingConfig(
        data=DataConfig(source="synthetic", symbol="RANDOM_WALK", options={"n_bars": 600}),
        env=EnvSpec(window=16, agent_state=False),
    )
    bars = bars_from(config.data)
    splits = splits_from(config.data, bars)
    pipeline = pipeline_from(config.features).fit(splits.train)
    ctx = StageContext("stage_1_ppo", config, tmp_path, bars, splits, pipeline, {})
    always_long = lambda observations: np.full(len(observations), 2)  # noqa: E731
    for iteration in (5, 10, 10):  # a resumed stage scores iteration 10 again
        validate(ctx, always_long, iteration, _Writer(), {"sharpe": -np.inf})
    trials = ctx.trials.trials()
    assert [t.label for t in trials] == ["iteration 5", "iteration 10"]
    assert len(trials[0].returns) == len(splits.validation) - 1  # per bar, after the first mark
    assert np.all(trials[0].excess == 0.0)  # always long is buy-and-hold, bar for bar


def _headline(sharpe: float) -> dict[str, float]:
    return {
        "sharpe": sharpe,
        "buy_hold_sharpe": 0.5,
        "total_return": 0.1,
        "buy_hold_return": 0.05,
        "max_drawdown": -0.1,
        "n_trades": 12.0,
    }


def test_the_summary_names_each_split_and_ends_with_the_verdict() -> None:
    verdict = "edge over buy-and-hold: not significant (p=0.412, test split, 44 trials behind "
    results = {
        "stage_1_ppo": StageResult("ppo.pth", _headline(1.2), 10.0),
        "stage_4_autonomous": StageResult(
            "final.pth", _headline(2.0), 20.0, test=_headline(-0.3), verdict=verdict
        ),
    }
    table = summary_table(results)
    validation, test = table.split("test split (touched once)")
    assert "validation split (used for selection)" in validation
    assert "out of sample" not in validation  # selection figures are never out of sample
    assert "out of sample" in test and "-0.30" in test
    assert table.splitlines()[-1] == verdict
    only_validation = summary_table({"stage_1_ppo": results["stage_1_ppo"]})
    assert "test split" not in only_validation and "out of sample" not in only_validation
