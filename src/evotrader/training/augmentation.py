"""Augmented and adversarial training bars, so evolution cannot just memorise one history.

Every augmentation builds new close-to-close log returns for the training bars and rebuilds
the bars around them with each bar's own shape (open, high and low relative to the close)
and volume, so the result keeps the bars contract and the same timestamps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.data import validate_ohlcv

KINDS = ("none", "block_bootstrap", "noise", "garch", "adversarial")


def log_returns(bars: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(bars["close"].to_numpy(np.float64)))


def bars_with_returns(bars: pd.DataFrame, returns: np.ndarray) -> pd.DataFrame:
    """``bars`` re-priced so that their close-to-close log returns are ``returns``."""
    if len(returns) != len(bars) - 1:
        raise ValueError(f"need {len(bars) - 1} returns for {len(bars)} bars, got {len(returns)}")
    close = bars["close"].to_numpy(np.float64)
    new_close = close[0] * np.exp(np.concatenate(([0.0], np.cumsum(returns))))
    scale = new_close / close
    priced = bars.copy()
    for column in ("open", "high", "low", "close"):
        priced[column] = bars[column].to_numpy(np.float64) * scale
    return validate_ohlcv(priced, symbol="augmented")


def block_bootstrap(bars: pd.DataFrame, block: int, rng: np.random.Generator) -> pd.DataFrame:
    """Returns resampled in contiguous blocks: keeps short-range structure, breaks the path."""
    returns = log_returns(bars)
    if not 1 <= block <= len(returns):
        raise ValueError(f"bootstrap block must be in [1, {len(returns)}], got {block}")
    starts = rng.integers(0, len(returns) - block + 1, size=-(-len(returns) // block))
    sampled = np.concatenate([returns[s : s + block] for s in starts])[: len(returns)]
    return bars_with_returns(bars, sampled)


def noisy(bars: pd.DataFrame, scale: float, rng: np.random.Generator) -> pd.DataFrame:
    """Returns plus Gaussian noise of ``scale`` times their standard deviation."""
    returns = log_returns(bars)
    return bars_with_returns(
        bars, returns + scale * returns.std() * rng.standard_normal(len(returns))
    )


def garch_paths(bars: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A path simulated from a GARCH(1,1) with Student-t shocks fitted to these bars."""
    from arch import arch_model

    returns = log_returns(bars)
    scale = 100.0  # arch fits best on percent returns
    fitted = arch_model(returns * scale, vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
    params = fitted.params
    simulated = _simulate_garch(
        *(float(params[k]) for k in ("mu", "omega", "alpha[1]", "beta[1]", "nu")),
        n=len(returns),
        rng=rng,
    )
    return bars_with_returns(bars, simulated / scale)


def _simulate_garch(
    mu: float,
    omega: float,
    alpha: float,
    beta: float,
    nu: float,
    *,
    n: int,
    rng: np.random.Generator,
    burn: int = 200,
) -> np.ndarray:
    """GARCH(1,1) with unit-variance Student-t shocks, from our own generator (seeded)."""
    shocks = rng.standard_t(nu, size=n + burn) * np.sqrt((nu - 2) / nu)
    variance = omega / max(1 - alpha - beta, 1e-6)
    out, residual = np.empty(n + burn), 0.0
    for t in range(n + burn):
        variance = omega + alpha * residual**2 + beta * variance
        residual = np.sqrt(variance) * shocks[t]
        out[t] = mu + residual
    return out[burn:]


def adversarial(
    bars: pd.DataFrame,
    scale: float,
    candidates: int,
    rng: np.random.Generator,
    score: Callable[[pd.DataFrame], float],
) -> pd.DataFrame:
    """Of ``candidates`` noisy copies, the one on which ``score`` (the agent's P&L) is lowest."""
    copies = [noisy(bars, scale, rng) for _ in range(candidates)]
    return min(copies, key=score)
