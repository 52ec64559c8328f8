"""Embedded (offline, pip-packaged) real data, and load_bars/list_symbols dispatch and slicing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evotrader.data import DataError, list_symbols, load_bars, validate_ohlcv
from evotrader.data.validation import OHLCV_COLUMNS

EMBEDDED = ["GOOG", "EURUSD", "AAPL", "MSFT", "IBM", "GOOG-BOKEH", "SP500", "NASDAQ"]


def assert_bars_contract(bars: pd.DataFrame) -> None:
    assert list(bars.columns) == list(OHLCV_COLUMNS)
    assert (bars.dtypes == np.float64).all()
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert bars.index.name == "timestamp"
    assert bars.index.tz is None
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    pd.testing.assert_frame_equal(validate_ohlcv(bars), bars)


def _raw_bokeh(name: str) -> pd.DataFrame:
    from bokeh_sampledata import stocks

    raw = pd.DataFrame(getattr(stocks, name))
    return raw.set_index(pd.DatetimeIndex(pd.to_datetime(raw.pop("date"))))


@pytest.mark.parametrize(
    ("symbol", "rows", "first", "last"),
    [
        ("GOOG", 2148, "2004-08-19", "2013-03-01"),
        ("EURUSD", 5000, "2017-04-19 09:00", "2018-02-07 15:00"),
        ("AAPL", 3270, "2000-03-01", "2013-03-01"),
        ("MSFT", 3270, "2000-03-01", "2013-03-01"),
        ("IBM", 3270, "2000-03-01", "2013-03-01"),
        ("GOOG-BOKEH", 2148, "2004-08-19", "2013-03-01"),
        ("SP500", 5031, "1999-01-04", "2018-12-31"),
        ("NASDAQ", 5031, "1999-01-04", "2018-12-31"),
    ],
)
def test_embedded_symbol_satisfies_contract_with_expected_range(
    symbol: str, rows: int, first: str, last: str
) -> None:
    bars = load_bars("embedded", symbol)

    assert_bars_contract(bars)
    assert len(bars) == rows
    assert bars.index[0] == pd.Timestamp(first)
    assert bars.index[-1] == pd.Timestamp(last)


def test_eurusd_is_hourly_fx() -> None:
    bars = load_bars("embedded", "EURUSD")

    assert bars.index.to_series().diff().median() == pd.Timedelta(hours=1)
    assert 1.0 < bars["close"].min() < bars["close"].max() < 1.3


def test_index_levels_are_plausible() -> None:
    sp500 = load_bars("embedded", "SP500")["close"]

    assert sp500.loc["2009-03"].min() < 700  # the 2009 low
    assert sp500.loc["2018"].max() > 2900


def test_aapl_is_split_adjusted() -> None:
    close = load_bars("embedded", "AAPL")["close"]
    raw_close = _raw_bokeh("AAPL")["close"]
    moves = close.pct_change().abs()

    assert raw_close.loc["2000-03-01"] > 100
    assert close.loc["2000"].max() < 10
    assert raw_close.pct_change().abs().loc[["2000-06-21", "2005-02-28"]].min() > 0.4
    assert moves.loc[["2000-06-21", "2005-02-28"]].max() < 0.1
    # The only >40% day left is 2000-09-29: a real crash after a profit warning, not a split.
    assert moves[moves > 0.4].index.tolist() == [pd.Timestamp("2000-09-29")]


def test_bokeh_volume_is_scaled_inversely_to_prices() -> None:
    bars = load_bars("embedded", "AAPL")
    raw = _raw_bokeh("AAPL")

    np.testing.assert_allclose(bars["close"] * bars["volume"], raw["close"] * raw["volume"])
    np.testing.assert_allclose(bars["close"], raw["adj_close"])
    assert bars["volume"].iloc[0] > raw["volume"].iloc[0] * 5


def test_goog_bokeh_matches_backtesting_goog_up_to_the_2014_split_factor() -> None:
    ratio = load_bars("embedded", "GOOG-BOKEH")["close"] / load_bars("embedded", "GOOG")["close"]

    assert ratio.notna().all()
    assert ratio.median() == pytest.approx(0.5015, abs=1e-4)
    # The two packages disagree slightly on two closes (2005-04-21, 2006-06-09).
    np.testing.assert_allclose(ratio, 0.5015, rtol=0.005)


def test_symbols_are_case_insensitive() -> None:
    pd.testing.assert_frame_equal(load_bars("embedded", "goog"), load_bars("embedded", "GOOG"))


def test_returned_frames_are_copies_of_the_cache() -> None:
    first = load_bars("embedded", "IBM")
    first.iloc[:, :] = -1.0

    assert (load_bars("embedded", "IBM")["close"] > 0).all()


def test_unknown_embedded_symbol_lists_the_available_ones() -> None:
    with pytest.raises(DataError, match="unknown embedded symbol 'TSLA'") as caught:
        load_bars("embedded", "TSLA")
    assert all(symbol in str(caught.value) for symbol in EMBEDDED)


def test_list_symbols() -> None:
    assert list_symbols("embedded") == EMBEDDED
    assert list_symbols("synthetic") == ["RANDOM_WALK", "REGIMES", "AR1", "MOMENTUM", "SIGN_SWITCH"]
    for source in ("yfinance", "csv", "parquet"):
        assert list_symbols(source) == []


def test_unknown_source_lists_the_sources() -> None:
    available = "available: csv, embedded, parquet, sp500, synthetic, yfinance"
    with pytest.raises(DataError, match=f"unknown data source 'bloomberg'; {available}"):
        load_bars("bloomberg", "GOOG")
    with pytest.raises(DataError, match=available):
        list_symbols("bloomberg")


def test_slice_is_inclusive_at_both_ends() -> None:
    bars = load_bars("embedded", "GOOG", start="2010-01-04", end="2010-06-30")

    assert bars.index[0] == pd.Timestamp("2010-01-04")
    assert bars.index[-1] == pd.Timestamp("2010-06-30")
    assert_bars_contract(bars)


def test_partial_date_strings_cover_whole_periods() -> None:
    bars = load_bars("embedded", "GOOG", start="2010", end="2010")

    assert bars.index[0] == pd.Timestamp("2010-01-04")
    assert bars.index[-1] == pd.Timestamp("2010-12-31")


def test_open_ended_and_timestamp_bounds() -> None:
    tail = load_bars("embedded", "GOOG", start=pd.Timestamp("2013-02-01"))
    head = load_bars("embedded", "GOOG", end=pd.Timestamp("2004-08-20 00:00", tz="UTC"))

    assert tail.index[0] == pd.Timestamp("2013-02-01")
    assert tail.index[-1] == pd.Timestamp("2013-03-01")
    assert head.index.tolist() == [pd.Timestamp("2004-08-19"), pd.Timestamp("2004-08-20")]


def test_empty_slice_names_requested_and_available_ranges() -> None:
    with pytest.raises(
        DataError,
        match=r"GOOG: no bars between start=2020-01-01 and end=2020-12-31; "
        r"embedded data covers 2004-08-19 00:00:00 to 2013-03-01 00:00:00",
    ):
        load_bars("embedded", "GOOG", start="2020-01-01", end="2020-12-31")
