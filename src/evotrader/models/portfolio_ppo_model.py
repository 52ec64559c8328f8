"""RLlib's view of the portfolio policy: PortfolioTransformer as a TorchRLModule with a value.

For PortfolioEnv observations (B, assets, window, channels) and the discrete PortfolioSpec's
MultiDiscrete action (one index into ``EnvSpec.positions`` per asset): the per-asset logits
are flattened asset by asset into RLlib's MultiCategorical inputs. Checkpoints hold only the
inner ``PortfolioTransformer``, so trained policies run without Ray.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
from ray.rllib.core.rl_module.apis import ValueFunctionAPI

from evotrader.models.core_transformer import TransformerSpec
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.models.rllib_sampling import EvalModeSampling


class PortfolioPPOModule(EvalModeSampling, ValueFunctionAPI):
    """RLlib module around ``PortfolioTransformer``; ``model_config["encoder"]`` (without
    ``input_dim``, which comes from the observations' channels) sizes the trunk and
    ``model_config.get("cross_layers", 1)`` the cross-asset blocks."""

    def setup(self) -> None:
        config, obs_space, action_space = (
            self.model_config,
            self.observation_space,
            self.action_space,
        )
        assert isinstance(config, dict), f"model_config must be a dict, got {type(config)}"
        assert obs_space is not None and obs_space.shape is not None, "no observation shape"
        assert len(obs_space.shape) == 3, f"not (assets, window, channels): {obs_space.shape}"
        assert isinstance(action_space, gym.spaces.MultiDiscrete), (
            f"not MultiDiscrete: {action_space}"
        )
        choices = {int(n) for n in action_space.nvec}
        assert len(choices) == 1, f"every asset needs the same choices, got {action_space.nvec}"
        encoder = dict(config["encoder"])
        encoder["input_dim"] = int(obs_space.shape[-1])
        self.net = PortfolioTransformer(
            TransformerSpec.from_dict(encoder), choices.pop(), int(config.get("cross_layers", 1))
        )
        # RLlib types this classmethod's first argument as an instance; it takes the class.
        self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(  # type: ignore[misc]
            input_lens=[int(n) for n in action_space.nvec]
        )

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        logits = self.net.logits(self.net.embed(batch[Columns.OBS]))
        return {Columns.ACTION_DIST_INPUTS: logits.flatten(start_dim=1)}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        embedding = self.net.embed(batch[Columns.OBS])
        return {
            Columns.ACTION_DIST_INPUTS: self.net.logits(embedding).flatten(start_dim=1),
            Columns.EMBEDDINGS: embedding,
        }

    def compute_values(
        self, batch: dict[str, Any], embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        if embeddings is None:
            embeddings = self.net.embed(batch[Columns.OBS])
        return self.net.value(embeddings)
