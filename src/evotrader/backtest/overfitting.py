"""How much of a backtest's Sharpe is luck: Probabilistic and Deflated Sharpe Ratio, and PBO.

Evolution tries many candidates and keeps the best, so the best validation Sharpe is biased
upwards even when no candidate has an edge. The Probabilistic Sharpe Ratio (Bailey and Lopez de
Prado, 2012) is the probability that the true Sharpe beats a threshold given the track record's
length, skewness and kurtosis; the Deflated Sharpe Ratio (Bailey and Lopez de Prado, 2014) is the
PSR against the best Sharpe expected from that many zero-edge candidates. The Probability of
Backtest Overfitting (Bailey, Borwein, Lopez de Prado and Zhu, 2017; combinatorially symmetric
cross-validation, CSCV) asks how often the candidate that wins on one half of the selection
data ranks in the bottom half on the other. All Sharpe ratios here are per period, never
annualised.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import cast

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329
# Return dispersion below this is rounding noise, not risk (as in backtest.metrics).
ZERO_STD = 1e-12


def expected_max_sharpe(sharpe_variance: float, trials: int) -> float:
    """The Sharpe the best of ``trials`` zero-edge candidates reaches by luck (per period)."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if trials == 1:
        return 0.0
    z = stats.norm.ppf
    spread = (1 - EULER_GAMMA) * z(1 - 1 / trials) + EULER_GAMMA * z(1 - 1 / (trials * math.e))
    return cast(float, math.sqrt(max(sharpe_variance, 0.0)) * spread)  # scipy: untyped


def probabilistic_sharpe_ratio(
    sharpe: float,
    observations: int,
    skew: float = 0.0,
    kurtosis: float = 3.0,
    threshold: float = 0.0,
) -> float:
    """P(true Sharpe > ``threshold``) from an observed per-period ``sharpe``.

    ``kurtosis`` is the plain (not excess) kurtosis: 3 for normal returns. Negative skew and
    fat tails widen the Sharpe's standard error and so lower the probability.
    """
    if observations < 2:
        raise ValueError(f"a Sharpe ratio needs at least 2 observations, got {observations}")
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    z = (sharpe - threshold) * math.sqrt(observations - 1) / math.sqrt(max(spread, 1e-12))
    return float(stats.norm.cdf(z))


@dataclass(frozen=True)
class SharpeEstimate:
    """A return series' per-period Sharpe ratio with the moments its standard error needs."""

    sharpe: float
    observations: int
    skew: float
    kurtosis: float  # plain, not excess

    @classmethod
    def of(cls, returns: np.ndarray) -> SharpeEstimate | None:
        """The estimate, or None when the returns have no dispersion (nothing to test)."""
        returns = np.asarray(returns, dtype=np.float64)
        if len(returns) < 3 or not np.isfinite(returns).all():
            raise ValueError(f"need at least 3 finite returns, got {len(returns)}")
        std = returns.std(ddof=1)
        if std <= ZERO_STD:
            return None
        return cls(
            sharpe=float(returns.mean() / std),
            observations=len(returns),
            skew=float(stats.skew(returns)),
            kurtosis=float(stats.kurtosis(returns, fisher=False)),
        )

    def probability_above(self, threshold: float) -> float:
        """The PSR of this estimate against ``threshold``: the Deflated Sharpe Ratio when the
        threshold is ``expected_max_sharpe`` of the trials behind it."""
        return probabilistic_sharpe_ratio(
            self.sharpe, self.observations, self.skew, self.kurtosis, threshold
        )


@dataclass(frozen=True)
class PBO:
    """The Probability of Backtest Overfitting, or why it is undefined (``value`` None).

    ``candidates`` counts distinct candidates (identical return columns are one strategy);
    ``dropped_rows`` are the oldest rows cut so that every CSCV block has the same length.
    """

    value: float | None
    reason: str
    candidates: int
    splits: int
    dropped_rows: int = 0

    def describe(self) -> str:
        if self.value is None:
            return f"PBO undefined: {self.reason}"
        return f"PBO {self.value:.2f} ({self.reason}; 0.5 = luck)"


def probability_of_backtest_overfitting(returns: np.ndarray, splits: int = 8) -> PBO:
    """PBO by CSCV over a (periods, candidates) matrix of per-period returns.

    The oldest ``periods mod splits`` rows are dropped and the rest cut into ``splits``
    equal blocks, as the paper requires. Every half of the blocks serves once as the
    in-sample half, the other blocks as the held-back half; PBO is the share of these splits
    in which the in-sample best candidate ranks below the median on the held-back half
    (logit of its relative rank < 0). The matrix is usually the selection (validation)
    split's, so "held-back" here is a half of that split, not the test split.

    Ties are not evidence of overfitting. Identical return columns are one strategy (counted
    once); a logit of exactly 0 (median rank, e.g. every candidate tied on the held-back
    half) counts as half; candidates tied for best in-sample share the split equally, as if
    picked at random among them. Fewer than two distinct candidates, too few rows, or
    candidates that never differ on a held-back half leave PBO undefined, with the reason,
    never 1.0.
    """
    matrix = np.asarray(returns, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"need a (periods, candidates) matrix, got shape {matrix.shape}")
    if splits < 2 or splits % 2:
        raise ValueError(f"splits must be an even number >= 2, got {splits}")
    if not np.isfinite(matrix).all():
        raise ValueError("returns must be finite")
    dropped = matrix.shape[0] % splits
    matrix = matrix[dropped:]
    distinct = _distinct_columns(matrix)
    candidates = distinct.shape[1]

    def undefined(reason: str) -> PBO:
        return PBO(None, reason, candidates, splits, dropped)

    if candidates < 2:
        return undefined(
            f"{matrix.shape[1]} candidate(s) with {candidates} distinct return series: "
            "a single strategy has nothing to rank"
        )
    block = matrix.shape[0] // splits
    if block < 2:
        return undefined(f"{matrix.shape[0]} periods are too few for {splits} blocks")
    blocks = distinct.reshape(splits, block, candidates)
    overfit = 0.0
    informative = total = 0
    for chosen in itertools.combinations(range(splits), splits // 2):
        rest = [i for i in range(splits) if i not in chosen]
        inside = _sharpe(blocks[list(chosen)].reshape(-1, candidates))
        outside = _sharpe(blocks[rest].reshape(-1, candidates))
        winners = np.flatnonzero(inside == inside.max())
        ranks = stats.rankdata(outside)[winners] / (candidates + 1)  # relative rank in (0, 1)
        logits = np.log(ranks / (1 - ranks))
        overfit += float(np.mean(np.where(logits < 0, 1.0, np.where(logits == 0, 0.5, 0.0))))
        informative += bool(np.ptp(outside) > 0)
        total += 1
    if not informative:
        return undefined(f"the {candidates} distinct candidates never differ on a held-back half")
    note = f"CSCV, {splits} blocks of {block} periods, {candidates} distinct candidates"
    if dropped:
        note += f", oldest {dropped} periods dropped for equal blocks"
    return PBO(overfit / total, note, candidates, splits, dropped)


def _distinct_columns(matrix: np.ndarray) -> np.ndarray:
    """The matrix without repeated columns, first occurrences kept in their order."""
    _, first = np.unique(matrix, axis=1, return_index=True)
    return matrix[:, np.sort(first)]


def _sharpe(returns: np.ndarray) -> np.ndarray:
    std = returns.std(axis=0, ddof=1)
    flat = std <= ZERO_STD
    return np.where(flat, 0.0, returns.mean(axis=0) / np.where(flat, 1.0, std))
