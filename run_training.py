"""Staged training entry point (a Hydra app): `python run_training.py [overrides]`.

Loads the configured bars, splits them by time, fits the feature pipeline on the
training split, and runs the configured stages in order under runs/<run_name>/.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from evotrader.backtest.engine import run_backtest
from evotrader.backtest.policies import MovingAverageCrossover
from evotrader.config import (
    TrainingConfig,
    bars_from,
    execution_from,
    pipeline_from,
    register_configs,
    splits_from,
)

register_configs()


@hydra.main(version_base=None, config_path="configs", config_name="training_sequence")
def main(cfg: DictConfig) -> None:
    config: TrainingConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    bars = bars_from(config.data)
    splits = splits_from(config.data, bars)
    print(f"[data] {config.data.source}:{config.data.symbol}")
    print(splits.describe())
    pipeline = pipeline_from(config.features).fit(splits.train)
    validation = splits.validation.index
    baseline = run_backtest(
        MovingAverageCrossover(pipeline, fast=10, slow=min(50, config.env.window)),
        bars.loc[: validation[-1]],
        start=validation[0],
        pipeline=pipeline,
        window=config.env.window,
        execution=execution_from(config.env.execution),
        initial_cash=config.env.initial_cash,
    )
    print(baseline.report("Baseline: moving-average crossover, validation split, after costs"))
    if not config.stages:
        print(
            "\nNo training stages are configured yet: `stages` in "
            "configs/training_sequence.yaml is empty (stage_1_ppo arrives with the PPO stage)."
        )


if __name__ == "__main__":
    main()
