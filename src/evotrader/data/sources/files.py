"""User-supplied CSV and Parquet files, read leniently and then held to the bars contract.

The timestamp comes from a datetime index (typical for Parquet written by pandas) or else from
a column named, in order of preference, ``timestamp``, ``datetime``, ``date`` or ``time``
(case-insensitive). Naive timestamps are taken as UTC; zone-aware ones are converted to UTC.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from evotrader.data.errors import DataError
from evotrader.data.validation import normalize_columns, validate_ohlcv

TIMESTAMP_COLUMNS: tuple[str, ...] = ("timestamp", "datetime", "date", "time")


def load_csv(symbol: str, *, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Bars from the CSV file at ``path``; ``symbol`` only labels error messages."""
    return _load(symbol, path, pd.read_csv)


def load_parquet(symbol: str, *, path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Bars from the Parquet file at ``path``; ``symbol`` only labels error messages."""
    return _load(symbol, path, pd.read_parquet)


def _load(
    symbol: str, path: str | os.PathLike[str] | None, reader: Callable[[Path], pd.DataFrame]
) -> pd.DataFrame:
    """Read, index by time, normalise names and validate; read failures name the file."""
    if path is None:
        raise DataError(f"{symbol}: file sources need path=<file to read>")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{symbol}: data file not found: {file}")
    try:
        raw = reader(file)
    except Exception as exc:
        raise DataError(f"{symbol}: could not read {file}: {exc}") from exc
    indexed = _with_time_index(raw, symbol, file)  # its errors name the file already
    try:
        return validate_ohlcv(normalize_columns(indexed), symbol=symbol)
    except DataError as exc:
        raise DataError(f"{exc} (in {file})") from exc


def _with_time_index(raw: pd.DataFrame, symbol: str, file: Path) -> pd.DataFrame:
    """Keep an existing datetime index, else move the first timestamp-like column into it."""
    if isinstance(raw.index, pd.DatetimeIndex):
        return raw
    column = next(
        (c for name in TIMESTAMP_COLUMNS for c in raw.columns if str(c).strip().lower() == name),
        None,
    )
    if column is None:
        raise DataError(
            f"{symbol}: no timestamp in {file}: expected a datetime index or a column named "
            f"one of {TIMESTAMP_COLUMNS}; got columns {list(raw.columns)}"
        )
    try:
        stamps = pd.to_datetime(raw[column], utc=True)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{symbol}: column {column!r} in {file} is not datetimes: {exc}") from exc
    return raw.drop(columns=column).set_axis(pd.DatetimeIndex(stamps), axis="index")
