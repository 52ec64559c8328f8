"""Seeded synthetic bars with known ground truth, for tests and for checking agents can learn.

Close-to-close log returns drive the close, and every open equals the previous close exactly
(the first open is ``start_price``). An agent deciding at bar t's close and filled at bar t+1's
open therefore earns the whole next return, so a planted signal (AR(1) autocorrelation or sign
momentum) is genuinely exploitable, and a random walk genuinely is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from evotrader.data.errors import DataError
from evotrader.data.validation import INDEX_NAME, validate_ohlcv

REGIMES: tuple[str, ...] = ("bull", "bear", "sideways", "high_vol")
# Per-regime drift (in units of ``vol``) and volatility multiplier, aligned with REGIMES.
_REGIME_DRIFT = np.array([0.1, -0.1, 0.0, 0.0])
_REGIME_VOL = np.array([1.0, 1.0, 0.5, 3.0])
_SIDEWAYS = REGIMES.index("sideways")

KINDS: tuple[str, ...] = ("random_walk", "regimes", "ar1", "momentum", "sign_switch")
SYMBOLS: dict[str, str] = {kind.upper(): kind for kind in KINDS}
_DEFAULT_AR_COEF = 0.3
_DEFAULT_MOMENTUM = 0.3
_DEFAULT_SWITCH_COEF = 0.5
_VOLUME_MEDIAN = 1e6
_VOLUME_SIGMA = 0.25


@dataclass(frozen=True)
class SyntheticBars:
    """Generated bars (the bars contract) and the regime label that generated each bar."""

    bars: pd.DataFrame
    regimes: pd.Series


def generate_synthetic(
    n_bars: int = 2000,
    *,
    seed: int = 0,
    kind: str = "regimes",
    ar_coef: float = 0.0,
    momentum: float = 0.0,
    vol: float = 0.01,
    drift: float = 0.0,
    start: str = "2000-01-03",
    freq: str = "B",
    regime_persistence: float = 0.98,
    start_price: float = 100.0,
    switch_every: int = 250,
) -> SyntheticBars:
    """Generate ``n_bars`` bars, fully determined by the arguments (randomness from ``seed``).

    ``kind``: ``random_walk`` (iid Gaussian log returns, label ``sideways``), ``regimes`` (Markov
    chain over REGIMES, staying with probability ``regime_persistence``, else jumping uniformly to
    another regime; each regime has its own drift and vol), ``ar1`` / ``momentum`` (random walk
    with ``ar_coef`` / ``momentum`` defaulting to 0.3 when left at 0), ``sign_switch`` (AR(1)
    whose coefficient alternates between +ar_coef and -ar_coef every ``switch_every`` bars,
    starting positive; ar_coef defaults to 0.5): momentum in one block, mean reversion in the
    next, the planted signal that meta-learning must adapt to.

    Planted signals apply on top of any kind: ``ar_coef`` makes r_t = ar_coef * r_{t-1} + eps_t;
    then, with probability ``momentum``, the sign of r_t is forced to that of r_{t-1}.
    High/low extend max/min(open, close) by |N(0, sigma_t / 2)| in log terms, where sigma_t is
    the bar's volatility (``vol``, scaled by regime); volume is lognormal around 1e6.
    """
    _check_params(n_bars, kind, ar_coef, momentum, vol, regime_persistence, start_price)
    if kind == "ar1" and ar_coef == 0:
        ar_coef = _DEFAULT_AR_COEF
    if kind == "momentum" and momentum == 0:
        momentum = _DEFAULT_MOMENTUM
    if kind == "sign_switch" and ar_coef == 0:
        ar_coef = _DEFAULT_SWITCH_COEF
    if switch_every < 1:
        raise DataError(f"generate_synthetic: switch_every must be >= 1, got {switch_every}")
    rng = np.random.default_rng(seed)
    if kind == "regimes":
        states = _regime_path(rng, n_bars, regime_persistence)
        mu, sigma = drift + vol * _REGIME_DRIFT[states], vol * _REGIME_VOL[states]
    else:
        states = np.full(n_bars, _SIDEWAYS)
        mu, sigma = np.full(n_bars, drift), np.full(n_bars, vol)
    shocks = mu + sigma * rng.standard_normal(n_bars)
    block = switch_every if kind == "sign_switch" else n_bars
    returns = _persist_sign(rng, _ar1(shocks, ar_coef, block), momentum)
    try:
        index = pd.date_range(start=start, periods=n_bars, freq=freq, name=INDEX_NAME)
    except (pd.errors.OutOfBoundsDatetime, pd.errors.OutOfBoundsTimedelta) as error:
        raise DataError(
            f"synthetic: {n_bars} bars at freq={freq!r} from {start} run past pandas' last "
            "date (2262); use a finer freq such as 'h' or 'min'"
        ) from error
    bars = validate_ohlcv(
        _ohlcv(rng, returns, sigma, start_price, index), symbol=f"synthetic:{kind}"
    )
    labels = pd.Series(np.asarray(REGIMES, dtype=object)[states], index=bars.index, name="regime")
    return SyntheticBars(bars=bars, regimes=labels)


def load_synthetic(symbol: str, **options: Any) -> pd.DataFrame:
    """Bars for a synthetic ``symbol`` (RANDOM_WALK, REGIMES, AR1, MOMENTUM, SIGN_SWITCH)."""
    kind = SYMBOLS.get(symbol.upper())
    if kind is None:
        raise DataError(f"unknown synthetic symbol {symbol!r}; available: {', '.join(SYMBOLS)}")
    if "kind" in options:
        raise DataError(f"synthetic symbol {symbol!r} already fixes kind={kind!r}")
    return generate_synthetic(kind=kind, **options).bars


def _check_params(
    n_bars: int,
    kind: str,
    ar_coef: float,
    momentum: float,
    vol: float,
    regime_persistence: float,
    start_price: float,
) -> None:
    """Reject arguments that would silently produce a degenerate or explosive series."""
    problems = [
        (kind not in KINDS, f"kind must be one of {KINDS}, got {kind!r}"),
        (n_bars < 1, f"n_bars must be >= 1, got {n_bars}"),
        (abs(ar_coef) >= 1, f"ar_coef must be in (-1, 1) to stay stationary, got {ar_coef}"),
        (not 0 <= momentum < 1, f"momentum must be in [0, 1), got {momentum}"),
        (vol <= 0, f"vol must be > 0, got {vol}"),
        (
            not 0 <= regime_persistence <= 1,
            f"regime_persistence must be in [0, 1], got {regime_persistence}",
        ),
        (start_price <= 0, f"start_price must be > 0, got {start_price}"),
    ]
    failed = [message for bad, message in problems if bad]
    if failed:
        raise DataError("generate_synthetic: " + "; ".join(failed))


def _regime_path(rng: np.random.Generator, n_bars: int, persistence: float) -> np.ndarray:
    """Markov regime indices, vectorised: each switch adds an offset of 1..3 modulo 4."""
    n_regimes = len(REGIMES)
    switches = rng.random(n_bars) >= persistence
    switches[0] = False
    offsets = np.where(switches, rng.integers(1, n_regimes, n_bars), 0)
    return (rng.integers(n_regimes) + np.cumsum(offsets)) % n_regimes


def _ar1(shocks: np.ndarray, coef: float, block: int) -> np.ndarray:
    """r_t = c_t * r_{t-1} + shock_t with r_{-1} = 0, as linear filters (no per-bar loop).

    c_t is +coef in even blocks of ``block`` bars and -coef in odd ones; the filter state
    carries across block boundaries so the series has no seam.
    """
    if coef == 0:
        return shocks
    from scipy.signal import lfilter

    returns, previous = np.empty_like(shocks), 0.0
    for start in range(0, len(shocks), block):
        c = coef if (start // block) % 2 == 0 else -coef
        segment, _ = lfilter([1.0], [1.0, -c], shocks[start : start + block], zi=[c * previous])
        returns[start : start + block] = segment
        previous = segment[-1]
    return returns


def _persist_sign(rng: np.random.Generator, returns: np.ndarray, prob: float) -> np.ndarray:
    """With probability ``prob`` give r_t the (final) sign of r_{t-1}, keeping |r_t|.

    Chains of forced bars all inherit the sign of the last unforced bar, so the sign is a forward
    fill from unforced positions, which vectorises with a running maximum.
    """
    if prob == 0:
        return returns
    forced = rng.random(len(returns)) < prob
    forced[0] = False
    source = np.where(forced, 0, np.arange(len(returns)))
    np.maximum.accumulate(source, out=source)
    return cast(np.ndarray, np.abs(returns) * np.sign(returns[source]))


def _ohlcv(
    rng: np.random.Generator,
    returns: np.ndarray,
    sigma: np.ndarray,
    start_price: float,
    index: pd.DatetimeIndex,
) -> pd.DataFrame:
    """Turn log returns into gapless OHLCV bars (open_t == close_{t-1})."""
    close = start_price * np.exp(np.cumsum(returns))
    open_ = np.concatenate(([start_price], close[:-1]))
    wicks = np.abs(rng.standard_normal((2, len(returns)))) * (sigma / 2)
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(wicks[0]),
            "low": np.minimum(open_, close) * np.exp(-wicks[1]),
            "close": close,
            "volume": rng.lognormal(np.log(_VOLUME_MEDIAN), _VOLUME_SIGMA, len(returns)),
        },
        index=index,
    )
