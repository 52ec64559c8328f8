"""The single-symbol stages sample through lean env-runner connectors: the same episodes, to
the bit and the dtype, as RLlib's default pipelines, so training is unchanged by them."""

from __future__ import annotations

import numpy as np
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core.columns import Columns

from evotrader.training.ppo_stage import ppo_stage
from evotrader.training.rllib_connectors import RLLIB_DEFAULT_CONNECTORS
from evotrader.training.rllib_stage import build_algorithm, policy_weights, ppo_config

SMALL = ("profile=tiny", "data=synthetic", "data.options.n_bars=700")


def _sampled(algo: Algorithm) -> tuple[list[dict[str, np.ndarray]], dict[str, torch.Tensor]]:
    """Episodes sampled (several ending inside the sample), then the weights one PPO
    iteration learned."""
    try:
        assert algo.env_runner is not None
        episodes = algo.env_runner.sample(num_timesteps=300, explore=True)
        columns = [
            {
                "obs": episode.get_observations(),
                "actions": episode.get_actions(),
                "rewards": episode.get_rewards(),
                "logp": episode.get_extra_model_outputs(Columns.ACTION_LOGP),
                "logits": episode.get_extra_model_outputs(Columns.ACTION_DIST_INPUTS),
            }
            for episode in episodes
        ]
        algo.train()
        return columns, policy_weights(algo)
    finally:
        algo.stop()


def test_lean_connectors_sample_what_rllibs_defaults_sample(ray_session, stage_context) -> None:
    ctx = stage_context("stage_1_ppo", *SMALL)
    stage = ppo_stage(ctx)
    lean, lean_weights = _sampled(build_algorithm(ctx, stage))
    default_config = ppo_config(ctx, stage, ctx.config.seed).env_runners(**RLLIB_DEFAULT_CONNECTORS)
    default, default_weights = _sampled(default_config.build_algo())
    assert len(lean) == len(default) > ctx.config.stage_1_ppo.num_envs_per_env_runner
    for ours, theirs in zip(lean, default, strict=True):
        for name, column in ours.items():
            assert column.dtype == theirs[name].dtype, name
            assert np.array_equal(column, theirs[name]), name
    assert len(np.unique(np.concatenate([c["actions"] for c in lean]))) > 1
    assert all(torch.equal(lean_weights[k], default_weights[k]) for k in default_weights)
