"""Autonomous-stage parts: genome mapping, archive, fitness, self-modification, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evotrader.config import FitnessConfig
from evotrader.data import generate_synthetic, validate_ohlcv
from evotrader.nas import Evolution, Offspring, SearchSpace
from evotrader.nas.self_modification import Thresholds, check_performance_and_adapt
from evotrader.training import augmentation
from evotrader.training.autonomous_trainer import diversity, fitness
from evotrader.training.population import Archive, Member, agent_settings, check_genes

GENES = {
    "model_dim": {"kind": "choice", "group": "architecture", "values": [8, 16]},
    "num_heads": {"kind": "choice", "group": "architecture", "values": [1, 2]},
    "window": {"kind": "choice", "group": "architecture", "values": [16, 24]},
    "lr": {"kind": "log_float", "group": "hyperparameter", "low": 1e-4, "high": 1e-2},
    "risk_scale": {"kind": "float", "group": "hyperparameter", "low": 0.5, "high": 1.5},
}
METRICS = {"sharpe": 1.0, "max_drawdown": -0.1, "n_trades": 20.0, "profit_factor": 1.5}


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace.from_config(GENES)


def test_a_genome_becomes_the_agent_it_describes(space: SearchSpace) -> None:
    genome = {"model_dim": 16, "num_heads": 2, "window": 24, "lr": 0.002, "risk_scale": 0.8}
    architecture, hyperparameters = agent_settings(genome, 6, (-1.0, 0.0, 1.0), {}, {"epochs": 2})
    assert architecture.encoder.model_dim == 16 and architecture.encoder.num_heads == 2
    assert architecture.encoder.input_dim == 6 and architecture.window == 24
    assert hyperparameters.lr == 0.002 and hyperparameters.risk_scale == 0.8
    assert hyperparameters.epochs == 2  # fixed settings apply under the genes


def test_genes_that_map_onto_nothing_are_named() -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        check_genes(
            SearchSpace.from_config(
                {**GENES, "learning_rate": {"kind": "float", "low": 0.0, "high": 1.0}}
            )
        )


def test_archive_round_trips_and_knows_lineage_and_the_champion(tmp_path: Path) -> None:
    archive = Archive(
        members=[
            Member(0, 0, {"a": 1}, (), "random", 0.5, METRICS, [0.0, 0.01]),
            Member(1, 0, {"a": 2}, (), "random", 1.5, METRICS, [0.0, 0.02]),
            Member(2, 1, {"a": 3}, (1,), "mutation", 1.2, METRICS, [0.0, 0.01]),
            Member(3, 2, {"a": 4}, (2, 0), "crossover", 1.5, METRICS, [0.0, 0.03]),
        ],
        offspring=[Offspring({"a": 5}, (3,), "elite")],
        adaptations=[{"agent": 2, "action": "scale_risk_down", "reason": "x", "generation": 1}],
        generations_done=3,
    )
    archive.save(tmp_path / "archive.json")
    loaded = Archive.load(tmp_path / "archive.json")
    assert loaded == archive
    assert loaded.champion().id == 1  # ties go to the earlier member
    assert [step["id"] for step in loaded.lineage(3)] == [3, 2, 1]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json"):
        Archive.load(tmp_path / "bad.json")


def test_fitness_penalises_drawdown_past_the_limit_and_too_few_trades() -> None:
    config = FitnessConfig(
        drawdown_limit=0.2, drawdown_penalty=4.0, min_trades=10, trades_penalty=1.0
    )
    assert fitness(METRICS, config) == pytest.approx(1.0)
    assert fitness(METRICS | {"max_drawdown": -0.3}, config) == pytest.approx(1.0 - 0.4)
    assert fitness(METRICS | {"n_trades": 5.0}, config) == pytest.approx(0.5)
    assert fitness(METRICS | {"sharpe": float("nan")}, config) == -1e9


class _Agent:
    def __init__(self, genome: dict) -> None:
        self.id, self.genome = 7, genome


def test_self_modification_acts_on_each_threshold(space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    controller = Evolution(space)
    rules = Thresholds(max_drawdown=0.2, risk_factor=0.5, min_profit_factor=1.0, min_trades=5)
    genome = {"model_dim": 16, "num_heads": 2, "window": 24, "lr": 0.002, "risk_scale": 1.2}

    calm = _Agent(dict(genome))
    assert check_performance_and_adapt(calm, METRICS, rules, controller, rng) == []
    assert calm.genome == genome

    deep = _Agent(dict(genome))
    [done] = check_performance_and_adapt(
        deep, METRICS | {"max_drawdown": -0.35}, rules, controller, rng
    )
    assert done.action == "scale_risk_down" and "35.0%" in done.reason
    assert deep.genome["risk_scale"] == pytest.approx(0.6)

    idle = _Agent(dict(genome))
    [done] = check_performance_and_adapt(idle, METRICS | {"n_trades": 2.0}, rules, controller, rng)
    assert done.action == "scale_risk_up" and idle.genome["risk_scale"] == pytest.approx(1.5)

    losing = _Agent(dict(genome))
    [done] = check_performance_and_adapt(
        losing, METRICS | {"profit_factor": 0.6}, rules, controller, rng
    )
    assert done.action == "new_architecture" and "0.60" in done.reason
    assert any(losing.genome[k] != genome[k] for k in space.names("architecture"))
    assert losing.genome["lr"] == genome["lr"]

    off = Thresholds(max_drawdown=0.0, risk_factor=0.5, min_profit_factor=0.0, min_trades=0)
    bad = METRICS | {"max_drawdown": -0.9, "profit_factor": 0.1, "n_trades": 1.0}
    assert check_performance_and_adapt(_Agent(dict(genome)), bad, off, controller, rng) == []


def test_diversity_is_zero_for_clones_and_one_for_strangers() -> None:
    assert diversity([{"a": 1, "b": 2}, {"a": 1, "b": 2}]) == 0.0
    assert diversity([{"a": 1, "b": 2}, {"a": 3, "b": 4}]) == 1.0


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return generate_synthetic(600, seed=5, kind="ar1").bars


def test_augmentations_keep_the_bars_contract_and_change_the_path(history: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    original = augmentation.log_returns(history)
    for bars in (
        augmentation.block_bootstrap(history, 20, rng),
        augmentation.noisy(history, 0.25, rng),
        augmentation.garch_paths(history, rng),
    ):
        validate_ohlcv(bars)
        assert bars.index.equals(history.index)
        assert not np.allclose(augmentation.log_returns(bars), original)
        assert 0.5 < augmentation.log_returns(bars).std() / original.std() < 2.0
    # A block bootstrap only reuses returns that happened.
    resampled = augmentation.log_returns(augmentation.block_bootstrap(history, 20, rng))
    assert np.isin(np.round(resampled, 12), np.round(original, 12)).all()


def test_augmentations_are_reproducible_from_their_generator(history: pd.DataFrame) -> None:
    first = augmentation.garch_paths(history, np.random.default_rng(3))
    again = augmentation.garch_paths(history, np.random.default_rng(3))
    pd.testing.assert_frame_equal(first, again)


def test_adversarial_picks_the_copy_that_hurts_the_agent_most(history: pd.DataFrame) -> None:
    def long_return(bars: pd.DataFrame) -> float:
        return float(np.log(bars["close"].iloc[-1] / bars["close"].iloc[0]))

    chosen = augmentation.adversarial(history, 0.5, 6, np.random.default_rng(1), long_return)
    rng = np.random.default_rng(1)
    candidates = [augmentation.noisy(history, 0.5, rng) for _ in range(6)]
    assert long_return(chosen) == min(long_return(c) for c in candidates)
