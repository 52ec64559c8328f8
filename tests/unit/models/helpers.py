"""Shared pieces of the model tests."""

from __future__ import annotations

from typing import Any

from evotrader.core.checkpoint import Checkpoint


def model_checkpoint(kind: str, model: Any) -> Checkpoint:
    """A checkpoint of ``model``'s architecture and weights alone: no features, env, data or
    metrics, the least a round trip through the checkpoint format needs."""
    return Checkpoint(
        kind=kind,
        architecture=model.architecture(),
        state_dict=model.state_dict(),
        hyperparameters={},
        feature_pipeline={},
        env={},
        symbol="TEST",
        data_range={},
        metrics={},
    )
