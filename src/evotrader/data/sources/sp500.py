"""skfolio's bundled S&P 500 closes: 20 large US stocks, daily 1990-01-02 to 2022-12-28, offline.

The dataset ships inside the skfolio wheel (``skfolio.datasets.load_sp500_dataset``), so it
needs no network. It holds adjusted closing prices only, rounded to three decimals (so early,
low-priced rows such as AAPL near $0.26 move in ticks of about 0.4%), and some early prices
look stale: RRC is unchanged on 55% of its 1990-1995 days, once for 68 days running (other
stocks: 2-5% unchanged days, runs of at most 5). The calendar has no holes, so aligning drops
nothing; slice with ``start`` to skip the stale years where they matter. To keep the bars
contract, each close becomes a bar whose open, high and low equal the close: such bars are
*close-only*, and a decision can only be filled at a later close, never at an "open" that
was never observed (``Universe.close_only`` / ``Universe.note`` say so to the caller).

Volume is unknown. It is stored as 0.0, not NaN, because the bars contract requires finite
volume; 0 reads as "no volume information". Consumers that scale by volume must treat 0 as
missing: the execution model's square-root impact skips bars without volume (it charges no
impact there), and ``volume_z`` features are undefined on it, so neither should be used with
this source (see ``Universe.has_volume``).
"""

from __future__ import annotations

from functools import cache

import pandas as pd

from evotrader.data.errors import DataError
from evotrader.data.validation import validate_ohlcv

# The columns skfolio 0.x/1.x ships; a test checks them against the installed dataset, so the
# registry can list symbols without importing skfolio (about two seconds) at start-up.
SYMBOLS: tuple[str, ...] = (
    "AAPL",
    "AMD",
    "BAC",
    "BBY",
    "CVX",
    "GE",
    "HD",
    "JNJ",
    "JPM",
    "KO",
    "LLY",
    "MRK",
    "MSFT",
    "PEP",
    "PFE",
    "PG",
    "RRC",
    "UNH",
    "WMT",
    "XOM",
)
VOLUME_UNKNOWN = 0.0


@cache
def _prices() -> pd.DataFrame:
    """The dataset's prices (dates x symbols), read once per process."""
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset()


@cache
def _cached(symbol: str) -> pd.DataFrame:
    prices = _prices()
    if symbol not in prices.columns:
        raise DataError(
            f"sp500: the installed skfolio dataset has no column {symbol!r}; "
            f"it has {', '.join(map(str, prices.columns))}"
        )
    close = prices[symbol].dropna()  # a stock not yet listed has no bar, never a filled one
    bars = pd.DataFrame(
        {name: close for name in ("open", "high", "low", "close")}, index=close.index
    )
    bars["volume"] = VOLUME_UNKNOWN
    return validate_ohlcv(bars, symbol=f"sp500:{symbol}")


def load_sp500(symbol: str) -> pd.DataFrame:
    """Close-only bars for one of the 20 stocks (case-insensitive), as a fresh copy."""
    key = symbol.upper()
    if key not in SYMBOLS:
        raise DataError(f"unknown sp500 symbol {symbol!r}; available: {', '.join(SYMBOLS)}")
    return _cached(key).copy()
