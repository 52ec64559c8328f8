"""The synthetic universe: a planted lead-lag signal that is statistically there, controls
(same volatility, no signal; drift without timing) where it is not, determinism by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evotrader.data import DataError
from evotrader.data.sources.synthetic_universe import generate_universe, universe_symbols
from evotrader.data.universe import load_universe

N_BARS = 3000
# |corr| above this is significant at about 4 sigma under independence (se = 1/sqrt(n))
SIGNIFICANT = 4 / np.sqrt(N_BARS)


def _log_returns(bars: dict[str, pd.DataFrame]) -> np.ndarray:
    """Close-to-close log returns, bars x assets."""
    return np.column_stack([np.diff(np.log(frame["close"].to_numpy())) for frame in bars.values()])


def _lead_lag(returns: np.ndarray) -> np.ndarray:
    """corr(r_i at t, r_j at t+1) for every pair, leaders in rows."""
    n = returns.shape[1]
    return np.array(
        [[np.corrcoef(returns[:-1, i], returns[1:, j])[0, 1] for j in range(n)] for i in range(n)]
    )


def test_lead_lag_signal_is_planted_with_the_stated_loadings() -> None:
    universe = generate_universe(4, N_BARS, seed=11, kind="lead_lag", strength=0.3)
    corr = _lead_lag(_log_returns(universe.bars))

    assert universe.leader == "A0"
    np.testing.assert_array_equal(universe.loadings, [0.0, 0.3, -0.3, 0.3])
    # the leader's return predicts every follower's next return with the planted sign and size
    np.testing.assert_allclose(corr[0, 1:], universe.loadings[1:], atol=SIGNIFICANT)
    assert (np.abs(corr[0, 1:]) > SIGNIFICANT).all()
    # and nothing else leads anything
    others = np.ones_like(corr, dtype=bool)
    others[0, 1:] = False
    assert (np.abs(corr[others]) < SIGNIFICANT).all()


@pytest.mark.parametrize("kind", ["noise", "drift"])
def test_controls_have_no_lead_lag_and_the_same_volatility(kind: str) -> None:
    signal = _log_returns(generate_universe(4, N_BARS, seed=11, kind="lead_lag").bars)
    control = generate_universe(4, N_BARS, seed=11, kind=kind)
    returns = _log_returns(control.bars)

    assert (np.abs(_lead_lag(returns)) < SIGNIFICANT).all()
    assert not control.loadings.any()
    np.testing.assert_allclose(returns.std(axis=0), signal.std(axis=0), rtol=0.1)
    np.testing.assert_allclose(returns.std(axis=0), 0.01, rtol=0.1)


def test_drift_control_ranks_assets_by_mean_only() -> None:
    drift = generate_universe(4, N_BARS, seed=5, kind="drift", drift_spread=0.1)
    noise = generate_universe(4, N_BARS, seed=5, kind="noise")

    np.testing.assert_allclose(drift.drifts, [-0.001, -1 / 3 * 0.001, 1 / 3 * 0.001, 0.001])
    means = _log_returns(drift.bars).mean(axis=0)
    assert means[-1] - means[0] > 4 * 0.01 * np.sqrt(2 / N_BARS)  # the tilt is there
    # same shocks, shifted means: the difference from the no-drift control is the drift
    np.testing.assert_allclose(
        means - _log_returns(noise.bars).mean(axis=0), drift.drifts, atol=1e-12
    )


@pytest.mark.parametrize(("kind", "exploitable"), [("lead_lag", True), ("noise", False)])
def test_trading_on_the_leader_earns_only_where_the_signal_is_planted(
    kind: str, exploitable: bool
) -> None:
    """Long the '+' and short the '-' followers after the leader rises, the reverse after it
    falls: a t-statistic far above 4 on the signal, below 3 on the control (same seed)."""
    returns = _log_returns(generate_universe(4, N_BARS, seed=3, kind=kind).bars)
    signs = np.array([1.0, -1.0, 1.0])  # the planted pattern, known to the test only
    pnl = np.sign(returns[:-1, 0]) * (returns[1:, 1:] @ signs) / 3
    t_stat = pnl.mean() / pnl.std() * np.sqrt(len(pnl))

    assert (t_stat > 10) if exploitable else (abs(t_stat) < 3)


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    first = generate_universe(3, 200, seed=4)
    again = generate_universe(3, 200, seed=4)
    other = generate_universe(3, 200, seed=5)

    for symbol in universe_symbols(3):
        pd.testing.assert_frame_equal(first.bars[symbol], again.bars[symbol])
        assert not first.bars[symbol]["close"].equals(other.bars[symbol]["close"])


def test_every_open_is_the_previous_close_on_one_calendar() -> None:
    universe = generate_universe(3, 100, seed=2)
    for frame in universe.bars.values():
        np.testing.assert_allclose(frame["open"].to_numpy()[1:], frame["close"].to_numpy()[:-1])
        assert frame.index.equals(universe.bars["A0"].index)


def test_load_universe_generates_slices_and_selects() -> None:
    universe = load_universe(
        "synthetic_universe", ["A2", "A0"], start="2000-02-01", n_assets=3, n_bars=100, seed=2
    )
    generated = generate_universe(3, 100, seed=2)

    assert universe.symbols == ("A2", "A0") and universe.source == "synthetic_universe"
    assert universe.index[0] == pd.Timestamp("2000-02-01") and not universe.close_only
    pd.testing.assert_frame_equal(universe.bars["A2"], generated.bars["A2"].loc["2000-02-01":])
    with pytest.raises(DataError, match=r"unknown synthetic_universe symbol\(s\) \['A7'\]"):
        load_universe("synthetic_universe", ["A7"], n_assets=3)
    with pytest.raises(DataError, match=r"takes no option \['path'\]"):
        load_universe("synthetic_universe", path="x.csv")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "momentum"}, "kind must be one of"),
        ({"n_assets": 1}, "n_assets must be >= 2"),
        ({"strength": 1.0}, r"strength must lie in \[0, 1\)"),
        ({"vol": 0.0}, "vol must be positive"),
    ],
)
def test_bad_settings_are_refused_by_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=f"generate_universe: {message}"):
        generate_universe(**options)  # type: ignore[arg-type]
