"""MAML for the trading policy: parameters that adapt to a new task in a few gradient steps.

The policy is an ordinary ``TransformerPolicy`` (one symbol: logits (B, choices)) or a
``PortfolioTransformer`` (a universe: per-asset logits (B, assets, choices), the joint action's
log-probability the sum over assets); what MAML learns is its initial weights.
Adaptation never touches the module: it works on a dict of parameters through
``torch.func.functional_call``, so the outer loop can differentiate through the inner
steps (second order) or treat them as constants (first order, FOMAML).

Second-order gradients through attention need the MATH attention kernel on CPU
(``math_attention``); ``adapt_parameters`` does not pick a kernel, the meta-training loop does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Parameters = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Rollout:
    """``steps`` x ``num_envs`` transitions; ``alive`` is False once an episode has ended."""

    observations: torch.Tensor  # (T, N, window, channels), or (T, N, assets, window, channels)
    actions: torch.Tensor  # (T, N) int64, or (T, N, assets)
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


def parameters_of(policy: nn.Module) -> Parameters:
    """The module's own parameters by name: the starting point of every adaptation."""
    return dict(policy.named_parameters())


def action_logits(
    policy: nn.Module, params: Mapping[str, torch.Tensor], observations: torch.Tensor
) -> torch.Tensor:
    """The policy's logits under ``params``: (B, choices), or (B, assets, choices) for a
    portfolio policy, whose forward returns ``(logits, value)``."""
    out = functional_call(policy, dict(params), (observations,))
    logits: torch.Tensor = out[0] if isinstance(out, tuple) else out
    return logits


def action_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a) per batch row (B,): one categorical per asset, the joint action's
    log-probability the sum over assets (independent given the observation)."""
    taken = F.log_softmax(logits, dim=-1).gather(-1, actions[..., None]).squeeze(-1)
    return taken.reshape(len(taken), -1).sum(dim=1)


def sample_actions(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row (and per asset) from the softmax of ``logits``, on the CPU."""
    probs = logits.softmax(dim=-1).cpu()
    drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    return drawn.reshape(probs.shape[:-1])


def policy_gradient_loss(
    policy: nn.Module, params: Mapping[str, torch.Tensor], rollout: Rollout, gamma: float
) -> torch.Tensor:
    """REINFORCE with a batch baseline: -E[log pi(a|s; params) * advantage] over live steps."""
    device = next(iter(params.values())).device
    observations = rollout.observations.flatten(0, 1).to(device)
    logits = action_logits(policy, params, observations)
    taken = action_log_prob(logits, rollout.actions.flatten(0, 1).to(device))
    advantages = rollout.advantages(gamma).flatten().to(device)
    alive = rollout.alive.flatten().to(device)
    return -(taken * advantages)[alive].sum() / alive.sum().clamp(min=1)


def adapt_parameters(
    policy: nn.Module,
    params: Mapping[str, torch.Tensor],
    support: Rollout,
    *,
    inner_lr: float,
    gamma: float,
    first_order: bool,
) -> Parameters:
    """One inner SGD step on ``support``: params - inner_lr * grad(loss).

    Second order (``first_order=False``) keeps the graph of the gradient itself, so the
    adapted parameters stay differentiable functions of ``params``. First order detaches the
    gradient: the outer gradient then flows through the identity only.
    """
    loss = policy_gradient_loss(policy, params, support, gamma)
    names = [name for name, value in params.items() if value.requires_grad]
    grads = torch.autograd.grad(
        loss, [params[name] for name in names], create_graph=not first_order, allow_unused=True
    )
    adapted = dict(params)
    for name, grad in zip(names, grads, strict=True):
        if grad is not None:  # e.g. the value head: the policy-gradient loss never reads it
            adapted[name] = params[name] - inner_lr * grad
    return adapted
