"""The policy contract: ``act(observations) -> actions`` over a batch, and ``as_policy``.

Actions are indices into the environment's target positions. RLlib modules, the MoE,
the MAML policy and the AutonomousAgent are wrapped to this one method so the backtest
engine, the fitness function and the live runner never care which one they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Policy(Protocol):
    """Anything that trades: a batch of observations (B, window, channels) -> (B,) actions."""

    def act(self, observations: np.ndarray) -> np.ndarray: ...


class CallablePolicy:
    """Wrap a plain function ``observations -> actions``."""

    def __init__(self, function: Callable[[np.ndarray], np.ndarray]) -> None:
        self.function = function

    def act(self, observations: np.ndarray) -> np.ndarray:
        return np.asarray(self.function(observations))


class TorchPolicy:
    """Greedy policy over a module mapping (B, window, channels) to action logits (B, A)."""

    def __init__(self, module: torch.nn.Module, device: str | torch.device | None = None) -> None:
        self.device = torch.device(device) if device else next(module.parameters()).device
        self.module = module.to(self.device).eval()

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        logits = self.module(torch.as_tensor(observations, device=self.device))
        actions: np.ndarray = logits.argmax(dim=-1).cpu().numpy()
        return actions


def as_policy(policy: Policy | torch.nn.Module | Callable[[np.ndarray], np.ndarray]) -> Policy:
    """Accept a Policy, a torch module (greedy over logits) or a callable."""
    if isinstance(policy, torch.nn.Module):
        return TorchPolicy(policy)
    if isinstance(policy, Policy):
        return policy
    if callable(policy):
        return CallablePolicy(policy)
    raise TypeError(
        f"cannot use {type(policy).__name__} as a policy: need act(), a module or a callable"
    )
