"""Real market data bundled with installed pip packages: offline, reproducible, never in git.

Where each symbol comes from:

- ``GOOG`` (daily 2004-2013) and ``EURUSD`` (hourly 2017-2018): ``backtesting.test``.
- ``AAPL``, ``MSFT``, ``IBM`` and ``GOOG-BOKEH`` (daily 2000-03 to 2013-03, public domain):
  ``bokeh_sampledata.stocks``. Raw prices there are not split-adjusted (AAPL halves on
  2000-06-21 and 2005-02-28), so open/high/low/close are multiplied by ``adj_close / close`` and
  volume divided by it. The raw rows are OHLC-consistent and scaling a row by one positive factor
  keeps them so, hence no repair is applied. Adjustment also folds in dividends, so old prices
  sit slightly below split-only levels.
- ``SP500`` and ``NASDAQ`` (daily 1999-2018): ``arch.data``; index levels, volume as given.

The heavy imports happen on first use, and each frame is loaded once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

import pandas as pd

from evotrader.data.errors import DataError
from evotrader.data.validation import normalize_columns, validate_ohlcv


def _backtesting(name: str) -> pd.DataFrame:
    """A sample frame from ``backtesting.test`` (already OHLCV, capitalised names)."""
    from backtesting import test

    return normalize_columns(getattr(test, name))


def _bokeh(name: str) -> pd.DataFrame:
    """A ``bokeh_sampledata`` stock, split-adjusted through its ``adj_close`` column."""
    from bokeh_sampledata import stocks

    raw = pd.DataFrame(getattr(stocks, name))
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw.pop("date")))
    factor = raw["adj_close"] / raw["close"]
    adjusted = raw[["open", "high", "low", "close"]].mul(factor, axis="index")
    adjusted["volume"] = raw["volume"] / factor
    return adjusted


def _arch(name: str) -> pd.DataFrame:
    """An index series from ``arch.data`` (``sp500`` or ``nasdaq``)."""
    from importlib import import_module

    return normalize_columns(import_module(f"arch.data.{name}").load())


_READERS: dict[str, Callable[[], pd.DataFrame]] = {
    "GOOG": partial(_backtesting, "GOOG"),
    "EURUSD": partial(_backtesting, "EURUSD"),
    "AAPL": partial(_bokeh, "AAPL"),
    "MSFT": partial(_bokeh, "MSFT"),
    "IBM": partial(_bokeh, "IBM"),
    "GOOG-BOKEH": partial(_bokeh, "GOOG"),
    "SP500": partial(_arch, "sp500"),
    "NASDAQ": partial(_arch, "nasdaq"),
}

SYMBOLS: tuple[str, ...] = tuple(_READERS)


@cache
def _cached(symbol: str) -> pd.DataFrame:
    """Read and validate once per process; callers get copies so the cache stays pristine."""
    return validate_ohlcv(_READERS[symbol](), symbol=symbol)


def load_embedded(symbol: str) -> pd.DataFrame:
    """Bars for an embedded ``symbol`` (case-insensitive), as a fresh copy."""
    key = symbol.upper()
    if key not in _READERS:
        raise DataError(f"unknown embedded symbol {symbol!r}; available: {', '.join(SYMBOLS)}")
    return _cached(key).copy()
