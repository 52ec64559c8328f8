"""CSV and Parquet sources: timestamp discovery, name normalisation, validation, read errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evotrader.data import DataError, generate_synthetic, load_bars

CSV_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def yahoo_csv(tmp_path: Path) -> Path:
    """A CSV as Yahoo exports it: capitalised names, an extra ``Adj Close`` column."""
    return write(
        tmp_path / "spy.csv",
        CSV_HEADER
        + "2020-01-02,10,11,9,10.5,10.4,1000\n"
        + "2020-01-03,10.5,12,10,11.5,11.4,2000\n"
        + "2020-01-06,11.5,12,11,11.8,11.7,1500\n",
    )


def test_csv_with_date_column_and_capitalised_names(yahoo_csv: Path) -> None:
    bars = load_bars("csv", "SPY", path=yahoo_csv)

    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == np.float64).all()
    assert bars.index.name == "timestamp"
    assert bars.index.tolist() == list(pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06"]))
    assert bars["close"].tolist() == [10.5, 11.5, 11.8]


def test_csv_is_sliced_by_load_bars(yahoo_csv: Path) -> None:
    bars = load_bars("csv", "SPY", start="2020-01-03", end="2020-01-03", path=str(yahoo_csv))

    assert bars.index.tolist() == [pd.Timestamp("2020-01-03")]


def test_timestamp_column_preferred_and_zone_aware_strings_become_utc(tmp_path: Path) -> None:
    path = write(
        tmp_path / "fx.csv",
        "TIME,Timestamp,open,high,low,close,volume\n"
        + "x,2021-03-01T10:00:00+02:00,1,2,0.5,1.5,10\n"
        + "y,2021-03-01T11:00:00+02:00,1.5,2,1,1.8,10\n",
    )

    bars = load_bars("csv", "FX", path=path)

    assert bars.index.tolist() == [
        pd.Timestamp("2021-03-01 08:00"),
        pd.Timestamp("2021-03-01 09:00"),
    ]


def test_parquet_with_datetime_index_round_trips(tmp_path: Path) -> None:
    original = generate_synthetic(50, seed=1).bars
    original.to_parquet(tmp_path / "bars.parquet")

    pd.testing.assert_frame_equal(
        load_bars("parquet", "SYN", path=tmp_path / "bars.parquet"), original
    )


def test_parquet_with_time_column(tmp_path: Path) -> None:
    original = generate_synthetic(20, seed=2).bars
    frame = original.reset_index().rename(columns={"timestamp": "time", "close": "Close"})
    frame.to_parquet(tmp_path / "bars.parquet")

    pd.testing.assert_frame_equal(
        load_bars("parquet", "SYN", path=tmp_path / "bars.parquet"), original
    )


@pytest.mark.parametrize("source", ["csv", "parquet"])
def test_missing_file_names_the_path(source: str, tmp_path: Path) -> None:
    path = tmp_path / f"nope.{source}"

    with pytest.raises(DataError, match=re.escape(f"ABC: data file not found: {path}")):
        load_bars(source, "ABC", path=path)


def test_missing_path_option_is_explained() -> None:
    with pytest.raises(DataError, match="ABC: file sources need path="):
        load_bars("csv", "ABC")


@pytest.mark.parametrize(
    ("symbol", "text", "match"),
    [
        pytest.param(
            "ABC",
            "when,open,high,low,close,volume\n1,1,2,0.5,1.5,10\n",
            r"ABC: no timestamp in .*bad\.csv.*'timestamp', 'datetime'",
            id="no-timestamp-column-lists-accepted-names",
        ),
        pytest.param(
            "ABC",
            "date,open,high,low,close,volume\nsoon,1,2,0.5,1.5,10\n",
            r"ABC: column 'date' in .*bad\.csv is not datetimes",
            id="unparseable-dates",
        ),
        pytest.param(
            "MYSYM",
            "date,open,high,low,close,volume\n"
            + "2020-01-02,1,2,0.5,1.5,10\n"
            + "2020-01-03,1,2,0.5,1.5,-10\n",
            r"MYSYM: row 1 \(2020-01-03 00:00:00\): negative volume",
            id="invalid-row",
        ),
    ],
)
def test_a_bad_csv_is_reported_with_the_symbol(
    symbol: str, text: str, match: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "bad.csv", text)

    with pytest.raises(DataError, match=match):
        load_bars("csv", symbol, path=path)


def test_unreadable_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"definitely not parquet")

    with pytest.raises(DataError, match=re.escape(f"ABC: could not read {path}")):
        load_bars("parquet", "ABC", path=path)
