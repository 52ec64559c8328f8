"""stage_3_maml over a universe (env=portfolio): (sub-universe, period) tasks, the inner step
on the PortfolioTransformer, and a tiny run whose portfolio_maml checkpoint backtests."""

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.integration.conftest import training_config

from evotrader.backtest.portfolio import run_portfolio
from evotrader.config import ConfigError
from evotrader.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from evotrader.env import VectorPortfolioEnv
from evotrader.models.maml_model import adapt_parameters, parameters_of
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.training.guards import PortfolioCheckpoint, TradableCheckpoint, load_portfolio_policy
from evotrader.training.maml_stage import meta_learner, meta_step, run_maml_stage
from evotrader.training.market_envs import universe_inputs
from evotrader.training.pipeline import StageContext, StageResult, prepare
from evotrader.training.portfolio_maml import portfolio_tasks, sub_universes
from evotrader.training.portfolio_validation import portfolio_checkpoint
from evotrader.training.rollouts import collect_rollout
from evotrader.training.run_folder import FINGERPRINT_FILE, Fingerprint, fingerprint_values

SYMBOLS = ["A0", "A1", "A2", "A3"]
TINY = [
    "profile=tiny",
    "env=portfolio",
    "data.source=synthetic_universe",
    "data.symbol=A0",
    f"data.universe=[{','.join(SYMBOLS)}]",
    "+data.options={n_assets: 4, n_bars: 400, seed: 0, kind: lead_lag}",
    "stage_3_maml.task_bars=120",
    "stage_3_maml.adapt_bars=48",
    "stage_3_maml.meta_batch_size=2",
    "stage_3_maml.num_envs=4",
    "stage_3_maml.episode_length=8",
    "stage_3_maml.eval_interval=2",
    "stages=[stage_3_maml]",
]


def maml_context(run_dir: Path, *overrides: str) -> StageContext:
    """What the pipeline hands stage_3_maml in a portfolio run."""
    config = training_config(*TINY, *overrides)
    inputs = prepare(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    values = fingerprint_values(config, inputs.bars)
    Fingerprint(values, ["stage_3_maml"]).save(run_dir / FINGERPRINT_FILE)
    return inputs.context("stage_3_maml", config, run_dir, {})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> StageContext:
    ctx = maml_context(tmp_path_factory.mktemp("portfolio_maml"))
    run_maml_stage(ctx)
    return ctx


def test_sub_universes_are_seeded_baskets_of_two_or_more() -> None:
    drawn = sub_universes(SYMBOLS, 50, np.random.default_rng(7))
    assert drawn == sub_universes(SYMBOLS, 50, np.random.default_rng(7))
    assert drawn != sub_universes(SYMBOLS, 50, np.random.default_rng(8))
    assert {len(basket) for basket in drawn} == {2, 3, 4}
    for basket in drawn:  # distinct symbols, in the universe's order
        assert list(basket) == sorted(set(basket), key=SYMBOLS.index)
    with pytest.raises(ConfigError, match=r"data\.universe: .*>= 2 symbols, got \['A0'\]"):
        sub_universes(["A0"], 3, np.random.default_rng(0))


def test_portfolio_tasks_slice_the_training_split_only(tmp_path: Path) -> None:
    config = training_config(*TINY)
    inputs = universe_inputs(config)
    tasks = portfolio_tasks(inputs, config.env, config.stage_3_maml, config.seed)
    periods = len(inputs.splits.train) // 120
    assert periods >= 2 and len(tasks) == periods * len(SYMBOLS)
    validation_start = inputs.splits.validation.index[0]
    for task in tasks:
        basket, dates = task.name.split("[")
        assert isinstance(task.env, VectorPortfolioEnv)
        assert list(task.env.symbols) == basket.split("+") and task.env.num_assets >= 2
        assert np.datetime64(dates.rstrip("]").split("..")[1]) < np.datetime64(validation_start)
        assert task.env.market.timestamps[-1] < validation_start
    again = portfolio_tasks(inputs, config.env, config.stage_3_maml, config.seed)
    assert [task.name for task in again] == [task.name for task in tasks]
    with pytest.raises(ConfigError, match=r"stage_3_maml\.task_bars"):
        long = replace(config.stage_3_maml, task_bars=10_000)
        portfolio_tasks(inputs, config.env, long, config.seed)


def test_a_one_symbol_universe_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"data\.universe: .*>= 2 symbols, got \['A0'\]"):
        prepare(training_config(*TINY, "data.universe=[A0]"))


def test_one_inner_step_moves_the_adapted_parameters_not_the_initial_ones(
    tmp_path: Path,
) -> None:
    learner = meta_learner(maml_context(tmp_path))
    net, task = learner.policy, learner.tasks[0]
    assert isinstance(task.env, VectorPortfolioEnv)
    before = {name: value.detach().clone() for name, value in net.named_parameters()}
    params = parameters_of(net)
    support = collect_rollout(
        net, params, task.env, 8, env_seed=0, generator=torch.Generator().manual_seed(0)
    )
    assert support.actions.shape == (8, 4, task.env.num_assets)
    adapted = adapt_parameters(net, params, support, inner_lr=0.5, gamma=0.9, first_order=False)
    moved = [name for name in adapted if not torch.equal(adapted[name], params[name])]
    assert "pi.weight" in moved and any(name.startswith("encoder.") for name in moved)
    assert any(name.startswith("cross.") for name in moved)
    assert not any(name.startswith("vf.") for name in moved)  # the loss never reads the value
    assert adapted["pi.weight"].requires_grad  # second order: still a function of params
    for name, value in net.named_parameters():
        assert torch.equal(value, before[name]), name


def test_same_seed_same_meta_update(tmp_path: Path) -> None:
    ctx = maml_context(tmp_path)
    learner, settings = meta_learner(ctx), ctx.config.stage_3_maml
    net, initial = learner.policy, copy.deepcopy(learner.policy.state_dict())
    again = meta_learner(ctx).policy.state_dict()  # the fresh network is seeded too
    assert all(torch.equal(initial[name], again[name]) for name in initial)

    def updated(seed: int) -> dict[str, torch.Tensor]:
        net.load_state_dict(initial)
        optimizer = torch.optim.Adam(net.parameters(), lr=settings.outer_lr)
        meta_step(net, optimizer, learner.tasks[:1], settings, seed)
        return copy.deepcopy(net.state_dict())

    first, repeated, other = updated(3), updated(3), updated(4)
    assert not torch.equal(first["pi.weight"], initial["pi.weight"])
    assert not torch.equal(first["encoder.input_proj.weight"], initial["encoder.input_proj.weight"])
    assert all(torch.equal(first[name], repeated[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_tiny_run_leaves_a_portfolio_maml_checkpoint_that_backtests(
    trained: StageContext,
) -> None:
    checkpoint = load_checkpoint(trained.checkpoint_path)
    assert checkpoint.kind == "portfolio_maml" and checkpoint.symbol == "A0+A1+A2+A3"
    assert checkpoint.extra["universe"]["symbols"] == SYMBOLS
    assert checkpoint.hyperparameters["adapt_bars"] == 48
    assert set(checkpoint.metrics) >= {"sharpe", "equal_weight_sharpe", "excess_return"}
    assert load_checkpoint(trained.stage_dir / "last.pth").extra["iteration"] == 2
    with pytest.raises(CheckpointError, match="portfolio_maml checkpoint: it trades a universe"):
        TradableCheckpoint.load(trained.checkpoint_path)
    tradable = PortfolioCheckpoint.load(trained.checkpoint_path)
    policy = load_portfolio_policy(trained.checkpoint_path)
    # It trades a copy adapted on the bars before the test split; the saved weights stay.
    assert not torch.equal(policy.net.pi.weight, tradable.net.pi.weight)
    again = tradable.policy()
    adapted, reloaded = policy.net.state_dict(), again.net.state_dict()
    assert all(torch.equal(adapted[name], reloaded[name]) for name in adapted)  # seeded
    universe = tradable.universe.load()
    result = run_portfolio(policy, universe.bars, tradable.settings(), start=tradable.test_start)
    assert result.equity.index[0] == tradable.test_start
    assert (result.targets.to_numpy() >= 0).all()
    assert np.isfinite(result.metrics["sharpe"])


def _with_donor(ctx: StageContext, net: PortfolioTransformer) -> StageContext:
    """``ctx`` after a stage_1_ppo that left ``net`` as its portfolio checkpoint."""
    assert ctx.universe is not None
    path = ctx.run_dir / "donor.pth"
    save_checkpoint(portfolio_checkpoint(ctx, ctx.universe, "portfolio_ppo", net, {}, {}), path)
    return replace(ctx, completed={"stage_1_ppo": StageResult(str(path), {"sharpe": 1.0}, 0.0)})


def test_warm_start_takes_the_ppo_trunk_when_shapes_allow(tmp_path: Path) -> None:
    ctx = maml_context(tmp_path)
    fresh = meta_learner(ctx).policy.state_dict()
    channels = fresh["encoder.input_proj.weight"].shape[1]
    donor = PortfolioTransformer(ctx.config.model.with_input(channels), 3)
    with torch.no_grad():  # every donor weight unlike the fresh network's
        for value in donor.parameters():
            value.add_(torch.randn(value.shape, generator=torch.Generator().manual_seed(1)))
    started = meta_learner(_with_donor(ctx, donor)).policy.state_dict()
    for name, value in donor.state_dict().items():
        same = torch.equal(started[name], value)
        assert same != name.startswith(("pi.", "vf.")), name  # trunk donated, heads fresh
        assert torch.equal(started[name], fresh[name]) != same, name
    wider = replace(ctx.config.model, model_dim=32, ff_dim=64, output_dim=32)
    other = PortfolioTransformer(wider.with_input(donor.spec.input_dim), 3)
    kept = meta_learner(_with_donor(ctx, other)).policy.state_dict()
    assert all(torch.equal(kept[name], fresh[name]) for name in fresh)
