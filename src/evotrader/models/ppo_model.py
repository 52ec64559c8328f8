"""RLlib's view of the PPO policy: TransformerPolicy as a TorchRLModule with a value head.

Checkpoints hold only the inner ``TransformerPolicy``, so trained policies run without Ray.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from evotrader.models.core_transformer import TransformerSpec
from evotrader.models.transformer_policy import TransformerPolicy


class TransformerPPOModule(TorchRLModule, ValueFunctionAPI):
    """RLlib module around ``TransformerPolicy``; ``model_config["encoder"]`` sizes it.

    ``model_config`` holds the CoreTransformer spec without ``input_dim``, which comes
    from the observation space (window, channels).
    """

    def setup(self) -> None:
        encoder = dict(self.model_config["encoder"])
        encoder["input_dim"] = int(self.observation_space.shape[-1])
        self.net = TransformerPolicy(TransformerSpec.from_dict(encoder), self.action_space.n)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.net(batch[Columns.OBS])}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        embedding = self.net.encoder(batch[Columns.OBS])
        return {
            Columns.ACTION_DIST_INPUTS: self.net.pi(embedding),
            Columns.EMBEDDINGS: embedding,
        }

    def compute_values(
        self, batch: dict[str, Any], embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        if embeddings is None:
            embeddings = self.net.encoder(batch[Columns.OBS])
        return self.net.vf(embeddings).squeeze(-1)
