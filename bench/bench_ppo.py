"""PPO training throughput on the quick profile, next to its peers measured in the same run.

Three trainers learn on the same MarketEnv (embedded GOOG training split, quick-profile env,
8 envs, batch 1024, minibatch 256, 4 epochs, 2 cores):

- evotrader: RLlib PPO with our TransformerPPOModule (what stage_1_ppo runs);
- RLlib default: RLlib PPO with its default catalog (an MLP over the flattened window);
- stable-baselines3: PPO with its MLP policy over the flattened window (``pip install -e
  .[bench]``; skipped with a note when it is missing).

Rounds alternate the trainers (each warmed up first) and every figure is the median over
rounds of env steps per second of wall time, sampling and learning together, with
evotrader's sampling / learning split.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import ray
from gymnasium.wrappers.vector import FlattenObservation
from ray.rllib.algorithms.algorithm import Algorithm
from ray.tune.registry import register_env

from evotrader.config import (
    TrainingConfig,
    bars_from,
    load_training_config,
    pipeline_from,
    splits_from,
)
from evotrader.data import FeaturePipeline
from evotrader.env import EnvSpec, MarketEnv
from evotrader.training.market_envs import make_vector_env
from evotrader.training.pipeline import StageContext
from evotrader.training.ppo_stage import ppo_stage
from evotrader.training.rllib_connectors import RLLIB_DEFAULT_CONNECTORS
from evotrader.training.rllib_stage import build_algorithm, ppo_config

FLAT_ENV_NAME = "evotrader-vector-market-flat"


def make_flat_vector_env(env_config: dict[str, Any]) -> gym.vector.VectorEnv:
    """The training env with each window flattened to a vector: what default MLPs read."""
    return FlattenObservation(make_vector_env(env_config))


def rllib_default(context: StageContext) -> Algorithm:
    """RLlib PPO with the stage's settings, its default catalog module, its default
    connectors and the flat env."""
    register_env(FLAT_ENV_NAME, make_flat_vector_env)
    config = ppo_config(context, ppo_stage(context), context.config.seed)
    config.rl_module(rl_module_spec=None).env_runners(**RLLIB_DEFAULT_CONNECTORS)
    return config.environment(FLAT_ENV_NAME).build_algo()


def sb3_trainer(context: StageContext) -> Callable[[int], None] | None:
    """A stable-baselines3 PPO with the stage's settings: ``train(steps)``; None without SB3."""
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import DummyVecEnv
    except ImportError:
        return None
    config = context.config
    settings = config.stage_1_ppo
    spec = EnvSpec.from_dict(config.env.to_dict())

    def make_env() -> gym.Env:
        env = MarketEnv(context.splits.train, context.pipeline, spec)
        return gym.wrappers.FlattenObservation(env)

    envs = DummyVecEnv([make_env] * settings.num_envs_per_env_runner)
    model = PPO(
        "MlpPolicy",
        envs,
        n_steps=settings.train_batch_size // settings.num_envs_per_env_runner,
        batch_size=settings.minibatch_size,
        n_epochs=settings.num_epochs,
        learning_rate=settings.lr,
        device="cpu",
        seed=config.seed,
    )

    def train(steps: int) -> None:
        model.learn(total_timesteps=steps, reset_num_timesteps=False)

    return train


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=3, help="PPO iterations per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--symbol", default="GOOG")
    args = parser.parse_args()

    config: TrainingConfig = load_training_config([f"data.symbol={args.symbol}"])
    bars = bars_from(config.data)
    splits = splits_from(config.data, bars)
    pipeline: FeaturePipeline = pipeline_from(config.features).fit(splits.train)
    settings = config.stage_1_ppo
    steps = args.iterations * settings.train_batch_size
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as run_dir:
        context = StageContext("stage_1_ppo", config, Path(run_dir), bars, splits, pipeline, {})
        ours, default = build_algorithm(context, ppo_stage(context)), rllib_default(context)
        runner = ours.env_runner_group.local_env_runner  # type: ignore[union-attr]
        sb3 = sb3_trainer(context)
        trainers: dict[str, Callable[[], object]] = {
            "evotrader (RLlib, CoreTransformer)": lambda: [
                ours.train() for _ in range(args.iterations)
            ],
            "RLlib default PPO (MLP)": lambda: [default.train() for _ in range(args.iterations)],
        }
        if sb3 is not None:
            trainers["stable-baselines3 PPO (MLP)"] = lambda: sb3(steps)
        for train in trainers.values():
            train()  # warm-up: start-up costs and first-iteration allocations
        seconds: dict[str, list[float]] = {name: [] for name in trainers}
        sampling: list[float] = []
        for _ in range(args.rounds):
            for name, train in trainers.items():
                seconds[name].append(timed(train))
            sampling.append(
                timed(lambda: runner.sample(num_timesteps=settings.train_batch_size, explore=True))
            )
        ours.stop()
        default.stop()

    print(
        f"model={asdict(config.model)} window={config.env.window} "
        f"batch={settings.train_batch_size} minibatch={settings.minibatch_size} "
        f"epochs={settings.num_epochs} envs={settings.num_envs_per_env_runner}"
    )
    rates = {name: steps / statistics.median(times) for name, times in seconds.items()}
    ours_rate = rates["evotrader (RLlib, CoreTransformer)"]
    for name, rate in rates.items():
        print(f"{name:<38} {rate:>8,.0f} env steps/s  (evotrader / this: {ours_rate / rate:.2f}x)")
    iteration = statistics.median(seconds["evotrader (RLlib, CoreTransformer)"]) / args.iterations
    sample = statistics.median(sampling)
    print(
        f"evotrader iteration {iteration:.3f} s: sampling {sample:.3f} s, "
        f"learning and bookkeeping {iteration - sample:.3f} s (medians of {args.rounds} rounds)"
    )
    if sb3 is None:
        print("stable-baselines3 not installed: pip install -e .[bench]")


if __name__ == "__main__":
    main()
