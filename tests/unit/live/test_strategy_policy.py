"""The live strategy policy decides causally, as the backtest does, and refuses what it must."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.unit.live.helpers import make_strategy_registry

from evotrader.data import load_bars
from evotrader.live.session import LiveOptions, SetupError
from evotrader.live.strategy_policy import (
    MULTI_LEG,
    StrategyPolicy,
    TradableStrategy,
    positions_of,
)
from evotrader.strategies.signals import spec_targets
from evotrader.strategies.spec import Filter, RiskParams, StrategySpec, UniverseSpec

SYNTHETIC = ("RANDOM_WALK", "REGIMES", "AR1", "MOMENTUM", "SIGN_SWITCH")
SPEC = StrategySpec.build(
    "momentum/volatility-scaled-momentum",
    ["GOOG"],
    risk=RiskParams(position_size=0.8, stop_loss=0.08),
)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return load_bars("embedded", "GOOG").iloc[:700]


def decisions(policy: StrategyPolicy, bars: pd.DataFrame, first: int) -> list[float]:
    """Feed ``bars`` from ``first`` on one at a time, as the runner does."""
    return [policy.positions[policy.decide(bars.iloc[: t + 1])] for t in range(first, len(bars))]


def test_decisions_equal_the_vectorised_targets_and_ignore_the_future(bars) -> None:
    first = 400
    live = decisions(StrategyPolicy(SPEC, SPEC.parameters, bars.iloc[:first]), bars, first)
    backtest = spec_targets(SPEC, (bars,), SPEC.parameters)[first:, 0]
    assert live == list(backtest)
    assert len(set(live)) > 3  # quarter steps, long and short, and stopped-out flats

    cut = 550  # the bars after it are rewritten wildly: no decision up to it may change
    perturbed = bars.copy()
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 2.0, size=len(bars) - cut - 1)
    for column in ("open", "high", "low", "close"):
        perturbed.iloc[cut + 1 :, perturbed.columns.get_loc(column)] *= scale
    again = decisions(
        StrategyPolicy(SPEC, SPEC.parameters, perturbed.iloc[:first]), perturbed, first
    )
    assert again[: cut - first + 1] == live[: cut - first + 1]
    assert again != live  # the perturbation did reach the later decisions


def test_positions_cover_every_target_a_spec_can_decide() -> None:
    assert positions_of(SPEC) == tuple(k / 4 * 0.8 for k in range(-4, 5))
    long_only = StrategySpec.build(
        "trend-following/macd", ["GOOG"], risk=RiskParams(allow_short=False)
    )
    assert positions_of(long_only) == (0.0, 0.25, 0.5, 0.75, 1.0)


def test_unknown_and_unvalidated_strategies_are_refused(tmp_path: Path) -> None:
    registry = make_strategy_registry(tmp_path / "s.sqlite", SPEC, validated=False)
    with pytest.raises(SetupError, match="strategy 0123456789abcdef is not in the registry"):
        TradableStrategy.load("0123456789abcdef", registry, tmp_path)
    with pytest.raises(SetupError, match=r"no registry under .* holds strategy"):
        TradableStrategy.load(SPEC.spec_id, None, tmp_path / "empty")
    with pytest.raises(SetupError, match=r"--registry .*: no such file"):
        TradableStrategy.load(SPEC.spec_id, tmp_path / "missing.sqlite", tmp_path)
    with pytest.raises(SetupError, match=r"did not pass validation.*--allow-unvalidated"):
        TradableStrategy.load(SPEC.spec_id, registry, tmp_path)
    allowed = TradableStrategy.load(SPEC.spec_id, registry, tmp_path, allow_unvalidated=True)
    assert not allowed.validated and allowed.symbol == "GOOG"
    validated = make_strategy_registry(tmp_path / "v.sqlite", SPEC)
    assert TradableStrategy.load(SPEC.spec_id, validated, tmp_path).validated
    with pytest.raises(SetupError, match="not live-ready"):  # validated, but not audited
        TradableStrategy.load(SPEC.spec_id, validated, tmp_path, real_money=True)
    with pytest.raises(SetupError, match="never trades real money"):
        LiveOptions(strategy=SPEC.spec_id, allow_unvalidated=True, live=True)
    with pytest.raises(SetupError, match="each name what to trade: one"):
        LiveOptions(strategy=SPEC.spec_id, checkpoint=tmp_path / "x.pth")
    with pytest.raises(SetupError, match="drop --checkpoint and --trade-as"):
        LiveOptions(strategy=SPEC.spec_id, trade_as="AAPL")


def test_a_multi_symbol_strategy_loads_as_a_basket_and_only_as_one(tmp_path: Path, bars) -> None:
    pair = StrategySpec.build("pairs/distance-zscore", ["GOOG", "AAPL"])
    registry = make_strategy_registry(tmp_path / "s.sqlite", pair)
    strategy = TradableStrategy.load(pair.spec_id, registry, tmp_path)
    assert strategy.is_basket and strategy.symbol == "GOOG+AAPL"
    with pytest.raises(SetupError, match=r"trades the basket GOOG\+AAPL, not one symbol"):
        strategy.bars()
    with pytest.raises(SetupError, match=MULTI_LEG):
        StrategyPolicy(pair, pair.parameters, bars)


def test_a_restarted_basket_keeps_the_books_it_resolved_before_its_first_bar(tmp_path) -> None:
    """A computed universe (the four least volatile symbols) is resolved on the bars before
    the first traded bar; a bot restarted later resolves it on those same bars, however
    the bars since then moved."""
    spec = StrategySpec.build(
        "momentum/cross-sectional-momentum",
        UniverseSpec(SYNTHETIC, source="synthetic", filters=(Filter("volatility", "bottom_n", 4),)),
        {"lookback": 20, "skip": 0, "top_n": 1, "bottom_n": 1, "rebalance": 5},
    )
    registry = make_strategy_registry(
        tmp_path / "b.sqlite", spec, symbol="AR1", source="synthetic", options={"n_bars": 900}
    )
    strategy = TradableStrategy.load(spec.spec_id, registry, tmp_path)
    start = strategy.windows.test_start
    history = strategy.basket_bars(strategy.windows.test_end)
    wild = history["AR1"].copy()  # the calmest symbol turns wild after the first bar
    later, prices = wild.index >= start, ["open", "high", "low", "close"]
    swing = np.resize([0.5, 2.0], int(later.sum()))  # halved, doubled, halved, ...
    wild.loc[later, prices] = wild.loc[later, prices].mul(swing, axis=0)
    history["AR1"] = wild
    first = strategy.basket_policy({s: f.loc[f.index < start] for s, f in history.items()})
    assert any("AR1" in book for book in first.books)
    assert strategy.basket_policy(history, first_bar=start).books == first.books
    assert not any("AR1" in book for book in strategy.basket_policy(history).books)
