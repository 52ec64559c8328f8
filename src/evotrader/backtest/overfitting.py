"""How much of a backtest's Sharpe is luck: Deflated Sharpe Ratio and PBO.

Evolution tries many candidates and keeps the best, so the best validation Sharpe is biased
upwards even when no candidate has an edge. The Deflated Sharpe Ratio (Bailey and Lopez de
Prado, 2014) asks whether the champion's Sharpe beats the best Sharpe expected from that
many candidates by chance; the Probability of Backtest Overfitting (Bailey, Borwein, Lopez de
Prado and Zhu, 2017; combinatorially symmetric cross-validation) asks how often the
in-sample winner lands in the bottom half out of sample.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329


def expected_max_sharpe(sharpe_variance: float, trials: int) -> float:
    """The Sharpe the best of ``trials`` zero-edge candidates reaches by luck (per period)."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if trials == 1:
        return 0.0
    z = stats.norm.ppf
    spread = (1 - EULER_GAMMA) * z(1 - 1 / trials) + EULER_GAMMA * z(1 - 1 / (trials * math.e))
    return math.sqrt(max(sharpe_variance, 0.0)) * spread


def deflated_sharpe_ratio(
    returns: np.ndarray, trials: int, trial_sharpe_variance: float
) -> dict[str, float]:
    """Probability that the true Sharpe of ``returns`` beats the best of ``trials`` by luck.

    ``returns`` are the champion's per-period returns (not annualised);
    ``trial_sharpe_variance`` is the variance of the per-period Sharpe ratios of every
    candidate tried. Skewness and fat tails widen the Sharpe's standard error.
    """
    returns = np.asarray(returns, dtype=np.float64)
    returns = returns[np.isfinite(returns)]
    if len(returns) < 3 or returns.std() == 0:
        return {"dsr": 0.0, "sharpe": 0.0, "sharpe_threshold": 0.0, "trials": float(trials)}
    sharpe = returns.mean() / returns.std(ddof=1)
    threshold = expected_max_sharpe(trial_sharpe_variance, trials)
    skew = float(stats.skew(returns))
    kurtosis = float(stats.kurtosis(returns, fisher=False))
    denominator = math.sqrt(max(1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2, 1e-12))
    z = (sharpe - threshold) * math.sqrt(len(returns) - 1) / denominator
    return {
        "dsr": float(stats.norm.cdf(z)),
        "sharpe": float(sharpe),
        "sharpe_threshold": float(threshold),
        "trials": float(trials),
    }


def probability_of_backtest_overfitting(returns: np.ndarray, splits: int = 8) -> float:
    """PBO by CSCV over a (periods, candidates) matrix of per-period returns.

    The rows are cut into ``splits`` blocks; every half of the blocks serves once as in-sample
    and the rest as out-of-sample. PBO is the share of those splits in which the in-sample
    best candidate ranks at or below the median out of sample. 0.5 is what pure luck gives.
    """
    matrix = np.asarray(returns, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError(f"need a (periods, candidates>=2) matrix, got shape {matrix.shape}")
    if splits < 2 or splits % 2:
        raise ValueError(f"splits must be an even number >= 2, got {splits}")
    if matrix.shape[0] < 2 * splits:
        raise ValueError(f"{matrix.shape[0]} periods are too few for {splits} splits")
    blocks = np.array_split(np.arange(matrix.shape[0]), splits)
    candidates = matrix.shape[1]
    below = total = 0
    for chosen in itertools.combinations(range(splits), splits // 2):
        inside = np.concatenate([blocks[i] for i in chosen])
        outside = np.concatenate([blocks[i] for i in range(splits) if i not in chosen])
        best = int(np.argmax(_sharpe(matrix[inside])))
        oos = _sharpe(matrix[outside])
        rank = stats.rankdata(oos)[best] / (candidates + 1)  # relative rank in (0, 1)
        below += math.log(rank / (1 - rank)) <= 0
        total += 1
    return below / total


def _sharpe(returns: np.ndarray) -> np.ndarray:
    std = returns.std(axis=0, ddof=1)
    return np.where(std > 0, returns.mean(axis=0) / np.where(std > 0, std, 1.0), 0.0)
