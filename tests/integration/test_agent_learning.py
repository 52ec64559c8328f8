"""The AutonomousAgent finds a planted AR(1) edge on unseen bars and claims none on a random walk.

Each series is learned on its train split with the quick-profile sizes (window 32, model_dim
32), saved and reloaded through the common checkpoint format as the backtest runner and the
live bot load it, then backtested on the validation split, after the default costs, with
``agent_state=False``, next to buy-and-hold and five random policies; the AR(1) champion is
also run on its test split by run_backtest.py, as a user would run it.
"""

from pathlib import Path

import numpy as np
import pytest
from tests.integration.small_models import WINDOW, small_encoder, splits_and_features

from evotrader.agents import AgentArchitecture, AutonomousAgent
from evotrader.agents.loading import policy_from_checkpoint
from evotrader.backtest.engine import BacktestResult
from evotrader.backtest.policies import RandomPolicy
from evotrader.core.checkpoint import load_checkpoint, save_checkpoint
from evotrader.data import load_bars
from evotrader.env import EnvSpec
from evotrader.training.evaluation import evaluate_on_split
from evotrader.training.guards import TradableCheckpoint

ENV = EnvSpec(window=WINDOW, agent_state=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models train fastest so


def t_stat(result: BacktestResult) -> float:
    returns = result.equity.pct_change().dropna()
    return float(returns.mean() / returns.std(ddof=1) * np.sqrt(len(returns)))


def validation_results(symbol: str, tmp_path: Path) -> tuple[BacktestResult, list[float], Path]:
    options = {"n_bars": 3000, "seed": 0}
    bars = load_bars("synthetic", symbol, **options)  # AR1: ar_coef 0.3
    splits, pipeline = splits_and_features(bars)
    spec = small_encoder(pipeline.num_features)
    agent = AutonomousAgent(AgentArchitecture(encoder=spec, window=WINDOW), seed=0)
    report = agent.learn(bars, pipeline, splits.train, seed=0)
    checkpoint = agent.to_checkpoint(
        pipeline,
        env=ENV,
        symbol=symbol,
        data_range={
            f"{name}_{end}": str(getattr(splits, name).index[position])
            for name in ("train", "validation", "test")
            for end, position in (("start", 0), ("end", -1))
        },
        extra={"data": {"source": "synthetic", "symbol": symbol, "options": options}},
    )
    path = save_checkpoint(checkpoint, tmp_path / f"{symbol}_autonomous_final.pth")
    trader = policy_from_checkpoint(load_checkpoint(path))
    result = evaluate_on_split(trader, bars, splits.validation, pipeline, ENV)
    randoms = [
        evaluate_on_split(RandomPolicy(3, seed=s), bars, splits.validation, pipeline, ENV)
        for s in range(5)
    ]
    random_sharpes = [r.metrics["sharpe"] for r in randoms]
    print(
        f"{symbol} validation: agent Sharpe {result.metrics['sharpe']:.2f} "
        f"(t {t_stat(result):.2f}, {result.metrics['n_trades']:.0f} trades), "
        f"buy&hold {result.benchmark['sharpe']:.2f}, "
        f"random {np.mean(random_sharpes):.2f} (max {max(random_sharpes):.2f}), after costs; "
        f"learn {report.seconds:.1f}s, {report.events} events in memory"
    )
    return result, random_sharpes, path


def test_agent_finds_a_planted_ar1_edge_out_of_sample(tmp_path: Path) -> None:
    result, random_sharpes, path = validation_results("AR1", tmp_path)
    sharpe, buy_hold = result.metrics["sharpe"], result.benchmark["sharpe"]
    assert sharpe > 1.5
    assert sharpe > buy_hold + 1.5
    assert sharpe > max(random_sharpes) + 1.5
    assert t_stat(result) > 2.0
    test = TradableCheckpoint.load(path).backtest()  # as run_backtest.py runs the champion
    print(
        f"AR1 test split (run_backtest.py): agent Sharpe {test.metrics['sharpe']:.2f}, "
        f"buy&hold {test.benchmark['sharpe']:.2f}"
    )
    assert test.metrics["sharpe"] > test.benchmark["sharpe"] + 1.0


def test_agent_claims_no_edge_on_a_random_walk(tmp_path: Path) -> None:
    result, _, _ = validation_results("RANDOM_WALK", tmp_path)
    assert t_stat(result) < 2.0  # no statistically significant edge on the validation split
