"""stage_3_maml: meta-learn initial policy weights that adapt to a new market in a few steps.

Tasks are (symbol, period) slices of the training period, across ``data.universe``; every
task ends before the run's validation split starts. One meta-iteration samples
``meta_batch_size`` tasks; for each, the policy takes ``inner_steps`` policy-gradient steps
on support episodes (``torch.func``), then the loss on fresh query episodes under the adapted
parameters is differentiated back to the initial ones. Validation adapts on the bars just
before the validation split and then trades it, exactly as ``run_backtest.py`` does on test.

In a portfolio run (env=portfolio) the tasks are (sub-universe, period) slices of the
universe's training split and the policy is the PortfolioTransformer
(``evotrader.training.portfolio_maml``); the loop is the same, its checkpoint a
``portfolio_maml`` one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial

import numpy as np
import pandas as pd
import torch
from torch.utils.tensorboard import SummaryWriter

from evotrader.config import ConfigError, MAMLStageConfig, data_reference
from evotrader.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from evotrader.core.checks import require_at_least
from evotrader.data import FeaturePipeline
from evotrader.env import EnvSpec, VectorMarketEnv
from evotrader.models import math_attention
from evotrader.models.maml_model import adapt_parameters, parameters_of, policy_gradient_loss
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.training.adaptation import PORTFOLIO_MAML_KIND, adapted_before
from evotrader.training.evaluation import validate
from evotrader.training.pipeline import StageContext, StageResult
from evotrader.training.portfolio_maml import (
    portfolio_initial_net,
    portfolio_tasks,
    validate_adapted_portfolio,
)
from evotrader.training.portfolio_validation import portfolio_checkpoint
from evotrader.training.rollouts import Task, collect_rollout
from evotrader.training.stages import register_stage
from evotrader.training.warm_start import training_windows, warm_start_donor

log = logging.getLogger(__name__)


MetaPolicy = TransformerPolicy | PortfolioTransformer


@dataclass(frozen=True)
class MetaStep:
    """One meta-update: mean episode returns before and after adaptation, and the loss."""

    pre_return: float
    post_return: float
    meta_loss: float


@dataclass(frozen=True)
class MetaLearner:
    """What differs between MAML over one symbol and over a universe: the checkpoint kind,
    the tasks, the initial policy, the validation (adapt on the bars before the validation
    split, then trade it) and the checkpoint (``StageContext.checkpoint``'s signature)."""

    kind: str
    tasks: list[Task]
    policy: MetaPolicy
    validate: Callable[[MetaPolicy, int, SummaryWriter, dict[str, float]], dict[str, float]]
    checkpoint: Callable[..., Checkpoint]


def meta_learner(ctx: StageContext) -> MetaLearner:
    """The one-symbol learner, or in a portfolio run (env=portfolio) the universe's."""
    inputs = ctx.universe
    if inputs is not None:
        tasks = portfolio_tasks(inputs, ctx.config.env, ctx.config.stage_3_maml, ctx.config.seed)
        return MetaLearner(
            PORTFOLIO_MAML_KIND,
            tasks,
            portfolio_initial_net(ctx, inputs, tasks),
            partial(validate_adapted_portfolio, ctx, inputs),
            partial(portfolio_checkpoint, ctx, inputs),
        )
    return MetaLearner(
        "maml",
        build_tasks(ctx),
        initial_policy(ctx),
        partial(_validate_adapted, ctx),
        ctx.checkpoint,
    )


def _validate_adapted(
    ctx: StageContext,
    policy: TransformerPolicy,
    iteration: int,
    writer: SummaryWriter,
    best: dict[str, float],
) -> dict[str, float]:
    """Adapt on the bars just before the validation split, then trade it."""
    settings = ctx.config.stage_3_maml
    adapted = adapted_before(
        policy,
        ctx.bars,
        ctx.splits.validation.index[0],
        ctx.pipeline,
        ctx.config.env,
        settings,
        ctx.config.seed,
    )
    return validate(ctx, adapted, iteration, writer, best)


def check_settings(ctx: StageContext) -> None:
    """The loop's counts, and at least one task (which loads and checks every universe symbol;
    in a portfolio run, draws the sub-universes)."""
    require_at_least(
        f"{ctx.name}.",
        ctx.config.stage_3_maml,
        1,
        "meta_iterations",
        "meta_batch_size",
        "inner_steps",
        "num_envs",
        "episode_length",
        "task_bars",
        "adapt_bars",
        "eval_interval",
        error=ConfigError,
    )
    if ctx.universe is not None:
        portfolio_tasks(ctx.universe, ctx.config.env, ctx.config.stage_3_maml, ctx.config.seed)
    else:
        build_tasks(ctx)


def run_maml_stage(ctx: StageContext) -> StageResult:
    settings = ctx.config.stage_3_maml
    learner = meta_learner(ctx)
    tasks, policy = learner.tasks, learner.policy
    log.info(f"[{ctx.name}] {len(tasks)} tasks: {', '.join(task.name for task in tasks[:6])}, ...")
    last_path = ctx.stage_dir / "last.pth"
    start, best = 0, {"sharpe": -np.inf}
    if last_path.exists():
        last = load_checkpoint(last_path)
        policy.load_state_dict(last.state_dict)
        start, best = int(last.extra["iteration"]), dict(last.extra["best"])
        log.info(f"[{ctx.name}] resuming after meta-iteration {start} from {last_path}")
    optimizer = torch.optim.Adam(policy.parameters(), lr=settings.outer_lr)
    writer = SummaryWriter(str(ctx.tensorboard_dir), purge_step=start + 1)
    hyperparameters = asdict(settings)
    for iteration in range(start + 1, settings.meta_iterations + 1):
        began = time.perf_counter()
        # Everything random in an iteration derives from (seed, iteration): resume-exact.
        rng = np.random.default_rng([ctx.config.seed, iteration])
        batch = [tasks[i] for i in rng.choice(len(tasks), settings.meta_batch_size)]
        step = meta_step(policy, optimizer, batch, settings, int(rng.integers(2**31)))
        scalars = asdict(step) | {"seconds": time.perf_counter() - began}
        for name, value in scalars.items():
            writer.add_scalar(f"train/{name}", value, iteration)
        line = " ".join(f"{name}={value:.4g}" for name, value in scalars.items())
        log.info(f"[{ctx.name}] meta-iter {iteration}/{settings.meta_iterations} {line}")

        if iteration % settings.eval_interval == 0 or iteration == settings.meta_iterations:
            numbers = learner.validate(policy, iteration, writer, best)
            if numbers["sharpe"] > best["sharpe"]:
                best = numbers
                save_checkpoint(
                    learner.checkpoint(
                        learner.kind, policy, hyperparameters, numbers, iteration=iteration
                    ),
                    ctx.checkpoint_path,
                )
        save_checkpoint(
            learner.checkpoint(
                learner.kind, policy, hyperparameters, best, iteration=iteration, best=best
            ),
            last_path,
        )
    writer.close()
    return StageResult(checkpoint=str(ctx.checkpoint_path), validation=best, seconds=0.0)


def meta_step(
    policy: MetaPolicy,
    optimizer: torch.optim.Optimizer,
    tasks: list[Task],
    settings: MAMLStageConfig,
    seed: int,
) -> MetaStep:
    """One outer update over ``tasks``: adapt on support episodes, score on query episodes."""
    generator = torch.Generator().manual_seed(seed)
    steps = settings.episode_length
    pre, post, total = [], [], torch.zeros(())
    with math_attention():  # second-order gradients through attention need the MATH kernel
        for index, task in enumerate(tasks):
            env_seed = seed + 1000 * index
            params = parameters_of(policy)
            for inner in range(settings.inner_steps):
                support = collect_rollout(
                    policy, params, task.env, steps, env_seed=env_seed + inner, generator=generator
                )
                if inner == 0:
                    pre.append(support.mean_episode_return)
                params = adapt_parameters(
                    policy,
                    params,
                    support,
                    inner_lr=settings.inner_lr,
                    gamma=settings.gamma,
                    first_order=settings.first_order,
                )
            query = collect_rollout(
                policy, params, task.env, steps, env_seed=env_seed + 999, generator=generator
            )
            post.append(query.mean_episode_return)
            total = total + policy_gradient_loss(policy, params, query, settings.gamma)
        meta_loss = total / len(tasks)
        optimizer.zero_grad()
        meta_loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), settings.grad_clip)
    optimizer.step()
    return MetaStep(float(np.mean(pre)), float(np.mean(post)), meta_loss.item())


def build_tasks(ctx: StageContext) -> list[Task]:
    """(symbol, period) tasks from ``data.universe``, all before the validation split."""
    data, settings = ctx.config.data, ctx.config.stage_3_maml
    train_end = ctx.splits.train.index[-1]
    frames = {data.symbol: ctx.splits.train}
    for symbol in data.universe:
        if symbol != data.symbol:
            frames[symbol] = data_reference(data).for_symbol(symbol).load().loc[:train_end]
    return tasks_from(frames, ctx.pipeline, ctx.config.env, settings)


def tasks_from(
    frames: dict[str, pd.DataFrame],
    pipeline: FeaturePipeline,
    env: EnvSpec,
    settings: MAMLStageConfig,
) -> list[Task]:
    """Cut each symbol's bars into consecutive periods of ``task_bars`` bars, one task each."""
    tasks = []
    spec = replace(env, episode_length=settings.episode_length)
    for symbol, bars in frames.items():
        for start in range(0, len(bars) - settings.task_bars + 1, settings.task_bars):
            period = bars.iloc[start : start + settings.task_bars]
            name = f"{symbol}[{period.index[0]:%Y-%m-%d}..{period.index[-1]:%Y-%m-%d}]"
            tasks.append(Task(name, VectorMarketEnv(period, settings.num_envs, pipeline, spec)))
    if not tasks:
        raise ValueError(
            f"no MAML task fits: every symbol in {sorted(frames)} has fewer than task_bars="
            f"{settings.task_bars} bars before validation; lower stage_3_maml.task_bars"
        )
    return tasks


def initial_policy(ctx: StageContext) -> TransformerPolicy:
    """The warm-start donor's CoreTransformer (``warm_start``: for a MoE its busiest expert),
    fresh heads.

    The trunk carries what earlier stages learned about reading markets. Their policy head
    is usually confident (often "stay flat" after costs), and a saturated softmax barely
    moves under a few gradient steps, so the heads start near-uniform instead.
    """
    policy = fresh_policy(ctx)
    donor = warm_start_donor(ctx)
    if donor is None:
        log.info(f"[{ctx.name}] meta-learning from a fresh policy")
        return policy
    policy.encoder.load_state_dict(donor.policy.encoder.state_dict())
    return policy


def fresh_policy(ctx: StageContext) -> TransformerPolicy:
    """A fresh policy sized from the configured model and the observation channels."""
    channels = training_windows(ctx).shape[-1]
    spec = ctx.config.model.with_input(int(channels))
    torch.manual_seed(ctx.config.seed)
    return TransformerPolicy(spec, len(ctx.config.env.positions))


register_stage(
    "stage_3_maml",
    config=MAMLStageConfig,
    run=run_maml_stage,
    check_settings=check_settings,
    checkpoint_kind="maml",
    portfolio=True,
)
