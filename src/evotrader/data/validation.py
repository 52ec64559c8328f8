"""The bars contract, enforced in one place so every source hands out the same shape of data.

Contract: a DataFrame with a tz-naive, strictly increasing, unique ``DatetimeIndex`` named
``timestamp`` and float64 columns exactly ``open, high, low, close, volume``. Prices are finite
and positive, ``low <= min(open, close) <= max(open, close) <= high``, and volume is finite and
non-negative. Checks are vectorised so validating a million bars costs milliseconds.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt
import pandas as pd

from evotrader.data.errors import DataError

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
INDEX_NAME = "timestamp"

_OPEN, _HIGH, _LOW, _CLOSE, _VOLUME = range(len(OHLCV_COLUMNS))
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize_column_name(name: object) -> str:
    """Map ``" Adj Close "``, ``"Adj-Close"`` and ``"adj_close"`` alike to ``"adj_close"``."""
    return _NON_ALNUM.sub("_", str(name).strip().lower()).strip("_")


def normalize_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with lower-snake-case column names, so sources agree before validation.

    Two columns that normalise to the same name (``Close`` and ``close``) are ambiguous, so
    they raise ``DataError`` rather than one silently shadowing the other.
    """
    names = [normalize_column_name(c) for c in df.columns]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise DataError(f"columns {list(df.columns)} collide after normalisation on {clashes}")
    return df.set_axis(names, axis="columns")


def validate_ohlcv(bars: pd.DataFrame, symbol: str = "?", min_bars: int = 1) -> pd.DataFrame:
    """Check ``bars`` against the bars contract and return a clean copy.

    The copy has float64 columns exactly ``open, high, low, close, volume`` (extra columns are
    dropped) and a tz-naive nanosecond index named ``timestamp`` without ``freq`` (tz-aware input
    is converted to UTC first). The input is never mutated. The first violation raises
    ``DataError`` naming the symbol, the offending row (timestamp and position), the problem and
    how many rows share it.
    """
    if not isinstance(bars, pd.DataFrame):
        raise DataError(f"{symbol}: expected a pandas DataFrame, got {type(bars).__name__}")
    index = _clean_index(bars.index, symbol)
    values = _float_values(bars, symbol)
    if len(values) < min_bars:
        raise DataError(f"{symbol}: only {len(values)} bars, need at least {min_bars}")
    _check_timestamps(index, symbol)
    _check_values(values, index, symbol)
    return pd.DataFrame(values, index=index, columns=list(OHLCV_COLUMNS))


def _row_error(
    symbol: str, index: pd.DatetimeIndex, mask: npt.ArrayLike, problem: str
) -> DataError:
    """Build the error for the first row flagged in ``mask``, with the total count of such rows."""
    bad_rows = np.flatnonzero(mask)
    pos = int(bad_rows[0])
    more = f" ({len(bad_rows)} rows affected)" if len(bad_rows) > 1 else ""
    return DataError(f"{symbol}: row {pos} ({index[pos]}): {problem}{more}")


def _clean_index(index: pd.Index, symbol: str) -> pd.DatetimeIndex:
    """Require datetimes; convert tz-aware to naive UTC so all sources share one clock.

    ``freq`` is dropped: sources disagree on whether they set it and it would not survive Parquet,
    so keeping it would make otherwise identical frames compare unequal.
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"{symbol}: index must be a DatetimeIndex, got {type(index).__name__} "
            f"of dtype {index.dtype}"
        )
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return pd.DatetimeIndex(index.as_unit("ns"), freq=None, name=INDEX_NAME)


def _float_values(bars: pd.DataFrame, symbol: str) -> np.ndarray:
    """Stack the five contract columns into a fresh float64 array (never a view of the input)."""
    missing = [c for c in OHLCV_COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(
            f"{symbol}: missing column(s) {missing}; got {list(bars.columns)} "
            "(normalise names with normalize_columns first)"
        )
    arrays = []
    for name in OHLCV_COLUMNS:
        column = bars[name]
        if isinstance(column, pd.DataFrame):
            raise DataError(f"{symbol}: column {name!r} appears {column.shape[1]} times")
        try:
            arrays.append(column.to_numpy(dtype=np.float64, na_value=np.nan))
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{symbol}: column {name!r} is not numeric (dtype {column.dtype}): {exc}"
            ) from exc
    return np.column_stack(arrays)


def _check_timestamps(index: pd.DatetimeIndex, symbol: str) -> None:
    """Reject NaT, out-of-order and duplicate timestamps; sorted-and-unique input exits early."""
    if index.hasnans:
        raise _row_error(symbol, index, index.isna(), "missing timestamp (NaT)")
    if index.is_monotonic_increasing and index.is_unique:
        return
    steps = np.diff(index.asi8)
    backwards = np.concatenate(([False], steps < 0))
    if backwards.any():
        previous = index[int(np.argmax(backwards)) - 1]
        problem = f"timestamps not sorted: earlier than the previous row ({previous})"
        raise _row_error(symbol, index, backwards, problem)
    repeated = np.concatenate(([False], steps == 0))
    raise _row_error(symbol, index, repeated, "duplicate timestamp (same as previous row)")


def _check_values(values: np.ndarray, index: pd.DatetimeIndex, symbol: str) -> None:
    """Reject non-finite values, non-positive prices, inconsistent OHLC and negative volume."""
    finite = np.isfinite(values)
    if not finite.all():
        bad = ~finite.all(axis=1)
        row = int(np.argmax(bad))
        col = int(np.argmax(~finite[row]))
        kind = "NaN" if np.isnan(values[row, col]) else "inf"
        raise _row_error(symbol, index, bad, f"{kind} in column {OHLCV_COLUMNS[col]!r}")
    o, h, lo, c, v = (values[:, i] for i in (_OPEN, _HIGH, _LOW, _CLOSE, _VOLUME))
    prices = values[:, :_VOLUME]
    checks = (
        ((prices <= 0).any(axis=1), "non-positive price in open/high/low/close"),
        (h < lo, "high is below low"),
        (h < np.maximum(o, c), "high is below max(open, close)"),
        (lo > np.minimum(o, c), "low is above min(open, close)"),
        (v < 0, "negative volume"),
    )
    for mask, problem in checks:
        if mask.any():
            row = int(np.argmax(mask))
            detail = ", ".join(
                f"{n}={x:g}" for n, x in zip(OHLCV_COLUMNS, values[row], strict=True)
            )
            raise _row_error(symbol, index, mask, f"{problem} [{detail}]")
