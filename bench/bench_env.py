"""MarketEnv and VectorMarketEnv speed, each beside its peer measured in the same run.

- MarketEnv steps/s (stepped directly and through ``gym.make``) beside gym-anytrading's
  StocksEnv through ``gym.make`` on the same bars and window (target: >= 2x).
- VectorMarketEnv env-steps/s beside the numpy gather floor: a fancy-index gather of the same
  (num_envs, window, channels) observations from the precomputed feature matrix into a fresh
  array, the least any vector env that returns a caller-owned batch must do (target: >= 0.7).

Each figure is the median of ``--repeats`` runs; a ratio is the median of the ratios of runs
taken side by side (A then B, repeated), so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pandas as pd

from common import stepping, vector_stepping
from evotrader.data import FeaturePipeline, load_bars, split_by_time
from evotrader.env import ENV_ID, EnvSpec, MarketEnv, VectorMarketEnv
from evotrader.env.market_data import window_view

Bench = Callable[[], float]  # one timed run, returning steps per second


def single_env(env: gym.Env, num_actions: int, steps: int, seed: int) -> Bench:
    """Steps ``env`` with seeded random actions, resetting when an episode ends."""
    actions = np.random.default_rng(seed).integers(num_actions, size=steps).tolist()
    run = stepping(env, actions, seed)
    return lambda: steps / timed(run)


def vector_env(env: VectorMarketEnv, steps: int, seed: int) -> Bench:
    actions = np.random.default_rng(seed).integers(len(env.positions), size=(steps, env.num_envs))
    run = vector_stepping(env, actions, seed)
    return lambda: steps * env.num_envs / timed(run)


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def gather_floor(features: np.ndarray, window: int, num_envs: int, steps: int, seed: int) -> Bench:
    """A fresh (num_envs, window, channels) array gathered per step at random window ends."""
    windows = window_view(features, window)
    starts = np.random.default_rng(seed).integers(len(windows), size=(steps, num_envs))

    def run() -> float:
        start = time.perf_counter()
        for rows in starts:
            windows[rows]
        return steps * num_envs / (time.perf_counter() - start)

    return run


def anytrading_env(bars: pd.DataFrame, window: int) -> gym.Env | None:
    """gym-anytrading's StocksEnv on the same bars through ``gym.make``, or None if missing."""
    try:
        import gym_anytrading  # noqa: F401  (registers stocks-v0)
    except ImportError:
        print("gym-anytrading not installed: pip install -e .[bench]")
        return None
    frame = bars.rename(columns=str.capitalize)
    return gym.make("stocks-v0", df=frame, window_size=window, frame_bound=(window, len(frame)))


def side_by_side(ours: Bench, peer: Bench, repeats: int) -> tuple[float, float, float]:
    """Median rate of each and the median of their per-repeat ratios, after one warm-up."""
    ours(), peer()
    pairs = [(ours(), peer()) for _ in range(repeats)]
    return (
        statistics.median(a for a, _ in pairs),
        statistics.median(b for _, b in pairs),
        statistics.median(a / b for a, b in pairs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbol", default="GOOG")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--vector-steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    bars = load_bars("embedded", args.symbol)
    pipeline = FeaturePipeline().fit(split_by_time(bars).train)
    spec = EnvSpec(window=args.window)
    single = MarketEnv(bars, pipeline, spec)
    actions = len(spec.positions)
    print(f"bars={len(bars)} symbol={args.symbol} obs={single.observation_space.shape}")
    print(f"medians of {args.repeats} repeats; ratios: medians of side-by-side pairs")

    direct = single_env(single, actions, args.steps, args.seed)
    peer_env = anytrading_env(bars, args.window)
    if peer_env is None:
        rate = statistics.median(direct() for _ in range(args.repeats))
        print(f"MarketEnv               {rate:>12,.0f} steps/s")
    else:
        peer = single_env(peer_env, 2, args.steps, args.seed)  # StocksEnv: sell or buy
        made = gym.make(ENV_ID, bars=bars, pipeline=pipeline, spec=spec)
        through_make = single_env(made, actions, args.steps, args.seed)
        rate, peer_rate, ratio = side_by_side(direct, peer, args.repeats)
        made_rate, _, made_ratio = side_by_side(through_make, peer, args.repeats)
        print(f"MarketEnv               {rate:>12,.0f} steps/s      {ratio:5.2f}x gym-anytrading")
        print(
            f"MarketEnv via gym.make  {made_rate:>12,.0f} steps/s      "
            f"{made_ratio:5.2f}x gym-anytrading"
        )
        print(f"gym-anytrading StocksEnv{peer_rate:>12,.0f} steps/s      (gym.make, target >= 2x)")

    vector = VectorMarketEnv(bars, args.num_envs, pipeline, spec)
    floor = gather_floor(
        single.market.features, args.window, args.num_envs, args.vector_steps, args.seed
    )
    ours = vector_env(vector, args.vector_steps, args.seed)
    rate, floor_rate, ratio = side_by_side(ours, floor, args.repeats)
    print(f"VectorMarketEnv         {rate:>12,.0f} env-steps/s  {ratio:5.2f} of the floor")
    print(f"numpy gather floor      {floor_rate:>12,.0f} env-steps/s  (target >= 0.7)")
    print(f"                        {args.num_envs} sub-environments in one process")


if __name__ == "__main__":
    main()
