"""RLlib's view of the PPO policy: TransformerPolicy as a TorchRLModule with a value head.

Checkpoints hold only the inner ``TransformerPolicy``, so trained policies run without Ray.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModule

from evotrader.models.core_transformer import TransformerSpec
from evotrader.models.rllib_sampling import EvalModeSampling
from evotrader.models.transformer_policy import TransformerPolicy


def module_inputs(module: RLModule) -> tuple[dict[str, Any], TransformerSpec, int]:
    """``module``'s model config, its encoder spec and its number of actions.

    The spec is ``model_config["encoder"]`` with ``input_dim`` from the observation space
    (window, channels). RLlib types all three as optional; ``RLModuleSpec.build`` always
    passes a dict and the market envs have a Box observation and a Discrete action space.
    """
    config, obs_space, action_space = (
        module.model_config,
        module.observation_space,
        module.action_space,
    )
    assert isinstance(config, dict), f"model_config must be a dict, got {type(config)}"
    assert obs_space is not None and obs_space.shape is not None, "no observation shape"
    assert isinstance(action_space, gym.spaces.Discrete), f"not Discrete: {action_space}"
    encoder = dict(config["encoder"])
    encoder["input_dim"] = int(obs_space.shape[-1])
    return config, TransformerSpec.from_dict(encoder), int(action_space.n)


class TransformerPPOModule(EvalModeSampling, ValueFunctionAPI):
    """RLlib module around ``TransformerPolicy``; ``model_config["encoder"]`` sizes it.

    ``model_config`` holds the CoreTransformer spec without ``input_dim``, which comes
    from the observation space (window, channels).
    """

    def setup(self) -> None:
        _, spec, num_actions = module_inputs(self)
        self.net = TransformerPolicy(spec, num_actions)

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
