import numpy as np
import pandas as pd
import pytest
from skfolio.optimization import HierarchicalRiskParity, MeanRisk

from evotrader.backtest import significance
from evotrader.backtest.baselines import (
    BUY_AND_HOLD,
    EQUAL_WEIGHT,
    HRP,
    MAX_SHARPE,
    MIN_VARIANCE,
    RISK_PARITY,
    WalkForward,
    buy_and_hold,
    compare_with_baselines,
    default_baselines,
    equal_weight,
)
from evotrader.backtest.portfolio import PortfolioError, PortfolioSettings, run_portfolio
from evotrader.data import generate_synthetic

OPTIMISERS = (MIN_VARIANCE, MAX_SHARPE, HRP, RISK_PARITY)
TRAIN = 120  # bars of history before the first decision


def _closes(
    vols: np.ndarray, n_bars: int = 260, seed: int = 0, drift: float = 4e-4
) -> pd.DataFrame:
    """Close-only universe: independent Gaussian returns with the given per-bar volatilities
    (a (bars, assets) array plants a volatility that changes over time)."""
    rng = np.random.default_rng(seed)
    vols = np.broadcast_to(np.asarray(vols, dtype=np.float64), (n_bars - 1, np.shape(vols)[-1]))
    returns = drift + vols * rng.standard_normal(vols.shape)
    prices = 100.0 * np.vstack([np.ones(vols.shape[1]), np.cumprod(1.0 + returns, axis=0)])
    index = pd.bdate_range("2010-01-04", periods=n_bars)
    return pd.DataFrame(prices, index=index, columns=[f"A{i}" for i in range(vols.shape[1])])


def _start(closes: pd.DataFrame) -> pd.Timestamp:
    return pd.Timestamp(closes.index[TRAIN])


def test_optimiser_weights_decided_by_t_ignore_prices_after_t() -> None:
    closes = _closes(np.array([0.01, 0.015, 0.02, 0.008, 0.012]))
    t = 190
    perturbed = closes.copy()
    perturbed.iloc[t + 1 :] *= np.linspace(0.6, 1.8, len(closes) - t - 1)[:, None] ** np.arange(
        1, 6
    )
    settings = PortfolioSettings("monthly")
    cut = closes.index[t]
    for name in OPTIMISERS:
        policy = default_baselines(window=100)[name]
        base = run_portfolio(policy, closes, settings, start=_start(closes))
        moved = run_portfolio(policy, perturbed, settings, start=_start(closes))
        pd.testing.assert_frame_equal(base.targets.loc[:cut], moved.targets.loc[:cut], obj=name)
        assert not np.allclose(base.targets.loc[cut:].iloc[1:], moved.targets.loc[cut:].iloc[1:]), (
            name
        )


@pytest.mark.parametrize("calm", [0, 3])
def test_minimum_variance_gives_the_planted_calm_asset_the_largest_weight(calm) -> None:
    vols = np.full(5, 0.02)
    vols[calm] = 0.004
    closes = _closes(vols, seed=calm)
    result = run_portfolio(
        default_baselines()[MIN_VARIANCE],
        closes,
        PortfolioSettings("monthly"),
        start=_start(closes),
    )
    assert len(result.targets) >= 5
    assert (result.targets.to_numpy().argmax(axis=1) == calm).all()
    assert (result.targets[f"A{calm}"] > 0.5).all()


def test_minimum_variance_spreads_weight_when_no_asset_is_calmer() -> None:
    closes = _closes(np.full(5, 0.02), seed=11)  # the control: same volatility everywhere
    result = run_portfolio(
        default_baselines()[MIN_VARIANCE],
        closes,
        PortfolioSettings("monthly"),
        start=_start(closes),
    )
    assert result.targets.to_numpy().max() < 0.4
    assert result.targets.to_numpy().min() > 0.05


def test_a_trailing_window_follows_a_change_an_expanding_one_averages_it() -> None:
    early, late = np.array([0.004, 0.02]), np.array([0.02, 0.004])
    vols = np.vstack([np.tile(early, (199, 1)), np.tile(late, (100, 1))])
    closes = _closes(vols, n_bars=300)
    settings = PortfolioSettings("monthly")

    def last_target(window: int | None) -> pd.Series:
        policy = WalkForward("min variance", MeanRisk(), window=window, min_history=60)
        return run_portfolio(policy, closes, settings, start=_start(closes)).targets.iloc[-1]

    assert last_target(60).idxmax() == "A1"  # the last 60 returns: A1 is now the calm one
    assert last_target(None).idxmax() == "A0"  # all returns: A0 was calm for twice as long


def test_equal_weight_is_equal_after_each_rebalance() -> None:
    closes = _closes(np.array([0.01, 0.03, 0.02, 0.015]))
    result = run_portfolio(equal_weight, closes, PortfolioSettings("weekly"))
    np.testing.assert_allclose(result.targets.to_numpy(), 0.25)
    # after each fill every asset is worth the same at the fill price (drift before it is undone)
    units = result.fills.pivot_table(
        index="timestamp", columns="symbol", values="units", aggfunc="sum"
    )
    held = units.fillna(0.0).cumsum()
    prices = closes.loc[held.index, held.columns]
    values = (held * prices).to_numpy()
    assert len(values) == len(result.targets) > 10
    np.testing.assert_allclose(values, values[:, :1].repeat(4, axis=1), rtol=1e-12)


def test_buy_and_hold_never_trades_after_the_start() -> None:
    closes = _closes(np.array([0.01, 0.03, 0.02]))
    result = run_portfolio(buy_and_hold, closes, PortfolioSettings("bar"))
    assert len(result.targets) == 1
    np.testing.assert_allclose(result.targets.to_numpy(), 1 / 3)
    assert len(result.fills) == 3
    assert result.fills["timestamp"].nunique() == 1
    assert result.weights.iloc[-1].std() > 0.01  # weights drifted, never pulled back


@pytest.mark.parametrize("name", [MAX_SHARPE, HRP, RISK_PARITY])
def test_optimisers_produce_valid_long_only_weights(name) -> None:
    closes = _closes(np.array([0.01, 0.03, 0.02, 0.015, 0.025, 0.012]), drift=8e-4)
    result = run_portfolio(
        default_baselines()[name], closes, PortfolioSettings("monthly"), start=_start(closes)
    )
    weights = result.targets.to_numpy()
    assert np.isfinite(weights).all()
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)  # fully invested
    if name != MAX_SHARPE:  # risk-based allocations hold every asset
        assert (weights > 0.01).all()
    assert result.fills["cost"].sum() > 0


def test_max_sharpe_holds_cash_when_no_asset_gained() -> None:
    closes = _closes(np.array([0.01, 0.02, 0.015]), drift=-3e-3)
    result = run_portfolio(
        default_baselines()[MAX_SHARPE], closes, PortfolioSettings("monthly"), start=_start(closes)
    )
    np.testing.assert_array_equal(result.targets.to_numpy(), 0.0)
    assert result.equity.nunique() == 1


def test_compare_runs_every_baseline_on_the_same_bars_after_costs() -> None:
    closes = _closes(np.array([0.01, 0.03, 0.02, 0.015]))
    settings = PortfolioSettings("monthly")
    first = closes.columns[0]

    def concentrated(history) -> dict[str, float]:
        return {s: 1.0 if s == first else 0.0 for s in history.closes.columns}

    comparison = compare_with_baselines(
        concentrated, closes, settings, name="mine", start=_start(closes)
    )
    expected = ["mine", EQUAL_WEIGHT, BUY_AND_HOLD, *OPTIMISERS]
    assert list(comparison.table.columns) == expected
    assert comparison.table.loc["fees", EQUAL_WEIGHT] > 0
    direct = run_portfolio(equal_weight, closes, settings, start=_start(closes))
    pd.testing.assert_series_equal(comparison.results[EQUAL_WEIGHT].equity, direct.equity)
    text = comparison.text()
    assert "test split, after costs" in text
    assert all(name in text for name in expected)
    edge = comparison.edge()
    assert edge.split == significance.TEST
    assert edge.observations == len(direct.equity) - 1
    with pytest.raises(PortfolioError, match="no baseline named 'nope'"):
        comparison.edge("nope")


def test_baselines_run_on_ohlcv_universes_too() -> None:
    universe = {f"S{i}": generate_synthetic(200, seed=i, kind="random_walk").bars for i in range(3)}
    comparison = compare_with_baselines(
        equal_weight,
        universe,
        name="ew again",
        start=universe["S0"].index[100],
        baselines={HRP: default_baselines()[HRP]},
    )
    assert comparison.results[HRP].fills["cost"].sum() > 0
    assert any("open" in note for note in comparison.results[HRP].notes)


def test_bad_baseline_settings_get_one_clear_error() -> None:
    closes = _closes(np.array([0.01, 0.02]))
    with pytest.raises(PortfolioError, match=r"HRP at 2010-01-04: 0 returns of history, needs 60"):
        run_portfolio(default_baselines()[HRP], closes)
    with pytest.raises(PortfolioError, match=r"window \(30\) must be >= min_history \(60\)"):
        WalkForward("HRP", HierarchicalRiskParity(), window=30)
    with pytest.raises(PortfolioError, match="min_history must be >= 2"):
        WalkForward("HRP", HierarchicalRiskParity(), min_history=1)
    with pytest.raises(PortfolioError, match="is also the policy's name"):
        compare_with_baselines(equal_weight, closes, name=EQUAL_WEIGHT)
