"""On-policy episodes from the vector market env, for training loops outside RLlib (MAML).

A rollout is one batch of ``num_envs`` episodes of fixed length, sampled from a policy's
action distribution. Observations are kept so losses can be recomputed under other
parameters (``torch.func.functional_call``) without stepping the env again.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from evotrader.env import VectorMarketEnv
from evotrader.models.maml_model import Rollout


@torch.no_grad()
def collect_rollout(
    policy: nn.Module,
    params: Mapping[str, torch.Tensor],
    env: VectorMarketEnv,
    steps: int,
    *,
    env_seed: int,
    generator: torch.Generator,
) -> Rollout:
    """Run ``policy`` (with ``params`` in place of its own) for ``steps`` steps in every env.

    Actions are sampled from the softmax of the logits with ``generator``; ``env_seed`` fixes
    the episodes' start bars, so a rollout is reproducible.
    """
    device = next(iter(params.values())).device
    obs, _ = env.reset(seed=env_seed)
    observations, actions, rewards, alive = [], [], [], []
    running = np.ones(env.num_envs, dtype=bool)
    for _ in range(steps):
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
        probs = functional_call(policy, dict(params), (obs_t,)).softmax(dim=-1)
        action = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1)
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
