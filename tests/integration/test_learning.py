"""Learning is real: PPO finds a planted AR(1) edge and claims none on a random walk.

Both runs train through run_training.py on synthetic bars and are judged on the test
split, out of sample and after costs, next to buy-and-hold and a random policy.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tests.integration.cli import run_script_ok

from evotrader.backtest.engine import run_backtest
from evotrader.backtest.policies import RandomPolicy
from evotrader.core.checkpoint import load_checkpoint
from evotrader.data import FeaturePipeline, load_bars
from evotrader.env import EnvSpec
from evotrader.training.guards import TradableCheckpoint

BUDGET = [
    "data=synthetic",
    "data.options.n_bars=3000",
    "stages=[stage_1_ppo]",
    "stage_1_ppo.iterations=8",
    "stage_1_ppo.train_batch_size=1024",
    "stage_1_ppo.minibatch_size=256",
    "stage_1_ppo.num_epochs=4",
    "stage_1_ppo.lr=1e-3",
    "stage_1_ppo.eval_interval=4",
]


def _train(runs_dir: Path, symbol: str) -> Path:
    args = (f"runs_dir={runs_dir}", f"run_name={symbol}", f"data.symbol={symbol}", *BUDGET)
    run_script_ok("run_training.py", *args, timeout=900)
    return runs_dir / symbol / f"{symbol}_stage_1_ppo.pth"


def _random_sharpe(checkpoint_path: Path, seed: int) -> float:
    checkpoint = load_checkpoint(checkpoint_path)
    bars = load_bars("synthetic", checkpoint.symbol, **checkpoint.extra["data"]["options"])
    test_start = checkpoint.data_range["test_start"]
    pipeline = FeaturePipeline.from_state(checkpoint.feature_pipeline)
    result = run_backtest(
        RandomPolicy(3, seed=seed),
        bars,
        pipeline=pipeline,
        start=test_start,
        spec=replace(EnvSpec.from_dict(checkpoint.env), agent_state=False),
    )
    return result.metrics["sharpe"]


@pytest.mark.slow
def test_ppo_finds_a_planted_ar1_edge_out_of_sample(tmp_path: Path) -> None:
    path = _train(tmp_path, "AR1")
    result = TradableCheckpoint.load(path).backtest()
    sharpe, buy_hold = result.metrics["sharpe"], result.benchmark["sharpe"]
    random_sharpes = [_random_sharpe(path, seed) for seed in range(5)]
    print(
        f"AR1 test split: PPO Sharpe {sharpe:.2f}, buy&hold {buy_hold:.2f}, "
        f"random {np.mean(random_sharpes):.2f} (after costs)"
    )
    assert sharpe > 1.0
    assert sharpe > buy_hold + 1.0
    assert sharpe > max(random_sharpes) + 1.0


@pytest.mark.slow
def test_ppo_claims_no_edge_on_a_random_walk(tmp_path: Path) -> None:
    result = TradableCheckpoint.load(_train(tmp_path, "RANDOM_WALK")).backtest()
    returns = result.equity.pct_change().dropna()
    t_stat = returns.mean() / returns.std(ddof=1) * np.sqrt(len(returns))
    print(f"RANDOM_WALK test split: PPO Sharpe {result.metrics['sharpe']:.2f}, t={t_stat:.2f}")
    assert t_stat < 2.0  # no statistically significant edge out of sample
