"""stage_4_autonomous over a universe (env=portfolio): a population of portfolio agents.

A member is a ``PortfolioTransformer``: one CoreTransformer trunk, built from the member's
architecture genes (sizes, heads, layers, pooling, window), encodes every asset's window with
weights all assets share, and ``cross_layers`` attention blocks (the cross-asset gene) let
each asset see the others. Its head picks one of ``env.positions`` per asset; the discrete
PortfolioSpec turns the choices into target weights (scaled down to ``portfolio.max_gross``).

How it learns (``train_portfolio_agent``), in the single-symbol agent's two steps with the
world model's role played by a forecast: first the trunk and the cross-asset blocks learn to
forecast each asset's held return from its embedding (``lr``, ``batch_size``, ``epochs``;
the forecast layer is discarded), then, with them frozen, the head learns by direct
reinforcement (``policy_lr``, ``policy_batch``, ``policy_epochs``): Adam ascends the mean
per decision of ``w_t . r_t - turnover_penalty * cost * |w_t - w_{t-1}|`` over the training
split, where ``w_t`` are the expected target weights (each asset's softmax over the
positions, the gross limit applied), ``r_t`` each asset's return from the fill of the
decision at t to the next decision's fill (the execution model's fill timing, so nothing is
earned before the order could fill) and ``cost`` the linear cost rate (commission, spread,
slippage), on time-ordered blocks of decisions visited in a seeded order.

What does not carry over to a universe yet, so a portfolio member has none of it (the run log
says so, ``NOT_CARRIED``): the world model proper (its multi-horizon and volatility heads and
context fusion; the one-bar forecast above stands in for it), the Faiss memory, the Weather
Forecaster's regimes, the Chartist, the what-if rollouts, training on augmented copies of the
bars, and the risk_scale self-modification. The genes that shape only
those (memory_k, risk_scale, ...) are left out of the search space (``portfolio_space``).

Fitness is the validation backtest through the portfolio engine after costs
(``compare_on_split``), scored like a single symbol's (``fitness``); each member's trial
records its returns against equal weight on the same bars, so the champion's Deflated Sharpe
is of its excess over equal weight over every trial of the run, and its one look at the test
split judges that edge too. Members and the champion are ``portfolio_autonomous``
checkpoints, which ``PortfolioCheckpoint`` (run_backtest.py, the live bot) trades. Ray tasks
see the universe only up to the end of validation.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import ray
import torch
from torch import Tensor, nn

from evotrader.agents import AgentArchitecture, AgentHyperparameters
from evotrader.backtest.metrics import trade_metrics
from evotrader.backtest.significance import bar_returns, excess_returns
from evotrader.config import PROJECT_ROOT, AutonomousStageConfig
from evotrader.core.checkpoint import Checkpoint
from evotrader.data import FeaturePipeline, TimeSplits, data_roots
from evotrader.data.universe import Universe
from evotrader.data.universe_ref import UniverseRef
from evotrader.env import EnvSpec, PortfolioSpec
from evotrader.env.portfolio_data import PortfolioData
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.nas import SearchSpace, inherit_weights
from evotrader.training.guards import PortfolioCheckpoint
from evotrader.training.market_envs import UniverseInputs
from evotrader.training.member_scheduling import job_cost
from evotrader.training.population import (
    PORTFOLIO_KNOBS,
    Job,
    Member,
    MemberForm,
    Outcome,
    TestLook,
    agent_settings,
    check_genes,
    fitness,
    portfolio_space,
)
from evotrader.training.portfolio_validation import compare_on_split, portfolio_checkpoint
from evotrader.training.warm_start import portfolio_donor

if TYPE_CHECKING:
    from evotrader.training.pipeline import StageContext

log = logging.getLogger(__name__)

KIND = "portfolio_autonomous"  # one of evotrader.core.checkpoint.PORTFOLIO_KINDS
BENCHMARK = "equal weight"
_CHUNK = 1024  # decisions per no-grad pass when embedding the training split
NOT_CARRIED = (
    "the world model proper (a one-bar forecast shapes the trunk instead), Faiss memory, "
    "regimes, Chartist, what-if rollouts, augmented training bars, risk_scale self-modification"
)


@dataclass(frozen=True)
class UniverseSpec:
    """How a Ray worker rebuilds the universe it may see: bars up to the end of validation."""

    universe: dict[str, Any]  # the run's UniverseRef, cut at the end of validation
    train: tuple[str, str]
    validation: tuple[str, str]
    pipeline: dict[str, Any]
    env: EnvSpec
    portfolio: dict[str, Any]

    @classmethod
    def of(cls, inputs: UniverseInputs, env: EnvSpec) -> UniverseSpec:
        train, validation = inputs.splits.train.index, inputs.splits.validation.index
        return cls(
            universe=replace(inputs.ref, end=str(validation[-1])).to_dict(),
            train=(str(train[0]), str(train[-1])),
            validation=(str(validation[0]), str(validation[-1])),
            pipeline=inputs.pipeline.state_dict(),
            env=env,
            portfolio=inputs.portfolio.to_dict(),
        )

    def inputs(self) -> UniverseInputs:
        """The worker's UniverseInputs: its test split is empty (no test bar reaches a task)."""
        ref = UniverseRef.checked(self.universe, data_roots(PROJECT_ROOT))
        universe = _universe(json.dumps(self.universe, sort_keys=True))
        first = universe.bars[universe.symbols[0]]
        splits = TimeSplits(
            first.loc[self.train[0] : self.train[1]],
            first.loc[self.validation[0] : self.validation[1]],
            first.iloc[:0],
        )
        pipeline = FeaturePipeline.from_state(self.pipeline)
        portfolio = PortfolioSpec.from_dict(self.portfolio)
        return UniverseInputs(ref, universe, splits, pipeline, portfolio)


def portfolio_form(ctx: StageContext, settings: AutonomousStageConfig) -> MemberForm:
    """The generation loop's view of portfolio members (see the module docstring)."""
    inputs = universe_of(ctx)
    space, dropped = checked_space(settings)
    data = UniverseSpec.of(inputs, ctx.config.env)
    remote = ray.remote(num_cpus=1)(train_and_score_portfolio)
    trunk = earlier_network(ctx, inputs) if settings.seed_from_previous else None
    log.info(
        f"[{ctx.name}] portfolio members over {inputs.name}: a shared "
        f"per-asset trunk with cross-asset attention that learns to forecast each asset's "
        f"held return, then a head trained on the after-cost trading objective; not carried "
        f"over to a universe yet: {NOT_CARRIED}"
        + (f"; genes left out (they shape only those): {dropped}" if dropped else "")
    )

    def test(saved: Checkpoint, path: Path) -> TestLook:
        tradable = PortfolioCheckpoint.load(path)  # the one path run_backtest.py loads it by
        comparison = compare_on_split(tradable.net, inputs, tradable.spec, inputs.splits.test)
        numbers = comparison.numbers()
        report = (
            f"sharpe {numbers['sharpe']:.2f} (equal weight {numbers['equal_weight_sharpe']:.2f}"
            f", buy-and-hold {numbers['buy_hold_sharpe']:.2f}), return "
            f"{numbers['total_return']:.2%} (equal weight {numbers['equal_weight_return']:.2%})"
            f", max drawdown {numbers['max_drawdown']:.1%}, {int(numbers['n_trades'])} fills"
        )
        excess = excess_returns(comparison.policy.equity, comparison.equal_weight.equity)
        return TestLook(excess, numbers, report, BENCHMARK)

    return MemberForm(
        space=space,
        submit=lambda job: remote.remote(job, data, settings),
        cost=lambda job: estimated_cost(job, inputs, ctx.config.env, settings),
        checkpoint=lambda member, outcome: member_checkpoint(ctx, inputs, member, outcome),
        test=test,
        splits=inputs.splits,
        augmentations=("none",),
        trunk=trunk,
    )


def checked_space(settings: AutonomousStageConfig) -> tuple[SearchSpace, list[str]]:
    """The configured genes as a portfolio run searches them, and the genes left out."""
    space = SearchSpace.from_config(settings.genes)
    check_genes(space, portfolio=True)
    return portfolio_space(space)


def check_portfolio_settings(ctx: StageContext, settings: AutonomousStageConfig) -> SearchSpace:
    """The universe, the portfolio search space and a sampled member, as the run builds
    them; returns the search space."""
    inputs = universe_of(ctx)
    space, _ = checked_space(settings)
    genome = space.sample(np.random.default_rng(0))
    member_net(genome, inputs.pipeline.num_features, ctx.config.env, settings, seed=0)
    return space


def member_settings(
    genome: dict[str, Any], input_dim: int, env: EnvSpec, settings: AutonomousStageConfig
) -> tuple[AgentArchitecture, AgentHyperparameters, EnvSpec]:
    """What the genome makes of a member: its trunk and window, its training knobs, and the
    env it trades in (the run's, with the member's window)."""
    architecture, hyperparameters = agent_settings(
        genome, input_dim, env.positions, settings.agent, settings.hyperparameters
    )
    return architecture, hyperparameters, replace(env, window=architecture.window)


def member_net(
    genome: dict[str, Any],
    input_dim: int,
    env: EnvSpec,
    settings: AutonomousStageConfig,
    *,
    seed: int,
) -> tuple[PortfolioTransformer, AgentHyperparameters, EnvSpec]:
    """The member's network (initialised from ``seed``), its knobs and its env."""
    architecture, hyperparameters, member_env = member_settings(genome, input_dim, env, settings)
    torch.manual_seed(seed)
    net = PortfolioTransformer(architecture.encoder, len(env.positions), genome["cross_layers"])
    return net, hyperparameters, member_env


@dataclass(frozen=True)
class TrainingDecisions:
    """The training split's decisions: each one's window per asset and the return each asset
    earns from its fill to the next decision's fill."""

    windows: np.ndarray  # zero-copy view (bars - window + 1, assets, window, channels)
    rows: np.ndarray  # the window index of each decision
    returns: Tensor  # (decisions, assets)

    def __len__(self) -> int:
        return len(self.rows)

    def observations(self, block: Tensor) -> Tensor:
        return torch.as_tensor(np.ascontiguousarray(self.windows[self.rows[block.numpy()]]))


def training_decisions(
    bars: dict[str, pd.DataFrame], start: str, pipeline: FeaturePipeline, env: EnvSpec
) -> TrainingDecisions:
    """Decisions from ``start`` (earlier bars are feature history) to the last one whose next
    fill still lies inside ``bars`` (which end with the training split)."""
    data = PortfolioData.build(bars, pipeline, env.window, env.execution, agent_state=False)
    first = max(data.first_decision, int(data.timestamps.searchsorted(pd.Timestamp(start))))
    decisions = np.arange(first, data.last_decision)
    if len(decisions) < 2:
        raise ValueError(
            f"the training split leaves {len(decisions)} portfolio decisions with a window of "
            f"{env.window} bars; a longer split or a shorter window is needed"
        )
    returns = data.fill[decisions + 1] / data.fill[decisions] - 1.0
    return TrainingDecisions(
        data.windows(), decisions - env.window + 1, torch.as_tensor(returns, dtype=torch.float32)
    )


def portfolio_objective(
    logits: Tensor, positions: Tensor, returns: Tensor, cost: float, max_gross: float
) -> Tensor:
    """Mean per decision of w_t . r_t - cost * |w_t - w_{t-1}|_1 over consecutive decisions,
    ``w`` the expected target weights the discrete PortfolioSpec would give (the first
    decision's change is not charged)."""
    exposure = torch.softmax(logits, dim=-1) @ positions  # (decisions, assets)
    gross = exposure.abs().sum(dim=-1, keepdim=True)
    weights = exposure * torch.clamp(max_gross / gross.clamp_min(1e-12), max=1.0)
    turnover = (weights[1:] - weights[:-1]).abs().sum()
    return ((weights * returns).sum() - cost * turnover) / len(returns)


def train_portfolio_agent(
    net: PortfolioTransformer,
    decisions: TrainingDecisions,
    env: EnvSpec,
    portfolio: PortfolioSpec,
    hp: AgentHyperparameters,
    *,
    seed: int,
) -> dict[str, float]:
    """Train ``net`` in two steps, as the single-symbol agent's world model then its policy
    head: the trunk and cross-asset blocks learn to forecast each asset's held return
    (``train_forecast``), then, with them frozen, the head learns by direct reinforcement
    (``train_head``). Returns the last epoch's forecast loss and trading objective."""
    loss = train_forecast(net, decisions, hp, seed=seed)
    objective = train_head(net, decisions, env, portfolio, hp, seed=seed + 1)
    return {"train_forecast_loss": loss, "train_objective": objective}


def train_forecast(
    net: PortfolioTransformer, decisions: TrainingDecisions, hp: AgentHyperparameters, *, seed: int
) -> float:
    """Adam (``lr``, ``batch_size``, ``epochs``) on the mean squared error of a linear
    forecast, from each asset's embedding, of its held return in units of that asset's
    training volatility. The forecast layer only shapes the embeddings and is discarded: the
    checkpoint holds the PortfolioTransformer alone. Returns the last epoch's mean loss."""
    torch.manual_seed(seed)  # the forecast layer's initialisation and dropout
    forecast = nn.Linear(net.spec.output_dim, 1)
    target = decisions.returns / decisions.returns.std(dim=0).clamp_min(1e-12)
    body = [*net.encoder.parameters(), *net.cross.parameters(), *net.ln_cross.parameters()]
    optimiser = torch.optim.Adam(
        [*body, *forecast.parameters()], lr=hp.lr, weight_decay=hp.weight_decay
    )
    generator = torch.Generator().manual_seed(seed)
    net.train()
    losses = [float("nan")]
    for _ in range(hp.epochs):
        losses = []
        for rows in _blocks(len(decisions), hp.batch_size, generator):
            predicted = forecast(net.embed(decisions.observations(rows))).squeeze(-1)
            loss = nn.functional.mse_loss(predicted, target[rows])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
    net.eval()
    return float(np.mean(losses))


def train_head(
    net: PortfolioTransformer,
    decisions: TrainingDecisions,
    env: EnvSpec,
    portfolio: PortfolioSpec,
    hp: AgentHyperparameters,
    *,
    seed: int,
) -> float:
    """Adam ascent of ``portfolio_objective`` for the head alone (``policy_lr``,
    ``policy_batch``, ``policy_epochs``, ``turnover_penalty``) on the frozen embeddings of
    every training decision; returns the whole split's objective after the last epoch, in
    units of the training returns' volatility."""
    with torch.no_grad():
        hidden = torch.cat(
            [
                net.embed(decisions.observations(rows))
                for rows in torch.arange(len(decisions)).split(_CHUNK)
            ]
        )
    positions = torch.as_tensor(env.positions, dtype=torch.float32)
    # In units of the training returns' volatility (the optimum is the same): the objective's
    # gradients then have the scale weight decay assumes, whatever the assets' volatility.
    scale = float(decisions.returns.std().clamp_min(1e-12))
    returns = decisions.returns / scale
    cost = hp.turnover_penalty * env.execution.linear_rate / scale

    def objective(rows: Tensor | slice) -> Tensor:
        logits = net.logits(hidden[rows])
        return portfolio_objective(logits, positions, returns[rows], cost, portfolio.max_gross)

    optimiser = torch.optim.Adam(net.pi.parameters(), lr=hp.policy_lr, weight_decay=hp.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(hp.policy_epochs):
        for rows in _blocks(len(decisions), hp.policy_batch, generator):
            loss = -objective(rows)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        return float(objective(slice(None)))


def _blocks(n: int, size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Time-ordered blocks of ``size`` decisions, in a seeded random order."""
    blocks = torch.arange(n).split(size)
    for index in torch.randperm(len(blocks), generator=generator).tolist():
        yield blocks[index]


def train_and_score_portfolio(
    job: Job, data: UniverseSpec, settings: AutonomousStageConfig
) -> Outcome:
    """A Ray task: build the member's network, train it, backtest it on validation."""
    began = time.perf_counter()
    torch.set_num_threads(1)  # one core per task; also keeps results independent of workers
    inputs = data.inputs()
    net, hp, env = member_net(
        job.genome, inputs.pipeline.num_features, data.env, settings, seed=job.seed
    )
    if job.parent is not None:
        inherit_weights(net, job.parent["state_dict"])
    bars = inputs.bars(inputs.splits.train, history=True)
    decisions = training_decisions(bars, data.train[0], inputs.pipeline, env)
    learning = train_portfolio_agent(net, decisions, env, inputs.portfolio, hp, seed=job.seed + 1)
    comparison = compare_on_split(net, inputs, env, inputs.splits.validation)
    returns = bar_returns(comparison.policy.equity)
    metrics = (
        {key: float(value) for key, value in comparison.policy.metrics.items()}
        | comparison.numbers()
        | {
            "profit_factor": _profit_factor(returns),
            "parameters": float(sum(p.numel() for p in net.parameters())),
        }
        | learning
    )
    return Outcome(
        member_id=job.member_id,
        fitness=fitness(metrics, settings.fitness),
        metrics=metrics,
        returns=returns.tolist(),
        benchmark_returns=bar_returns(comparison.equal_weight.equity).tolist(),
        architecture=net.architecture(),
        state_dict={k: v.detach().clone() for k, v in net.state_dict().items()},
        seconds=time.perf_counter() - began,
    )


def _profit_factor(returns: np.ndarray) -> float:
    """``trade_metrics``' profit factor over the per-bar returns (a portfolio has no round
    trips to count); self-modification's redesign rule reads it."""
    return trade_metrics(pd.DataFrame({"pnl": returns}))["profit_factor"]


def estimated_cost(
    job: Job, inputs: UniverseInputs, env: EnvSpec, settings: AutonomousStageConfig
) -> float:
    """``job_cost`` of the member's trunk, times the assets it encodes per decision."""
    architecture, hyperparameters, _ = member_settings(
        job.genome, inputs.pipeline.num_features, env, settings
    )
    return job_cost(architecture, hyperparameters, "none") * len(inputs.universe.symbols)


def member_checkpoint(
    ctx: StageContext, inputs: UniverseInputs, member: Member, outcome: Outcome
) -> Checkpoint:
    """The member's network as a ``portfolio_autonomous`` checkpoint, with its genome and
    lineage, under the env it trades in (its own window)."""
    net = PortfolioTransformer.from_architecture(outcome.architecture)
    net.load_state_dict(outcome.state_dict)
    _, hp, env = member_settings(
        member.genome, inputs.pipeline.num_features, ctx.config.env, ctx.config.stage_4_autonomous
    )
    knobs = {key: value for key, value in asdict(hp).items() if key in PORTFOLIO_KNOBS}
    checkpoint = portfolio_checkpoint(
        ctx,
        inputs,
        KIND,
        net,
        knobs,
        {"fitness": member.fitness} | outcome.metrics,
        member=member.id,
        generation=member.generation,
        parents=list(member.parents),
        origin=member.origin,
        genome=member.genome,
    )
    return replace(checkpoint, env=env.to_dict())


def universe_of(ctx: StageContext) -> UniverseInputs:
    """The run's universe, as the pipeline hands it to a portfolio run's stages."""
    if ctx.universe is None:
        raise ValueError(f"{ctx.name}: a portfolio run's context carries no universe")
    return ctx.universe


def earlier_network(ctx: StageContext, inputs: UniverseInputs) -> dict[str, Any] | None:
    """The warm-start donor's whole PortfolioTransformer (``portfolio_donor``: for a MoE its
    busiest expert) as a state for ``inherit_weights``: trunk, cross-asset blocks and heads,
    wherever a member's shapes match."""
    donor = portfolio_donor(ctx, inputs)
    return None if donor is None else {"state_dict": donor.policy.state_dict()}


@lru_cache(maxsize=2)
def _universe(reference: str) -> Universe:
    """A worker's universe, loaded once per reference (a worker scores many members)."""
    return UniverseRef.checked(json.loads(reference), data_roots(PROJECT_ROOT)).load()
