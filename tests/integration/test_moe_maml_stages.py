"""stage_2_moe on RLlib and stage_3_maml, run in-process on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evotrader.core.checkpoint import load_checkpoint
from evotrader.models.moe_policy import MoEPolicy
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.training.maml_stage import build_tasks, run_maml_stage
from evotrader.training.moe_stage import moe_stage
from evotrader.training.rllib_stage import build_algorithm, current_policy, set_policy_weights

SMALL = (
    "data=synthetic",
    "data.options.n_bars=900",
    "env.window=16",
    "env.episode_length=32",
    "model.model_dim=16",
    "model.ff_dim=32",
    "model.output_dim=16",
)
MOE = (
    "stage_2_moe.train_batch_size=256",
    "stage_2_moe.minibatch_size=64",
    "stage_2_moe.num_epochs=2",
    "stage_2_moe.lr=1e-2",
    "stage_2_moe.num_envs_per_env_runner=4",
    "stage_2_moe.num_experts=2",
)
MAML = (
    "stage_3_maml.num_envs=4",
    "stage_3_maml.episode_length=16",
    "stage_3_maml.task_bars=200",
    "stage_3_maml.adapt_bars=64",
    "stage_3_maml.meta_batch_size=2",
    "stage_3_maml.eval_interval=2",
)


def _utilisation_after_training(stage_context, coeff: float) -> np.ndarray:
    ctx = stage_context("stage_2_moe", *SMALL, *MOE, f"stage_2_moe.load_balance_coeff={coeff}")
    stage = moe_stage(ctx)
    algo = build_algorithm(ctx, stage)
    skewed = current_policy(algo).state_dict()
    skewed["gate.2.bias"] = torch.tensor([1.5, -1.5])  # the gate starts sending ~95% to expert 0
    set_policy_weights(algo, skewed)
    for _ in range(3):
        result = algo.train()
    learner = result["learners"]["default_policy"]
    assert {"load_balance_loss", "gate_entropy", "expert_utilisation_0"} <= set(learner)
    windows = torch.randn(512, 16, 8, generator=torch.Generator().manual_seed(0))
    utilisation = current_policy(algo).utilisation(windows).numpy()
    algo.stop()
    return utilisation


def test_balance_loss_reaches_the_learner_and_evens_out_utilisation(
    ray_session, stage_context
) -> None:
    without = _utilisation_after_training(stage_context, 0.0)
    with_balance = _utilisation_after_training(stage_context, 5.0)
    assert without[0] > 0.9  # PPO alone leaves the skewed gate where it was
    assert with_balance[0] < without[0] - 0.1  # the balance loss moved routing toward expert 1


def test_moe_module_policy_is_a_plain_mixture(ray_session, stage_context) -> None:
    ctx = stage_context("stage_2_moe", *SMALL, *MOE)
    algo = build_algorithm(ctx, moe_stage(ctx))
    policy = current_policy(algo)
    algo.stop()
    assert isinstance(policy, MoEPolicy) and policy.num_experts == 2


def test_maml_stage_trains_saves_and_resumes(stage_context) -> None:
    ctx = stage_context("stage_3_maml", *SMALL, *MAML, "stage_3_maml.meta_iterations=2")
    assert [task.name.split("[")[0] for task in build_tasks(ctx)] == ["AR1"] * 3
    first = run_maml_stage(ctx)
    saved = load_checkpoint(first.checkpoint)
    assert saved.kind == "maml" and saved.extra["iteration"] == 2
    assert saved.hyperparameters["inner_steps"] == 1 and saved.hyperparameters["adapt_bars"] == 64
    TransformerPolicy.from_architecture(saved.architecture).load_state_dict(saved.state_dict)

    longer = stage_context("stage_3_maml", *SMALL, *MAML, "stage_3_maml.meta_iterations=3")
    resumed = run_maml_stage(longer)  # same run dir: picks up last.pth after iteration 2
    last = load_checkpoint(longer.stage_dir / "last.pth")
    assert last.extra["iteration"] == 3
    assert resumed.validation["sharpe"] >= first.validation["sharpe"]


def test_maml_tasks_never_reach_into_validation(stage_context) -> None:
    ctx = stage_context("stage_3_maml", *SMALL, *MAML, "stage_3_maml.task_bars=150")
    validation_start = ctx.splits.validation.index[0]
    for task in build_tasks(ctx):
        assert task.name.endswith("]")
        last_day = task.name.split("..")[1].rstrip("]")
        assert np.datetime64(last_day) < np.datetime64(validation_start)


def test_maml_refuses_tasks_longer_than_the_history(stage_context) -> None:
    ctx = stage_context("stage_3_maml", *SMALL, *MAML, "stage_3_maml.task_bars=5000")
    with pytest.raises(ValueError, match="task_bars"):
        build_tasks(ctx)
