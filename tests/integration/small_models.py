"""What the learning tests share: the train split and the small model's encoder (window 32)."""

from __future__ import annotations

import pandas as pd

from evotrader.data import FeaturePipeline, TimeSplits, split_by_time
from evotrader.models import TransformerSpec

WINDOW = 32


def splits_and_features(bars: pd.DataFrame) -> tuple[TimeSplits, FeaturePipeline]:
    """70/15/15 time splits of ``bars`` and features fitted on the train split alone."""
    splits = split_by_time(bars, train=0.7, validation=0.15, test=0.15)
    return splits, FeaturePipeline().fit(splits.train)


def small_encoder(input_dim: int) -> TransformerSpec:
    """The encoder of configs/model/small.yaml (the quick profile's) over ``WINDOW`` bars."""
    return TransformerSpec(
        input_dim=input_dim,
        model_dim=32,
        num_heads=4,
        num_layers=1,
        ff_dim=64,
        output_dim=32,
        max_len=WINDOW,
    )
