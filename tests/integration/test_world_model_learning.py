"""The world model finds a planted AR(1) edge on unseen bars and claims none on a random walk.

Both series are trained on the train split and judged on the validation split: the
information coefficient of the next-bar median forecast, and the next-bar pinball loss
against the training split's unconditional quantiles.
"""

import pytest
import torch
from tests.integration.small_models import WINDOW, small_encoder, splits_and_features

from evotrader.data import generate_synthetic
from evotrader.models.world_model import TransformerWorldModel
from evotrader.models.world_model_training import (
    WorldModelTrainingConfig,
    evaluate_world_model,
    train_world_model,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models train fastest so


def validation_metrics(kind: str) -> dict[str, float]:
    bars = generate_synthetic(3000, seed=0, kind=kind).bars
    splits, pipeline = splits_and_features(bars)
    torch.manual_seed(0)
    model = TransformerWorldModel(small_encoder(pipeline.num_features), num_actions=3)
    config = WorldModelTrainingConfig(epochs=10)
    train_world_model(model, splits.train, pipeline, WINDOW, config=config, seed=0)
    metrics = evaluate_world_model(
        model, bars, splits.validation, pipeline, WINDOW, train=splits.train
    )
    print(
        f"{kind}: IC {metrics['ic']:+.3f} (t {metrics['ic_t']:+.2f}, n {metrics['n']:.0f}), "
        f"next-bar pinball model {metrics['pinball_model_next']:.6f} vs historical "
        f"{metrics['pinball_historical_next']:.6f}"
    )
    return metrics


def test_world_model_finds_a_planted_ar1_signal_out_of_sample() -> None:
    metrics = validation_metrics("ar1")  # ar_coef 0.3: the best forecast has IC about 0.3
    assert metrics["ic"] > 0.15 and metrics["ic_t"] > 3.0
    assert metrics["pinball_model_next"] < 0.98 * metrics["pinball_historical_next"]


def test_world_model_reports_no_edge_on_a_random_walk() -> None:
    metrics = validation_metrics("random_walk")
    assert abs(metrics["ic_t"]) < 2.5
    assert metrics["pinball_model_next"] > 0.99 * metrics["pinball_historical_next"]
