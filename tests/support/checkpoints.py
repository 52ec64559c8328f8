"""Bare checkpoints for the tests of the checkpoint format and of what loads it."""

from __future__ import annotations

from typing import Any

from evotrader.core.checkpoint import Checkpoint


def model_checkpoint(kind: str, model: Any = None) -> Checkpoint:
    """A checkpoint of ``model``'s architecture and weights alone (of nothing when ``model`` is
    None): no features, env, data or metrics, the least the checkpoint format holds."""
    return Checkpoint(
        kind=kind,
        architecture={} if model is None else model.architecture(),
        state_dict={} if model is None else model.state_dict(),
        hyperparameters={},
        feature_pipeline={},
        env={},
        symbol="TEST",
        data_range={},
        metrics={},
    )
