"""Yahoo Finance bars through ``yfinance``, cached as Parquet so repeat runs work offline.

Cache files live in ``cache_dir`` (default ``$EVOTRADER_CACHE/yfinance``, falling back to
``~/.cache/evotrader/yfinance``) and are keyed by symbol, start, end and interval. An open-ended
request (``end=None``) is keyed by today's date, so it refreshes at most once a day. A cache hit
never touches the network; writes are atomic so a crash never leaves a truncated file behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from evotrader.core.atomic import write_atomic
from evotrader.data.errors import DataError
from evotrader.data.sources.embedded import SYMBOLS as EMBEDDED_SYMBOLS
from evotrader.data.validation import normalize_columns, validate_ohlcv

CACHE_ENV = "EVOTRADER_CACHE"
DOWNLOAD_TIMEOUT_S = 5.0


def default_cache_dir() -> Path:
    """``$EVOTRADER_CACHE/yfinance`` if that is set, else ``~/.cache/evotrader/yfinance``."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "evotrader"
    return base / "yfinance"


def load_yahoo(
    symbol: str,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    interval: str = "1d",
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> pd.DataFrame:
    """Split/dividend-adjusted bars for ``symbol`` between ``start`` and ``end`` (inclusive).

    Served from the Parquet cache when present; otherwise downloaded once (``timeout`` seconds,
    no retries) and cached. A failed or empty download raises ``DataError`` pointing at the
    offline ``embedded`` source.
    """
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = directory / _cache_name(symbol, start, end, interval)
    if path.exists():
        return _read_cache(path, symbol)
    bars = validate_ohlcv(_download(symbol, start, end, interval, timeout), symbol=symbol)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, bars.to_parquet)
    return bars


def _cache_name(
    symbol: str,
    start: str | pd.Timestamp | None,
    end: str | pd.Timestamp | None,
    interval: str,
) -> str:
    """A filesystem-safe, collision-free file name for one request (``^GSPC`` -> ``%5EGSPC``)."""
    first = "min" if start is None else _stamp(start)
    last = _stamp(pd.Timestamp.now().normalize() if end is None else end)
    return f"{quote(symbol, safe='')}_{first}_{last}_{quote(interval, safe='')}.parquet"


def _stamp(when: str | pd.Timestamp) -> str:
    """``2020-01-02T00:00:00`` -> ``2020-01-02T000000`` (no colons, valid on every filesystem)."""
    return str(pd.Timestamp(when).isoformat()).replace(":", "")


def _read_cache(path: Path, symbol: str) -> pd.DataFrame:
    """Load and re-validate a cached frame; a corrupt file is reported, not silently replaced."""
    try:
        cached = pd.read_parquet(path)
    except Exception as exc:
        raise DataError(
            f"{symbol}: unreadable yfinance cache file {path} ({exc}); delete it to re-download"
        ) from exc
    return validate_ohlcv(cached, symbol=symbol)


def _download(
    symbol: str,
    start: str | pd.Timestamp | None,
    end: str | pd.Timestamp | None,
    interval: str,
    timeout: float,
) -> pd.DataFrame:
    """One ``yfinance.download`` call; yfinance's end is exclusive, so it is pushed a day on."""
    import yfinance as yf

    window: dict[str, object] = {"period": "max"} if start is None else {"start": start}
    if end is not None:
        window["end"] = pd.Timestamp(end) + pd.Timedelta(days=1)
    try:
        raw = yf.download(
            symbol,
            interval=interval,
            auto_adjust=True,
            progress=False,
            threads=False,
            timeout=timeout,
            multi_level_index=False,
            **window,
        )
    except Exception as exc:
        raise _download_error(symbol, f"{type(exc).__name__}: {exc}") from exc
    if raw is None or raw.empty:
        raise _download_error(symbol, "no data returned (offline, rate-limited or unknown symbol)")
    return normalize_columns(raw)


def _download_error(symbol: str, reason: str) -> DataError:
    """Explain the failure and point at data that works without a network."""
    return DataError(
        f"{symbol}: yfinance download failed: {reason}. To work offline use "
        f'source="embedded" with one of: {", ".join(EMBEDDED_SYMBOLS)}'
    )
