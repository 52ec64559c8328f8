"""Does MAML adapt faster than PPO's weights? Adaptation curves on held-out sign-flip tasks.

Trains PPO then MAML through run_training.py on synthetic SIGN_SWITCH bars: an AR(1) whose
coefficient flips between +0.5 (momentum) and -0.5 (mean reversion) every 250 bars, so each
(symbol, period) task has a planted signal whose sign the policy must discover. Then, on the
blocks after the training split (tasks MAML never saw), both checkpoints take the same inner
policy-gradient steps and are scored on fresh episodes: mean episode log return after costs
against the number of inner steps. Prints both curves and writes them as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import ROOT, run_training
from evotrader.agents.loading import policy_from_checkpoint
from evotrader.core.checkpoint import load_checkpoint
from evotrader.env import VectorMarketEnv
from evotrader.training.adaptation import adaptation_curve, maml_settings
from evotrader.training.guards import TradableCheckpoint

BLOCK = 250
OVERRIDES = [
    "data=synthetic",
    "data.symbol=SIGN_SWITCH",
    "data.options.n_bars=6000",
    "stages=[stage_1_ppo,stage_3_maml]",
    "env.window=8",
    "env.episode_length=32",
    "model.model_dim=16",
    "model.ff_dim=32",
    "model.output_dim=16",
    "stage_1_ppo.iterations=8",
    "stage_1_ppo.train_batch_size=1024",
    "stage_1_ppo.minibatch_size=256",
    "stage_1_ppo.num_epochs=4",
    "stage_1_ppo.lr=1e-3",
    "stage_1_ppo.eval_interval=4",
    "stage_3_maml.meta_iterations=40",
    "stage_3_maml.meta_batch_size=8",
    "stage_3_maml.inner_lr=1.0",
    "stage_3_maml.outer_lr=3e-3",
    "stage_3_maml.num_envs=32",
    "stage_3_maml.episode_length=32",
    "stage_3_maml.gamma=0.5",
    f"stage_3_maml.task_bars={BLOCK}",
    "stage_3_maml.adapt_bars=128",
    "stage_3_maml.eval_interval=10",
]


def held_out_curves(run_dir: Path, steps: int, seeds: int) -> dict[str, list[float]]:
    """Both stages' mean adaptation curves over the held-out blocks and ``seeds`` seeds."""
    ppo = load_checkpoint(run_dir / "SIGN_SWITCH_stage_1_ppo.pth")
    tradable = TradableCheckpoint.load(run_dir / "SIGN_SWITCH_stage_3_maml.pth")
    maml = tradable.checkpoint
    bars = tradable.bars()
    train_end = bars.index.get_loc(bars.loc[: maml.data_range["train_end"]].index[-1])
    first_block = -(-(train_end + 1) // BLOCK) * BLOCK  # the first block MAML never saw
    pipeline = tradable.pipeline
    env = replace(tradable.spec, episode_length=32)
    settings = replace(maml_settings(maml.hyperparameters), inner_steps=steps, num_envs=64)
    curves: dict[str, list[list[float]]] = {"ppo": [], "maml": []}
    for start in range(first_block, len(bars) - BLOCK + 1, BLOCK):
        block = bars.iloc[start : start + BLOCK]
        vector_env = VectorMarketEnv(block, settings.num_envs, pipeline, env)
        for seed in range(seeds):
            for name, checkpoint in (("ppo", ppo), ("maml", maml)):
                policy = policy_from_checkpoint(checkpoint)
                curves[name].append(adaptation_curve(policy, vector_env, settings, seed))
    return {name: np.mean(values, axis=0).tolist() for name, values in curves.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--steps", type=int, default=3, help="inner steps on the curve")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the curves as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run_name = f"maml-adaptation-seed{args.seed}"
    run_training(
        f"runs_dir={args.runs_dir}", f"run_name={run_name}", f"seed={args.seed}", *OVERRIDES
    )
    curves = held_out_curves(args.runs_dir / run_name, args.steps, args.seeds)
    print("\nHeld-out sign-flip tasks: mean episode log return after costs vs inner steps")
    print(f"{'inner steps':<14}" + "".join(f"{k:>10d}" for k in range(args.steps + 1)))
    for name, curve in curves.items():
        print(f"{'from ' + name:<14}" + "".join(f"{value:>10.4f}" for value in curve))
    if args.out:
        args.out.write_text(json.dumps(curves, indent=2))


if __name__ == "__main__":
    main()
