"""stage_4_autonomous over a universe (env=portfolio): portfolio agents whose genomes carry the
cross-asset genes, judged against equal weight, the champion a portfolio_autonomous
checkpoint that the portfolio loader and run_backtest.py trade."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.integration.conftest import training_config
from tests.integration.test_portfolio_ppo import SYMBOLS, universe_overrides

from evotrader.backtest.portfolio import run_portfolio
from evotrader.config import ConfigError
from evotrader.core.checkpoint import load_checkpoint
from evotrader.nas import GenomeError, SearchSpace
from evotrader.training.autonomous_trainer import check_settings, run_autonomous_stage
from evotrader.training.backtesting import BacktestRequest, backtest
from evotrader.training.guards import PortfolioCheckpoint, load_portfolio_policy
from evotrader.training.pipeline import StageContext, prepare
from evotrader.training.population import check_genes, portfolio_space
from evotrader.training.portfolio_autonomous import portfolio_objective
from evotrader.training.run_folder import FINGERPRINT_FILE, Fingerprint, fingerprint_values

STAGE = "stage_4_autonomous"
TINY = [
    "profile=tiny",
    "stages=[stage_4_autonomous]",
    "stage_4_autonomous.population=2",
    "stage_4_autonomous.genes.cross_layers.high=1",
]
CHAMPION = "A0+A1+A2+A3_autonomous_final.pth"


def autonomous_context(run_dir: Path, *overrides: str) -> StageContext:
    """What the pipeline hands stage_4_autonomous for a portfolio run (its checks passed)."""
    config = training_config(*overrides)
    inputs = prepare(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    Fingerprint(fingerprint_values(config, inputs.bars), [STAGE]).save(run_dir / FINGERPRINT_FILE)
    return inputs.context(STAGE, config, run_dir, {})


@pytest.fixture(scope="module")
def evolved(ray_session, tmp_path_factory: pytest.TempPathFactory) -> StageContext:
    ctx = autonomous_context(
        tmp_path_factory.mktemp("evolved"), *TINY, *universe_overrides("lead_lag", 300)
    )
    run_autonomous_stage(ctx)
    return ctx


def test_two_generations_leave_an_archive_and_a_portfolio_champion(evolved: StageContext) -> None:
    archive = json.loads((evolved.stage_dir / "archive.json").read_text())
    assert archive["generations_done"] == 2
    members = archive["members"]
    assert len(members) == 4
    for member in members:  # the cross-asset gene is searched; memory and risk genes are not
        assert member["genome"]["cross_layers"] in (0, 1)
        assert "memory_k" not in member["genome"] and "risk_scale" not in member["genome"]
        assert np.isfinite(member["fitness"])
    agent = load_checkpoint(evolved.stage_dir / "agents" / "agent_0000.pth")
    assert agent.kind == "portfolio_autonomous" and agent.symbol == "A0+A1+A2+A3"
    assert agent.architecture["cross_layers"] == members[0]["genome"]["cross_layers"]
    assert agent.env["window"] == members[0]["genome"]["window"]
    ledger = (evolved.run_dir / "trials.jsonl").read_text().splitlines()
    assert len(ledger) == 4  # every member is a trial against equal weight

    champion = load_checkpoint(evolved.run_dir / CHAMPION)
    assert champion.kind == "portfolio_autonomous"
    assert champion.extra["universe"]["symbols"] == SYMBOLS
    assert champion.metrics["validation_trials"] == 4.0
    assert {"test_sharpe", "test_edge_p_value", "validation_dsr"} <= set(champion.metrics)
    assert "test_equal_weight_sharpe" in champion.metrics  # the benchmark it is judged by
    assert "edge over equal weight" in champion.extra["verdict"]


def test_the_champion_trades_through_the_portfolio_loader(evolved: StageContext) -> None:
    path = evolved.run_dir / CHAMPION
    tradable = PortfolioCheckpoint.load(path)
    universe = tradable.universe.load()
    result = run_portfolio(
        load_portfolio_policy(path), universe.bars, tradable.settings(), start=tradable.test_start
    )
    assert result.equity.index[0] == tradable.test_start
    assert np.isfinite(result.metrics["sharpe"])
    champion = load_checkpoint(path)
    assert result.metrics["sharpe"] == pytest.approx(champion.metrics["test_sharpe"])


def test_run_backtest_reports_the_champion_against_equal_weight(
    evolved: StageContext, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What run_backtest.py runs (in process): the portfolio report, judged against equal
    weight with the run's trials behind the selection."""
    caplog.set_level(logging.INFO)
    written = backtest(BacktestRequest(checkpoint=evolved.run_dir / CHAMPION, out=tmp_path))
    assert any(path.suffix == ".html" for path in written)
    assert "Portfolio vs baselines (test split, after costs)" in caplog.text
    assert "edge over equal weight: " in caplog.text
    assert "4 trials behind selection" in caplog.text


def test_same_seed_same_archive_and_champion(evolved: StageContext, tmp_path: Path) -> None:
    again = autonomous_context(tmp_path, *TINY, *universe_overrides("lead_lag", 300))
    run_autonomous_stage(again)
    first = json.loads((evolved.stage_dir / "archive.json").read_text())
    second = json.loads((again.stage_dir / "archive.json").read_text())
    assert first == second
    mine, theirs = (
        load_checkpoint(evolved.run_dir / CHAMPION),
        load_checkpoint(again.run_dir / CHAMPION),
    )
    assert mine.state_dict.keys() == theirs.state_dict.keys()
    for name, tensor in mine.state_dict.items():
        assert torch.equal(tensor, theirs.state_dict[name]), name


GENES = {
    "model_dim": {"kind": "choice", "group": "architecture", "values": [8, 16]},
    "num_heads": {"kind": "choice", "group": "architecture", "values": [1, 2]},
    "cross_layers": {"kind": "int", "group": "architecture", "low": 0, "high": 2},
    "memory_k": {"kind": "choice", "values": [4, 8]},
    "lr": {"kind": "log_float", "low": 1e-4, "high": 1e-2},
}


def test_cross_asset_genes_mutate_validate_and_only_in_a_portfolio_run() -> None:
    space = SearchSpace.from_config(GENES)
    rng = np.random.default_rng(0)
    genome = space.sample(rng)
    seen = {space.mutate(genome, rng, rate=1.0, scale=0.5)["cross_layers"] for _ in range(40)}
    assert seen <= {0, 1, 2} and len(seen) > 1
    with pytest.raises(GenomeError, match=r"gene 'cross_layers': 3 outside \[0, 2\]"):
        space.validate({**genome, "cross_layers": 3})
    with pytest.raises(ConfigError, match=r"\['cross_layers'\] are cross-asset genes"):
        check_genes(space)
    check_genes(space, portfolio=True)
    searched, dropped = portfolio_space(space)
    assert list(searched.genes) == ["model_dim", "num_heads", "cross_layers", "lr"]
    assert dropped == ["memory_k"]
    without = SearchSpace.from_config({k: v for k, v in GENES.items() if k != "cross_layers"})
    with pytest.raises(ConfigError, match=r"searches the cross-asset genes \['cross_layers'\]"):
        portfolio_space(without)


def test_a_single_symbol_run_refuses_the_cross_asset_gene(stage_context) -> None:
    ctx = stage_context(
        STAGE,
        "profile=tiny",
        "+stage_4_autonomous.genes.cross_layers={kind: int, group: architecture, low: 0, high: 1}",
    )
    with pytest.raises(ConfigError, match=r"\['cross_layers'\] are cross-asset genes"):
        check_settings(ctx)


def test_a_portfolio_run_checks_its_members() -> None:
    noise = [*TINY, *universe_overrides("noise", 300)]
    prepare(training_config(*noise))  # fine: the stage may run over a universe
    with pytest.raises(ConfigError, match=r"stage_4_autonomous.*gene 'lr'"):
        prepare(training_config(*noise, "stage_4_autonomous.genes.lr.low=-1"))


def test_the_objective_pays_the_held_returns_less_costs_under_the_gross_limit() -> None:
    positions = torch.tensor([0.0, 1.0])
    full = torch.tensor([[-20.0, 20.0]])  # certain full weight
    out = torch.tensor([[20.0, -20.0]])
    returns = torch.tensor([[0.01, -0.02], [0.03, 0.01]])
    # bar 0: all in asset 0 only; bar 1: both full, scaled to 0.5 each by max_gross=1
    logits = torch.stack([torch.cat([full, out]), torch.cat([full, full])])
    value = portfolio_objective(logits, positions, returns, cost=0.001, max_gross=1.0)
    expected = (0.01 + 0.5 * 0.03 + 0.5 * 0.01 - 0.001 * (0.5 + 0.5)) / 2
    assert float(value) == pytest.approx(expected, rel=1e-5)


LEARN = [
    "profile=tiny",
    "stages=[stage_4_autonomous]",
    "env=portfolio",
    "data.source=synthetic_universe",
    "data.symbol=A0",
    "data.universe=[A0,A1]",
    "features.features=[log_return]",
    "stage_4_autonomous.population=2",
    "stage_4_autonomous.generations=1",
    "stage_4_autonomous.genes.window.values=[4]",
    "stage_4_autonomous.genes.model_dim.values=[16]",
    "stage_4_autonomous.genes.num_heads.values=[2]",
    "stage_4_autonomous.genes.ff_dim.values=[32]",
    "stage_4_autonomous.genes.cross_layers.low=1",
    "stage_4_autonomous.genes.cross_layers.high=1",
    "stage_4_autonomous.genes.dropout.high=0.0",
    "stage_4_autonomous.genes.pooling.values=[last]",
    "stage_4_autonomous.genes.batch_size.values=[256]",
    "stage_4_autonomous.genes.lr.low=3e-3",
    "stage_4_autonomous.genes.lr.high=5e-3",
    "stage_4_autonomous.genes.policy_lr.low=5e-3",
    "stage_4_autonomous.genes.policy_lr.high=2e-2",
    "stage_4_autonomous.genes.turnover_penalty.low=0.5",
    "stage_4_autonomous.genes.turnover_penalty.high=1.5",
    "stage_4_autonomous.hyperparameters.epochs=150",
    "stage_4_autonomous.hyperparameters.policy_epochs=30",
]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lead_lag", "noise"])
def test_the_evolved_champion_finds_the_planted_lead_lag_and_no_edge_in_noise(
    ray_session, tmp_path: Path, kind: str
) -> None:
    """Two assets, A0 leading A1 (strength 0.4) or independent: the champion, selected on
    validation, beats equal weight on the untouched test split after costs only where the
    lead exists. Nothing tells the members which asset leads, or that one does."""
    options = f"n_assets: 2, n_bars: 2000, seed: 0, kind: {kind}, strength: 0.4"
    ctx = autonomous_context(tmp_path, *LEARN, f"+data.options={{{options}}}")
    run_autonomous_stage(ctx)
    champion = load_checkpoint(ctx.run_dir / "A0+A1_autonomous_final.pth")
    numbers = champion.metrics
    if kind == "lead_lag":
        assert "edge over equal weight: significant" in champion.extra["verdict"], numbers
        assert numbers["test_sharpe"] > numbers["test_equal_weight_sharpe"] + 1.0, numbers
        assert numbers["test_excess_return"] > 0.05, numbers
    else:
        assert "edge over equal weight: not significant" in champion.extra["verdict"], numbers
