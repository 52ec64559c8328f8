"""stage_2_moe over a universe: a tiny portfolio run stage_1_ppo -> stage_2_moe leaves a
portfolio_moe checkpoint, warm-started from PPO's network, that the portfolio engine trades."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests.integration.conftest import training_config

from evotrader.backtest.portfolio import run_portfolio
from evotrader.config import ConfigError
from evotrader.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from evotrader.models.portfolio_moe import PortfolioMoE
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.training.guards import (
    PortfolioCheckpoint,
    TradableCheckpoint,
    load_portfolio_policy,
)
from evotrader.training.moe_stage import moe_stage, run_moe_stage, warm_start_weights
from evotrader.training.pipeline import StageContext, StageResult, prepare
from evotrader.training.portfolio_validation import portfolio_checkpoint
from evotrader.training.ppo_stage import run_ppo_stage
from evotrader.training.run_folder import FINGERPRINT_FILE, Fingerprint, fingerprint_values
from evotrader.training.warm_start import portfolio_training_windows

STAGES = ["stage_1_ppo", "stage_2_moe"]
RUN = [
    "profile=tiny",
    f"stages=[{','.join(STAGES)}]",
    "env=portfolio",
    "data.source=synthetic_universe",
    "data.symbol=A0",
    "data.universe=[A0,A1,A2]",
    "+data.options={n_assets: 3, n_bars: 400, seed: 0, kind: lead_lag}",
    "stage_1_ppo.iterations=1",
    "stage_2_moe.iterations=1",
]


def _contexts(run_dir: Path, *overrides: str) -> tuple[StageContext, StageContext]:
    """What the pipeline hands both stages (the MoE's before PPO is done)."""
    config = training_config(*RUN, *overrides)
    inputs = prepare(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    Fingerprint(fingerprint_values(config, inputs.bars), STAGES).save(run_dir / FINGERPRINT_FILE)
    return (
        inputs.context("stage_1_ppo", config, run_dir, {}),
        inputs.context("stage_2_moe", config, run_dir, {}),
    )


@pytest.fixture(scope="module")
def after_ppo(tmp_path_factory: pytest.TempPathFactory) -> StageContext:
    """The MoE stage's context once stage_1_ppo has left its network (here an untrained
    one, written as the stage writes it)."""
    ppo, moe = _contexts(tmp_path_factory.mktemp("after_ppo"))
    assert ppo.universe is not None
    torch.manual_seed(3)
    net = PortfolioTransformer(
        ppo.config.model.with_input(ppo.universe.pipeline.num_features),
        len(ppo.config.env.positions),
    )
    checkpoint = portfolio_checkpoint(ppo, ppo.universe, "portfolio_ppo", net, {}, {"sharpe": 0.5})
    save_checkpoint(checkpoint, ppo.checkpoint_path)
    done = StageResult(str(ppo.checkpoint_path), {"sharpe": 0.5}, seconds=0.0)
    return replace(moe, completed={"stage_1_ppo": done})


def test_experts_warm_started_from_ppo_reproduce_its_outputs(after_ppo: StageContext) -> None:
    weights = warm_start_weights(after_ppo, moe_stage(after_ppo))
    assert weights is not None
    ppo = PortfolioCheckpoint.load(Path(after_ppo.completed["stage_1_ppo"].checkpoint)).net
    settings = after_ppo.config.stage_2_moe
    moe = PortfolioMoE(ppo.spec, ppo.num_choices, 1, settings.num_experts, 0, settings.gate_hidden)
    moe.load_state_dict(weights)
    assert after_ppo.universe is not None
    windows = portfolio_training_windows(after_ppo, after_ppo.universe)[-64:]
    with torch.no_grad():
        (logits, value), (ppo_logits, ppo_value) = moe.eval()(windows), ppo(windows)
    # the experts carry 1e-3 of seeded noise (what lets them specialise), nothing more
    torch.testing.assert_close(logits, ppo_logits, rtol=0, atol=1e-2)
    torch.testing.assert_close(value, ppo_value, rtol=0, atol=1e-2)
    assert not torch.equal(logits, ppo_logits)
    assert torch.equal(moe.encoder.input_proj.weight, ppo.encoder.input_proj.weight)


def test_a_ppo_network_of_another_shape_is_refused_naming_both(
    after_ppo: StageContext, tmp_path: Path
) -> None:
    _, narrower = _contexts(tmp_path, "model.model_dim=8")
    narrower = replace(narrower, completed=after_ppo.completed)
    with pytest.raises(
        ConfigError,
        match=r"stage_2_moe.warm_start: the portfolio_ppo policy of .*A0\+A1\+A2_stage_1_ppo.pth "
        r"does not fit: .*'model_dim': 16.*'model_dim': 8",
    ):
        warm_start_weights(narrower, moe_stage(narrower))


def test_portfolio_moe_checkpoints_load_under_the_same_integrity_rules(
    after_ppo: StageContext, tmp_path: Path
) -> None:
    assert after_ppo.universe is not None
    weights = warm_start_weights(after_ppo, moe_stage(after_ppo))
    assert weights is not None
    ppo = PortfolioCheckpoint.load(Path(after_ppo.completed["stage_1_ppo"].checkpoint)).net
    mixture = PortfolioMoE(ppo.spec, ppo.num_choices, num_experts=2)
    mixture.load_state_dict(weights)
    saved = portfolio_checkpoint(
        after_ppo, after_ppo.universe, "portfolio_moe", mixture, {}, {"sharpe": 0.1}
    )
    loaded = load_portfolio_policy(save_checkpoint(saved, tmp_path / "moe.pth")).net
    assert isinstance(loaded, PortfolioMoE) and loaded.num_experts == 2 and not loaded.training
    with pytest.raises(
        CheckpointError, match=r"is a portfolio_moe checkpoint: it trades a universe"
    ):
        TradableCheckpoint.load(tmp_path / "moe.pth")
    architecture = {k: v for k, v in saved.architecture.items() if k != "num_experts"}
    damaged = save_checkpoint(replace(saved, architecture=architecture), tmp_path / "damaged.pth")
    with pytest.raises(CheckpointError, match=r"damaged.pth: its portfolio settings are damaged"):
        PortfolioCheckpoint.load(damaged)
    state = {**saved.state_dict, "gate.2.bias": torch.tensor([float("nan"), 0.0])}
    path = tmp_path / "nan.pth"
    torch.save({**torch.load(tmp_path / "moe.pth", weights_only=True), "state_dict": state}, path)
    with pytest.raises(CheckpointError, match=r"nan.pth: state_dict\['gate.2.bias'\] holds 1 non"):
        PortfolioCheckpoint.load(path)


@pytest.mark.slow
def test_the_run_leaves_a_portfolio_moe_checkpoint_the_engine_trades(
    ray_session, tmp_path: Path
) -> None:
    ppo, moe = _contexts(tmp_path)
    moe = replace(moe, completed={"stage_1_ppo": run_ppo_stage(ppo)})
    run_moe_stage(moe)
    assert moe.checkpoint_path.name == "A0+A1+A2_stage_2_moe.pth"
    checkpoint = load_checkpoint(moe.checkpoint_path)
    assert checkpoint.kind == "portfolio_moe" and checkpoint.symbol == "A0+A1+A2"
    assert checkpoint.architecture["num_experts"] == 2
    assert checkpoint.extra["universe"]["symbols"] == ["A0", "A1", "A2"]
    assert set(checkpoint.metrics) >= {"sharpe", "equal_weight_sharpe", "excess_return"}
    tradable = PortfolioCheckpoint.load(moe.checkpoint_path)
    assert isinstance(tradable.net, PortfolioMoE)
    policy = load_portfolio_policy(moe.checkpoint_path)
    universe = tradable.universe.load()
    result = run_portfolio(policy, universe.bars, tradable.settings(), start=tradable.test_start)
    assert result.equity.index[0] == tradable.test_start
    assert (result.targets.to_numpy() >= 0).all()
    assert (result.targets.to_numpy().sum(axis=1) <= 1.0 + 1e-9).all()
    assert np.isfinite(result.metrics["sharpe"])
    scalars = EventAccumulator(str(moe.tensorboard_dir)).Reload().Tags()["scalars"]
    for name in ("load_balance_loss", "gate_entropy", "expert_utilisation_0"):
        assert f"train/{name}" in scalars
