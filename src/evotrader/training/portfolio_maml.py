"""stage_3_maml over a universe (env=portfolio): tasks, initial network and validation.

A task is a (sub-universe, period) slice of the universe's training split: the split is cut
into consecutive periods of ``task_bars`` bars (so every task ends before validation), and
for each period as many sub-universes as the universe has symbols are drawn, each of 2 to
all of its symbols, seeded by (seed, period). The PortfolioTransformer reads any number of
assets, so one network meta-learns over baskets of every size. Its episodes come from the
VectorPortfolioEnv; the inner and outer loop are ``maml_stage``'s.

Warm start follows ``warm_start``'s rule for a portfolio run (``portfolio_donor``): the
donated network's trunk (per-asset encoder and cross-asset blocks) is taken when its shapes
are this network's; the heads start fresh and near-uniform, as in the one-symbol stage.
Validation adapts on the bars just before the validation split, then trades the split
through the portfolio engine against equal weight (``portfolio_validation``), as
``PortfolioCheckpoint.policy`` does on test.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from evotrader.config import ConfigError, MAMLStageConfig
from evotrader.env import EnvSpec, VectorPortfolioEnv
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.training.adaptation import portfolio_adapted_before
from evotrader.training.market_envs import UniverseInputs
from evotrader.training.portfolio_validation import validate_portfolio
from evotrader.training.rollouts import Task
from evotrader.training.warm_start import portfolio_donor

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from evotrader.training.pipeline import StageContext

log = logging.getLogger(__name__)

MIN_ASSETS = 2  # a sub-universe smaller than this is one symbol, not a portfolio
HEADS = ("pi.", "vf.")  # the network's heads: never donated


def sub_universes(
    symbols: Sequence[str], count: int, rng: np.random.Generator
) -> list[tuple[str, ...]]:
    """``count`` sub-universes of ``symbols`` drawn with ``rng``: each a random size from 2 to
    all of them, its symbols in the universe's order; ``ConfigError`` naming
    ``data.universe`` when it has fewer than 2 symbols."""
    if len(symbols) < MIN_ASSETS:
        raise ConfigError(
            f"data.universe: MAML over a universe draws sub-universes of >= {MIN_ASSETS} "
            f"symbols, got {list(symbols)}"
        )
    drawn = []
    for _ in range(count):
        size = int(rng.integers(MIN_ASSETS, len(symbols) + 1))
        chosen = np.sort(rng.choice(len(symbols), size, replace=False))
        drawn.append(tuple(symbols[i] for i in chosen))
    return drawn


def portfolio_tasks(
    inputs: UniverseInputs, env: EnvSpec, settings: MAMLStageConfig, seed: int
) -> list[Task]:
    """(sub-universe, period) tasks over the training split, all before validation."""
    train = inputs.splits.train
    symbols = inputs.universe.symbols
    spec = replace(env, episode_length=settings.episode_length)
    tasks = []
    starts = range(0, len(train) - settings.task_bars + 1, settings.task_bars)
    for number, start in enumerate(starts):
        period = train.index[start : start + settings.task_bars]
        dates = f"[{period[0]:%Y-%m-%d}..{period[-1]:%Y-%m-%d}]"
        for basket in sub_universes(symbols, len(symbols), np.random.default_rng([seed, number])):
            bars = {s: inputs.universe.bars[s].loc[period[0] : period[-1]] for s in basket}
            vector_env = VectorPortfolioEnv(
                bars, settings.num_envs, inputs.pipeline, spec, inputs.portfolio
            )
            tasks.append(Task(f"{'+'.join(basket)}{dates}", vector_env))
    if not tasks:
        raise ConfigError(
            f"stage_3_maml.task_bars: no MAML task fits, the universe's training split has "
            f"{len(train)} bars, fewer than task_bars={settings.task_bars}"
        )
    return tasks


def fresh_portfolio_net(ctx: StageContext, tasks: Sequence[Task]) -> PortfolioTransformer:
    """A fresh network sized from the configured model and the tasks' observation channels."""
    shape = tasks[0].env.single_observation_space.shape
    assert shape is not None  # a Box: (assets, window, channels)
    spec = ctx.config.model.with_input(int(shape[-1]))
    torch.manual_seed(ctx.config.seed)
    return PortfolioTransformer(spec, len(ctx.config.env.positions))


def portfolio_initial_net(
    ctx: StageContext, inputs: UniverseInputs, tasks: Sequence[Task]
) -> PortfolioTransformer:
    """A fresh network with the warm-start donor's trunk (``portfolio_donor``) when its
    shapes are this network's; the heads stay fresh (module docstring)."""
    net = fresh_portfolio_net(ctx, tasks)
    donor = portfolio_donor(ctx, inputs)
    if donor is None:
        log.info(f"[{ctx.name}] meta-learning from a fresh network")
        return net
    trunk = {k: v for k, v in donor.policy.state_dict().items() if not k.startswith(HEADS)}
    mine = {k: v for k, v in net.state_dict().items() if not k.startswith(HEADS)}
    if trunk.keys() != mine.keys() or any(trunk[k].shape != mine[k].shape for k in mine):
        log.info(
            f"[{ctx.name}] the donor ({donor.describe()}) has another shape: "
            "meta-learning from a fresh network"
        )
        return net
    net.load_state_dict(trunk, strict=False)
    log.info(f"[{ctx.name}] trunk from {donor.describe()}, fresh heads")
    return net


def validate_adapted_portfolio(
    ctx: StageContext,
    inputs: UniverseInputs,
    net: PortfolioTransformer,
    iteration: int,
    writer: SummaryWriter,
    best: dict[str, float],
) -> dict[str, float]:
    """Adapt ``net`` on the bars just before the validation split, then trade it."""
    adapted = portfolio_adapted_before(
        net,
        inputs.universe.bars,
        inputs.splits.validation.index[0],
        inputs.pipeline,
        ctx.config.env,
        inputs.portfolio,
        ctx.config.stage_3_maml,
        ctx.config.seed,
    )
    return validate_portfolio(ctx, inputs, adapted, iteration, writer, best)
