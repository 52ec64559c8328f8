from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from evotrader.strategies.spec import (
    Filter,
    RiskParams,
    SpecError,
    StrategyResult,
    StrategySpec,
    UniverseSpec,
)

MA = "trend-following/moving-average-crossover"


def _full_spec() -> StrategySpec:
    return StrategySpec(
        template="pairs/cointegration-spread",
        parameters={"hedge_window": 250, "z_window": 30, "entry_z": 2.25, "exit_z": 0.1},
        universe=UniverseSpec(
            symbols=("AAPL", "MSFT", "IBM"),
            kind="cointegrated_pairs",
            filters=(
                Filter("avg_dollar_volume", ">=", 1e7),
                Filter("symbol", "not_in", ("IBM",)),
                Filter("volatility", "<", 0.6),
            ),
            max_pairs=2,
            max_p_value=0.1,
        ),
        risk=RiskParams(position_size=0.5, stop_loss=0.08, max_holding_bars=40),
        parent="0123456789abcdef",
        generation=3,
        created_by="llm:claude",
        rationale="tech names co-move; fade the spread",
    )


def test_build_fills_template_defaults() -> None:
    spec = StrategySpec.build(MA, ["GOOG"], {"fast": 5})
    assert spec.parameters == {"fast": 5, "slow": 100}
    assert spec.universe == UniverseSpec(symbols=("GOOG",))
    assert spec.info.name == "Moving average crossover"


def test_json_round_trip_is_exact() -> None:
    spec = _full_spec()
    text = spec.to_json()
    again = StrategySpec.from_json(text)
    assert again == spec
    assert again.to_json() == text
    assert isinstance(again.parameters["hedge_window"], int)
    assert isinstance(again.parameters["entry_z"], float)
    assert again.universe.filters[1].value == ("IBM",)


def test_spec_id_hashes_content_not_lineage() -> None:
    spec = _full_spec()
    assert len(spec.spec_id) == 16
    assert StrategySpec.from_json(spec.to_json()).spec_id == spec.spec_id
    assert replace(spec, generation=9, created_by="offline").spec_id == spec.spec_id
    assert spec.with_parameters({"z_window": 31}).spec_id != spec.spec_id


def test_float_parameters_accept_ints_and_store_floats() -> None:
    spec = StrategySpec.build("mean-reversion/bollinger-reversion", ["X"], {"entry_z": 2})
    assert spec.parameters["entry_z"] == 2.0 and isinstance(spec.parameters["entry_z"], float)
    assert json.loads(spec.to_json())["parameters"]["entry_z"] == 2.0


def test_numpy_integers_from_an_optimiser_are_accepted() -> None:
    spec = StrategySpec.build(MA, ["X"], {"fast": np.int64(7)})
    assert spec.parameters["fast"] == 7 and type(spec.parameters["fast"]) is int


@pytest.mark.parametrize(
    ("template", "parameters", "message"),
    [
        (MA, {"fast": 500}, r"parameter fast=500 is outside its bounds \[2, 100\]"),
        (MA, {"fast": 1}, r"parameter fast=1 is outside its bounds \[2, 100\]"),
        (MA, {"fast": 20.0}, "parameter fast must be an integer, got 20.0"),
        (MA, {"fast": True}, "parameter fast must be an integer, got True"),
        (MA, {"fast": "20"}, "parameter fast must be an integer, got '20'"),
        (MA, {"fast": 60, "slow": 50}, r"break 'fast < slow' \(fast=60, slow=50\)"),
        (MA, {"speed": 3}, r"unknown parameter\(s\) \['speed'\]"),
        ("mean-reversion/bollinger-reversion", {"entry_z": math.nan}, "must be finite"),
        ("momentum/magic", {}, "unknown template 'momentum/magic'"),
    ],
)
def test_invalid_parameters_and_templates_are_rejected(template, parameters, message) -> None:
    with pytest.raises(SpecError, match=message):
        StrategySpec.build(template, ["X"], parameters)


def test_missing_parameters_are_rejected_by_the_strict_constructor() -> None:
    with pytest.raises(SpecError, match=r"missing parameter\(s\) \['slow'\]"):
        StrategySpec(template=MA, parameters={"fast": 5}, universe=UniverseSpec(("X",)))


@pytest.mark.parametrize(
    ("field", "operator", "value", "message"),
    [
        ("price", "~=", 3.0, "filter operator '~=' is unknown"),
        ("market_cap", ">", 3.0, "filter field 'market_cap' is unknown"),
        ("price", ">", "cheap", "value must be a finite number"),
        ("price", ">", True, "value must be a finite number"),
        ("price", "in", [1.0], "operator in needs field 'symbol'"),
        ("symbol", ">", "A", "operator must be ==, !=, in or not_in"),
        ("symbol", "in", "AAPL", "value must be a list of symbols"),
    ],
)
def test_invalid_filters_are_rejected(field, operator, value, message) -> None:
    with pytest.raises(SpecError, match=message):
        Filter(field, operator, value)


def test_filters_accept_or_reject_symbol_statistics() -> None:
    stats = {"symbol": "AAPL", "price": 10.0, "volatility": 0.3}
    assert Filter("price", ">=", 10).accepts(stats)
    assert not Filter("price", ">", 10).accepts(stats)
    assert Filter("symbol", "in", ["AAPL", "MSFT"]).accepts(stats)
    assert not Filter("symbol", "not_in", ["AAPL"]).accepts(stats)
    assert Filter("volatility", "<", 0.5).accepts(stats)


@pytest.mark.parametrize(
    ("universe", "risk", "message"),
    [
        (UniverseSpec(("A", "B", "C")), RiskParams(), "needs an even number of symbols"),
        (UniverseSpec(("A", "B")), RiskParams(allow_short=False), "allow_short must be true"),
    ],
)
def test_pair_templates_need_pairs_and_shorts(universe, risk, message) -> None:
    with pytest.raises(SpecError, match=message):
        StrategySpec.build("pairs/distance-zscore", universe, risk=risk)


def test_single_instrument_template_rejects_computed_pairs() -> None:
    universe = UniverseSpec(("A", "B"), kind="cointegrated_pairs")
    with pytest.raises(SpecError, match=r"trades 1 leg\(s\): use a static universe"):
        StrategySpec.build(MA, universe)


def test_cross_sectional_template_needs_a_static_universe_of_two_or_more() -> None:
    template = "momentum/cross-sectional-momentum"
    with pytest.raises(SpecError, match="every symbol of the universe: use a static universe"):
        StrategySpec.build(template, UniverseSpec(("A", "B"), kind="cointegrated_pairs"))
    with pytest.raises(SpecError, match="list at least 2 symbols, got 1"):
        StrategySpec.build(template, ["A"])
    assert StrategySpec.build(template, ["A", "B", "C"]).info.cross_sectional


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: UniverseSpec(()), "non-empty list"),
        (lambda: UniverseSpec(("A", "A")), "repeat"),
        (lambda: UniverseSpec(("A",), kind="sector"), "universe kind 'sector' is unknown"),
        (lambda: UniverseSpec(("A", "B"), max_p_value=1.5), r"must lie in \(0, 1\)"),
        (lambda: UniverseSpec(("A",), kind="cointegrated_pairs"), "at least 2 candidate"),
        (lambda: RiskParams(position_size=0), r"position_size must lie in \(0.0, 1.0\]"),
        (lambda: RiskParams(position_size=1.5), r"position_size must lie in \(0.0, 1.0\]"),
        (lambda: RiskParams(stop_loss=-0.1), "stop_loss must lie in"),
        (lambda: RiskParams(max_holding_bars=0), "max_holding_bars must be an integer >= 1"),
        (lambda: RiskParams(allow_short="yes"), "allow_short must be true or false"),
        (lambda: RiskParams(trailing_stop=0), "trailing_stop must lie in"),
        (lambda: RiskParams(max_positions=0), "max_positions must be an integer >= 1"),
        (lambda: RiskParams(sizing="martingale"), "sizing 'martingale' is unknown"),
        (lambda: RiskParams(kelly_cap=2.0), r"kelly_cap must lie in \(0.0, 1.0\]"),
        (lambda: RiskParams(target_vol=0), "target_vol must lie in"),
        (lambda: RiskParams(sizing_window=2), "sizing_window must be an integer >= 5"),
    ],
)
def test_invalid_universes_and_risk_rules_are_rejected(make, message) -> None:
    with pytest.raises(SpecError, match=message):
        make()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "spec must be a JSON object"),
        ('{"template": "x", "parameters": {}}', r"spec: missing key\(s\) \['universe'\]"),
        (
            '{"template": "seasonal/halloween", "parameters": {"entry_month": 11, '
            '"exit_month": 5}, "universe": {"symbols": ["SP500"]}, "code": "rm -rf"}',
            r"spec: unknown key\(s\) \['code'\]",
        ),
        (
            '{"template": "seasonal/halloween", "parameters": {"entry_month": 11, '
            '"exit_month": 11}, "universe": {"symbols": ["SP500"]}}',
            "break 'entry_month != exit_month'",
        ),
        (
            '{"template": "seasonal/halloween", "parameters": {"entry_month": 11, '
            '"exit_month": 5}, "universe": {"symbols": ["SP500"], "filters": '
            '[{"field": "price", "operator": "around", "value": 3}]}}',
            "filter operator 'around' is unknown",
        ),
    ],
)
def test_bad_json_is_rejected_clearly(payload, message) -> None:
    with pytest.raises(SpecError, match=message):
        StrategySpec.from_json(payload)


def test_strategy_result_round_trips_through_json_exactly() -> None:
    index = pd.DatetimeIndex(pd.date_range("2020-01-01", periods=4), freq=None, name="timestamp")
    trades = pd.DataFrame(
        {
            "book": ["A"],
            "symbol": ["A"],
            "entry_time": [index[1]],
            "exit_time": [index[3]],
            "direction": np.array([-1]),
            "entry_price": [10.5],
            "exit_price": [9.25],
            "bars_held": np.array([2]),
            "pnl": [0.1 + 0.2],
            "return": [math.nan],
            "open_at_end": [True],
        }
    )
    result = StrategyResult(
        spec_id="abc",
        phase="screen",
        passed=False,
        metrics={"sharpe": 1 / 3, "profit_factor": math.inf, "sortino": -math.inf},
        benchmark={"sharpe": 0.1},
        parameters={"fast": 5, "slow": 20.0},
        equity=pd.Series([1.0, 1.1, 0.9, 1.0000000000000002], index=index, name="equity"),
        trades=trades,
        regimes={"bull": {"return": 0.25, "bars": 3.0}},
        fees=1.5,
        slippage=0.25,
        failure_reason="Failed: walk-forward Sharpe 0.33 < 0.5",
        failure_details=("walk-forward Sharpe 0.33 < 0.5",),
        diagnostics={"folds": [{"oos_sharpe": math.nan, "books": [["A"]]}]},
    )
    text = result.to_json()
    again = StrategyResult.from_json(text)
    assert again.to_json() == text
    pd.testing.assert_series_equal(again.equity, result.equity)
    pd.testing.assert_frame_equal(again.trades, result.trades)
    assert again.metrics["profit_factor"] == math.inf
    assert math.isnan(again.diagnostics["folds"][0]["oos_sharpe"])
    assert again.drawdown.min() == pytest.approx(0.9 / 1.1 - 1)


@pytest.mark.parametrize(
    ("members", "combine", "message"),
    [
        (({"template": "pairs/distance-zscore"},), "equal_weight", "combine like with like"),
        (({"template": "momentum/time-series-momentum"},) * 2, "equal_weight", "is repeated"),
        (({"template": "momentum/time-series-momentum"},), "vote", "combine 'vote' is unknown"),
        (({"template": "momentum/none"},), "equal_weight", "member: unknown template"),
        (
            tuple(
                {"template": "momentum/time-series-momentum", "lookback": n} for n in range(1, 6)
            ),
            "equal_weight",
            "at most 4 members",
        ),
    ],
)
def test_combinations_are_validated(members, combine, message) -> None:
    from evotrader.strategies.spec import Member

    with pytest.raises(SpecError, match=message):
        built = tuple(
            Member.build(m["template"], {k: v for k, v in m.items() if k != "template"})
            for m in members
        )
        StrategySpec(
            template=MA,
            parameters={"fast": 10, "slow": 50},
            universe=UniverseSpec(("A",)),
            members=built,
            combine=combine,
        )
