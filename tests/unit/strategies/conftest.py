"""Small seeded data for the strategy tests: embedded GOOG and a planted cointegrated pair."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.unit.strategies.synthetic_pairs import cointegrated_pair

from evotrader.data import load_bars


@pytest.fixture(scope="session")
def goog() -> dict[str, pd.DataFrame]:
    return {"GOOG": load_bars("embedded", "GOOG")}


@pytest.fixture(scope="session")
def pair_data() -> dict[str, pd.DataFrame]:
    return cointegrated_pair()
