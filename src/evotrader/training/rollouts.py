"""On-policy episodes from the vector market env, for training loops outside RLlib (MAML).

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
from torch.func import functional_call

from evotrader.env import VectorMarketEnv


@dataclass(frozen=True)
class Rollout:
    """``steps`` x ``num_envs`` transitions; ``alive`` is False once an episode has ended."""

    observations: torch.Tensor  # (T, N, window, channels)
    actions: torch.Tensor  # (T, N) int64
    rewards: torch.Tensor  # (T, N)
    alive: torch.Tensor  # (T, N) bool

    @property
    def mean_episode_return(self) -> float:
        """Mean over envs of the summed reward (log return after costs for that reward)."""
        return float((self.rewards * self.alive).sum(dim=0).mean())

    def advantages(self, gamma: float) -> torch.Tensor:
        """Normalised reward-to-go minus the per-step mean over envs (a batch baseline)."""
        rewards = self.rewards * self.alive
        to_go = torch.zeros_like(rewards)
        running = torch.zeros_like(rewards[0])
        for t in range(len(rewards) - 1, -1, -1):
            running = rewards[t] + gamma * running
            to_go[t] = running
        alive = self.alive.float()
        baseline = (to_go * alive).sum(dim=1, keepdim=True) / alive.sum(1, keepdim=True).clamp(
            min=1
        )
        centred = (to_go - baseline) * alive
        scale = centred[self.alive].std() if self.alive.sum() > 1 else torch.tensor(1.0)
        return centred / (scale + 1e-8)


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
