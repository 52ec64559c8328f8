"""Simple reference policies (constant, random, moving-average crossover) for backtests and tests.

They implement the policy contract of ``evotrader.core.policy``: ``act(observations) -> actions``
over a batch, actions being indices into the environment's target positions. ``row_wise``
tells the backtest engine that each action depends on its own observation alone and that
deciding changes nothing, so a state-reading backtest may decide them in batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evotrader.data.features import FeaturePipeline


class ConstantPolicy:
    """Always the same action (e.g. always long, for buy-and-hold)."""

    row_wise = True

    def __init__(self, action: int) -> None:
        self.action = action

    def act(self, observations: np.ndarray) -> np.ndarray:
        return np.full(len(observations), self.action, dtype=np.int64)


class RandomPolicy:
    """Uniformly random actions from a seeded generator: the no-skill baseline (its draws
    follow the calls, so it is not ``row_wise``)."""

    def __init__(self, num_actions: int, seed: int = 0) -> None:
        self.num_actions = num_actions
        self.rng = np.random.default_rng(seed)

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self.rng.integers(self.num_actions, size=len(observations))


class MovingAverageCrossover:
    """Long when the fast moving average of log price is above the slow one, else short.

    Log prices are rebuilt from the pipeline's standardised ``log_return`` channel, so
    the policy reads exactly the observation an agent reads.
    """

    row_wise = True

    def __init__(
        self,
        pipeline: FeaturePipeline,
        fast: int = 10,
        slow: int = 50,
        positions: Sequence[float] = (-1.0, 0.0, 1.0),
        long: float = 1.0,
        short: float = -1.0,
    ) -> None:
        if not 0 < fast < slow:
            raise ValueError(f"need 0 < fast < slow, got fast={fast}, slow={slow}")
        if pipeline.mean is None or pipeline.std is None:
            raise ValueError("MovingAverageCrossover needs a fitted FeaturePipeline")
        channel = pipeline.features.index("log_return")
        self.channel = channel
        self.mean, self.std = float(pipeline.mean[channel]), float(pipeline.std[channel])
        self.fast, self.slow = fast, slow
        self.long_action = list(positions).index(long)
        self.short_action = list(positions).index(short)

    def act(self, observations: np.ndarray) -> np.ndarray:
        if observations.shape[1] < self.slow:
            raise ValueError(f"window {observations.shape[1]} is shorter than slow={self.slow}")
        returns = observations[:, -self.slow :, self.channel] * self.std + self.mean
        log_price = np.cumsum(returns, axis=1)
        above = log_price[:, -self.fast :].mean(axis=1) > log_price.mean(axis=1)
        return np.where(above, self.long_action, self.short_action)
