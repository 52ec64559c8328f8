"""One entry point for bars from any source, so callers switch data by changing a string."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import pandas as pd

from evotrader.core.registry import Registry
from evotrader.data.errors import DataError
from evotrader.data.sources import embedded, files, sp500, synthetic, yahoo
from evotrader.data.validation import validate_ohlcv

TimeBound: TypeAlias = str | pd.Timestamp | None


@dataclass(frozen=True)
class _Source:
    """How to load one source; ``fetches_range`` sources also receive start/end to download.

    ``options`` are the keywords the source takes beyond symbol and dates; ``paths`` are
    those among them that name a file or a folder.
    """

    load: Callable[..., pd.DataFrame]
    symbols: tuple[str, ...] = ()
    fetches_range: bool = False
    options: frozenset[str] = frozenset()
    paths: frozenset[str] = frozenset()


# A synthetic symbol fixes the kind of series and load_bars' start/end slice it; every other
# generator setting is an option.
_SYNTHETIC_OPTIONS = frozenset(inspect.signature(synthetic.generate_synthetic).parameters) - {
    "kind",
    "start",
}
_FILE = frozenset({"path"})

SOURCES: Registry[_Source] = Registry("data source", error=DataError)
SOURCES.register("embedded", _Source(embedded.load_embedded, embedded.SYMBOLS))
SOURCES.register("sp500", _Source(sp500.load_sp500, sp500.SYMBOLS))  # close-only, see sp500
SOURCES.register(
    "synthetic",
    _Source(synthetic.load_synthetic, tuple(synthetic.SYMBOLS), options=_SYNTHETIC_OPTIONS),
)
SOURCES.register(
    "yfinance",
    _Source(
        yahoo.load_yahoo,
        fetches_range=True,
        options=frozenset({"cache_dir", "interval", "timeout"}),
        paths=frozenset({"cache_dir"}),
    ),
)
SOURCES.register("csv", _Source(files.load_csv, options=_FILE, paths=_FILE))
SOURCES.register("parquet", _Source(files.load_parquet, options=_FILE, paths=_FILE))


def load_bars(
    source: str, symbol: str, start: TimeBound = None, end: TimeBound = None, **options: Any
) -> pd.DataFrame:
    """Bars for ``symbol`` from ``source``, sliced to ``[start, end]`` (both inclusive).

    ``options`` go to the source: ``n_bars``, ``seed``... for ``synthetic``; ``path`` for
    ``csv``/``parquet``; ``cache_dir``, ``interval``, ``timeout`` for ``yfinance``. Bounds may be
    strings (partial dates such as ``"2010"`` cover the whole period) or Timestamps; zone-aware
    bounds are converted to naive UTC like the data. The result satisfies the bars contract.
    ``start``/``end`` always slice; to move a synthetic series' first date, call
    ``generate_synthetic(start=...)`` directly.
    """
    spec = SOURCES.get(source.lower())
    if spec.fetches_range:
        options = {**options, "start": start, "end": end}
    bars = spec.load(symbol, **options)
    if start is None and end is None:
        return bars
    window = bars.loc[_naive_utc(start) : _naive_utc(end)]
    if window.empty:
        raise DataError(
            f"{symbol}: no bars between start={start} and end={end}; "
            f"{source} data covers {bars.index[0]} to {bars.index[-1]}"
        )
    return validate_ohlcv(window, symbol=symbol)


def list_symbols(source: str) -> list[str]:
    """Symbols a source offers. ``yfinance``, ``csv`` and ``parquet`` accept any symbol: []."""
    return list(SOURCES.get(source.lower()).symbols)


def source_options(source: str) -> tuple[frozenset[str], frozenset[str]]:
    """The options ``source`` takes, and those among them that name a file or folder."""
    spec = SOURCES.get(source.lower())
    return spec.options, spec.paths


def _naive_utc(bound: TimeBound) -> TimeBound:
    """Strings pass through (keeping partial-date slicing); aware Timestamps become naive UTC."""
    if bound is None or isinstance(bound, str):
        return bound
    stamp = pd.Timestamp(bound)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tz is not None else stamp
