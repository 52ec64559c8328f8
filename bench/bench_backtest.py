"""Backtest engine speed, each figure next to its peer measured in the same run.

1. A moving-average crossover on 100k synthetic bars (no agent state): ``run_backtest`` end to
   end (features, batched policy, fills, costs, metrics and the buy-and-hold benchmark) against
   backtesting.py running the same crossover on the same bars (``--no-peer`` skips it).
   Target: >= 1M bars/s.
2. A trained checkpoint over every bar of its symbol (default: the newest quick-profile
   ``*_stage_1_ppo.pth`` under ``runs/``; ``--checkpoint`` another): its policy reads its own
   position, so today's reference steps it bar by bar through MarketEnv (``per_bar=True``,
   one-row forwards) while the default path decides in batches; positions are checked
   identical. The model's own forward at batch 256 is printed beside them: the ceiling the
   batched path approaches on this machine. Target: >= 50k bars/s.

Every figure is the median of ``--repeats`` runs, the compared runs alternated.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from common import medians
from evotrader.backtest.engine import run_backtest
from evotrader.backtest.policies import MovingAverageCrossover
from evotrader.data import FeaturePipeline, generate_synthetic
from evotrader.env import EnvSpec


def moving_average(bars_count: int, window: int, repeats: int, peer: bool, seed: int) -> None:
    bars = generate_synthetic(bars_count, seed=seed, kind="regimes", freq="h").bars
    pipeline = FeaturePipeline().fit(bars.iloc[: len(bars) // 2])
    policy = MovingAverageCrossover(pipeline, fast=10, slow=50)
    spec = EnvSpec(window=window, agent_state=False)
    result = run_backtest(policy, bars, pipeline=pipeline, spec=spec)
    runs: dict[str, Callable[[], object]] = {
        "run_backtest": lambda: run_backtest(policy, bars, pipeline=pipeline, spec=spec)
    }
    peer_trades = None
    if peer:
        peer_run, peer_trades = backtesting_py_crossover(bars, fast=10, slow=50)
        runs["backtesting.py"] = peer_run
    print(f"bars={len(bars):,} window={window} trades={int(result.metrics['n_trades'])}")
    if peer_trades is not None:
        print(f"  backtesting.py trades={peer_trades} (same crossover; its own fills and costs)")
    for name, seconds in medians(runs, repeats).items():
        rate(name, seconds, len(bars), "1,000,000" if name == "run_backtest" else "")


def backtesting_py_crossover(
    bars: pd.DataFrame, fast: int, slow: int
) -> tuple[Callable[[], object], int]:
    """backtesting.py on the same bars: long when the mean log close of the last ``fast`` bars
    is above that of the last ``slow``, else short (MovingAverageCrossover's rule); each order
    closes the position before (``exclusive_orders``), as the usual SmaCross example does."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # its progress bar: not part of the figure
    from backtesting import Backtest, Strategy

    log_close = np.log(bars["close"].to_numpy())
    signal = (
        pd.Series(log_close).rolling(fast).mean() > pd.Series(log_close).rolling(slow).mean()
    ).to_numpy()

    class Crossover(Strategy):
        def init(self) -> None:
            self.above = self.I(lambda: signal, name="above")

        def next(self) -> None:
            if len(self.data) < slow:
                return
            if self.above[-1] and not self.position.is_long:
                self.buy()
            elif not self.above[-1] and not self.position.is_short:
                self.sell()

    frame = bars.rename(columns=str.capitalize)
    test = Backtest(
        frame, Crossover, cash=1e12, commission=3e-4, exclusive_orders=True, finalize_trades=True
    )
    trades = int(test.run()["# Trades"])
    return test.run, trades


def checkpoint_speed(path: Path | None, repeats: int, runs_dir: Path) -> None:
    from evotrader.training.guards import TradableCheckpoint

    path = path or newest(runs_dir, "*_stage_1_ppo.pth")
    if path is None:
        print(f"no *_stage_1_ppo.pth under {runs_dir}: train one (run_training.py profile=quick)")
        return
    tradable = TradableCheckpoint.load(path)
    bars = tradable.bars()
    policy = tradable.policy(bars, tradable.test_split(bars).index[0])
    spec, pipeline = tradable.spec, tradable.pipeline

    def backtest(per_bar: bool) -> pd.Series:
        result = run_backtest(policy, bars, pipeline=pipeline, spec=spec, per_bar=per_bar)
        return result.positions

    positions = backtest(True)
    same = positions.equals(backtest(False))
    decisions = len(positions) - 1
    print(
        f"{path} ({tradable.checkpoint.kind}, agent_state={spec.agent_state}, window "
        f"{spec.window}): {decisions:,} decisions over all {len(bars):,} bars, "
        f"{int((positions.diff().fillna(0) != 0).sum())} position changes, "
        f"positions identical per-bar vs batched: {same}"
    )
    times = medians(
        {"per-bar": lambda: backtest(True), "batched": lambda: backtest(False)}, repeats
    )
    for name, seconds in times.items():
        rate(name, seconds, decisions, "50,000" if name == "batched" else "")
    print(f"{'speed-up':<15} {times['per-bar'] / times['batched']:.1f}x")
    from evotrader.env.market_data import MarketData

    market = MarketData.build(bars, pipeline, spec.window, spec.execution, spec.agent_state)
    windows = market.windows()[-256:].copy()
    seconds = medians({"act": lambda: policy.act(windows)}, max(repeats, 20))["act"]
    print(f"{'policy act':<15} batch 256    -> {256 / seconds:>12,.0f} windows/s (the ceiling)")


def rate(name: str, seconds: float, count: int, target: str) -> None:
    note = f"  (target >= {target})" if target else ""
    print(f"{name:<15} median {seconds * 1e3:8.1f} ms -> {count / seconds:>12,.0f} bars/s{note}")


def newest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(f"*/{pattern}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peer", action="store_true", help="skip backtesting.py")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint (default: newest PPO)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per-bar (batched decisions use one)"
    )
    args = parser.parse_args()

    moving_average(args.bars, args.window, args.repeats, not args.no_peer, args.seed)
    import torch

    torch.set_num_threads(args.threads)
    checkpoint_speed(args.checkpoint, args.repeats, args.runs_dir)


if __name__ == "__main__":
    main()
