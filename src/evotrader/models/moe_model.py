"""RLlib's view of the Mixture of Experts: RLModules and a PPO learner with a balance loss.

``MoEPPOModule`` wraps the Ray-free ``MoEPolicy`` (what checkpoints hold), and
``PortfolioMoEModule`` the ``PortfolioMoE`` of a portfolio run; ``MoEPPOLearner`` adds the
gate's load-balancing loss to PPO's and logs expert utilisation and gate entropy, for
either (a portfolio gate routes each asset: its balance counts every (sample, asset)).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI

from evotrader.models.moe_policy import MoEPolicy, Routing, gate_entropy, load_balancing_loss
from evotrader.models.portfolio_moe import PortfolioMoE
from evotrader.models.portfolio_ppo_model import PortfolioPPOModule
from evotrader.models.ppo_model import module_inputs
from evotrader.models.rllib_sampling import EvalModeSampling

GATE_PROBS = "gate_probs"
GATE_WEIGHTS = "gate_weights"


class MoEPPOModule(EvalModeSampling, ValueFunctionAPI):
    """RLlib module around ``MoEPolicy``; ``model_config`` holds the encoder and the gate.

    ``model_config`` keys: ``encoder`` (CoreTransformer spec without ``input_dim``, which
    comes from the observation space), ``num_experts``, ``top_k``, ``gate_hidden``.
    """

    def setup(self) -> None:
        config, spec, num_actions = module_inputs(self)
        self.net = MoEPolicy(
            spec,
            num_actions,
            int(config["num_experts"]),
            int(config["top_k"]),
            int(config["gate_hidden"]),
        )

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.net(batch[Columns.OBS])}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        embedding, routing = self.net.encode(batch[Columns.OBS])
        return {
            Columns.ACTION_DIST_INPUTS: self.net.pi(embedding),
            Columns.EMBEDDINGS: embedding,
            GATE_PROBS: routing.probs,
            GATE_WEIGHTS: routing.weights,
        }

    def compute_values(
        self, batch: dict[str, Any], embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        if embeddings is None:
            embeddings, _ = self.net.encode(batch[Columns.OBS])
        return self.net.vf(embeddings).squeeze(-1)


class PortfolioMoEModule(PortfolioPPOModule):
    """``PortfolioPPOModule`` (its checks of the spaces, its per-asset action distribution,
    its value) with a ``PortfolioMoE`` as the net; ``model_config`` adds ``num_experts``,
    ``top_k`` and ``gate_hidden`` to the encoder (and optional ``cross_layers``, each
    expert's depth)."""

    net: PortfolioMoE

    def setup(self) -> None:
        super().setup()  # checks the spaces and sizes the network, then the mixture replaces it
        config, shape = self.model_config, self.net
        assert isinstance(config, dict)  # checked by PortfolioPPOModule.setup
        self.net = PortfolioMoE(
            shape.spec,
            shape.num_choices,
            shape.cross_layers,
            int(config["num_experts"]),
            int(config["top_k"]),
            int(config["gate_hidden"]),
        )

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        embedding, routing = self.net.encode(batch[Columns.OBS])
        return {
            Columns.ACTION_DIST_INPUTS: self.net.logits(embedding).flatten(start_dim=1),
            Columns.EMBEDDINGS: embedding,
            GATE_PROBS: routing.probs,
            GATE_WEIGHTS: routing.weights,
        }


class MoEPPOLearner(PPOTorchLearner):
    """PPO's loss plus ``load_balance_coeff`` times the gate's load-balancing loss.

    The coefficient comes from ``learner_config_dict["load_balance_coeff"]``. Logs, per
    module, the balance loss, the gate entropy and each expert's utilisation (its mean
    routing weight over every routed sample, or (sample, asset) in a portfolio), next to
    PPO's own scalars.
    """

    def compute_loss_for_module(
        self, *, module_id: str, config: Any, batch: dict[str, Any], fwd_out: dict[str, Any]
    ) -> torch.Tensor:
        loss = super().compute_loss_for_module(
            module_id=module_id, config=config, batch=batch, fwd_out=fwd_out
        )
        module = self.module[module_id].unwrapped()
        assert isinstance(module, (MoEPPOModule, PortfolioMoEModule)), (
            f"{module_id} is a {type(module).__name__}"
        )
        net = module.net
        routing = Routing(fwd_out[GATE_PROBS], fwd_out[GATE_WEIGHTS])
        balance = load_balancing_loss(routing, net.top_k)
        utilisation = routing.weights.detach().reshape(-1, net.num_experts).mean(dim=0)
        self.metrics.log_dict(
            {
                "load_balance_loss": balance.detach(),
                "gate_entropy": gate_entropy(routing.probs.detach()),
                **{f"expert_utilisation_{k}": u for k, u in enumerate(utilisation)},
            },
            key=module_id,
            window=1,
        )
        return loss + config.learner_config_dict["load_balance_coeff"] * balance
