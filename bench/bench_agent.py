"""AutonomousAgent: batched act throughput (states/s) and the wall time of one learn.

Quick-profile sizes (window 32, model_dim 32, one layer) on synthetic AR(1) bars. ``learn``
runs on ``--bars`` training bars with a shared, already trained Chartist (as a population
shares one); the Chartist's own training time is printed apart. Act throughput is measured
at each batch size over the bars' observation windows, with the what-if refinement on, and
the think loop's parts are timed at the largest batch.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch

from common import median_seconds
from evotrader.agents import AgentArchitecture, AgentHyperparameters, AutonomousAgent
from evotrader.agents.thinking import rollout_uniforms, what_if_sharpe
from evotrader.data import FeaturePipeline, generate_synthetic
from evotrader.env.execution import ExecutionModel
from evotrader.env.market_data import MarketData
from evotrader.models import TransformerSpec
from evotrader.reasoning import ChartistConfig, train_chartist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--model-dim", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    bars = generate_synthetic(args.bars, seed=args.seed, kind="ar1", ar_coef=0.3).bars
    pipeline = FeaturePipeline().fit(bars)
    spec = TransformerSpec(
        input_dim=pipeline.num_features,
        model_dim=args.model_dim,
        num_heads=4,
        num_layers=1,
        ff_dim=2 * args.model_dim,
        output_dim=args.model_dim,
        max_len=args.window,
    )
    architecture = AgentArchitecture(encoder=spec, window=args.window)
    hp = AgentHyperparameters()
    options = dict(architecture.chartist_options)
    chartist_seed = int(options.pop("seed", 0))
    start = time.perf_counter()
    chartist = train_chartist(ChartistConfig(**options), seed=chartist_seed)
    chartist_seconds = time.perf_counter() - start
    agent = AutonomousAgent(architecture, hp, seed=args.seed, chartist=chartist)
    report = agent.learn(bars, pipeline, bars, seed=args.seed)

    market = MarketData.build(bars, pipeline, args.window, ExecutionModel(), agent_state=False)
    windows = np.ascontiguousarray(market.windows()[market.first_decision - args.window + 1 :])
    print(
        f"bars={args.bars} window={args.window} model_dim={args.model_dim} threads={args.threads} "
        f"memory_k={hp.memory_k} what_if_paths={hp.what_if_paths}"
    )
    print(
        f"learn            {report.seconds:>8.2f} s   ({report.samples} samples, "
        f"{report.events} events stored; chartist trained apart in {chartist_seconds:.2f} s)"
    )
    for batch in args.batch_sizes:
        obs = windows[np.arange(batch) % len(windows)]
        repeats = max(3, min(50, 4096 // batch))
        rate = batch / median_seconds(partial(agent.act, obs), repeats)
        print(f"act  batch {batch:>5} {rate:>12,.0f} states/s (median of {repeats})")

    obs = windows[np.arange(args.batch_sizes[-1]) % len(windows)]
    x = torch.as_tensor(obs)
    with torch.no_grad():
        embedding = agent.world_model.embed(x)
        thought = agent.think(obs)
        output = agent.world_model(x, thought.context)
        returns = obs[:, :, architecture.return_channel].astype(np.float64)
        positions = torch.tensor(architecture.positions)
        uniform = rollout_uniforms(args.seed, hp.what_if_paths, hp.what_if_horizon)
        parts = {
            "trunk embed": lambda: agent.world_model.embed(x),
            "memory recall": lambda: agent.memory.retrieve(embedding.numpy(), hp.memory_k),
            "forecaster": lambda: agent.forecaster.predict_proba(returns),
            "chartist": lambda: chartist.predict_proba(np.cumsum(returns, axis=1)),
            "world model": lambda: agent.world_model(x, thought.context),
            "what-if": lambda: what_if_sharpe(
                output.quantiles, agent.world_model.levels, uniform, positions, 3e-4
            ),
        }
        print(f"think loop parts at batch {len(obs)} (ms, medians of 3):")
        for name, part in parts.items():
            print(f"  {name:<14} {median_seconds(part, 3) * 1e3:>8.1f}")


if __name__ == "__main__":
    main()
