"""Pairs: trade the spread of two related instruments back towards its norm.

Each signal returns two columns, the target of the first and of the second leg; the legs are
always opposite (+1/-1: long the spread, -1/+1: short it), each on its own half of the capital.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import band_reversion, log_returns, zscore

LEGS = 2


def distance_zscore(
    first: pd.DataFrame, second: pd.DataFrame, *, window: int, entry_z: float, exit_z: float
) -> np.ndarray:
    spread = np.log(first["close"]) - np.log(_aligned(first, second)["close"])
    return _legs(band_reversion(zscore(spread, window), entry_z, exit_z))


def cointegration_spread(
    first: pd.DataFrame,
    second: pd.DataFrame,
    *,
    hedge_window: int,
    z_window: int,
    entry_z: float,
    exit_z: float,
) -> np.ndarray:
    a, b = np.log(first["close"]), np.log(_aligned(first, second)["close"])
    hedge_ratio = a.rolling(hedge_window).cov(b) / b.rolling(hedge_window).var()
    return _legs(band_reversion(zscore(a - hedge_ratio * b, z_window), entry_z, exit_z))


def kalman_hedge(
    first: pd.DataFrame,
    second: pd.DataFrame,
    *,
    delta_log10: float,
    observation_std: float,
    warmup: int,
    entry_z: float,
    exit_z: float,
) -> np.ndarray:
    a = np.log(first["close"].to_numpy(np.float64))
    b = np.log(_aligned(first, second)["close"].to_numpy(np.float64))
    errors, variances = _kalman_regression(a, b, 10.0**delta_log10, observation_std**2)
    z = pd.Series(errors / np.sqrt(variances)).where(np.arange(len(a)) >= warmup)
    return _legs(band_reversion(z, entry_z, exit_z))


def _kalman_regression(
    y: np.ndarray, x: np.ndarray, delta: float, observation_var: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-step forecast errors of y and their variances under y = beta * x + alpha + noise,
    with (beta, alpha) a random walk of covariance delta / (1 - delta) * I (Chan 2013).

    A forward recursion: the forecast at t uses the state filtered up to t - 1."""
    step = delta / (1.0 - delta)
    beta = alpha = 0.0
    p11 = p12 = p22 = 0.0  # the state covariance, symmetric 2 x 2, in plain floats for speed
    errors, variances = np.empty(len(y)), np.empty(len(y))
    for t, (xt, yt) in enumerate(zip(x.tolist(), y.tolist(), strict=True)):
        p11, p22 = p11 + step, p22 + step
        error = yt - (beta * xt + alpha)
        spread_1, spread_2 = p11 * xt + p12, p12 * xt + p22  # covariance @ (x, 1)
        variance = spread_1 * xt + spread_2 + observation_var
        gain_1, gain_2 = spread_1 / variance, spread_2 / variance
        beta, alpha = beta + gain_1 * error, alpha + gain_2 * error
        p11, p12, p22 = p11 - gain_1 * spread_1, p12 - gain_1 * spread_2, p22 - gain_2 * spread_2
        errors[t], variances[t] = error, variance
    return errors, variances


def ou_s_score(
    first: pd.DataFrame,
    second: pd.DataFrame,
    *,
    fit_window: int,
    max_half_life: float,
    entry_z: float,
    exit_z: float,
) -> np.ndarray:
    spread = np.log(first["close"]) - np.log(_aligned(first, second)["close"])
    lagged = spread.shift(1)
    # AR(1) fit spread_t = a + b * spread_{t-1} + e over the trailing window
    slope = spread.rolling(fit_window).cov(lagged) / lagged.rolling(fit_window).var()
    intercept = spread.rolling(fit_window).mean() - slope * lagged.rolling(fit_window).mean()
    residual_var = spread.rolling(fit_window).var() - slope**2 * lagged.rolling(fit_window).var()
    reverting = (slope > 0.0) & (slope < 1.0)
    stable = slope.where(reverting)
    half_life = -np.log(2.0) / np.log(stable)
    equilibrium = intercept / (1.0 - stable)
    spread_std = np.sqrt(residual_var.clip(lower=0.0) / (1.0 - stable**2)).replace(0.0, np.nan)
    s_score = (spread - equilibrium) / spread_std
    tradeable = reverting & (half_life <= max_half_life)
    return _legs(band_reversion(s_score.where(tradeable, 0.0), entry_z, exit_z))


def correlation_filtered(
    first: pd.DataFrame,
    second: pd.DataFrame,
    *,
    window: int,
    correlation_window: int,
    min_correlation: float,
    entry_z: float,
    exit_z: float,
) -> np.ndarray:
    other = _aligned(first, second)
    spread = np.log(first["close"]) - np.log(other["close"])
    returns_a, returns_b = log_returns(first["close"]), log_returns(other["close"])
    correlated = returns_a.rolling(correlation_window).corr(returns_b) >= min_correlation
    z = zscore(spread, window).where(correlated, 0.0)
    return _legs(band_reversion(z, entry_z, exit_z))


def _aligned(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    if not first.index.equals(second.index):
        raise ValueError("pair legs must share one index (align them on common dates first)")
    return second


def _legs(spread_position: np.ndarray) -> np.ndarray:
    return np.column_stack([spread_position, -spread_position])


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "pairs/distance-zscore": distance_zscore,
    "pairs/cointegration-spread": cointegration_spread,
    "pairs/kalman-hedge": kalman_hedge,
    "pairs/ou-s-score": ou_s_score,
    "pairs/correlation-filtered": correlation_filtered,
}
