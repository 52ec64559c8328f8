"""A resumed stage continues its sampling sequence: it never replays the episodes that its
first iterations saw."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from evotrader.training.maml_stage import run_maml_stage
from evotrader.training.pipeline import StageContext
from evotrader.training.ppo_stage import ppo_stage
from evotrader.training.rllib_stage import build_algorithm, sampling_seed

SMALL = (
    "profile=tiny",
    "data=synthetic",
    "data.options.n_bars=700",
    "stage_1_ppo.num_envs_per_env_runner=2",
)


def _first_observations(ctx: StageContext, resumed_after: int) -> np.ndarray:
    """The observations that open the first episodes a (possibly resumed) PPO stage samples."""
    algo = build_algorithm(ctx, ppo_stage(ctx), resumed_after=resumed_after)
    try:
        episodes = algo.env_runner.sample(num_timesteps=2, random_actions=True)
        return np.stack([episode.get_observations(0) for episode in episodes])
    finally:
        algo.stop()


def test_the_sampling_seed_is_the_runs_until_a_resume() -> None:
    assert sampling_seed(7, 0) == 7
    resumed = {sampling_seed(7, iteration) for iteration in range(1, 50)}
    assert len(resumed) == 49 and 7 not in resumed
    assert sampling_seed(7, 3) == sampling_seed(7, 3)


def test_a_resumed_ppo_stage_samples_new_episodes(ray_session, stage_context) -> None:
    ctx = stage_context("stage_1_ppo", *SMALL)
    fresh = _first_observations(ctx, 0)
    assert np.array_equal(fresh, _first_observations(ctx, 0))  # seeded: the same episodes
    assert not np.array_equal(fresh, _first_observations(ctx, 2))


def _meta_iteration(logged: str, iteration: int) -> str:
    """The numbers a meta-iteration logged, its duration aside."""
    line = re.search(rf"meta-iter {iteration}/\d+ (.*)", logged)
    assert line is not None, logged
    return re.sub(r" seconds=\S+", "", line.group(1))


def test_a_resumed_maml_stage_meets_the_tasks_of_an_uninterrupted_one(
    stage_context, caplog, tmp_path: Path
) -> None:
    def maml(iterations: int, run_dir: Path | None = None) -> StageContext:
        overrides = (*SMALL, f"stage_3_maml.meta_iterations={iterations}")
        return stage_context("stage_3_maml", *overrides, run_dir=run_dir)

    caplog.set_level(logging.INFO, logger="evotrader")
    run_maml_stage(maml(2, run_dir=tmp_path / "whole"))
    uninterrupted = caplog.text
    caplog.clear()
    run_maml_stage(maml(1))
    run_maml_stage(maml(2))  # the same run folder: resumes from last.pth after iteration 1
    resumed = caplog.text
    assert "resuming after meta-iteration 1" in resumed
    assert _meta_iteration(resumed, 2) == _meta_iteration(uninterrupted, 2)
