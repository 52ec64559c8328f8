"""TransformerPolicy: CoreTransformer encoder with policy and value heads, plain PyTorch.

This is what PPO trains (inside an RLlib module) and what checkpoints hold, so a trained
policy runs without Ray in the backtest and the live bot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from evotrader.models.core_transformer import CoreTransformer, TransformerSpec


class PolicyHeads(nn.Module):
    """A policy head (action logits) and a value head over an embedding of the observations:
    what ``TransformerPolicy`` and ``MoEPolicy`` share. A subclass sets ``spec`` and
    ``num_actions``, builds its encoder, then calls ``add_heads``; ``embed`` says how it turns
    observations (B, window, channels) into embeddings (B, spec.output_dim)."""

    spec: TransformerSpec
    num_actions: int

    def add_heads(self) -> None:
        """The heads, built after the encoder so that seeded initial weights stay as they were."""
        self.pi = nn.Linear(self.spec.output_dim, self.num_actions)
        self.vf = nn.Linear(self.spec.output_dim, 1)
        nn.init.normal_(self.pi.weight, std=0.01)  # near-uniform initial policy
        nn.init.zeros_(self.pi.bias)

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.pi(self.embed(obs))

    def logits_and_values(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.embed(obs)
        return self.pi(embedding), self.vf(embedding).squeeze(-1)

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        """Greedy actions for a batch: the Policy contract of the backtest and live bot."""
        device = self.pi.weight.device
        logits = self(torch.as_tensor(observations, dtype=torch.float32, device=device))
        return logits.argmax(dim=-1).cpu().numpy()


class TransformerPolicy(PolicyHeads):
    """Observations (B, window, channels) -> action logits (B, A) and values (B,)."""

    def __init__(self, spec: TransformerSpec, num_actions: int) -> None:
        super().__init__()
        self.spec, self.num_actions = spec, int(num_actions)
        self.encoder = CoreTransformer(spec)
        self.add_heads()

    def architecture(self) -> dict[str, Any]:
        """JSON-able description that rebuilds this network (goes into checkpoints)."""
        return {"encoder": self.spec.to_dict(), "num_actions": self.num_actions}

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> TransformerPolicy:
        spec = TransformerSpec.from_dict(architecture["encoder"])
        return cls(spec, int(architecture["num_actions"]))

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs)
