"""validate_ohlcv and normalize_columns: every contract violation has its own clear message."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from evotrader.data import DataError, validate_ohlcv
from evotrader.data.validation import OHLCV_COLUMNS, normalize_columns


@pytest.fixture
def bars() -> pd.DataFrame:
    """Five valid daily bars, volume as int and in a shuffled column order with an extra column."""
    index = pd.date_range("2020-01-01", periods=5, freq="D")
    return pd.DataFrame(
        {
            "volume": [100, 200, 300, 400, 500],
            "close": [10.5, 11.0, 10.8, 11.2, 11.1],
            "open": [10.0, 10.5, 11.0, 10.8, 11.2],
            "high": [10.6, 11.1, 11.1, 11.3, 11.4],
            "low": [9.9, 10.4, 10.7, 10.7, 11.0],
            "adj_close": [1.0] * 5,
        },
        index=index,
    )


def test_valid_bars_become_a_clean_float64_copy(bars: pd.DataFrame) -> None:
    out = validate_ohlcv(bars, symbol="SYM")

    assert list(out.columns) == list(OHLCV_COLUMNS)
    assert (out.dtypes == np.float64).all()
    assert out.index.name == "timestamp"
    assert out.index.freq is None
    assert out["volume"].tolist() == [100.0, 200.0, 300.0, 400.0, 500.0]
    assert out.index.equals(bars.index)


def test_input_is_not_mutated_and_output_is_independent(bars: pd.DataFrame) -> None:
    before = bars.copy(deep=True)
    out = validate_ohlcv(bars)
    out.iloc[0, 0] = -1.0

    pd.testing.assert_frame_equal(bars, before)


def test_float64_input_is_copied_not_viewed() -> None:
    index = pd.date_range("2020-01-01", periods=2, freq="D", name="timestamp")
    frame = pd.DataFrame(
        [[1.0, 2.0, 0.5, 1.5, 10.0], [1.5, 2.5, 1.0, 2.0, 20.0]],
        index=index,
        columns=list(OHLCV_COLUMNS),
    )
    out = validate_ohlcv(frame)
    out.loc[:, "close"] = 99.0

    assert frame["close"].tolist() == [1.5, 2.0]


def test_tz_aware_index_is_converted_to_naive_utc(bars: pd.DataFrame) -> None:
    aware = bars.tz_localize("America/New_York")

    out = validate_ohlcv(aware)

    assert out.index.tz is None
    assert out.index[0] == pd.Timestamp("2020-01-01 05:00")
    assert bars.index.tz is None and aware.index.tz is not None


def _set(column: str, row: int, value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: np.float64})
        frame.iloc[row, frame.columns.get_loc(column)] = value
        return frame

    return mutate


def _reindex(days: list[int]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.set_axis(pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D"))

    return mutate


@pytest.mark.parametrize(
    ("mutate", "row", "stamp", "problem"),
    [
        (_set("close", 2, np.nan), 2, "2020-01-03", "NaN in column 'close'"),
        (_set("volume", 3, np.inf), 3, "2020-01-04", "inf in column 'volume'"),
        (_set("low", 1, 0.0), 1, "2020-01-02", "non-positive price"),
        (_set("open", 4, -5.0), 4, "2020-01-05", "non-positive price"),
        (_set("high", 2, 9.0), 2, "2020-01-03", "high is below low"),
        (_set("high", 1, 10.9), 1, "2020-01-02", r"high is below max\(open, close\)"),
        (_set("low", 3, 10.9), 3, "2020-01-04", r"low is above min\(open, close\)"),
        (_set("volume", 0, -1.0), 0, "2020-01-01", "negative volume"),
        (_reindex([0, 1, 3, 2, 4]), 3, "2020-01-03", "timestamps not sorted"),
        (_reindex([0, 1, 1, 3, 4]), 2, "2020-01-02", "duplicate timestamp"),
    ],
)
def test_each_violation_names_symbol_row_and_problem(
    bars: pd.DataFrame,
    mutate: Callable[[pd.DataFrame], pd.DataFrame],
    row: int,
    stamp: str,
    problem: str,
) -> None:
    with pytest.raises(DataError, match=rf"^SYM: row {row} \({stamp} 00:00:00\): {problem}"):
        validate_ohlcv(mutate(bars), symbol="SYM")


def test_price_violation_message_shows_the_offending_values(bars: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"high=9, low=10\.7"):
        validate_ohlcv(_set("high", 2, 9.0)(bars), symbol="SYM")


def test_message_counts_all_affected_rows(bars: pd.DataFrame) -> None:
    broken = _set("close", 4, np.nan)(_set("close", 1, np.nan)(bars))

    with pytest.raises(DataError, match=r"row 1 .*\(2 rows affected\)"):
        validate_ohlcv(broken, symbol="SYM")


def test_missing_timestamp_is_reported(bars: pd.DataFrame) -> None:
    index = bars.index.to_list()
    index[2] = pd.NaT
    with pytest.raises(DataError, match=r"SYM: row 2 \(NaT\): missing timestamp"):
        validate_ohlcv(bars.set_axis(pd.DatetimeIndex(index)), symbol="SYM")


def test_missing_columns_are_named(bars: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"SYM: missing column\(s\) \['high', 'volume'\]"):
        validate_ohlcv(bars.drop(columns=["high", "volume"]), symbol="SYM")


def test_non_datetime_index_is_rejected(bars: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="SYM: index must be a DatetimeIndex, got RangeIndex"):
        validate_ohlcv(bars.reset_index(drop=True), symbol="SYM")


def test_non_numeric_column_is_named(bars: pd.DataFrame) -> None:
    broken = bars.astype({"close": object})
    broken.iloc[1, broken.columns.get_loc("close")] = "n/a"
    with pytest.raises(DataError, match="SYM: column 'close' is not numeric"):
        validate_ohlcv(broken, symbol="SYM")


def test_duplicated_column_is_rejected(bars: pd.DataFrame) -> None:
    doubled = pd.concat([bars, bars[["close"]]], axis=1)
    with pytest.raises(DataError, match="column 'close' appears 2 times"):
        validate_ohlcv(doubled, symbol="SYM")


def test_too_few_bars(bars: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="SYM: only 5 bars, need at least 6"):
        validate_ohlcv(bars, symbol="SYM", min_bars=6)
    assert len(validate_ohlcv(bars, min_bars=5)) == 5


def test_empty_frame_fails_the_default_minimum(bars: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="only 0 bars"):
        validate_ohlcv(bars.iloc[:0], symbol="SYM")


def test_non_dataframe_input_is_rejected() -> None:
    with pytest.raises(DataError, match="expected a pandas DataFrame, got Series"):
        validate_ohlcv(pd.Series([1.0]))  # type: ignore[arg-type]


def test_data_error_is_a_value_error() -> None:
    assert issubclass(DataError, ValueError)


def test_validation_is_vectorised_on_a_million_rows() -> None:
    n = 1_000_000
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.001, n)))
    frame = pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close, "volume": 1.0},
        index=pd.date_range("2000-01-01", periods=n, freq="min"),
    )
    frame.iloc[n - 7, 2] = frame.iloc[n - 7, 0] * 1.01  # low above open/close near the end

    began = time.perf_counter()
    with pytest.raises(DataError, match=f"row {n - 7} "):
        validate_ohlcv(frame)
    elapsed = time.perf_counter() - began

    assert elapsed < 1.0


def test_normalize_columns_maps_common_spellings() -> None:
    raw = pd.DataFrame(columns=["Open", " HIGH ", "low", "Close", "Adj Close", "adj-volume", "Vol"])

    out = normalize_columns(raw)

    assert list(out.columns) == ["open", "high", "low", "close", "adj_close", "adj_volume", "vol"]
    assert raw.columns[0] == "Open"


def test_normalize_columns_rejects_collisions() -> None:
    with pytest.raises(DataError, match=r"collide after normalisation on \['close'\]"):
        normalize_columns(pd.DataFrame(columns=["Close", "close ", "Open"]))
