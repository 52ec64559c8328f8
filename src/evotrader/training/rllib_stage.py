"""The RLlib stages (stage_1_ppo, stage_2_moe): one PPO training loop for any of our modules.

One loop you can follow: train an iteration, log it, every ``eval_interval`` iterations
backtest the current policy on the validation split (used for selection, after costs) and
keep the best, and after every iteration save ``last.pth`` so an interrupted run resumes.
A stage differs only in its ``RLlibStage``: the RLModule, an optional learner subclass
(MoE's load-balancing loss) and the extra learner scalars it logs. A resumed stage seeds its
sampler from (seed, iteration it resumes after), so it samples new episodes rather than
replaying those its first iterations saw. A stage given ``universe`` inputs trains a
portfolio module on the vectorised PortfolioEnv, validates through the portfolio backtest
engine against equal weight, and leaves a portfolio checkpoint (``portfolio_checkpoint``);
without them every step is the single-symbol one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.learner import Learner, LearnerGroup
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.tune.registry import register_env
from torch.utils.tensorboard import SummaryWriter

from evotrader.config import ConfigError, PPOStageConfig
from evotrader.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from evotrader.core.checks import require_at_least
from evotrader.core.policy import Policy
from evotrader.models.moe_policy import MoEPolicy
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.training.evaluation import validate
from evotrader.training.market_envs import (
    ENV_NAME,
    PORTFOLIO_ENV_NAME,
    UniverseInputs,
    make_portfolio_vector_env,
    make_vector_env,
    portfolio_env_config,
    vector_env_config,
)
from evotrader.training.pipeline import CheckpointedPolicy, StageContext, StageResult
from evotrader.training.portfolio_validation import portfolio_checkpoint, validate_portfolio
from evotrader.training.rllib_connectors import LEAN_CONNECTORS

log = logging.getLogger(__name__)

MODULE_ID = "default_policy"
TRAIN_SCALARS = {
    "episode_return": ("env_runners", "episode_return_mean"),
    "policy_loss": ("learners", MODULE_ID, "policy_loss"),
    "value_loss": ("learners", MODULE_ID, "vf_loss"),
    "entropy": ("learners", MODULE_ID, "entropy"),
    "kl": ("learners", MODULE_ID, "mean_kl_loss"),
}


@dataclass(frozen=True)
class RLlibStage:
    """What makes one RLlib stage differ from another."""

    kind: str  # checkpoint kind, e.g. "ppo", "moe"
    settings: PPOStageConfig
    module_spec: RLModuleSpec
    learner_class: type[Learner] | None = None
    learner_config: dict[str, Any] = field(default_factory=dict)
    learner_scalars: tuple[str, ...] = ()  # extra per-module learner metrics to log
    universe: UniverseInputs | None = None  # a portfolio run's data; None: one symbol


def run_rllib_stage(
    ctx: StageContext, stage: RLlibStage, initial_weights: dict[str, torch.Tensor] | None = None
) -> StageResult:
    """Train with PPO on RLlib; ``initial_weights`` warm-start a fresh (not a resumed) run."""
    settings = stage.settings
    last_path = ctx.stage_dir / "last.pth"
    last = load_checkpoint(last_path) if last_path.exists() else None
    start = int(last.extra["iteration"]) if last is not None else 0
    algo = build_algorithm(ctx, stage, resumed_after=start)
    best = {"sharpe": -np.inf}
    if last is not None:
        set_policy_weights(algo, last.state_dict)
        best = dict(last.extra["best"])
        log.info(f"[{ctx.name}] resuming after iteration {start} from {last_path}")
    elif initial_weights is not None:
        set_policy_weights(algo, initial_weights)
    scalar_paths = TRAIN_SCALARS | {
        name: ("learners", MODULE_ID, name) for name in stage.learner_scalars
    }
    writer = SummaryWriter(str(ctx.tensorboard_dir), purge_step=start + 1)
    sampled = 0  # env steps sampled so far by this algorithm instance
    for iteration in range(start + 1, settings.iterations + 1):
        began = time.perf_counter()
        result = algo.train()
        seconds = time.perf_counter() - began
        steps = _env_steps(result)
        scalars = {name: _lookup(result, path) for name, path in scalar_paths.items()}
        scalars["env_steps_per_second"] = (steps - sampled) / seconds
        sampled = steps
        for name, value in scalars.items():
            if np.isfinite(value):  # e.g. no episode finished during this iteration
                writer.add_scalar(f"train/{name}", value, iteration)
        line = " ".join(f"{name}={value:.4g}" for name, value in scalars.items())
        log.info(f"[{ctx.name}] iter {iteration}/{settings.iterations} {line}")

        policy = current_policy(algo)
        hyperparameters = asdict(settings)
        if iteration % settings.eval_interval == 0 or iteration == settings.iterations:
            numbers = _validate(ctx, stage, policy, iteration, writer, best)
            if numbers["sharpe"] > best["sharpe"]:
                best = numbers
                save_checkpoint(
                    _checkpoint(ctx, stage, policy, hyperparameters, numbers, iteration=iteration),
                    ctx.checkpoint_path,
                )
        save_checkpoint(
            _checkpoint(ctx, stage, policy, hyperparameters, best, iteration=iteration, best=best),
            last_path,
        )
    writer.close()
    algo.stop()
    return StageResult(checkpoint=str(ctx.checkpoint_path), validation=best, seconds=0.0)


def _validate(
    ctx: StageContext,
    stage: RLlibStage,
    policy: Policy,
    iteration: int,
    writer: SummaryWriter,
    best: dict[str, float],
) -> dict[str, float]:
    if stage.universe is None:
        return validate(ctx, policy, iteration, writer, best)
    assert isinstance(policy, PortfolioTransformer)
    return validate_portfolio(ctx, stage.universe, policy, iteration, writer, best)


def _checkpoint(
    ctx: StageContext,
    stage: RLlibStage,
    policy: CheckpointedPolicy,
    hyperparameters: dict[str, Any],
    metrics: dict[str, float],
    **extra: Any,
) -> Checkpoint:
    if stage.universe is None:
        return ctx.checkpoint(stage.kind, policy, hyperparameters, metrics, **extra)
    return portfolio_checkpoint(
        ctx, stage.universe, stage.kind, policy, hyperparameters, metrics, **extra
    )


def check_rllib_settings(ctx: StageContext, stage: RLlibStage) -> None:
    """Settings this loop or RLlib's own validation refuses, found before the run starts."""
    require_at_least(
        f"{ctx.name}.",
        stage.settings,
        1,
        "iterations",
        "train_batch_size",
        "minibatch_size",
        "num_epochs",
        "num_envs_per_env_runner",
        "eval_interval",
        error=ConfigError,
    )
    require_at_least(f"{ctx.name}.", stage.settings, 0, "num_env_runners", error=ConfigError)
    ppo_config(ctx, stage, ctx.config.seed).validate()


def sampling_seed(seed: int, resumed_after: int) -> int:
    """The sampler's seed: the run's own for a fresh stage, and one drawn from (seed,
    iteration) for a stage resumed after that iteration, which must not replay the episodes
    its first iterations sampled."""
    if resumed_after == 0:
        return seed
    return int(np.random.default_rng([seed, resumed_after]).integers(2**31))


def build_algorithm(ctx: StageContext, stage: RLlibStage, resumed_after: int = 0) -> Algorithm:
    """PPO on the vectorised market env of the training split, seeded for the iterations
    after ``resumed_after``."""
    if stage.universe is None:
        register_env(ENV_NAME, make_vector_env)
    else:
        register_env(PORTFOLIO_ENV_NAME, make_portfolio_vector_env)
    return ppo_config(ctx, stage, sampling_seed(ctx.config.seed, resumed_after)).build_algo()


def ppo_config(ctx: StageContext, stage: RLlibStage, seed: int) -> PPOConfig:
    """The PPO configuration of ``stage`` over the training split, sampling seeded by ``seed``."""
    settings = stage.settings
    if stage.universe is None:
        env_name, env_config = ENV_NAME, vector_env_config(ctx, ctx.splits.train)
    else:
        env_config = portfolio_env_config(ctx, stage.universe, stage.universe.splits.train)
        env_name = PORTFOLIO_ENV_NAME
    ppo = (
        PPOConfig()
        .environment(env_name, env_config=env_config)
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
        .rl_module(rl_module_spec=stage.module_spec)
        .debugging(seed=seed)
        .reporting(metrics_num_episodes_for_smoothing=20)
    )
    if stage.universe is None:  # a Discrete module that draws its own actions
        ppo = ppo.env_runners(**LEAN_CONNECTORS)
    if stage.learner_class is not None:
        ppo = ppo.learners(
            learner_class=stage.learner_class, learner_config_dict=stage.learner_config
        )
    return ppo


def current_policy(algo: Algorithm) -> TransformerPolicy | MoEPolicy | PortfolioTransformer:
    """The learner's current weights as a plain, Ray-free copy of the module's ``net``."""
    # Every stage's RLModule (TransformerPPOModule, MoEPPOModule, PortfolioPPOModule) holds
    # its policy as .net.
    net = cast(
        "TransformerPolicy | MoEPolicy | PortfolioTransformer",
        algo.get_module(MODULE_ID).net,  # type: ignore[union-attr]
    )
    policy = type(net).from_architecture(net.architecture())
    policy.load_state_dict(policy_weights(algo))
    return policy.eval()


def policy_weights(algo: Algorithm) -> dict[str, torch.Tensor]:
    learners = _learners(algo)
    weights = learners.get_weights(module_ids=[MODULE_ID])[MODULE_ID]
    prefix = "net."
    return {
        key[len(prefix) :]: torch.as_tensor(np.asarray(value))
        for key, value in weights.items()
        if key.startswith(prefix)
    }


def set_policy_weights(algo: Algorithm, state_dict: dict[str, torch.Tensor]) -> None:
    """Restore weights into the running learner and push them to every env runner."""
    module_state = {f"net.{key}": value.numpy() for key, value in state_dict.items()}
    learners = _learners(algo)
    learners.set_weights({MODULE_ID: module_state})
    runners = algo.env_runner_group
    assert runners is not None  # built by PPOConfig.build_algo, as the learner group
    runners.sync_weights(from_worker_or_learner_group=learners)


def _learners(algo: Algorithm) -> LearnerGroup:
    """The built algorithm's learner group (Ray types it optional until ``build_algo``)."""
    learners = algo.learner_group
    assert learners is not None
    return learners


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
