"""MAML for the trading policy: parameters that adapt to a new task in a few gradient steps.

The policy is an ordinary ``TransformerPolicy``; what MAML learns is its initial weights.
Adaptation never touches the module: it works on a dict of parameters through
``torch.func.functional_call``, so the outer loop can differentiate through the inner
steps (second order) or treat them as constants (first order, FOMAML).

Second-order gradients through attention need the MATH attention kernel on CPU
(``math_attention``); ``adapt_parameters`` does not pick a kernel, the meta-training loop does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

if TYPE_CHECKING:
    from evotrader.training.rollouts import Rollout

Parameters = dict[str, torch.Tensor]


def parameters_of(policy: nn.Module) -> Parameters:
    """The module's own parameters by name: the starting point of every adaptation."""
    return dict(policy.named_parameters())


def policy_gradient_loss(
    policy: nn.Module, params: Mapping[str, torch.Tensor], rollout: Rollout, gamma: float
) -> torch.Tensor:
    """REINFORCE with a batch baseline: -E[log pi(a|s; params) * advantage] over live steps."""
    device = next(iter(params.values())).device
    observations = rollout.observations.flatten(0, 1).to(device)
    logits = functional_call(policy, dict(params), (observations,))
    log_probs = F.log_softmax(logits, dim=-1)
    taken = log_probs.gather(1, rollout.actions.flatten().to(device)[:, None]).squeeze(1)
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
