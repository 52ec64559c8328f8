"""Synthetic bars: determinism, gapless OHLC, regimes, and planted signals recoverable from data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from evotrader.data import (
    REGIMES,
    DataError,
    SyntheticBars,
    generate_synthetic,
    list_symbols,
    load_bars,
    validate_ohlcv,
)
from evotrader.data.validation import OHLCV_COLUMNS

N_LONG = 20_000


def assert_bars_contract(bars: pd.DataFrame) -> None:
    assert list(bars.columns) == list(OHLCV_COLUMNS)
    assert (bars.dtypes == np.float64).all()
    assert bars.index.name == "timestamp"
    assert bars.index.tz is None
    pd.testing.assert_frame_equal(validate_ohlcv(bars), bars)


def log_returns(bars: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(bars["close"].to_numpy()))


def lag1_autocorr(returns: np.ndarray) -> float:
    return float(np.corrcoef(returns[1:], returns[:-1])[0, 1])


def same_sign_share(returns: np.ndarray) -> float:
    return float(np.mean(np.sign(returns[1:]) == np.sign(returns[:-1])))


@pytest.mark.parametrize("kind", ["random_walk", "regimes", "ar1", "momentum"])
def test_every_kind_satisfies_the_contract(kind: str) -> None:
    result = generate_synthetic(500, seed=1, kind=kind)

    assert isinstance(result, SyntheticBars)
    assert len(result.bars) == 500
    assert_bars_contract(result.bars)
    assert result.regimes.index.equals(result.bars.index)
    assert set(result.regimes) <= set(REGIMES)


def test_same_seed_same_frame_different_seed_different_frame() -> None:
    first = generate_synthetic(300, seed=7, kind="regimes", ar_coef=0.2, momentum=0.1)
    again = generate_synthetic(300, seed=7, kind="regimes", ar_coef=0.2, momentum=0.1)
    other = generate_synthetic(300, seed=8, kind="regimes", ar_coef=0.2, momentum=0.1)

    pd.testing.assert_frame_equal(first.bars, again.bars)
    pd.testing.assert_series_equal(first.regimes, again.regimes)
    assert not np.allclose(first.bars["close"], other.bars["close"])


def test_open_is_exactly_the_previous_close() -> None:
    bars = generate_synthetic(1000, seed=2, kind="regimes", start_price=50.0).bars

    assert bars["open"].iloc[0] == 50.0
    np.testing.assert_array_equal(bars["open"].to_numpy()[1:], bars["close"].to_numpy()[:-1])


def test_high_and_low_strictly_envelope_the_body() -> None:
    bars = generate_synthetic(1000, seed=3).bars
    body_top = np.maximum(bars["open"], bars["close"])
    body_bottom = np.minimum(bars["open"], bars["close"])

    assert (bars["high"] >= body_top).all() and (bars["high"] > body_top).mean() > 0.99
    assert (bars["low"] <= body_bottom).all() and (bars["low"] < body_bottom).mean() > 0.99


def test_volume_is_lognormal_around_a_million() -> None:
    volume = generate_synthetic(5000, seed=4).bars["volume"]

    assert volume.median() == pytest.approx(1e6, rel=0.05)
    assert volume.min() > 0


def test_index_follows_start_and_freq() -> None:
    bars = generate_synthetic(10, start="2021-06-01", freq="h").bars
    business = generate_synthetic(30, start="2000-01-03").bars

    assert bars.index[0] == pd.Timestamp("2021-06-01")
    assert (bars.index.to_series().diff().dropna() == pd.Timedelta(hours=1)).all()
    assert (business.index.dayofweek < 5).all()


def test_random_walk_has_no_autocorrelation_and_is_all_sideways() -> None:
    result = generate_synthetic(N_LONG, seed=5, kind="random_walk")
    returns = log_returns(result.bars)

    assert abs(lag1_autocorr(returns)) < 0.03
    assert returns.std() == pytest.approx(0.01, rel=0.03)
    assert set(result.regimes) == {"sideways"}


def test_random_walk_drift_shows_in_mean_return() -> None:
    returns = log_returns(generate_synthetic(N_LONG, seed=6, kind="random_walk", drift=0.002).bars)

    assert returns.mean() == pytest.approx(0.002, abs=3 * 0.01 / np.sqrt(N_LONG))


@pytest.mark.parametrize("coef", [0.3, -0.2, 0.6])
def test_planted_ar1_coefficient_is_recovered(coef: float) -> None:
    bars = generate_synthetic(N_LONG, seed=9, kind="random_walk", ar_coef=coef).bars

    assert lag1_autocorr(log_returns(bars)) == pytest.approx(coef, abs=0.03)


def test_ar1_kind_defaults_to_coefficient_0_3() -> None:
    shorthand = generate_synthetic(N_LONG, seed=10, kind="ar1").bars
    explicit = generate_synthetic(N_LONG, seed=10, kind="random_walk", ar_coef=0.3).bars

    pd.testing.assert_frame_equal(shorthand, explicit)
    assert lag1_autocorr(log_returns(shorthand)) == pytest.approx(0.3, abs=0.03)


def test_momentum_persists_the_sign_without_changing_magnitudes() -> None:
    plain = generate_synthetic(N_LONG, seed=11, kind="random_walk")
    persistent = generate_synthetic(N_LONG, seed=11, kind="momentum")

    # Forced with prob 0.3, otherwise a fair coin: 0.3 + 0.7 / 2 of consecutive signs agree.
    assert same_sign_share(log_returns(persistent.bars)) == pytest.approx(0.65, abs=0.015)
    assert same_sign_share(log_returns(plain.bars)) == pytest.approx(0.5, abs=0.015)
    np.testing.assert_allclose(
        np.abs(log_returns(persistent.bars)), np.abs(log_returns(plain.bars)), atol=1e-12
    )


def test_signals_stack_on_regimes() -> None:
    bars = generate_synthetic(N_LONG, seed=12, kind="regimes", momentum=0.5).bars

    assert same_sign_share(log_returns(bars)) == pytest.approx(0.75, abs=0.02)


def test_regimes_cover_all_four_with_distinct_behaviour() -> None:
    result = generate_synthetic(5000, seed=0, kind="regimes")
    returns = pd.Series(np.log(result.bars["close"]).diff(), index=result.bars.index)
    by_regime = returns.groupby(result.regimes)

    assert set(result.regimes) == set(REGIMES)
    vols = by_regime.std()
    assert vols["high_vol"] > 2 * max(vols["bull"], vols["bear"], vols["sideways"])
    assert vols["sideways"] < vols["bull"]
    means = by_regime.mean()
    assert means["bull"] > 0 > means["bear"]


def test_regime_persistence_controls_switch_rate() -> None:
    labels = generate_synthetic(N_LONG, seed=13, regime_persistence=0.98).regimes
    frozen = generate_synthetic(500, seed=13, regime_persistence=1.0).regimes

    switch_rate = (labels != labels.shift()).iloc[1:].mean()
    assert switch_rate == pytest.approx(0.02, abs=0.005)
    assert frozen.nunique() == 1


def test_result_is_frozen() -> None:
    result = generate_synthetic(10)

    with pytest.raises(dataclasses.FrozenInstanceError):
        result.bars = result.bars  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"kind": "garch"}, "kind must be one of"),
        ({"n_bars": 0}, "n_bars must be >= 1"),
        ({"ar_coef": 1.0}, r"ar_coef must be in \(-1, 1\)"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"vol": 0.0}, "vol must be > 0"),
        ({"regime_persistence": 1.5}, r"regime_persistence must be in \[0, 1\]"),
        ({"start_price": -1.0}, "start_price must be > 0"),
    ],
)
def test_invalid_parameters_are_rejected(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(DataError, match=problem):
        generate_synthetic(**kwargs)  # type: ignore[arg-type]


def test_load_bars_maps_symbols_to_kinds_and_passes_options() -> None:
    loaded = load_bars("synthetic", "ar1", n_bars=200, seed=3, vol=0.02)
    direct = generate_synthetic(200, seed=3, kind="ar1", vol=0.02).bars

    pd.testing.assert_frame_equal(loaded, direct)
    assert list_symbols("synthetic") == ["RANDOM_WALK", "REGIMES", "AR1", "MOMENTUM", "SIGN_SWITCH"]


def test_load_bars_slices_synthetic_data() -> None:
    bars = load_bars("synthetic", "REGIMES", start="2000-02-01", end="2000-02-29", n_bars=100)

    assert bars.index[0] == pd.Timestamp("2000-02-01")
    assert bars.index[-1] == pd.Timestamp("2000-02-29")


def test_unknown_synthetic_symbol_and_kind_conflict() -> None:
    with pytest.raises(DataError, match=r"unknown synthetic symbol 'GARCH'.*RANDOM_WALK"):
        load_bars("synthetic", "GARCH")
    with pytest.raises(DataError, match="already fixes kind='ar1'"):
        load_bars("synthetic", "AR1", kind="regimes")


def test_too_many_daily_bars_fail_with_a_hint() -> None:
    with pytest.raises(DataError, match="finer freq"):
        generate_synthetic(100_000, freq="B")
    assert len(generate_synthetic(100_000, freq="h").bars) == 100_000


def test_sign_switch_alternates_momentum_and_mean_reversion_by_block() -> None:
    bars = generate_synthetic(2000, seed=4, kind="sign_switch", switch_every=500).bars
    returns = np.diff(np.log(bars["close"].to_numpy()))
    signs = []
    for start in range(0, 2000, 500):
        block = returns[start : start + 499]
        signs.append(np.sign(np.corrcoef(block[:-1], block[1:])[0, 1]))
    assert signs == [1, -1, 1, -1]
    with pytest.raises(DataError, match="switch_every"):
        generate_synthetic(100, kind="sign_switch", switch_every=0)
