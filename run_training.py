"""Staged training entry point (a Hydra app): `python run_training.py [overrides]`.

Runs the stages listed in configs/training_sequence.yaml under runs/<run_name>/; the same
command again skips completed stages and resumes an interrupted one.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from evotrader.config import TrainingConfig, register_configs
from evotrader.training.pipeline import run_pipeline

register_configs()


@hydra.main(version_base=None, config_path="configs", config_name="training_sequence")
def main(cfg: DictConfig) -> None:
    config: TrainingConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    if not config.stages:
        print("No stages configured: `stages` in configs/training_sequence.yaml is empty.")
        return
    run_pipeline(config)


if __name__ == "__main__":
    main()
