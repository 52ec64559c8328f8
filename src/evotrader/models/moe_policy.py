"""Mixture of Experts: K CoreTransformer experts mixed by a gate that reads the observation.

Markets change regime; each expert can specialise in some of them while the gate learns
which expert to trust for the window at hand. ``MoEPolicy`` is plain PyTorch: checkpoints
hold it, so it runs without Ray (``moe_model`` holds RLlib's view of it).

Expert embeddings are mixed with the gate's weights and read by one shared policy head and
one shared value head, so with K=1 the mixture is exactly a ``TransformerPolicy``.
Routing is soft (every expert, weighted by the softmax; ``top_k=0``) or top-k (the k
largest weights, renormalised). Top-k here still evaluates every expert and masks: with a
handful of small experts that is simpler and no slower than gathering.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import torch
from torch import nn

from evotrader.models.core_transformer import CoreTransformer, TransformerSpec
from evotrader.models.transformer_policy import PolicyHeads, TransformerPolicy


class Routing(NamedTuple):
    """The gate's decision for a batch: softmax probabilities and the weights actually used."""

    probs: torch.Tensor  # (B, K) or, routing each asset, (B, assets, K); sums to one
    weights: torch.Tensor  # the same shape, sums to one; zero outside the top-k when top-k


class MoEPolicy(PolicyHeads):
    """Observations (B, window, channels) -> action logits (B, A) and values (B,)."""

    def __init__(
        self,
        spec: TransformerSpec,
        num_actions: int,
        num_experts: int = 4,
        top_k: int = 0,
        gate_hidden: int = 32,
    ) -> None:
        super().__init__()
        self.spec, self.num_actions = spec, int(num_actions)
        self.num_experts, self.gate_hidden = num_experts, gate_hidden
        self.top_k = checked_top_k(num_experts, top_k, gate_hidden)
        self.experts = nn.ModuleList(CoreTransformer(spec) for _ in range(num_experts))
        # The gate reads cheap window summaries: the last bar, the window mean and spread.
        self.gate = gate_network(3 * spec.input_dim, gate_hidden, num_experts)
        self.add_heads()

    def architecture(self) -> dict[str, Any]:
        return {
            "encoder": self.spec.to_dict(),
            "num_actions": self.num_actions,
            "num_experts": self.num_experts,
            "top_k": self.top_k,
            "gate_hidden": self.gate_hidden,
        }

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> MoEPolicy:
        return cls(
            TransformerSpec.from_dict(architecture["encoder"]),
            int(architecture["num_actions"]),
            int(architecture["num_experts"]),
            int(architecture["top_k"]),
            int(architecture["gate_hidden"]),
        )

    def route(self, obs: torch.Tensor) -> Routing:
        summary = torch.cat([obs[:, -1], obs.mean(dim=1), obs.std(dim=1, unbiased=False)], -1)
        return gate_routing(self.gate(summary), self.top_k)

    def encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, Routing]:
        """The gate-weighted mixture of expert embeddings (B, D) and the routing behind it."""
        routing = self.route(obs)
        embeddings = torch.stack([expert(obs) for expert in self.experts], dim=1)  # (B, K, D)
        return (routing.weights.unsqueeze(-1) * embeddings).sum(dim=1), routing

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encode(obs)[0]

    @torch.no_grad()
    def utilisation(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean routing weight of each expert over a batch (K,), summing to one."""
        return self.route(obs).weights.mean(dim=0)

    def expert_policy(self, k: int) -> TransformerPolicy:
        """Expert ``k`` with the shared heads, as a standalone TransformerPolicy."""
        policy = TransformerPolicy(self.spec, self.num_actions)
        policy.encoder.load_state_dict(self.experts[k].state_dict())
        policy.pi.load_state_dict(self.pi.state_dict())
        policy.vf.load_state_dict(self.vf.state_dict())
        return policy

    def warm_start(self, policy: TransformerPolicy, noise: float = 1e-3, seed: int = 0) -> None:
        """Every expert starts as the given policy's encoder plus a little seeded noise.

        Identical experts would receive identical gradients and the gate none at all, so
        the noise (standard deviation ``noise``) is what lets them specialise. The policy
        and value heads are copied as they are.
        """
        if policy.spec != self.spec or policy.num_actions != self.num_actions:
            raise ValueError(
                f"cannot warm-start from a policy with encoder {policy.spec.to_dict()} and "
                f"{policy.num_actions} actions: the experts are {self.spec.to_dict()} with "
                f"{self.num_actions} actions"
            )
        copy_with_noise(self.experts, policy.encoder, noise, seed)
        self.pi.load_state_dict(policy.pi.state_dict())
        self.vf.load_state_dict(policy.vf.state_dict())


def checked_top_k(num_experts: int, top_k: int, gate_hidden: int) -> int:
    """The gate's settings checked (``ValueError`` naming the bad one) and the ``top_k`` a
    mixture stores: ``top_k == num_experts`` keeps every expert, which is soft routing (0)."""
    if num_experts < 1:
        raise ValueError(f"num_experts must be >= 1, got {num_experts}")
    if not 0 <= top_k <= num_experts:
        raise ValueError(f"top_k must be in [0, num_experts={num_experts}], got {top_k}")
    if gate_hidden < 1:
        raise ValueError(f"gate_hidden must be >= 1, got {gate_hidden}")
    return 0 if top_k == num_experts else top_k


def gate_network(inputs: int, hidden: int, num_experts: int) -> nn.Sequential:
    """The gate: ``inputs`` -> tanh hidden layer -> one logit per expert, its last layer
    initialised small so routing starts near uniform."""
    gate = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, num_experts))
    gate_out = gate[2]
    assert isinstance(gate_out, nn.Linear)
    nn.init.normal_(gate_out.weight, std=0.02)
    nn.init.zeros_(gate_out.bias)
    return gate


def gate_routing(logits: torch.Tensor, top_k: int) -> Routing:
    """The gate's logits (..., K) as routing: soft (``top_k`` 0) or the ``top_k`` largest
    probabilities renormalised, over the last axis."""
    probs = logits.softmax(dim=-1)
    if top_k == 0:
        return Routing(probs, probs)
    top = probs.topk(top_k, dim=-1)
    kept = torch.zeros_like(probs).scatter(-1, top.indices, top.values)
    return Routing(probs, kept / kept.sum(dim=-1, keepdim=True))


def copy_with_noise(
    experts: Iterable[nn.Module], source: nn.Module, noise: float, seed: int
) -> None:
    """Every expert becomes ``source`` plus Gaussian noise (standard deviation ``noise``) drawn
    from a generator seeded with ``seed``, expert by expert, parameter by parameter."""
    generator = torch.Generator().manual_seed(seed)
    for expert in experts:
        expert.load_state_dict(source.state_dict())
        with torch.no_grad():
            for parameter in expert.parameters():
                parameter.add_(noise * torch.randn(parameter.shape, generator=generator))


def load_balancing_loss(routing: Routing, top_k: int) -> torch.Tensor:
    """Switch-Transformer balance loss, K * sum_k f_k * P_k, equal to 1 when balanced.

    P_k is the mean gate probability of expert k and f_k the share of routing it receives:
    the mean weight under soft routing, the share of top-k slots under top-k routing. Its
    gradient flows through P, pushing probability away from over-used experts. Means run
    over every routed item: each sample, or each (sample, asset) when assets are routed.
    """
    num_experts = routing.probs.shape[-1]
    probs = routing.probs.reshape(-1, num_experts)
    weights = routing.weights.reshape(-1, num_experts)
    mean_prob = probs.mean(dim=0)
    share = weights.mean(dim=0) if top_k == 0 else (weights > 0).float().mean(dim=0) / top_k
    return num_experts * (share * mean_prob).sum()


def gate_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the per-sample gate distribution (log K: undecided, 0: certain)."""
    return -(probs * probs.clamp_min(1e-12).log()).sum(dim=-1).mean()
