"""PortfolioMoE: the PortfolioTransformer whose cross-asset view is a mixture of experts.

The shared trunk (one CoreTransformer for every asset) embeds each asset's window; a gate
reads each asset's trunk embedding and routes it among K experts, each a stack of
attention blocks across the assets (the PortfolioTransformer's ``cross`` blocks). Each
asset's embedding is the gate-weighted mix of what the experts make of it, normalised by
the shared ``ln_cross`` and read by the shared policy and value heads. So experts can
specialise in how assets relate (a lead-lag in one regime, independence in another) while
every asset is still routed by its own state.

No asset gets a position and the gate reads one asset at a time, so the mixture is
permutation-equivariant over assets like the PortfolioTransformer, and runs any universe
size. With identical experts it is exactly the PortfolioTransformer it was copied from
(``warm_start`` without noise): the routing weights sum to one. Plain PyTorch; checkpoints
hold it, so it runs without Ray (``moe_model.PortfolioMoEModule`` is RLlib's view).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from evotrader.models.core_transformer import TransformerSpec
from evotrader.models.moe_policy import (
    Routing,
    checked_top_k,
    copy_with_noise,
    gate_network,
    gate_routing,
)
from evotrader.models.portfolio_transformer import (
    PortfolioTransformer,
    cross_blocks,
    init_cross,
)


class PortfolioMoE(PortfolioTransformer):
    """Observations (B, assets, window, channels) -> per-asset logits (B, assets, choices)
    and a value (B,); ``cross_layers`` is each expert's depth (the inherited ``cross`` stays
    empty: the experts replace it)."""

    def __init__(
        self,
        spec: TransformerSpec,
        num_choices: int,
        cross_layers: int = 1,
        num_experts: int = 4,
        top_k: int = 0,
        gate_hidden: int = 32,
    ) -> None:
        if int(cross_layers) < 1:
            raise ValueError(
                "a portfolio mixture's experts are cross-asset blocks: cross_layers must be "
                f">= 1, got {cross_layers}"
            )
        stored_top_k = checked_top_k(num_experts, top_k, gate_hidden)
        super().__init__(spec, num_choices, cross_layers=0)
        self.cross_layers = int(cross_layers)
        self.num_experts, self.top_k, self.gate_hidden = num_experts, stored_top_k, gate_hidden
        # Sequential over the same blocks: an expert's weights are named like ``cross``'s.
        self.experts = nn.ModuleList(
            nn.Sequential(*cross_blocks(spec, self.cross_layers)) for _ in range(num_experts)
        )
        init_cross(self.experts)
        self.gate = gate_network(spec.output_dim, gate_hidden, num_experts)

    def architecture(self) -> dict[str, Any]:
        return {
            **super().architecture(),
            "num_experts": self.num_experts,
            "top_k": self.top_k,
            "gate_hidden": self.gate_hidden,
        }

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> PortfolioMoE:
        return cls(
            TransformerSpec.from_dict(architecture["encoder"]),
            int(architecture["num_choices"]),
            int(architecture["cross_layers"]),
            int(architecture["num_experts"]),
            int(architecture["top_k"]),
            int(architecture["gate_hidden"]),
        )

    def route(self, assets: torch.Tensor) -> Routing:
        """Each asset's routing (B, assets, K) from its trunk embedding (B, assets, D)."""
        return gate_routing(self.gate(assets), self.top_k)

    def encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, Routing]:
        """The per-asset mixture of the experts' cross-asset embeddings (B, assets, D) and the
        routing behind it."""
        assets = self.encode_assets(obs)
        routed = self.route(assets)
        outputs = torch.stack([expert(assets) for expert in self.experts], dim=2)
        mixed = (routed.weights.unsqueeze(-1) * outputs).sum(dim=2)
        out: torch.Tensor = self.ln_cross(mixed)
        return out, routed

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encode(obs)[0]

    @torch.no_grad()
    def utilisation(self, obs: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Mean routing weight of each expert over every (sample, asset) of ``obs`` (K,),
        summing to one; ``batch`` samples at a time (a training split of a wide universe
        is many windows)."""
        total = torch.zeros(self.num_experts, device=obs.device)
        for chunk in obs.split(batch):
            total += self.route(self.encode_assets(chunk)).weights.sum(dim=(0, 1))
        return total / (obs.shape[0] * obs.shape[1])

    def expert_policy(self, k: int) -> PortfolioTransformer:
        """Expert ``k`` with the shared trunk and heads, as a standalone PortfolioTransformer."""
        policy = PortfolioTransformer(self.spec, self.num_choices, self.cross_layers)
        policy.encoder.load_state_dict(self.encoder.state_dict())
        policy.cross.load_state_dict(self.experts[k].state_dict())
        policy.ln_cross.load_state_dict(self.ln_cross.state_dict())
        policy.pi.load_state_dict(self.pi.state_dict())
        policy.vf.load_state_dict(self.vf.state_dict())
        return policy

    def warm_start(self, policy: PortfolioTransformer, noise: float = 1e-3, seed: int = 0) -> None:
        """Trunk and heads copied from ``policy``; every expert starts as its cross-asset
        blocks plus a little seeded noise (``copy_with_noise``: what lets them specialise).

        ``ValueError`` naming both shapes if ``policy`` is not a PortfolioTransformer of
        this mixture's encoder, choices and cross-asset depth.
        """
        theirs = PortfolioTransformer.architecture(policy)
        mine = PortfolioTransformer.architecture(self)
        if type(policy) is not PortfolioTransformer or theirs != mine:
            raise ValueError(
                f"cannot warm-start from a {type(policy).__name__} shaped {theirs}: the "
                f"mixture's trunk, experts and heads are shaped {mine}"
            )
        self.encoder.load_state_dict(policy.encoder.state_dict())
        copy_with_noise(self.experts, policy.cross, noise, seed)
        self.ln_cross.load_state_dict(policy.ln_cross.state_dict())
        self.pi.load_state_dict(policy.pi.state_dict())
        self.vf.load_state_dict(policy.vf.state_dict())
