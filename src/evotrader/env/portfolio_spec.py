"""PortfolioSpec: how a portfolio agent's action becomes target weights over assets and cash.

Three action forms, one projection each, all working on one action or a batch (last axis):

* ``long_only``: a Box of ``assets + 1`` scores in [0, 1], the last for cash. Negative
  scores count as 0 and the rest are divided by their sum, so the weights lie on the
  simplex; all-zero scores mean all cash. Weights are ``scores[:assets] / sum``.
* ``long_short``: a Box of ``assets`` weights in [-max_gross, max_gross]; cash is the
  residual ``1 - sum(weights)``. When the gross exposure ``sum|w|`` exceeds ``max_gross``
  the weights are scaled down to it; otherwise they are used as given, bit for bit.
* ``discrete``: a MultiDiscrete index per asset into ``EnvSpec.positions`` (for RLlib's
  discrete heads), then the same gross-exposure scaling as ``long_short``.

With one asset, ``discrete`` and ``long_short`` give exactly the position MarketEnv takes
for the same choice, which is what makes a one-asset portfolio equal MarketEnv.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import gymnasium as gym
import numpy as np

from evotrader.core.checks import require_positive
from evotrader.env.spec import _check_keys

ACTIONS = ("long_only", "long_short", "discrete")


@dataclass(frozen=True)
class PortfolioSpec:
    """The action form and the gross-exposure limit (``long_short`` and ``discrete``)."""

    action: str = "long_only"
    max_gross: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_gross", float(self.max_gross))
        if self.action not in ACTIONS:
            raise ValueError(f"portfolio action must be one of {ACTIONS}, got {self.action!r}")
        require_positive("portfolio ", self, "max_gross", finite=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a checkpoint stores beside the EnvSpec."""
        return asdict(self)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> PortfolioSpec:
        """The spec ``to_dict`` wrote; an unknown or missing key is a ``ValueError`` naming it."""
        _check_keys("portfolio settings", settings, cls)
        return cls(**settings)

    def action_space(self, assets: int, positions: Sequence[float]) -> gym.Space[np.ndarray]:
        """The space an agent acts in for ``assets`` assets."""
        if self.action == "long_only":
            return gym.spaces.Box(0.0, 1.0, (assets + 1,), dtype=np.float32)
        if self.action == "long_short":
            return gym.spaces.Box(-self.max_gross, self.max_gross, (assets,), dtype=np.float32)
        return gym.spaces.MultiDiscrete(np.full(assets, len(positions)))

    def weights(self, action: np.ndarray, assets: int, positions: np.ndarray) -> np.ndarray:
        """Target weights (..., assets) in float64 for an action (..., action size).

        A wrong shape, a non-finite value or an index outside ``positions`` is a
        ``ValueError`` naming the action form and what was expected.
        """
        action = np.asarray(action)
        size = assets + 1 if self.action == "long_only" else assets
        if action.shape[-1:] != (size,):
            raise ValueError(
                f"{self.action} action for {assets} assets needs {size} values on its last "
                f"axis, got shape {action.shape}"
            )
        if self.action == "discrete":
            if not np.issubdtype(action.dtype, np.integer) or (
                action.min() < 0 or action.max() >= len(positions)
            ):
                raise ValueError(
                    f"discrete action must hold integer indices in [0, {len(positions)}), "
                    f"got {action.tolist()}"
                )
            return self._limit_gross(positions[action])
        values = action.astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"{self.action} action must be finite, got {values.tolist()}")
        if self.action == "long_only":
            return _simplex(values, assets)
        return self._limit_gross(np.clip(values, -self.max_gross, self.max_gross))

    def _limit_gross(self, weights: np.ndarray) -> np.ndarray:
        gross = np.abs(weights).sum(axis=-1, keepdims=True)
        if not (gross > self.max_gross).any():
            return weights
        # Rows within the limit are multiplied by exactly 1.0, so they stay bit for bit.
        return cast(np.ndarray, weights * (self.max_gross / np.maximum(gross, self.max_gross)))


def _simplex(scores: np.ndarray, assets: int) -> np.ndarray:
    """Scores clipped at 0 over their sum; all cash (zero weights) where the sum is 0."""
    scores = np.maximum(scores, 0.0)
    total = scores.sum(axis=-1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    return cast(np.ndarray, scores[..., :assets] / safe)
