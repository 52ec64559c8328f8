"""Integration fixtures: a local Ray session and stage contexts built from the real configs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from evotrader.config import TrainingConfig, bars_from, pipeline_from, register_configs, splits_from
from evotrader.training.pipeline import StageContext

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield


def training_config(*overrides: str) -> TrainingConfig:
    """The configs/ tree composed with ``overrides``, as run_training.py would see it."""
    register_configs()
    with initialize_config_dir(str(CONFIGS), version_base=None):
        cfg = compose("training_sequence", overrides=list(overrides))
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


@pytest.fixture
def stage_context(tmp_path: Path) -> Callable[..., StageContext]:
    """Build the context one stage would get from the pipeline, for ``overrides``."""

    def make(name: str, *overrides: str) -> StageContext:
        config = training_config(*overrides)
        bars = bars_from(config.data)
        splits = splits_from(config.data, bars)
        pipeline = pipeline_from(config.features).fit(splits.train)
        return StageContext(name, config, tmp_path, bars, splits, pipeline, {})

    return make
