"""Single MarketEnv steps/s and VectorMarketEnv env-steps/s on embedded GOOG, window 64.

Targets (one core): MarketEnv >= 200k steps/s, VectorMarketEnv >= 2M env-steps/s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evotrader.data import FeaturePipeline, load_bars, split_by_time
from evotrader.env import EnvSpec, MarketEnv, VectorMarketEnv


def bench_single(env: MarketEnv, steps: int, seed: int) -> float:
    actions = np.random.default_rng(seed).integers(env.action_space.n, size=steps).tolist()
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def bench_vector(env: VectorMarketEnv, steps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    actions = rng.integers(env.single_action_space.n, size=(steps, env.num_envs))
    env.reset(seed=seed)
    start = time.perf_counter()
    for batch in actions:
        env.step(batch)
    return steps * env.num_envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbol", default="GOOG")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--vector-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    bars = load_bars("embedded", args.symbol)
    pipeline = FeaturePipeline().fit(split_by_time(bars).train)
    single = MarketEnv(bars, pipeline, EnvSpec(window=args.window))
    vector = VectorMarketEnv(bars, args.num_envs, pipeline, EnvSpec(window=args.window))
    single_rate = bench_single(single, args.steps, args.seed)
    vector_rate = bench_vector(vector, args.vector_steps, args.seed)
    shape = single.observation_space.shape
    print(f"bars={len(bars)} symbol={args.symbol} window={args.window} obs={shape}")
    print(f"MarketEnv        {single_rate:>14,.0f} steps/s      (target >= 200,000)")
    print(f"VectorMarketEnv  {vector_rate:>14,.0f} env-steps/s  (target >= 2,000,000)")
    print(f"                 {args.num_envs} sub-environments in one process")


if __name__ == "__main__":
    main()
