"""Market data for evotrader: every source yields frames that satisfy the bars contract.

Start with ``load_bars("embedded", "GOOG")`` (offline real data) or
``generate_synthetic(kind="ar1")`` (data with a known, learnable signal).
"""

from evotrader.data.errors import DataError
from evotrader.data.features import FeaturePipeline
from evotrader.data.loader import list_symbols, load_bars
from evotrader.data.reference import DataRef, data_roots
from evotrader.data.sources.synthetic import REGIMES, SyntheticBars, generate_synthetic
from evotrader.data.splits import TimeSplits, split_by_time, walk_forward_folds
from evotrader.data.validation import validate_ohlcv

__all__ = [
    "REGIMES",
    "DataError",
    "DataRef",
    "FeaturePipeline",
    "SyntheticBars",
    "TimeSplits",
    "data_roots",
    "generate_synthetic",
    "list_symbols",
    "load_bars",
    "split_by_time",
    "validate_ohlcv",
    "walk_forward_folds",
]
