"""The arithmetic of the agent's think loop, vectorised over a batch and free of agent state.

Each row of a batch is computed from that row alone, so a batched decision equals the
per-sample one: memories are summarised per row, and the what-if rollouts of every row and
every action share one fixed set of uniforms (common random numbers) drawn from the agent's
seed, rather than drawing per row as ``TransformerWorldModel.what_if`` does. The rollouts
reuse the quantiles of the forward pass that produced the policy logits, so refining a
decision costs no second pass through the world model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from evotrader.models.world_model import sample_quantiles


def memory_summary(
    scores: np.ndarray,
    outcomes: np.ndarray,
    keep: np.ndarray,
    k: int,
    scale: float,
    temperature: float,
) -> np.ndarray:
    """(B, 4) float32: weighted mean outcome, weighted outcome spread, mean similarity, share
    of the k slots found, from the recalled events marked in ``keep`` (B, K).

    Weights are a softmax of the kept events' similarity scores over ``temperature``; outcomes
    are divided by ``scale`` (the training returns' std). A row that recalls nothing is zeros.
    """
    found = keep.sum(axis=1)
    logits = np.where(keep, scores.astype(np.float64) / temperature, -np.inf)
    top = np.where(found > 0, logits.max(axis=1), 0.0)[:, None]
    weights = np.where(keep, np.exp(logits - top), 0.0)
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-300)
    values = np.where(keep, outcomes, 0.0) / scale
    mean = (weights * values).sum(axis=1)
    spread = np.sqrt((weights * (values - mean[:, None]) ** 2).sum(axis=1))
    similarity = np.where(keep, scores, 0.0).sum(axis=1) / np.maximum(found, 1)
    return np.stack([mean, spread, similarity, found / k], axis=1).astype(np.float32)


def rollout_uniforms(seed: int, n_paths: int, horizon: int) -> Tensor:
    """(n_paths, horizon) uniforms shared by every row and action; fixed by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((n_paths, horizon), generator=generator)


def what_if_sharpe(
    quantiles: Tensor, levels: Tensor, uniform: Tensor, positions: Tensor, cost_rate: float
) -> Tensor:
    """(B, A) predicted Sharpe of holding each position for the next T bars from flat.

    ``quantiles`` (B, horizon, Q) are per-step return quantiles at ``levels``; ``uniform``
    (P, T) turn them into P return paths (inverse CDF). Holding exposure p compounds
    ``1 + p * (exp(r) - 1)`` per bar after paying ``cost_rate * |p|`` to enter, and equity
    that reaches zero stays there, as in ``TransformerWorldModel.what_if``. The score is the
    mean equity gain over its std across paths; flat (no gain, no spread) scores 0.
    """
    batch, (paths, steps) = quantiles.shape[0], uniform.shape
    u = uniform.to(quantiles.device).expand(batch, paths, steps)
    returns = sample_quantiles(quantiles[:, None, :steps], levels, u)  # (B, P, T)
    exposure = positions.to(quantiles.device)[None, :, None, None]
    growth = (1.0 + exposure * torch.expm1(returns)[:, None]).clamp_min(0.0).prod(dim=-1)
    equity = (1.0 - cost_rate * exposure.abs()[..., 0]) * growth  # (B, A, P)
    gain, spread = equity.mean(dim=-1) - 1.0, equity.std(dim=-1, correction=0)
    return torch.where(spread > 0, gain / spread.clamp_min(1e-12), torch.zeros_like(gain))
