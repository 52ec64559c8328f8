"""Reward functions over equity changes; each works on floats and numpy arrays alike."""

from __future__ import annotations

from typing import cast

import numpy as np

from evotrader.env.execution import Number

REWARDS = ("log_return", "differential_sharpe")
"""``log_return`` (log equity change after costs, sums to the episode's log return) is
computed inline by the environments; ``differential_sharpe`` lives here."""


def differential_sharpe(
    simple_return: Number, mean: Number, second_moment: Number, eta: float, clip: float = 10.0
) -> tuple[Number, Number, Number]:
    """Moody & Saffell's differential Sharpe ratio; returns (reward, mean, second_moment).

    ``mean`` and ``second_moment`` are exponential moving estimates with rate ``eta``.
    The reward is zero until the variance estimate is positive, and clipped to
    ``±clip`` because the first updates divide by a tiny variance.
    """
    delta_mean = simple_return - mean
    delta_second = simple_return * simple_return - second_moment
    variance = second_moment - mean * mean
    safe = np.maximum(variance, 1e-12)
    reward = (second_moment * delta_mean - 0.5 * mean * delta_second) / safe**1.5
    # numpy hands a float64 scalar (a float) back for float inputs, an array for arrays.
    reward = cast(Number, np.clip(np.where(variance > 1e-12, reward, 0.0), -clip, clip))
    return reward, mean + eta * delta_mean, second_moment + eta * delta_second
