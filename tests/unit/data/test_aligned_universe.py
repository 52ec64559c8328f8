"""Universes: alignment on one calendar without forward fill, the close-only sp500 source,
slicing, and one clear error per bad input."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evotrader.data import DataError, generate_synthetic, list_symbols, load_bars
from evotrader.data.sources import sp500
from evotrader.data.universe import CLOSE_ONLY_NOTE, Universe, align, load_universe


def _three(n_bars: int = 300) -> dict[str, pd.DataFrame]:
    """Three independent seeded series on the same business-day calendar."""
    return {
        name: generate_synthetic(n_bars, seed=seed, kind="random_walk").bars
        for seed, name in enumerate(("AAA", "BBB", "CCC"))
    }


def test_aligned_bars_share_one_calendar_and_keep_every_value() -> None:
    bars = _three()
    bars["CCC"] = bars["CCC"].iloc[10:]  # listed later: trimmed, not a hole

    aligned = align(bars)

    for symbol, frame in aligned.items():
        assert frame.index.equals(bars["CCC"].index)
        pd.testing.assert_frame_equal(frame, bars[symbol].loc[frame.index])


def test_drop_removes_a_hole_for_every_symbol_and_never_fills_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bars = _three()
    hole = bars["BBB"].index[100]
    bars["BBB"] = bars["BBB"].drop(hole)

    with caplog.at_level(logging.INFO, logger="evotrader.data.universe"):
        aligned = align(bars, missing="drop")

    for frame in aligned.values():
        assert hole not in frame.index and len(frame) == 299
    assert "AAA: aligning drops 1 of its 300 bars" in caplog.text
    assert "missing from BBB" in caplog.text
    # the return across the hole is the true two-day move, not a filled zero
    returns = Universe.from_bars(bars).returns()
    after = bars["AAA"].index[101]
    expected = bars["AAA"]["close"].iloc[101] / bars["AAA"]["close"].iloc[99] - 1
    assert returns.loc[after, "AAA"] == pytest.approx(expected)


def test_error_policy_refuses_a_hole_naming_symbol_and_date() -> None:
    bars = _three()
    hole = bars["CCC"].index[42]
    bars["CCC"] = bars["CCC"].drop(bars["CCC"].index[[42, 50]])

    with pytest.raises(DataError, match=rf"CCC: no bar on {hole} although AAA, BBB have one"):
        align(bars, missing="error")


def test_drop_refuses_to_lose_more_than_the_allowed_share() -> None:
    bars = _three(100)
    bars["BBB"] = bars["BBB"].iloc[::2]  # every other day; span ends at bar 98

    with pytest.raises(DataError, match=r"AAA: aligning drops 49 of its 99 bars \(49.5%\)"):
        align(bars)
    assert len(align(bars, max_drop_share=0.5)["AAA"]) == 50


def test_perturbing_a_later_bar_never_changes_earlier_aligned_values() -> None:
    bars = _three()
    bars["BBB"] = bars["BBB"].drop(bars["BBB"].index[[30, 31]])
    before = Universe.from_bars(bars)
    cut = bars["AAA"].index[200]
    perturbed = {symbol: frame.copy() for symbol, frame in bars.items()}
    perturbed["AAA"].loc[perturbed["AAA"].index > cut, ["open", "high", "low", "close"]] *= 1.5
    perturbed["CCC"] = perturbed["CCC"].drop(perturbed["CCC"].index[250])  # a later hole too

    after = Universe.from_bars(perturbed)

    pd.testing.assert_frame_equal(after.closes().loc[:cut], before.closes().loc[:cut])
    pd.testing.assert_frame_equal(after.returns().loc[:cut], before.returns().loc[:cut])


def test_bad_inputs_give_one_clear_error() -> None:
    bars = _three(50)
    with pytest.raises(DataError, match="missing must be one of"):
        align(bars, missing="ffill")
    with pytest.raises(DataError, match="no symbols"):
        align({})
    with pytest.raises(DataError, match="do not overlap"):
        align({"AAA": bars["AAA"].iloc[:10], "BBB": bars["BBB"].iloc[20:]})
    odd = {"AAA": bars["AAA"].iloc[::2], "BBB": bars["BBB"].iloc[1::2]}
    with pytest.raises(DataError, match="share no date"):
        align(odd, max_drop_share=1.0)
    broken = bars["AAA"].copy()
    broken.iloc[5, broken.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match=r"BBB: row 5 .*NaN in column 'close'"):
        align({"AAA": bars["AAA"], "BBB": broken})


def test_universe_refuses_unaligned_bars_and_a_false_close_only_flag() -> None:
    bars = _three(50)
    with pytest.raises(DataError, match="BBB: bars are not on AAA's calendar"):
        Universe(("AAA", "BBB"), {"AAA": bars["AAA"], "BBB": bars["BBB"].iloc[1:]})
    with pytest.raises(DataError, match=r"missing \['CCC'\]"):
        Universe(("AAA", "CCC"), {"AAA": bars["AAA"]})
    with pytest.raises(DataError, match="AAA: close_only=True but"):
        Universe(("AAA",), {"AAA": bars["AAA"]}, close_only=True)
    closes = bars["BBB"].assign(open=bars["BBB"]["close"])
    closes = closes.assign(high=closes["close"], low=closes["close"])
    assert Universe.from_bars({"BBB": closes}).close_only
    with pytest.raises(DataError, match="BBB close-only but AAA, CCC with opens"):
        Universe.from_bars({"AAA": bars["AAA"], "BBB": closes, "CCC": bars["CCC"]})


def test_closes_returns_and_between() -> None:
    universe = Universe.from_bars(_three(300), source="test")

    closes = universe.closes()
    assert list(closes.columns) == ["AAA", "BBB", "CCC"] and closes.index.equals(universe.index)
    returns = universe.returns()
    assert returns.index.equals(universe.index[1:])
    np.testing.assert_allclose(returns.to_numpy(), closes.pct_change().iloc[1:].to_numpy())
    year = universe.between("2000-03-01", "2000-03-31")
    assert year.index[0] == pd.Timestamp("2000-03-01") and year.index[-1] == pd.Timestamp(
        "2000-03-31"
    )
    assert len(year.index) == 23 and year.symbols == universe.symbols
    pd.testing.assert_frame_equal(year.closes(), closes.loc["2000-03"])
    with pytest.raises(DataError, match="universe test: no bars between start=2030"):
        universe.between("2030", None)
    assert universe.note == "" and universe.has_volume
    universe.require_volume("impact")  # has volume: no error
    restored = pickle.loads(pickle.dumps(universe))  # Ray ships universes to workers
    pd.testing.assert_frame_equal(restored.closes(), closes)
    assert restored.symbols == universe.symbols and restored.source == "test"


def test_sp500_source_loads_offline_with_20_symbols_close_only() -> None:
    from skfolio.datasets import load_sp500_dataset

    universe = load_universe("sp500", start="2020-01-01")

    assert universe.symbols == sp500.SYMBOLS == tuple(load_sp500_dataset().columns)
    assert len(universe.symbols) == 20 and list_symbols("sp500") == list(sp500.SYMBOLS)
    assert universe.close_only and not universe.has_volume
    with pytest.raises(DataError, match=r"impact needs traded volume, .* \(close-only data\)"):
        universe.require_volume("impact")
    assert CLOSE_ONLY_NOTE in universe.note and universe.note.startswith("sp500:")
    assert universe.index[0] == pd.Timestamp("2020-01-02")
    assert universe.index[-1] == pd.Timestamp("2022-12-28")
    aapl = universe.bars["AAPL"]
    assert (aapl["volume"] == 0).all()
    assert (aapl["open"] == aapl["close"]).all() and (aapl["high"] == aapl["close"]).all()
    raw = load_sp500_dataset()["AAPL"].loc["2020-01-02":]
    np.testing.assert_array_equal(aapl["close"].to_numpy(), raw.to_numpy())
    # the same bars through the single-asset loader (so a DataRef can name one sp500 stock)
    pd.testing.assert_frame_equal(load_bars("sp500", "aapl", start="2020-01-01"), aapl)


def test_sp500_bad_symbol_names_it() -> None:
    with pytest.raises(DataError, match="unknown sp500 symbol 'TSLA'; available: AAPL"):
        load_bars("sp500", "TSLA")


def test_load_universe_errors_name_what_is_wrong() -> None:
    with pytest.raises(DataError, match="unknown data source 'nope'"):
        load_universe("nope", ["AAPL"])
    with pytest.raises(DataError, match="unknown embedded symbol 'XX'"):
        load_universe("embedded", ["AAPL", "XX"])
    with pytest.raises(DataError, match=r"symbols \['AAPL'\] are listed more than once"):
        load_universe("embedded", ["AAPL", "AAPL"])
    with pytest.raises(DataError, match="lists no symbols"):
        load_universe("csv")
    with pytest.raises(DataError, match="do not overlap"):
        load_universe("embedded", ["AAPL", "EURUSD"])


def test_embedded_universe_and_per_symbol_file_options(tmp_path: Path) -> None:
    embedded = load_universe("embedded", ["AAPL", "MSFT", "GOOG"], start="2005")
    assert embedded.index[0] >= pd.Timestamp("2005-01-01") and not embedded.close_only
    assert embedded.note == ""

    bars = _three(40)
    paths = {}
    for symbol, frame in bars.items():
        paths[symbol] = str(tmp_path / f"{symbol}.csv")
        frame.to_csv(paths[symbol])
    from_files = load_universe("csv", list(bars), path=paths)
    pd.testing.assert_frame_equal(from_files.closes(), Universe.from_bars(bars).closes())
    with pytest.raises(DataError, match="DDD: option path is given per symbol but not for DDD"):
        load_universe("csv", ["AAA", "DDD"], path=paths)
