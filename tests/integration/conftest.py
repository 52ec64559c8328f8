"""Integration fixtures: a local Ray session and stage contexts built from the real configs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray

from evotrader.config import (
    TrainingConfig,
    bars_from,
    load_training_config,
    pipeline_from,
    splits_from,
)
from evotrader.training.pipeline import StageContext
from evotrader.training.run_folder import FINGERPRINT_FILE, Fingerprint, fingerprint_values


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A private local Ray ("local": never another instance running on the machine)."""
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield


def training_config(*overrides: str) -> TrainingConfig:
    """The configs/ tree composed with ``overrides``, as run_training.py would see it."""
    return load_training_config(overrides)


@pytest.fixture
def stage_context(tmp_path: Path) -> Callable[..., StageContext]:
    """Build the context one stage would get from the pipeline, for ``overrides``."""

    def make(name: str, *overrides: str, run_dir: Path | None = None) -> StageContext:
        config = training_config(*overrides)
        bars = bars_from(config.data)
        splits = splits_from(config.data, bars)
        pipeline = pipeline_from(config.features).fit(splits.train)
        run_dir = run_dir or tmp_path
        run_dir.mkdir(parents=True, exist_ok=True)
        # the pipeline binds a run folder to its settings before any stage writes
        Fingerprint(fingerprint_values(config, bars), [name]).save(run_dir / FINGERPRINT_FILE)
        return StageContext(name, config, run_dir, bars, splits, pipeline, {})

    return make
