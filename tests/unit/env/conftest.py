"""Fixtures of the env tests: small aligned bars made by the tests themselves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evotrader.data import FeaturePipeline, generate_synthetic


def with_gaps(bars: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The bars with overnight gaps: synthetic bars open at the previous close, which would
    let a next-open fill pass for the last close in a test."""
    gap = np.exp(np.random.default_rng(seed).normal(0.0, 0.003, len(bars)))
    gapped = bars.assign(open=bars["open"] * gap)
    return gapped.assign(
        high=np.maximum(gapped["high"], gapped["open"]),
        low=np.minimum(gapped["low"], gapped["open"]),
    )


@pytest.fixture(scope="session")
def gapped_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """The shared 600 regime bars with overnight gaps."""
    return with_gaps(bars, seed=1)


@pytest.fixture(scope="session")
def universe() -> dict[str, pd.DataFrame]:
    """Three symbols, 500 seeded synthetic bars each with gaps, on one business-day calendar."""
    kinds = {"AAA": ("regimes", 11), "BBB": ("random_walk", 12), "CCC": ("momentum", 13)}
    return {
        symbol: with_gaps(generate_synthetic(500, seed=seed, kind=kind).bars, seed)
        for symbol, (kind, seed) in kinds.items()
    }


@pytest.fixture(scope="session")
def universe_pipeline(universe: dict[str, pd.DataFrame]) -> FeaturePipeline:
    """Features fitted on the first 200 bars of every symbol, as training would."""
    return FeaturePipeline().fit([frame.iloc[:200] for frame in universe.values()])


@pytest.fixture(scope="session")
def crash_bars() -> pd.DataFrame:
    """300 flat-ish bars that lose 40% over the five bars after bar 200."""
    n, at = 300, 200
    close = 100.0 * np.exp(0.0005 * np.sin(np.arange(n)))
    close[at:] *= np.r_[np.linspace(1.0, 0.6, 5), np.full(n - at - 5, 0.6)]
    return pd.DataFrame(
        {
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": 1e6 + np.arange(n) % 7,
        },
        index=pd.date_range("2020-01-01", periods=n, freq="B", name="timestamp"),
    )
