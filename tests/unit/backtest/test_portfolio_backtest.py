import numpy as np
import pandas as pd
import pytest

from evotrader.backtest.engine import run_backtest
from evotrader.backtest.portfolio import (
    History,
    PortfolioError,
    PortfolioSettings,
    run_portfolio,
)
from evotrader.data import generate_synthetic
from evotrader.data.errors import DataError
from evotrader.env import EnvSpec, ExecutionModel

COSTLY = ExecutionModel(commission_bps=5, half_spread_bps=3, slippage_bps=2, impact_coef=0.05)
FREE = ExecutionModel(commission_bps=0, half_spread_bps=0, slippage_bps=0)


def _universe(n_assets: int = 4, n_bars: int = 300, seed: int = 0) -> dict[str, pd.DataFrame]:
    return {
        f"S{i}": generate_synthetic(
            n_bars, seed=seed + i, kind="random_walk", vol=0.01 * (i + 1)
        ).bars
        for i in range(n_assets)
    }


def _momentum(history: History) -> np.ndarray:
    """Long the assets that rose over the last 20 closes, equally: reads the history only."""
    closes = history.closes
    if len(closes) < 21:
        return np.zeros(closes.shape[1])
    winners = (closes.iloc[-1] / closes.iloc[-21] > 1.0).to_numpy(np.float64)
    return winners / max(1.0, winners.sum())


def test_a_one_asset_portfolio_equals_the_single_asset_engine(bars, pipeline) -> None:
    execution = ExecutionModel(
        commission_bps=3, half_spread_bps=2, slippage_bps=4, impact_coef=0.05
    )
    spec = EnvSpec(window=32, execution=execution, agent_state=False, episode_length=None)
    positions = np.asarray(spec.positions)
    actions = np.random.default_rng(0).integers(len(positions), size=len(bars))

    class Replay:  # the single engine takes all decisions in one batch, in order
        def __init__(self) -> None:
            self.cursor = 0

        def act(self, observations: np.ndarray) -> np.ndarray:
            batch = actions[self.cursor : self.cursor + len(observations)]
            self.cursor += len(observations)
            return batch

    single = run_backtest(Replay(), bars, pipeline=pipeline, spec=spec)
    targets = iter(positions[actions])
    previous = [0.0]

    def replay(history: History) -> np.ndarray | None:
        # the single engine trades only when its target changes; otherwise it lets weights drift
        target = float(next(targets))
        changed, previous[0] = target != previous[0], target
        return np.array([target]) if changed else None

    settings = PortfolioSettings(
        rebalance="bar", long_only=False, max_gross=1.0, execution=execution
    )
    result = run_portfolio(replay, {"X": bars}, settings, start=single.equity.index[0])
    assert result.equity.index.equals(single.equity.index)
    np.testing.assert_allclose(result.equity.to_numpy(), single.equity.to_numpy(), rtol=1e-12)
    assert result.metrics["fees"] == pytest.approx(single.metrics["fees"], rel=1e-12)
    assert len(result.fills) == len(single.fills) > 50
    assert result.metrics["sharpe"] == pytest.approx(single.metrics["sharpe"], rel=1e-9)


def test_weights_decided_by_t_ignore_prices_after_t() -> None:
    universe = _universe()
    t = 180
    perturbed = {s: b.copy() for s, b in universe.items()}
    for frame in perturbed.values():
        frame.iloc[t + 1 :] *= np.linspace(0.5, 2.0, len(frame) - t - 1)[:, None]
    settings = PortfolioSettings(rebalance="weekly", execution=COSTLY)
    base = run_portfolio(_momentum, universe, settings)
    moved = run_portfolio(_momentum, perturbed, settings)
    cut = universe["S0"].index[t]
    before, after = base.targets.loc[:cut], moved.targets.loc[:cut]
    pd.testing.assert_frame_equal(before, after)
    assert before.to_numpy().sum() > 0  # the policy did take positions before t
    assert not base.targets.equals(moved.targets)  # ... and the perturbation mattered after t


def test_policy_only_ever_sees_history_up_to_its_bar() -> None:
    universe = _universe(n_assets=2, n_bars=60)
    seen: list[tuple[pd.Timestamp, pd.Timestamp, int]] = []

    def spy(history: History) -> np.ndarray:
        assert history.bars is not None
        last_bar = max(history.bars[symbol].index[-1] for symbol in universe)
        assert list(history.bars["S1"].columns) == ["open", "high", "low", "close", "volume"]
        seen.append((history.timestamp, last_bar, len(history.closes)))
        return np.array([0.5, 0.5])

    run_portfolio(spy, universe, PortfolioSettings(rebalance="bar"))
    index = universe["S0"].index
    assert [s[0] for s in seen] == list(index[:-1])
    assert all(when == last for when, last, _ in seen)
    assert [n for *_, n in seen] == list(range(1, len(index)))


def test_costs_are_the_difference_between_free_and_costly_runs() -> None:
    universe = _universe()
    free = run_portfolio(_momentum, universe, PortfolioSettings("weekly", execution=FREE))
    flat = ExecutionModel(commission_bps=5, half_spread_bps=3, slippage_bps=2)
    costly = run_portfolio(_momentum, universe, PortfolioSettings("weekly", execution=flat))
    assert free.metrics["fees"] == 0.0
    fees = costly.per_asset["costs"].sum()
    assert fees > 0
    assert costly.metrics["fees"] == pytest.approx(fees)
    # costs also shrink later trade sizes, so the gap is close to, not exactly, the fees paid
    gap = free.equity.iloc[-1] - costly.equity.iloc[-1]
    assert gap == pytest.approx(fees, rel=0.05)


def test_costs_with_identical_trades_differ_by_exactly_the_fees() -> None:
    universe = _universe(n_assets=3)
    once = {"S0": 0.3, "S1": 0.3, "S2": 0.3}
    calls = [0]

    def buy_once(history: History) -> dict[str, float] | None:
        calls[0] += 1
        return once if calls[0] == 1 else None

    free = run_portfolio(buy_once, universe, PortfolioSettings("bar", execution=FREE))
    calls[0] = 0
    flat = ExecutionModel(commission_bps=10, half_spread_bps=0, slippage_bps=0)
    costly = run_portfolio(buy_once, universe, PortfolioSettings("bar", execution=flat))
    # one trade sized on the same equity: same units, the costs come straight out of cash
    np.testing.assert_allclose(
        free.equity - costly.equity,
        costly.metrics["fees"] * (free.equity.index > free.equity.index[0]),
    )
    assert costly.metrics["fees"] == pytest.approx(0.9 * 100_000 * 10 / 1e4)


def test_attribution_adds_up_to_the_equity_change() -> None:
    result = run_portfolio(_momentum, _universe(), PortfolioSettings("weekly", execution=COSTLY))
    np.testing.assert_allclose(
        result.attribution.sum(axis=1), result.equity - result.equity.iloc[0], atol=1e-6
    )
    assert result.per_asset["pnl"].sum() == pytest.approx(
        result.equity.iloc[-1] - result.equity.iloc[0]
    )
    assert (result.per_asset["turnover"] > 0).all()


@pytest.mark.parametrize(("frequency", "calls"), [("bar", 299), ("weekly", 60), ("monthly", 14)])
def test_rebalance_frequency_sets_the_decision_dates(frequency, calls) -> None:
    universe = _universe(n_assets=2)
    dates: list[pd.Timestamp] = []

    def record(history: History) -> np.ndarray:
        dates.append(history.timestamp)
        return np.array([0.5, 0.5])

    run_portfolio(record, universe, PortfolioSettings(frequency))
    assert len(dates) == calls
    index = universe["S0"].index
    assert dates[0] == index[0]
    if frequency == "monthly":  # then the first bar of each new month, known from its own date
        positions = index.get_indexer(dates[1:])
        assert (index[positions].month != index[positions - 1].month).all()


def test_close_only_fills_at_the_next_close_and_says_so() -> None:
    universe = _universe(n_assets=2)
    closes = pd.DataFrame({s: b["close"] for s, b in universe.items()})
    result = run_portfolio(lambda h: np.array([0.5, 0.5]), closes, PortfolioSettings("monthly"))
    first = result.fills.iloc[0]
    assert first["timestamp"] == closes.index[1]
    assert first["price"] == closes.loc[closes.index[1], first["symbol"]]
    assert any("close-only" in note for note in result.notes)
    flagged = run_portfolio(
        lambda h: np.array([0.5, 0.5]), universe, PortfolioSettings("monthly"), close_only=True
    )
    np.testing.assert_allclose(flagged.equity, result.equity)


def test_long_short_within_the_gross_limit_is_accepted() -> None:
    settings = PortfolioSettings("monthly", long_only=False, max_gross=1.5)
    result = run_portfolio(lambda h: np.array([1.0, -0.5]), _universe(n_assets=2), settings)
    np.testing.assert_allclose(result.targets.to_numpy()[0], [1.0, -0.5])
    assert result.weights.iloc[-1]["S1"] < 0


@pytest.mark.parametrize(
    ("weights", "settings", "message"),
    [
        (np.array([np.nan, 0.5]), PortfolioSettings(), "S0 is nan"),
        (np.array([0.7, -0.1]), PortfolioSettings(), "S1 is -0.1 but the portfolio is long-only"),
        (np.array([0.7, 0.6]), PortfolioSettings(), "gross exposure 1.3 is over the limit 1"),
        (
            np.array([1.0, -0.6]),
            PortfolioSettings(long_only=False, max_gross=1.5),
            "gross exposure 1.6 is over the limit 1.5",
        ),
        (np.array([0.5]), PortfolioSettings(), "1 weights for 2 symbols"),
        ({"S0": 0.5, "ZZ": 0.5}, PortfolioSettings(), "unknown symbols ['ZZ'], missing ['S1']"),
    ],
)
def test_bad_weights_are_refused_naming_the_date(weights, settings, message) -> None:
    universe = _universe(n_assets=2, n_bars=40)
    with pytest.raises(PortfolioError, match="policy weights at 2000-01-03") as error:
        run_portfolio(lambda h: weights, universe, settings)
    assert message in str(error.value)


def test_bad_inputs_get_one_clear_error() -> None:
    universe = _universe(n_assets=2, n_bars=40)
    with pytest.raises(PortfolioError, match="rebalance must be one of"):
        PortfolioSettings(rebalance="daily")
    with pytest.raises(PortfolioError, match="max_gross must be positive"):
        PortfolioSettings(max_gross=0.0)
    shifted = {"S0": universe["S0"], "S1": universe["S1"].iloc[1:]}
    with pytest.raises(DataError, match="bars for S1 are not aligned with S0"):
        run_portfolio(_momentum, shifted)
    closes = pd.DataFrame({s: b["close"] for s, b in universe.items()})
    closes.iloc[5, 1] = np.nan
    with pytest.raises(DataError, match="S1"):
        run_portfolio(_momentum, closes)
    with pytest.raises(PortfolioError, match="impact_coef must be 0"):
        run_portfolio(_momentum, universe, PortfolioSettings(execution=COSTLY), close_only=True)
    with pytest.raises(DataError, match="leaves no bar"):
        run_portfolio(_momentum, universe, start="2030-01-01")


def test_ruin_ends_trading_and_equity_stays_at_zero() -> None:
    index = pd.bdate_range("2020-01-01", periods=60)
    squeezed = np.where(np.arange(60) < 30, 100.0, 300.0)  # the shorted asset triples
    closes = pd.DataFrame({"UP": squeezed, "FLAT": np.full(60, 50.0)}, index=index)
    calls: list[pd.Timestamp] = []

    def short_up(history: History) -> np.ndarray:
        calls.append(history.timestamp)
        return np.array([-1.0, 0.0])

    settings = PortfolioSettings("bar", long_only=False, execution=FREE)
    result = run_portfolio(short_up, closes, settings)
    assert (result.equity.iloc[30:] == 0.0).all()
    assert (result.equity.iloc[:30] > 0).all()
    assert calls[-1] == index[29]  # no decision after the ruin
    assert result.metrics["max_drawdown"] == -1.0
    assert result.per_asset.loc["UP", "pnl"] == pytest.approx(-200_000.0)  # the unfloored loss
