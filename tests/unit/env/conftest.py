"""Fixtures of the env tests: a small aligned universe made by the tests themselves."""

from __future__ import annotations

import pandas as pd
import pytest

from evotrader.data import FeaturePipeline, generate_synthetic


@pytest.fixture(scope="session")
def universe() -> dict[str, pd.DataFrame]:
    """Three symbols, 500 seeded synthetic bars each, on one business-day calendar."""
    kinds = {"AAA": ("regimes", 11), "BBB": ("random_walk", 12), "CCC": ("momentum", 13)}
    return {
        symbol: generate_synthetic(500, seed=seed, kind=kind).bars
        for symbol, (kind, seed) in kinds.items()
    }


@pytest.fixture(scope="session")
def universe_pipeline(universe: dict[str, pd.DataFrame]) -> FeaturePipeline:
    """Features fitted on the first 200 bars of every symbol, as training would."""
    return FeaturePipeline().fit([frame.iloc[:200] for frame in universe.values()])
