"""PPO training throughput: env steps/s of sampling + learning, quick-profile model, 2 cores.

Runs a few RLlib PPO iterations on embedded GOOG with the quick profile's settings and
prints env steps per second of wall time (sampling and learning together).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import ray

from evotrader.config import bars_from, load_training_config, pipeline_from, splits_from
from evotrader.training.pipeline import StageContext
from evotrader.training.ppo_stage import ppo_stage
from evotrader.training.rllib_stage import build_algorithm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--symbol", default="GOOG")
    args = parser.parse_args()

    config = load_training_config([f"data.symbol={args.symbol}"])
    bars = bars_from(config.data)
    splits = splits_from(config.data, bars)
    pipeline = pipeline_from(config.features).fit(splits.train)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as run_dir:
        context = StageContext("stage_1_ppo", config, Path(run_dir), bars, splits, pipeline, {})
        algo = build_algorithm(context, ppo_stage(context))
        algo.train()  # warm-up: first iteration includes start-up costs
        started = time.perf_counter()
        for _ in range(args.iterations):
            algo.train()
        seconds = time.perf_counter() - started
        algo.stop()
    steps = args.iterations * config.stage_1_ppo.train_batch_size
    settings = config.stage_1_ppo
    print(
        f"model={asdict(config.model)} window={config.env.window} "
        f"batch={settings.train_batch_size} epochs={settings.num_epochs} "
        f"envs={settings.num_envs_per_env_runner}"
    )
    print(
        f"PPO train: {steps / seconds:,.0f} env steps/s (sampling + learning, "
        f"{seconds / args.iterations:.2f} s/iteration)"
    )


if __name__ == "__main__":
    main()
