"""Shared fixtures: small, seeded data made by the tests themselves."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from tests.support.threads import torch_threads

from evotrader.data import FeaturePipeline, generate_synthetic


@pytest.fixture(scope="session")
def bars() -> pd.DataFrame:
    """600 bars of regime-switching synthetic OHLCV (seeded)."""
    return generate_synthetic(600, seed=7, kind="regimes").bars


@pytest.fixture(scope="session")
def pipeline(bars: pd.DataFrame) -> FeaturePipeline:
    """Features fitted on the first half only, as training would."""
    return FeaturePipeline().fit(bars.iloc[:300])


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """The test on one torch thread: small models on busy shared cores train fastest so."""
    with torch_threads(1):
        yield


SLOW_FOLDERS = frozenset({"integration", "e2e"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Integration and end-to-end tests start Ray, train and run scripts: `slow` keeps them out
    of `make test-fast` (unit tests only, under 5 minutes) while `make test` runs them all."""
    for item in items:
        if SLOW_FOLDERS.intersection(item.path.relative_to(item.config.rootpath).parts):
            item.add_marker(pytest.mark.slow)
