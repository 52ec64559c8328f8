"""PortfolioEnv and VectorPortfolioEnv env-steps/s and asset-steps/s on a 20-asset universe.

Data: skfolio's bundled S&P 500 daily closes (20 stocks, no network), close-only (open =
high = low = close, no volume, so a "next open" fill is the next close), or ``--data
synthetic`` aligned OHLCV bars. Rows: the 1-asset MarketEnv and VectorMarketEnv (one
asset-step per step, the per-asset-step reference), PortfolioEnv and VectorPortfolioEnv
with random long-only targets (every step rebalances every asset, the slowest case), and
FinRL's StockPortfolioEnv on the same closes when its wheel is at hand (``pip download
finrl --no-deps -d /tmp/finrl``); that env is only imported here, never a dependency.
FinRL's env charges no costs and observes a covariance matrix plus indicators, so its row
is a speed peer, not the same work.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import sys
import tempfile
import types
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from common import medians, stepping, vector_stepping
from evotrader.data import FeaturePipeline, generate_synthetic
from evotrader.data.features import CLOSE_ONLY_FEATURES, DEFAULT_FEATURES
from evotrader.data.universe import load_universe
from evotrader.env import (
    EnvSpec,
    MarketEnv,
    PortfolioEnv,
    VectorMarketEnv,
    VectorPortfolioEnv,
)

FINRL_MODULE = "finrl/meta/env_portfolio_allocation/env_portfolio.py"


def synthetic_bars(assets: int, bars: int) -> dict[str, pd.DataFrame]:
    return {f"S{i:02d}": generate_synthetic(bars, seed=i).bars for i in range(assets)}


def load_finrl(wheel_glob: str) -> tuple[type | None, str]:
    """FinRL's StockPortfolioEnv class from a downloaded wheel, or None and the reason."""
    wheels = sorted(glob.glob(wheel_glob))
    if not wheels:
        return None, f"no FinRL wheel matches {wheel_glob} (pip download finrl --no-deps)"
    folder = Path(tempfile.mkdtemp(prefix="finrl_"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        wheel.extract(FINRL_MODULE, folder)
    note = f"{Path(wheels[-1]).name}"
    if importlib.util.find_spec("stable_baselines3") is None:
        # The module imports DummyVecEnv for its get_sb_env helper only, which is not timed.
        vec_env = types.ModuleType("stable_baselines3.common.vec_env")
        vec_env.DummyVecEnv = object  # type: ignore[attr-defined]
        for name in ("stable_baselines3", "stable_baselines3.common"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["stable_baselines3.common.vec_env"] = vec_env
        note += ", stable_baselines3 absent: its unused DummyVecEnv import stubbed"
    spec = importlib.util.spec_from_file_location("finrl_env_portfolio", folder / FINRL_MODULE)
    if spec is None or spec.loader is None:
        return None, f"cannot load {FINRL_MODULE} from {wheels[-1]}"
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        return None, f"FinRL env module needs {error.name}, not installed"
    return module.StockPortfolioEnv, note


def finrl_frame(bars: dict[str, pd.DataFrame], days: int, lookback: int) -> pd.DataFrame:
    """FinRL's long format (one row per day and ticker, index = day number) with its rolling
    covariance matrix and two indicators, over the first ``days`` days after ``lookback``."""
    closes = pd.DataFrame({s: b["close"] for s, b in bars.items()})
    returns = closes.pct_change()
    covariance = returns.rolling(lookback).cov()
    rows = []
    for day, date in enumerate(closes.index[lookback : lookback + days]):
        matrix = covariance.loc[date].to_numpy()
        for symbol in closes.columns:
            rows.append(
                {
                    "day": day,
                    "date": date,
                    "tic": symbol,
                    "close": closes.at[date, symbol],
                    "cov_list": matrix,
                    "return_1": returns.at[date, symbol],
                    "return_mean": returns[symbol].loc[:date].tail(lookback).mean(),
                }
            )
    return pd.DataFrame(rows).set_index("day")


def finrl_run(
    env_class: type, bars: dict[str, pd.DataFrame], steps: int, seed: int
) -> Callable[[], None]:
    """One timed run of FinRL's StockPortfolioEnv: ``steps`` random allocations from a reset."""
    assets, lookback = len(bars), 63
    frame = finrl_frame(bars, steps + 2, lookback)
    indicators = ["return_1", "return_mean"]
    env = env_class(
        df=frame,
        stock_dim=assets,
        hmax=100,
        initial_amount=100_000,
        transaction_cost_pct=0.0,
        reward_scaling=1e-4,
        state_space=assets,
        action_space=assets,
        tech_indicator_list=indicators,
        lookback=lookback,
    )
    actions = np.random.default_rng(seed).normal(size=(steps, assets))

    def run() -> None:  # stops before the last day, where the env plots and prints
        env.reset()
        for action in actions:
            env.step(action)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", choices=["sp500", "synthetic"], default="sp500")
    parser.add_argument("--assets", type=int, default=20, help="synthetic data only")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3_000)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--vector-steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7, help="each figure is the median")
    parser.add_argument("--finrl-wheel", default="/tmp/finrl/FinRL-*.whl")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.data == "sp500":
        universe = dict(load_universe("sp500").bars)
    else:
        universe = synthetic_bars(args.assets, 4000)
    first = next(iter(universe.values()))
    features = CLOSE_ONLY_FEATURES if args.data == "sp500" else DEFAULT_FEATURES
    pipeline = FeaturePipeline(features).fit([b.iloc[: len(b) // 2] for b in universe.values()])
    spec = EnvSpec(window=args.window)
    rng = np.random.default_rng(args.seed)
    assets = len(universe)

    market = MarketEnv(first, pipeline, spec)
    market_actions = rng.integers(3, size=args.steps * 4).tolist()
    vector_market = VectorMarketEnv(first, args.num_envs, pipeline, spec)
    vector_market_actions = rng.integers(3, size=(args.vector_steps, args.num_envs))
    portfolio = PortfolioEnv(universe, pipeline, spec)
    portfolio_actions = list(rng.random((args.steps, assets + 1)))
    vector = VectorPortfolioEnv(universe, args.num_envs, pipeline, spec)
    vector_actions = rng.random((args.vector_steps, args.num_envs, assets + 1))
    runs = {
        "market": stepping(market, market_actions, args.seed),
        "vector market": vector_stepping(vector_market, vector_market_actions, args.seed),
        "portfolio": stepping(portfolio, portfolio_actions, args.seed),
        "vector portfolio": vector_stepping(vector, vector_actions, args.seed),
    }
    finrl_class, note = load_finrl(args.finrl_wheel)
    finrl_steps = min(args.steps, 500)
    if finrl_class is not None:
        runs["finrl"] = finrl_run(finrl_class, universe, finrl_steps, args.seed)
    seconds = medians(runs, args.repeats)  # every env once per round, rounds alternated
    market_rate = len(market_actions) / seconds["market"]
    vector_market_rate = vector_market_actions.size / seconds["vector market"]
    portfolio_rate = len(portfolio_actions) / seconds["portfolio"]
    vector_portfolio_rate = args.vector_steps * args.num_envs / seconds["vector portfolio"]

    close_only = " (close-only: fills at the next close)" if args.data == "sp500" else ""
    print(
        f"data={args.data} assets={assets} bars={len(first):,} window={args.window} "
        f"obs={portfolio.observation_space.shape} long-only random targets{close_only}"
    )
    print(f"medians of {args.repeats} rounds, the envs alternated within each round")
    print(f"{'env':<26}{'env-steps/s':>14}{'asset-steps/s':>16}")
    rows = [
        ("MarketEnv (1 asset)", market_rate, 1),
        (f"VectorMarketEnv x{args.num_envs}", vector_market_rate, 1),
        (f"PortfolioEnv ({assets})", portfolio_rate, assets),
        (f"VectorPortfolioEnv x{args.num_envs}", vector_portfolio_rate, assets),
    ]
    for name, steps_per_s, width in rows:
        print(f"{name:<26}{steps_per_s:>14,.0f}{steps_per_s * width:>16,.0f}")
    per_asset = portfolio_rate * assets / market_rate
    print(f"PortfolioEnv asset-steps/s = {per_asset:.2f} x MarketEnv steps/s")
    per_asset = vector_portfolio_rate * assets / vector_market_rate
    print(f"VectorPortfolioEnv asset-steps/s = {per_asset:.2f} x VectorMarketEnv env-steps/s")
    if finrl_class is None:
        print(f"{'FinRL StockPortfolioEnv':<26}{'skipped':>14}  ({note})")
        return
    finrl = finrl_steps / seconds["finrl"]
    print(f"{'FinRL StockPortfolioEnv':<26}{finrl:>14,.0f}{finrl * assets:>16,.0f}  ({note})")
    print(f"PortfolioEnv env-steps/s = {portfolio_rate / finrl:.1f} x FinRL StockPortfolioEnv")


if __name__ == "__main__":
    main()
