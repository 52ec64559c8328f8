"""On-policy episodes from a vector env (one symbol's VectorMarketEnv or a universe's
VectorPortfolioEnv), for training loops outside RLlib (MAML).

A rollout is one batch of ``num_envs`` episodes of fixed length, sampled from a policy's
action distribution. Observations are kept so losses can be recomputed under other
parameters (``torch.func.functional_call``) without stepping the env again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from evotrader.env import VectorMarketEnv, VectorPortfolioEnv
from evotrader.models.maml_model import Rollout, action_logits, sample_actions

VectorEnv = VectorMarketEnv | VectorPortfolioEnv


@dataclass(frozen=True)
class Task:
    """One MAML task, (symbol, period) or (sub-universe, period), and the vector env that
    samples its episodes."""

    name: str
    env: VectorEnv


@torch.no_grad()
def collect_rollout(
    policy: nn.Module,
    params: Mapping[str, torch.Tensor],
    env: VectorEnv,
    steps: int,
    *,
    env_seed: int,
    generator: torch.Generator,
) -> Rollout:
    """Run ``policy`` (with ``params`` in place of its own) for ``steps`` steps in every env.

    Actions are sampled from the softmax of the logits (per asset in a portfolio env) with
    ``generator``; ``env_seed`` fixes the episodes' start bars, so a rollout is reproducible.
    """
    device = next(iter(params.values())).device
    obs, _ = env.reset(seed=env_seed)
    observations, actions, rewards, alive = [], [], [], []
    running = np.ones(env.num_envs, dtype=bool)
    for _ in range(steps):
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
        action = sample_actions(action_logits(policy, params, obs_t), generator)
        next_obs, reward, terminated, truncated, _ = env.step(action.numpy())
        observations.append(obs_t.cpu())
        actions.append(action)
        rewards.append(torch.as_tensor(reward, dtype=torch.float32))
        alive.append(torch.as_tensor(running.copy()))
        running &= ~(terminated | truncated)
        obs = next_obs
    return Rollout(
        observations=torch.stack(observations),
        actions=torch.stack(actions),
        rewards=torch.stack(rewards),
        alive=torch.stack(alive),
    )
