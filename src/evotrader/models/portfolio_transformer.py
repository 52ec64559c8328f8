"""PortfolioTransformer: the CoreTransformer's portfolio form, for any number of assets.

Each asset's window (window, channels) is encoded by one CoreTransformer trunk whose weights
all assets share; attention blocks across the assets' embeddings then let each asset see the
others (a leader's move informs its followers). No asset gets a positional encoding, so the
network is permutation-equivariant over assets: permuting the assets permutes the per-asset
action logits and leaves the (mean-pooled) value unchanged, and a universe may change size
between training and trading. Plain PyTorch, so checkpoints run without Ray.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from evotrader.models.core_transformer import CoreTransformer, EncoderBlock, TransformerSpec


class PortfolioTransformer(nn.Module):
    """Observations (B, assets, window, channels) -> per-asset logits (B, assets, choices)
    and a value (B,) per portfolio; ``choices`` indexes ``EnvSpec.positions`` per asset."""

    def __init__(self, spec: TransformerSpec, num_choices: int, cross_layers: int = 1) -> None:
        super().__init__()
        if int(num_choices) < 2 or int(cross_layers) < 0:
            raise ValueError(
                f"num_choices must be >= 2 and cross_layers >= 0, got {num_choices}, {cross_layers}"
            )
        if spec.output_dim % spec.num_heads != 0:
            raise ValueError(
                f"cross-asset attention needs output_dim ({spec.output_dim}) divisible by "
                f"num_heads ({spec.num_heads})"
            )
        self.spec, self.num_choices, self.cross_layers = spec, int(num_choices), int(cross_layers)
        self.encoder = CoreTransformer(spec)
        self.cross = cross_blocks(spec, self.cross_layers)
        self.ln_cross = nn.LayerNorm(spec.output_dim)
        self.pi = nn.Linear(spec.output_dim, self.num_choices)
        self.vf = nn.Linear(spec.output_dim, 1)
        init_cross(self.cross)
        nn.init.normal_(self.pi.weight, std=0.01)  # near-uniform initial policy
        nn.init.zeros_(self.pi.bias)

    def architecture(self) -> dict[str, Any]:
        """JSON-able description that rebuilds this network (goes into checkpoints)."""
        return {
            "encoder": self.spec.to_dict(),
            "num_choices": self.num_choices,
            "cross_layers": self.cross_layers,
        }

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> PortfolioTransformer:
        spec = TransformerSpec.from_dict(architecture["encoder"])
        return cls(spec, int(architecture["num_choices"]), int(architecture["cross_layers"]))

    def encode_assets(self, obs: torch.Tensor) -> torch.Tensor:
        """Each asset's own embedding (B, assets, output_dim) from the shared trunk, before
        any asset sees another."""
        if obs.dim() != 4:
            raise ValueError(
                f"expected observations (batch, assets, window, channels), got {tuple(obs.shape)}"
            )
        batch, assets = obs.shape[0], obs.shape[1]
        return self.encoder(obs.reshape(batch * assets, *obs.shape[2:])).view(batch, assets, -1)

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        """Per-asset embeddings (B, assets, output_dim), each informed by every asset."""
        h = self.encode_assets(obs)
        for block in self.cross:
            h = block(h)
        out: torch.Tensor = self.ln_cross(h)
        return out

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.pi(embedding)

    def value(self, embedding: torch.Tensor) -> torch.Tensor:
        """Mean over assets, so the value ignores their order and count."""
        return self.vf(embedding.mean(dim=1)).squeeze(-1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.embed(obs)
        return self.logits(embedding), self.value(embedding)

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        """Greedy position index per asset for a batch (B, assets): argmax of each asset's
        logits, as the discrete PortfolioSpec reads actions."""
        device = self.pi.weight.device
        logits, _ = self(torch.as_tensor(observations, dtype=torch.float32, device=device))
        return logits.argmax(dim=-1).cpu().numpy()


def cross_blocks(spec: TransformerSpec, layers: int) -> nn.ModuleList:
    """``layers`` attention blocks across the assets' embeddings (``spec.output_dim`` wide),
    not yet initialised (``init_cross``)."""
    cross = replace(spec, model_dim=spec.output_dim)
    return nn.ModuleList(EncoderBlock(cross) for _ in range(layers))


def init_cross(blocks: nn.Module) -> None:
    """Small weights for the cross-asset blocks, so they start close to the identity."""
    for module in blocks.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
