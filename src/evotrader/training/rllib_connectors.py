"""Lean env-runner connectors for a single-agent, Discrete, stateless module: one piece each way.

RLlib's default pipelines around every sampled step are general (multi-agent, recurrent,
Box-action squashing) and cost more per step than our small model's forward: five pieces
from episodes to module (collect per-episode items, add a time rank, add states, batch, to
tensor) and six back (sample, to numpy, unbatch, drop the time rank, clip, listify). For the
single-symbol stages' modules, which draw their own actions (``EvalModeSampling``), all that
work reduces to stacking each episode's latest observation into a tensor, and handing the
module's outputs back as numpy arrays indexed by env. ``LEAN_CONNECTORS`` is the
``PPOConfig.env_runners`` settings that install them; the same seed samples the same
episodes (observations, actions, rewards and model outputs) as the defaults (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.utils.numpy import convert_to_numpy


class LatestObservations(ConnectorV2):
    """Env to module: the latest observation of every ongoing episode, in env order, as one
    tensor on the env runner's device."""

    def __init__(self, device: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.device = device

    def __call__(self, *, batch: dict[str, Any], episodes: list[Any], **kwargs: Any) -> Any:
        observations = np.stack([episode.get_observations(-1) for episode in episodes])
        batch[Columns.OBS] = torch.from_numpy(observations).to(self.device)
        return batch


class OutputsByEnv(ConnectorV2):
    """Module to env: every output of the module as a numpy array whose row i belongs to env
    i (what the env runner reads); greedy actions when not exploring (inference)."""

    def __call__(self, *, batch: dict[str, Any], explore: bool | None = None, **kwargs: Any) -> Any:
        if Columns.ACTIONS not in batch:
            if explore:
                raise TypeError("lean connectors need a module that draws its own actions")
            batch[Columns.ACTIONS] = batch[Columns.ACTION_DIST_INPUTS].argmax(dim=-1)
        return convert_to_numpy(batch)  # as RLlib's TensorToNumpy: int64 -> int32 too


LEAN_CONNECTORS: dict[str, Any] = {
    "env_to_module_connector": lambda env, spaces, device: LatestObservations(device),
    "add_default_connectors_to_env_to_module_pipeline": False,
    "module_to_env_connector": lambda env, spaces: OutputsByEnv(),
    "add_default_connectors_to_module_to_env_pipeline": False,
}
RLLIB_DEFAULT_CONNECTORS: dict[str, Any] = {  # what LEAN_CONNECTORS replaces
    "env_to_module_connector": None,
    "add_default_connectors_to_env_to_module_pipeline": True,
    "module_to_env_connector": None,
    "add_default_connectors_to_module_to_env_pipeline": True,
}
