from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.unit.strategies.synthetic_pairs import PRICES, cointegrated_pair

from evotrader.data import DataError, generate_synthetic
from evotrader.strategies.spec import Filter, SpecError, StrategySpec, UniverseSpec
from evotrader.strategies.universe import (
    align,
    cointegrated_pairs,
    load_universe_bars,
    resolve_books,
    symbol_stats,
    universe_stats,
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


def test_shipped_lists_load_with_as_of_dates_and_offline_ones_have_data() -> None:
    from evotrader.data.sources import embedded, sp500
    from evotrader.data.universe_lists import named_list, named_lists

    lists = named_lists()
    assert {"sp500_sample", "embedded_stocks", "dow30", "sector_etfs", "g10_fx"} <= set(lists)
    assert named_list("sp500_sample").symbols == sp500.SYMBOLS
    assert set(named_list("embedded_stocks").symbols) <= set(embedded.SYMBOLS)
    assert len(named_list("dow30").symbols) == 30
    for listed in lists.values():
        assert listed.survivorship and listed.as_of.year >= 1999
    with pytest.raises(DataError, match="unknown universe list 'ftse'; known lists: "):
        named_list("ftse")


def test_a_named_universe_takes_the_lists_symbols_and_source_and_keeps_old_ids() -> None:
    universe = UniverseSpec.named("sp500_sample", filters=(Filter("volatility", "<", 0.3),))
    assert universe.source == "sp500" and universe.listed == "sp500_sample"
    assert len(universe.symbols) == 20
    assert UniverseSpec.from_dict(universe.to_dict()) == universe
    assert "listed" not in UniverseSpec(("A",)).to_dict()
    with pytest.raises(SpecError, match="universe listed: unknown universe list 'dow3'"):
        UniverseSpec(("AAPL", "GOOG"), listed="dow3")


def test_between_top_n_and_bottom_n_filter_in_order_on_training_statistics() -> None:
    from evotrader.data.sources.synthetic_universe import generate_universe

    bars = generate_universe(6, 400, seed=3, kind="drift", drift_spread=2.0).bars
    symbols = tuple(bars)
    end = bars["A0"].index[299]
    stats = universe_stats({s: b.loc[:end] for s, b in bars.items()})
    momentum = {s: stats[s]["momentum"] for s in symbols}
    best_two = sorted(symbols, key=lambda s: -momentum[s])[:2]

    def books(*filters: Filter) -> list[tuple[str, ...]]:
        spec = StrategySpec.build(
            "momentum/cross-sectional-momentum", UniverseSpec(symbols, filters=filters)
        )
        return resolve_books(spec, bars, end)

    assert books(Filter("momentum", "top_n", 2)) == [tuple(s for s in symbols if s in best_two)]
    low, high = sorted(momentum.values())[1], sorted(momentum.values())[4]
    inside = tuple(s for s in symbols if low <= momentum[s] <= high)
    assert len(inside) == 4 and books(Filter("momentum", "between", [low, high])) == [inside]
    # ranks see only what the earlier filters kept: the lowest two of the middle four
    worst_inside = sorted(inside, key=lambda s: momentum[s])[:2]
    chained = books(Filter("momentum", "between", [low, high]), Filter("momentum", "bottom_n", 2))
    assert chained == [tuple(s for s in symbols if s in worst_inside)]
    assert books(Filter("symbol", "in", ["A0"])) == []  # one symbol ranks nothing
    for field in ("beta", "sharpe", "max_drawdown"):
        assert np.isfinite([stats[s][field] for s in symbols]).all()
    assert stats["A0"]["max_drawdown"] <= 0.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Filter("momentum", "between", [0.2, 0.1]), r"low must be <= high"),
        (lambda: Filter("momentum", "between", 0.1), r"value must be \[low, high\]"),
        (lambda: Filter("sharpe", "top_n", 0), "top_n must be an integer >= 1"),
        (lambda: Filter("beta", "bottom_n", 1.5), "bottom_n must be an integer >= 1"),
    ],
)
def test_bad_range_and_rank_filters_name_the_problem(make, message) -> None:
    with pytest.raises(SpecError, match=message):
        make()


def test_the_search_offers_shipped_lists_and_refuses_unknown_ones() -> None:
    from evotrader.config import TrainingConfig
    from evotrader.training.strategy_stage import universe_choices

    config = TrainingConfig()
    config.strategy_search.lists = ["embedded_stocks"]
    config.strategy_search.accept_survivorship = ["embedded_stocks"]
    listed = universe_choices(config)[-1]
    assert (listed.name, listed.source, listed.listed) == (
        "embedded_stocks",
        "embedded",
        "embedded_stocks",
    )
    assert listed.symbols == ("GOOG", "AAPL", "MSFT", "IBM")
    config.strategy_search.accept_survivorship = ["ftse100"]
    with pytest.raises(
        DataError, match=r"strategy_search.accept_survivorship: unknown list\(s\) \['ftse100'\]"
    ):
        universe_choices(config)
