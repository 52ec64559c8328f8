from __future__ import annotations

import pandas as pd
import pytest
from tests.unit.strategies.synthetic_pairs import PRICES, cointegrated_pair

from evotrader.data import DataError, generate_synthetic
from evotrader.strategies.spec import Filter, StrategySpec, UniverseSpec
from evotrader.strategies.universe import (
    align,
    cointegrated_pairs,
    load_universe_bars,
    resolve_books,
    symbol_stats,
)


def _pairs_spec(symbols, **universe) -> StrategySpec:
    return StrategySpec.build(
        "pairs/distance-zscore", UniverseSpec(tuple(symbols), kind="cointegrated_pairs", **universe)
    )


def test_planted_cointegrated_pair_is_found_and_random_walks_are_not(pair_data) -> None:
    found = cointegrated_pairs(pair_data, ["A", "B", "C"], max_p_value=0.05)
    assert [pair for pair, _ in found] == [("A", "B")]
    assert found[0][1] < 1e-6
    assert resolve_books(_pairs_spec(["C", "A", "B"]), pair_data) == [("A", "B")]


def test_pairs_are_chosen_on_the_training_window_only(pair_data) -> None:
    end = pair_data["A"].index[599]
    unrelated = pair_data["C"][PRICES] * (
        pair_data["B"]["close"].iloc[0] / pair_data["C"]["close"].iloc[0]
    )
    late = pair_data["B"].copy()  # unrelated to A until `end`, cointegrated after it
    late.loc[:end, PRICES] = unrelated.loc[:end]
    early = pair_data["B"].copy()  # cointegrated until `end`, unrelated after it
    early.iloc[600:, early.columns.get_indexer(PRICES)] = unrelated.iloc[600:].to_numpy()
    spec = _pairs_spec(["A", "B"])
    assert resolve_books(spec, dict(pair_data, B=late), end) == []
    assert resolve_books(spec, dict(pair_data, B=early), end) == [("A", "B")]
    assert resolve_books(spec, dict(pair_data, B=early)) == []  # all bars: the break shows


def test_max_pairs_keeps_the_best_p_values() -> None:
    first = cointegrated_pair(900, seed=1)
    second = cointegrated_pair(900, seed=2)
    data = {"A": first["A"], "B": first["B"], "D": second["A"], "E": second["B"]}
    spec = _pairs_spec(["A", "B", "D", "E"], max_pairs=1)
    books = resolve_books(spec, data)
    everything = cointegrated_pairs(data, ["A", "B", "D", "E"], 0.05)
    assert len(books) == 1 and books[0] == everything[0][0]
    assert [p for _, p in everything] == sorted(p for _, p in everything)


def test_filters_run_on_training_statistics(pair_data) -> None:
    end = pair_data["A"].index[299]
    stats = symbol_stats("A", pair_data["A"].loc[:end])
    assert stats["history_bars"] == 300 and stats["price"] == pair_data["A"]["close"].loc[end]
    spec = StrategySpec.build(
        "momentum/time-series-momentum",
        UniverseSpec(
            ("A", "B", "C"), filters=(Filter("price", ">", 75.0), Filter("symbol", "!=", "C"))
        ),
    )
    assert resolve_books(spec, pair_data, end) == [("A",)]  # B trades near 50, C is excluded
    static_pairs = StrategySpec.build(
        "pairs/distance-zscore",
        UniverseSpec(("A", "B", "A2", "C"), filters=(Filter("symbol", "not_in", ["C"]),)),
    )
    data = dict(pair_data, A2=pair_data["A"])
    assert resolve_books(static_pairs, data) == [("A", "B")]  # (A2, C) loses its C leg


def test_align_keeps_common_dates_and_names_missing_symbols() -> None:
    one = generate_synthetic(50, seed=0).bars
    two = one.iloc[10:]
    aligned = align({"X": one, "Y": two}, ("X", "Y"))
    assert aligned["X"].index.equals(two.index)
    with pytest.raises(KeyError, match=r"no bars for symbol\(s\) \['Z'\]"):
        align({"X": one}, ("X", "Z"))


def test_align_is_the_data_layers_intersection_and_refuses_what_it_refuses() -> None:
    """A day one symbol lacks inside the span goes for both (no forward fill), however many
    such days there are; invalid bars and too few shared dates are refused by name."""
    one = generate_synthetic(60, seed=0).bars
    holes = one.drop(one.index[20:40])  # a third of the in-span days missing
    aligned = align({"X": one, "Y": holes.iloc[5:]}, ("X", "Y"))
    assert aligned["X"].equals(one.loc[holes.index[5:]]) and aligned["Y"].equals(holes.iloc[5:])
    broken = one.copy()
    broken.iloc[30, broken.columns.get_loc("high")] = -1.0
    with pytest.raises(DataError, match=r"^Y: "):
        align({"X": one, "Y": broken}, ("X", "Y"))
    with pytest.raises(ValueError, match=r"share 1 timestamps; need >= 2"):
        align({"X": one.iloc[:31], "Y": one.iloc[30:]}, ("X", "Y"))


def test_universe_bars_come_from_the_named_source() -> None:
    bars = load_universe_bars(UniverseSpec(("GOOG",)), end="2005-01-01")
    assert list(bars) == ["GOOG"] and bars["GOOG"].index[-1] < pd.Timestamp("2005-01-01")
