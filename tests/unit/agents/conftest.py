"""A tiny learned agent on a planted AR(1) series, shared by the agent tests (seconds to build)."""

from __future__ import annotations

import pytest
from tests.support.threads import torch_threads
from tests.unit.agents.helpers import Learned, learn_tiny

from evotrader.data import FeaturePipeline, generate_synthetic, split_by_time
from evotrader.reasoning import ChartistConfig, PatternRecognizer, train_chartist


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread: None) -> None:
    """Every agent test on one torch thread (``one_torch_thread``): models this small run
    fastest so."""


@pytest.fixture(scope="session")
def chartist() -> PatternRecognizer:
    """One small trained Chartist shared by every agent, as a population would share it."""
    return train_chartist(ChartistConfig(length=16, train_samples=256, epochs=1), seed=0)


@pytest.fixture(scope="session")
def learned(chartist: PatternRecognizer) -> Learned:
    with torch_threads(1):
        bars = generate_synthetic(900, seed=1, kind="ar1", ar_coef=0.3).bars
        splits = split_by_time(bars, train=0.7, validation=0.15, test=0.15)
        pipeline = FeaturePipeline().fit(splits.train)
        agent, report = learn_tiny(bars, splits, pipeline, chartist)
    return Learned(bars, splits, pipeline, agent, report)
