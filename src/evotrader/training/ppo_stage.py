"""stage_1_ppo: PPO from Ray RLlib trains the TransformerPolicy on the training split.

One loop you can follow: train an iteration, log it, every ``eval_interval`` iterations
backtest the current policy on the validation split (out of sample, after costs) and
keep the best, and after every iteration save ``last.pth`` so an interrupted run resumes.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.tune.registry import register_env
from torch.utils.tensorboard import SummaryWriter

from evotrader.models.ppo_model import TransformerPPOModule
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from evotrader.training.evaluation import evaluate_on_split, headline
from evotrader.training.market_envs import ENV_NAME, make_vector_env, vector_env_config
from evotrader.training.pipeline import StageContext, StageResult

MODULE_ID = "default_policy"
TRAIN_SCALARS = {
    "episode_return": ("env_runners", "episode_return_mean"),
    "policy_loss": ("learners", MODULE_ID, "policy_loss"),
    "value_loss": ("learners", MODULE_ID, "vf_loss"),
    "entropy": ("learners", MODULE_ID, "entropy"),
    "kl": ("learners", MODULE_ID, "mean_kl_loss"),
}


def run_ppo_stage(ctx: StageContext) -> StageResult:
    settings = ctx.config.stage_1_ppo
    algo = build_algorithm(ctx)
    last_path = ctx.stage_dir / "last.pth"
    start, best = 0, {"sharpe": -np.inf}
    if last_path.exists():
        last = load_checkpoint(last_path)
        set_policy_weights(algo, last.state_dict)
        start, best = int(last.extra["iteration"]), dict(last.extra["best"])
        print(f"[{ctx.name}] resuming after iteration {start} from {last_path}")
    writer = SummaryWriter(str(ctx.tensorboard_dir), purge_step=start + 1)
    sampled = 0  # env steps sampled so far by this algorithm instance
    for iteration in range(start + 1, settings.iterations + 1):
        began = time.perf_counter()
        result = algo.train()
        seconds = time.perf_counter() - began
        steps = _env_steps(result)
        scalars = {name: _lookup(result, path) for name, path in TRAIN_SCALARS.items()}
        scalars["env_steps_per_second"] = (steps - sampled) / seconds
        sampled = steps
        for name, value in scalars.items():
            if np.isfinite(value):  # e.g. no episode finished during this iteration
                writer.add_scalar(f"train/{name}", value, iteration)
        line = " ".join(f"{name}={value:.4g}" for name, value in scalars.items())
        print(f"[{ctx.name}] iter {iteration}/{settings.iterations} {line}", flush=True)

        policy = current_policy(algo)
        if iteration % settings.eval_interval == 0 or iteration == settings.iterations:
            numbers = headline(
                evaluate_on_split(
                    policy, ctx.bars, ctx.splits.validation, ctx.pipeline, ctx.config.env
                )
            )
            for name, value in numbers.items():
                writer.add_scalar(f"validation/{name}", value, iteration)
            improved = numbers["sharpe"] > best["sharpe"]
            if improved:
                best = numbers
                save_checkpoint(
                    policy_checkpoint(ctx, policy, numbers, {"iteration": iteration}),
                    ctx.checkpoint_path,
                )
            print(
                f"[{ctx.name}] validation sharpe={numbers['sharpe']:.2f} "
                f"(buy&hold {numbers['buy_hold_sharpe']:.2f}) return={numbers['total_return']:.2%} "
                f"trades={int(numbers['n_trades'])}{'  * best, saved' if improved else ''}",
                flush=True,
            )
        save_checkpoint(
            policy_checkpoint(ctx, policy, best, {"iteration": iteration, "best": best}),
            last_path,
        )
    writer.close()
    algo.stop()
    return StageResult(checkpoint=str(ctx.checkpoint_path), validation=best, seconds=0.0)


def build_algorithm(ctx: StageContext) -> Algorithm:
    """PPO on the vectorised market env of the training split, seeded."""
    settings, config = ctx.config.stage_1_ppo, ctx.config
    register_env(ENV_NAME, make_vector_env)
    encoder = asdict(config.model)
    ppo = (
        PPOConfig()
        .environment(ENV_NAME, env_config=vector_env_config(ctx, ctx.splits.train))
        .env_runners(
            num_env_runners=settings.num_env_runners,
            num_envs_per_env_runner=settings.num_envs_per_env_runner,
            gym_env_vectorize_mode="vector_entry_point",
        )
        .training(
            lr=settings.lr,
            gamma=settings.gamma,
            lambda_=settings.lambda_,
            clip_param=settings.clip_param,
            entropy_coeff=settings.entropy_coeff,
            vf_loss_coeff=settings.vf_loss_coeff,
            grad_clip=settings.grad_clip,
            train_batch_size_per_learner=settings.train_batch_size,
            minibatch_size=settings.minibatch_size,
            num_epochs=settings.num_epochs,
        )
        .rl_module(
            rl_module_spec=RLModuleSpec(
                module_class=TransformerPPOModule, model_config={"encoder": encoder}
            )
        )
        .debugging(seed=config.seed)
        .reporting(metrics_num_episodes_for_smoothing=20)
    )
    return ppo.build_algo()


def current_policy(algo: Algorithm) -> TransformerPolicy:
    """The learner's current weights as a plain, Ray-free TransformerPolicy on CPU."""
    module = algo.get_module(MODULE_ID)
    policy = TransformerPolicy(module.net.spec, module.net.num_actions)
    policy.load_state_dict(policy_weights(algo))
    return policy.eval()


def policy_weights(algo: Algorithm) -> dict[str, torch.Tensor]:
    weights = algo.learner_group.get_weights(module_ids=[MODULE_ID])[MODULE_ID]
    prefix = "net."
    return {
        key[len(prefix) :]: torch.as_tensor(np.asarray(value))
        for key, value in weights.items()
        if key.startswith(prefix)
    }


def set_policy_weights(algo: Algorithm, state_dict: dict[str, torch.Tensor]) -> None:
    """Restore weights into the running learner and push them to every env runner."""
    module_state = {f"net.{key}": value.numpy() for key, value in state_dict.items()}
    algo.learner_group.set_weights({MODULE_ID: module_state})
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group)


def policy_checkpoint(
    ctx: StageContext,
    policy: TransformerPolicy,
    metrics: dict[str, float],
    extra: dict[str, Any] | None = None,
) -> Checkpoint:
    return Checkpoint(
        kind="ppo",
        architecture=policy.architecture(),
        state_dict=policy.state_dict(),
        hyperparameters={**asdict(ctx.config.stage_1_ppo), "seed": ctx.config.seed},
        feature_pipeline=ctx.pipeline.state_dict(),
        env=asdict(ctx.config.env),
        symbol=ctx.config.data.symbol,
        data_range=ctx.data_range(),
        metrics={key: float(value) for key, value in metrics.items()},
        extra={"stage": ctx.name, "data": ctx.data_source(), **(extra or {})},
    )


def _env_steps(result: dict[str, Any]) -> int:
    steps = _lookup(result, ("env_runners", "num_env_steps_sampled_lifetime"))
    return 0 if np.isnan(steps) else int(steps)


def _lookup(result: dict[str, Any], path: tuple[str, ...]) -> float:
    node: Any = result
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return float("nan")
        node = node[key]
    return float(node)
