"""stage_4_autonomous: a population of AutonomousAgents that designs and tunes itself.

One loop you can follow. Each generation trains every member on the training split with its
own genome (architecture and hyperparameters), children starting from their parent's weights
where shapes allow, and scores it by a backtest on the validation split after costs. Members
then modify themselves (``check_performance_and_adapt``), the NAS controller breeds the next
generation, and the archive is saved, so a crash resumes at the generation it interrupted.
Every member's validation returns go into the run's trial ledger. Training and scoring run as
Ray tasks; every task is seeded by the member alone, so a cluster of any size returns the same
numbers. The champion (best validation fitness over every member ever tried) is saved as
``{symbol}_autonomous_final.pth`` and reported twice, each figure named by its split: on the
validation split it was selected on, the Deflated Sharpe Ratio of its excess over buy-and-hold
over every trial of the run (all stages) and the PBO; then once on the test split, a one-trial
test of that excess, from which the verdict on its edge is drawn.

With env=portfolio the members are portfolio agents over ``data.universe`` instead
(``portfolio_autonomous``: a shared per-asset trunk plus the cross-asset genes' attention
across assets), judged against equal weight, and the champion is a ``portfolio_autonomous``
checkpoint named after the universe; the loop below is the same. ``MemberForm`` is all that
differs: the search space, the members' Ray task, their cost estimate and checkpoint, and the
champion's look at the test split.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray
import torch
from torch.utils.tensorboard import SummaryWriter

from evotrader.agents import AutonomousAgent
from evotrader.agents.agent_learning import make_chartist
from evotrader.backtest.engine import BacktestResult, run_backtest
from evotrader.backtest.metrics import periods_per_year
from evotrader.backtest.overfitting import PBO, probability_of_backtest_overfitting
from evotrader.backtest.significance import (
    TEST,
    VALIDATION,
    EdgeTest,
    bar_returns,
    describe_test_edge,
    edge_on_test,
    edge_on_validation,
    excess_returns,
    verdict,
)
from evotrader.config import (
    AutonomousStageConfig,
    ConfigError,
    data_reference,
)
from evotrader.core.checkpoint import (
    CHAMPION_STAGE,
    Checkpoint,
    checkpoint_name,
    load_checkpoint,
    save_checkpoint,
)
from evotrader.core.checks import require_at_least
from evotrader.data import DataRef, FeaturePipeline
from evotrader.env import EnvSpec
from evotrader.nas import Individual, SearchSpace, inherit_weights, make_controller
from evotrader.nas.self_modification import Thresholds, check_performance_and_adapt
from evotrader.reasoning import chartist_cache_dir
from evotrader.training import augmentation
from evotrader.training.evaluation import HEADLINE, headline
from evotrader.training.guards import TradableCheckpoint
from evotrader.training.member_scheduling import as_completed, job_cost, longest_first
from evotrader.training.pipeline import StageContext, StageResult
from evotrader.training.population import (
    Archive,
    Job,
    Member,
    MemberForm,
    Outcome,
    TestLook,
    agent_settings,
    check_genes,
    fitness,
)
from evotrader.training.portfolio_autonomous import check_portfolio_settings, portfolio_form
from evotrader.training.stages import register_stage
from evotrader.training.trials import Trial, stage_counts
from evotrader.training.warm_start import warm_start_donor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSpec:
    """How a Ray worker rebuilds the data it may see: bars up to the end of validation."""

    bars: (
        DataRef  # the run's bars cut at the end of validation: the test split never reaches a task
    )
    train: tuple[str, str]
    validation: tuple[str, str]
    pipeline: dict[str, Any]
    env: EnvSpec


def run_autonomous_stage(ctx: StageContext) -> StageResult:
    settings = ctx.config.stage_4_autonomous
    form = portfolio_form(ctx, settings) if ctx.config.portfolio else symbol_form(ctx, settings)
    space = form.space
    controller = make_controller(settings.controller, space, **settings.controller_options)
    archive_path = ctx.stage_dir / "archive.json"
    archive = Archive.load(archive_path)
    seed = ctx.config.seed
    if archive.generations_done == 0 and not archive.offspring:
        archive.offspring = controller.initial(settings.population, _rng(seed, 0, "breed"))
    elif archive.generations_done:
        log.info(f"[{ctx.name}] resuming after generation {archive.generations_done}")
    writer = SummaryWriter(str(ctx.tensorboard_dir), purge_step=archive.generations_done + 1)
    thresholds = Thresholds(**asdict(settings.self_modification))

    for generation in range(archive.generations_done, settings.generations):
        began = time.perf_counter()
        members = [
            Member(archive.next_id + i, generation, dict(o.genome), o.parents, o.origin)
            for i, o in enumerate(archive.offspring)
        ]
        jobs = [job_for(ctx, archive, member, form, index) for index, member in enumerate(members)]
        parallel = evaluate(ctx, members, jobs, form)
        ranked = sorted(members, key=lambda m: (-m.fitness, m.id))
        adapt_rng = _rng(seed, generation, "adapt")
        for member in ranked:
            for adaptation in check_performance_and_adapt(
                member, member.metrics, thresholds, controller, adapt_rng
            ):
                archive.adaptations.append(asdict(adaptation) | {"generation": generation})
                what = f"{adaptation.action} ({adaptation.reason})"
                log.info(f"[{ctx.name}] agent {adaptation.agent}: {what}")
        archive.members.extend(members)
        population = [Individual(m.id, m.genome, m.fitness) for m in members]
        archive.offspring = controller.next_generation(
            population, settings.population, _rng(seed, generation + 1, "breed")
        )
        archive.generations_done = generation + 1
        archive.save(archive_path)
        seconds = time.perf_counter() - began
        log_generation(ctx, writer, archive, generation, space, seconds, seconds - parallel)
    writer.close()
    return crown_champion(ctx, archive, settings, form)


def symbol_form(ctx: StageContext, settings: AutonomousStageConfig) -> MemberForm:
    """The generation loop's view of one symbol's AutonomousAgents."""
    space = SearchSpace.from_config(settings.genes)
    check_genes(space)
    data = data_spec(ctx)
    chartist = ray.put(shared_chartist(ctx, space))
    remote = ray.remote(num_cpus=1)(train_and_score)

    def test(saved: Checkpoint, path: Path) -> TestLook:
        # the one path run_backtest.py and the live bot trade a checkpoint by
        result = TradableCheckpoint.of(saved, f"checkpoint {path}").backtest(ctx.bars)
        return TestLook(
            excess_returns(result.equity, result.benchmark_equity),
            headline(result),
            result.report(f"Champion, {TEST}: out of sample, after costs"),
            "buy-and-hold",
        )

    return MemberForm(
        space=space,
        submit=lambda job: remote.remote(job, data, settings, chartist),
        cost=lambda job: estimated_cost(ctx, settings, job),
        checkpoint=lambda member, outcome: member_checkpoint(ctx, member, outcome),
        test=test,
        splits=ctx.splits,
        augmentations=tuple(settings.augmentation or ["none"]),
        # once: a MoE donor scores its experts on the training split
        trunk=earlier_trunk(ctx) if settings.seed_from_previous else None,
    )


def evaluate(ctx: StageContext, members: list[Member], jobs: list[Job], form: MemberForm) -> float:
    """Train and score one generation on Ray; the seconds from its first job's submission to
    its last result's arrival (the rest of a generation is the driver's serial work).

    Jobs go out costliest first (``longest_first``) so no long one is left to run alone at
    the end; each member's checkpoint is saved as its result arrives, while workers run the
    rest; the trials are then recorded in member order. Results are placed by member, so
    neither the submission nor the completion order changes anything written.
    """
    costs = [form.cost(job) for job in jobs]
    order = longest_first(costs)
    submitted = last = time.perf_counter()
    refs = [form.submit(jobs[index]) for index in order]
    outcomes: dict[int, Outcome] = {}
    for position, outcome in as_completed(refs):
        last = time.perf_counter()
        member = members[order[position]]
        if outcome.member_id != member.id:
            raise RuntimeError(f"agent {member.id}'s job returned agent {outcome.member_id}")
        member.fitness, member.metrics = outcome.fitness, outcome.metrics
        member.returns = outcome.returns
        save_checkpoint(form.checkpoint(member, outcome), _agent_path(ctx, member.id))
        outcomes[member.id] = outcome
        log.debug(
            f"[{ctx.name}] agent {member.id}: estimated cost {costs[order[position]]:.3g}, "
            f"{outcome.seconds:.1f}s on its worker"
        )
    for member in members:
        outcome = outcomes[member.id]
        ctx.trials.record(
            ctx.name, _trial_label(member.id), outcome.returns, outcome.benchmark_returns
        )
    return last - submitted


def estimated_cost(ctx: StageContext, settings: AutonomousStageConfig, job: Job) -> float:
    """The job's relative cost (``job_cost``) from the agent its genome describes."""
    architecture, hyperparameters = agent_settings(
        job.genome,
        ctx.pipeline.num_features,
        ctx.config.env.positions,
        settings.agent,
        settings.hyperparameters,
    )
    return job_cost(architecture, hyperparameters, job.augmentation)


def check_settings(ctx: StageContext) -> None:
    """The population's counts, then the search space, controller, augmentations, thresholds
    and fixed agent settings as the classes that use them check them."""
    settings = ctx.config.stage_4_autonomous
    require_at_least(f"{ctx.name}.", settings, 1, "population", "generations", error=ConfigError)
    unknown = sorted(set(settings.augmentation) - set(augmentation.KINDS))
    if unknown:
        raise ConfigError(f"augmentation {unknown} unknown; known: {augmentation.KINDS}")
    Thresholds(**asdict(settings.self_modification))
    if ctx.config.portfolio:
        space = check_portfolio_settings(ctx, settings)
        make_controller(settings.controller, space, **settings.controller_options)
        return
    space = SearchSpace.from_config(settings.genes)
    check_genes(space)
    make_controller(settings.controller, space, **settings.controller_options)
    agent_settings(
        space.sample(np.random.default_rng(0)),
        ctx.pipeline.num_features,
        ctx.config.env.positions,
        settings.agent,
        settings.hyperparameters,
    )


def job_for(
    ctx: StageContext, archive: Archive, member: Member, form: MemberForm, index: int
) -> Job:
    """The member's job: its seed, its augmentation in turn, and its weight donor's state
    (its parent's, else the form's ``trunk``: the earlier stage's, if seeded from it)."""
    parent: dict[str, Any] | None = form.trunk
    if member.parents:
        donor = load_checkpoint(_agent_path(ctx, member.parents[0]))
        parent = {"architecture": donor.architecture, "state_dict": donor.state_dict}
    kinds = form.augmentations
    return Job(
        member_id=member.id,
        genome=member.genome,
        seed=int(_rng(ctx.config.seed, member.id, "member").integers(2**31)),
        augmentation=kinds[(index + member.generation) % len(kinds)],
        parent=parent,
    )


def train_and_score(
    job: Job, data: DataSpec, settings: AutonomousStageConfig, chartist: Any
) -> Outcome:
    """A Ray task: build the member's agent, train it, and backtest it on validation."""
    began = time.perf_counter()
    torch.set_num_threads(1)  # one core per task; also keeps results independent of workers
    bars = _bars(data.bars)
    pipeline = FeaturePipeline.from_state(data.pipeline)
    env = data.env
    agent = build_agent(job, pipeline, env, settings, chartist)
    train = bars.loc[data.train[0] : data.train[1]]
    rng = np.random.default_rng(job.seed)
    if job.augmentation != "none":
        history = bars.loc[: data.train[1]]
        augmented = augmented_bars(history, job, settings, rng, pipeline, env, chartist)
        agent.learn(augmented, pipeline, augmented.loc[train.index[0] :], seed=job.seed)
    agent.learn(bars, pipeline, train, seed=job.seed + 1)
    result = score(agent, bars, data.validation[0], pipeline, env)
    return Outcome(
        member_id=job.member_id,
        fitness=fitness(result.metrics, settings.fitness),
        metrics={key: float(value) for key, value in result.metrics.items()} | headline(result),
        returns=bar_returns(result.equity).tolist(),
        benchmark_returns=bar_returns(result.benchmark_equity).tolist(),
        architecture=agent.architecture(),
        state_dict=agent.state_dict(),
        seconds=time.perf_counter() - began,
    )


def build_agent(
    job: Job,
    pipeline: FeaturePipeline,
    env: EnvSpec,
    settings: AutonomousStageConfig,
    chartist: Any,
) -> AutonomousAgent:
    architecture, hyperparameters = agent_settings(
        job.genome,
        pipeline.num_features,
        env.positions,
        settings.agent,
        settings.hyperparameters,
    )
    agent = AutonomousAgent(
        architecture, hyperparameters, seed=job.seed, chartist=chartist, device="cpu"
    )
    if job.parent is not None:
        world = "world_model."
        donor = {
            key[len(world) :] if key.startswith(world) else key: value
            for key, value in job.parent["state_dict"].items()
        }
        inherit_weights(agent.world_model, donor)
    return agent


def augmented_bars(
    history: pd.DataFrame,
    job: Job,
    settings: AutonomousStageConfig,
    rng: np.random.Generator,
    pipeline: FeaturePipeline,
    env: EnvSpec,
    chartist: Any,
) -> pd.DataFrame:
    """The training history, augmented as the job says (adversarial needs a parent agent)."""
    kind = job.augmentation
    if kind == "block_bootstrap":
        return augmentation.block_bootstrap(history, settings.augmentation_block, rng)
    if kind == "garch":
        return augmentation.garch_paths(history, rng)
    if kind == "adversarial" and job.parent is not None and "architecture" in job.parent:
        parent = AutonomousAgent.from_architecture(job.parent["architecture"])
        parent.load_state_dict(job.parent["state_dict"])
        start = history.index[len(history) // 2]

        def parent_return(bars: pd.DataFrame) -> float:
            return score(parent.acting_mode(), bars, start, pipeline, env).metrics["total_return"]

        return augmentation.adversarial(
            history,
            settings.augmentation_noise,
            settings.adversarial_candidates,
            rng,
            parent_return,
        )
    if kind in ("noise", "adversarial"):  # adversarial without a parent: plain noise
        return augmentation.noisy(history, settings.augmentation_noise, rng)
    raise ValueError(f"unknown augmentation {kind!r}; known: {augmentation.KINDS}")


def score(
    agent: AutonomousAgent,
    bars: pd.DataFrame,
    start: str | pd.Timestamp,
    pipeline: FeaturePipeline,
    env: EnvSpec,
) -> BacktestResult:
    """Backtest from ``start`` to the end of ``bars``, earlier bars serving as history, in
    the agent's own env: its window and positions, no agent-state channels."""
    return run_backtest(agent, bars, start=start, pipeline=pipeline, spec=agent_env(agent, env))


def agent_env(agent: AutonomousAgent, env: EnvSpec) -> EnvSpec:
    """``env`` as the agent trades it: the agent's window and positions, no agent state."""
    return replace(env, window=agent.arch.window, positions=agent.positions, agent_state=False)


def crown_champion(
    ctx: StageContext, archive: Archive, settings: AutonomousStageConfig, form: MemberForm
) -> StageResult:
    """Save the best member as the champion and report it, each figure under its split.

    First the selection it won on the validation split (its Deflated Sharpe over the
    benchmark, buy-and-hold or for a universe equal weight, against every trial of the run,
    and the PBO), then its one look at the test split, which alone decides the verdict on
    its edge over that benchmark.
    """
    champion = archive.champion()
    member_path = _agent_path(ctx, champion.id)
    saved = load_checkpoint(member_path)
    test = form.test(saved, member_path)
    trials = ctx.trials.trials()
    chosen = _champion_trial(ctx, trials, champion.id)
    selection = edge_on_validation(chosen.excess, [trial.excess for trial in trials])
    pbo = probability_of_backtest_overfitting(_return_matrix(trials), settings.pbo_splits)
    holdout = edge_on_test(test.excess)
    conclusion = verdict(holdout, selection.trials, test.benchmark)
    validation = {key: champion.metrics[key] for key in HEADLINE}
    test_numbers = test.numbers
    validation_ppy = periods_per_year(form.splits.validation.index)
    test_ppy = periods_per_year(form.splits.test.index)
    counts = stage_counts(trials)
    metrics = (
        {f"validation_{k}": v for k, v in validation.items()}
        | {f"test_{k}": v for k, v in test_numbers.items()}
        | {
            "fitness": champion.fitness,
            "members": float(len(archive.members)),
            "validation_excess_sharpe": selection.sharpe * np.sqrt(validation_ppy),
            "validation_dsr": selection.probability,
            "validation_trials": float(selection.trials),
            "test_excess_sharpe": holdout.sharpe * np.sqrt(test_ppy),
            "test_excess_psr": holdout.probability,
            "test_edge_p_value": holdout.p_value,
        }
        | ({} if pbo.value is None else {"pbo": pbo.value})
    )
    final = replace(
        saved,
        metrics=metrics,
        extra=saved.extra
        | {
            "lineage": archive.lineage(champion.id),
            "genome": champion.genome,
            "adaptations": archive.adaptations,
            "trials_by_stage": counts,
            "pbo": pbo.describe(),
            "verdict": conclusion,
        },
    )
    path = ctx.run_dir / checkpoint_name(saved.symbol, CHAMPION_STAGE)
    save_checkpoint(final, path)
    log.info(
        f"\n[{ctx.name}] champion: agent {champion.id} (generation {champion.generation}) -> {path}"
    )
    log.info(selection_report(selection, validation_ppy, counts, pbo, test.benchmark))
    log.info("")
    log.info(test.report)
    log.info(describe_test_edge(holdout, test_ppy, test.benchmark))
    log.info(conclusion)
    return StageResult(
        checkpoint=str(path),
        validation=validation,
        seconds=0.0,
        test=test_numbers,
        verdict=conclusion,
    )


def selection_report(
    selection: EdgeTest,
    ppy: float,
    trials_by_stage: dict[str, int],
    pbo: PBO,
    benchmark: str = "buy-and-hold",
) -> str:
    """How much of the champion's validation edge survives the search that found it."""
    stages = ", ".join(f"{stage} {count}" for stage, count in trials_by_stage.items())
    return (
        f"Selection, {VALIDATION}, after costs:\n"
        f"excess over {benchmark}: Sharpe {selection.sharpe * np.sqrt(ppy):.2f} (annualised); "
        f"Deflated Sharpe Ratio {selection.probability:.3f} over {selection.trials} trials "
        f"({stages}; > 0.95: beats the best of that many zero-edge candidates)\n"
        f"{pbo.describe()}"
    )


def _champion_trial(ctx: StageContext, trials: list[Trial], member_id: int) -> Trial:
    key = (ctx.name, _trial_label(member_id))
    chosen = next((trial for trial in trials if trial.key == key), None)
    if chosen is None:
        raise ValueError(
            f"{ctx.trials.path} has no validation record of agent {member_id}: the run "
            "predates the trial ledger; start a new run"
        )
    return chosen


def _return_matrix(trials: list[Trial]) -> np.ndarray:
    """Every trial's validation returns as the (periods, candidates) matrix PBO reads."""
    lengths = {len(trial.returns) for trial in trials}
    if len(lengths) > 1:
        raise ValueError(
            f"trials cover different validation periods (lengths {sorted(lengths)}); every "
            "stage must score the same validation split"
        )
    return np.column_stack([trial.returns for trial in trials])


def member_checkpoint(ctx: StageContext, member: Member, outcome: Outcome) -> Checkpoint:
    """The member's agent in the common checkpoint format, with its genome and lineage."""
    agent = AutonomousAgent.from_architecture(outcome.architecture)
    agent.load_state_dict(outcome.state_dict)
    return agent.to_checkpoint(
        ctx.pipeline,
        env=agent_env(agent, ctx.config.env),
        symbol=ctx.config.data.symbol,
        data_range=ctx.data_range(),
        metrics={"fitness": member.fitness} | outcome.metrics,
        extra={
            **ctx.provenance(),
            "member": member.id,
            "generation": member.generation,
            "parents": list(member.parents),
            "origin": member.origin,
            "genome": member.genome,
        },
    )


def data_spec(ctx: StageContext) -> DataSpec:
    data, splits = ctx.config.data, ctx.splits
    return DataSpec(
        bars=replace(data_reference(data), end=str(splits.validation.index[-1])),
        train=(str(splits.train.index[0]), str(splits.train.index[-1])),
        validation=(str(splits.validation.index[0]), str(splits.validation.index[-1])),
        pipeline=ctx.pipeline.state_dict(),
        env=ctx.config.env,
    )


def shared_chartist(ctx: StageContext, space: SearchSpace) -> Any:
    """One Chartist for the whole population: it learns synthetic patterns, not the market."""
    genome = space.sample(np.random.default_rng(0))
    settings = ctx.config.stage_4_autonomous
    architecture, _ = agent_settings(
        genome, ctx.pipeline.num_features, ctx.config.env.positions, settings.agent, {}
    )
    return make_chartist(architecture.chartist, architecture.chartist_options, chartist_cache_dir())


def earlier_trunk(ctx: StageContext) -> dict[str, Any] | None:
    """The warm-start donor's CoreTransformer (``warm_start``: for a MoE its busiest
    expert), as a state for ``inherit_weights``."""
    donor = warm_start_donor(ctx)
    if donor is None:
        return None
    trunk = donor.policy.encoder
    return {"state_dict": {f"encoder.{k}": v for k, v in trunk.state_dict().items()}}


def log_generation(
    ctx: StageContext,
    writer: SummaryWriter,
    archive: Archive,
    generation: int,
    space: SearchSpace,
    seconds: float,
    driver: float,
) -> None:
    """TensorBoard scalars and histograms, and the generation table in the console;
    ``driver`` is the part of ``seconds`` outside the workers' span: the driver's serial work."""
    members = archive.generation(generation)
    fitness_values = np.asarray([m.fitness for m in members])
    step = generation + 1
    for name, value in (
        ("best", fitness_values.max()),
        ("mean", fitness_values.mean()),
        ("median", np.median(fitness_values)),
    ):
        writer.add_scalar(f"fitness/{name}", value, step)
    writer.add_scalar("population/diversity", diversity([m.genome for m in members]), step)
    events = [a for a in archive.adaptations if a["generation"] == generation]
    writer.add_scalar("self_modification/events", len(events), step)
    if events:
        writer.add_text(
            "self_modification",
            "\n\n".join(f"agent {a['agent']}: {a['action']} - {a['reason']}" for a in events),
            step,
        )
    for name, gene in space.genes.items():
        if gene.kind != "choice" or all(isinstance(v, int | float) for v in gene.values):
            writer.add_histogram(
                f"genes/{name}", np.asarray([m.genome[name] for m in members], dtype=float), step
            )
    sizes = [m.metrics.get("parameters", np.nan) for m in members]
    if np.isfinite(sizes).all():
        writer.add_histogram("architecture/parameters", np.asarray(sizes), step)
    log.info(
        f"\n[{ctx.name}] generation {step}  ({seconds:.1f}s, driver {driver:.1f}s), {VALIDATION}"
    )
    log.info(
        f"{'agent':>6}{'origin':>11}{'parents':>9}{'fitness':>9}{'sharpe':>8}{'max DD':>8}"
        f"{'trades':>7}  genome"
    )
    for m in sorted(members, key=lambda m: (-m.fitness, m.id)):
        genes = " ".join(f"{k}={_short(v)}" for k, v in m.genome.items())
        parents = ",".join(map(str, m.parents)) or "-"
        log.info(
            f"{m.id:>6}{m.origin:>11}{parents:>9}{m.fitness:>9.2f}{m.metrics['sharpe']:>8.2f}"
            f"{m.metrics['max_drawdown']:>8.1%}{int(m.metrics['n_trades']):>7d}  {genes}"
        )
    log.info(
        f"best {fitness_values.max():.2f}  mean {fitness_values.mean():.2f}  median "
        f"{np.median(fitness_values):.2f}  diversity {diversity([m.genome for m in members]):.2f}"
    )


def diversity(genomes: list[dict[str, Any]]) -> float:
    """Mean share of genes on which two members differ (0: clones, 1: nothing shared)."""
    if len(genomes) < 2:
        return 0.0
    pairs = [(a, b) for i, a in enumerate(genomes) for b in genomes[i + 1 :]]
    return float(np.mean([np.mean([a[k] != b[k] for k in a]) for a, b in pairs]))


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _trial_label(member_id: int) -> str:
    return f"agent {member_id}"


def _agent_path(ctx: StageContext, member_id: int) -> Path:
    return ctx.stage_dir / "agents" / f"agent_{member_id:04d}.pth"


def _rng(seed: int, index: int, purpose: str) -> np.random.Generator:
    """Independent, reproducible randomness for each (seed, index, purpose)."""
    return np.random.default_rng([seed, index, sum(map(ord, purpose))])


@lru_cache(maxsize=4)
def _bars(reference: DataRef) -> pd.DataFrame:
    """A worker's bars, loaded once per reference (a worker scores many members on them)."""
    return reference.load()


register_stage(
    "stage_4_autonomous",
    config=AutonomousStageConfig,
    run=run_autonomous_stage,
    check_settings=check_settings,
    checkpoint_kind="autonomous",
    portfolio=True,
)
