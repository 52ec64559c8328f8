"""TradableCheckpoint.of: a checkpoint's env comes back as its EnvSpec, or as an error naming
the file; a checkpoint without a data reference has no bars of its own."""

from __future__ import annotations

from typing import Any

import pytest

from evotrader.core.checkpoint import Checkpoint, CheckpointError
from evotrader.data import FeaturePipeline, generate_synthetic
from evotrader.env import EnvSpec
from evotrader.training.guards import TradableCheckpoint


def _checkpoint(env: dict[str, Any]) -> Checkpoint:
    pipeline = FeaturePipeline().fit(generate_synthetic(n_bars=300, seed=0).bars)
    return Checkpoint(
        kind="ppo",
        architecture={},
        state_dict={},
        hyperparameters={},
        feature_pipeline=pipeline.state_dict(),
        env=env,
        symbol="GOOG",
        data_range={},
        metrics={},
    )


def test_the_checkpoints_env_comes_back_as_its_spec() -> None:
    spec = EnvSpec(window=8, positions=(0.0, 1.0), agent_state=False)
    tradable = TradableCheckpoint.of(_checkpoint(spec.to_dict()), "runs/x.pth")
    assert tradable.spec == spec and tradable.data is None
    with pytest.raises(CheckpointError, match=r"^runs/x\.pth: names no data source"):
        tradable.bars()


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"window": 0}, "window must be >= 1"), ({"cost_bps": 1.5}, r"unknown keys \['cost_bps'\]")],
)
def test_a_damaged_env_is_a_checkpoint_error_naming_the_file(
    changes: dict[str, Any], message: str
) -> None:
    damaged = EnvSpec().to_dict() | changes
    with pytest.raises(CheckpointError, match=rf"^runs/x\.pth: its env .*{message}"):
        TradableCheckpoint.of(_checkpoint(damaged), "runs/x.pth")
