"""World-model forecast quality on the validation split: pinball loss and information coefficient.

For each series (synthetic AR(1) with a planted ar_coef 0.3, a random walk, embedded GOOG and
S&P 500) the bars are split by time (train 0.7 / validation 0.15 / test 0.15, embargo 5, as in
configs/data/embedded.yaml), the feature pipeline is fitted on train only, the world model is
trained on train and judged on validation. Pinball losses are means over the horizon and the
quantiles, for the model and the two unconditional baselines fitted on train (``zero``: the
training quantiles shifted to a zero median; ``historical``: the training quantiles); ``next``
is the next bar alone. IC: Spearman rank correlation of the predicted next-bar median with the
realised next-bar return, with its t-statistic; vol IC: the same for the predicted volatility
against the absolute error of that median. Expected: AR(1) IC near 0.3 and t > 3, random
walk |t| < 2.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import pandas as pd
import torch

from evotrader.data import FeaturePipeline, generate_synthetic, load_bars, split_by_time
from evotrader.models import TransformerSpec
from evotrader.models.world_model import TransformerWorldModel, WorldModelConfig
from evotrader.models.world_model_training import (
    WorldModelTrainingConfig,
    evaluate_world_model,
    train_world_model,
)

SERIES: dict[str, Callable[[int], pd.DataFrame]] = {
    "ar1": lambda n_bars: generate_synthetic(n_bars, seed=0, kind="ar1", ar_coef=0.3).bars,
    "random_walk": lambda n_bars: generate_synthetic(n_bars, seed=0, kind="random_walk").bars,
    "GOOG": lambda _: load_bars("embedded", "GOOG"),
    "SP500": lambda _: load_bars("embedded", "SP500"),
}


def run(bars: pd.DataFrame, args: argparse.Namespace, seed: int) -> dict[str, float]:
    splits = split_by_time(bars, train=0.7, validation=0.15, test=0.15, embargo=5)
    pipeline = FeaturePipeline().fit(splits.train)
    torch.manual_seed(seed)
    spec = TransformerSpec(
        input_dim=pipeline.num_features,
        model_dim=args.model_dim,
        num_heads=4,
        num_layers=args.layers,
        ff_dim=2 * args.model_dim,
        output_dim=args.model_dim,
        max_len=args.window,
    )
    model = TransformerWorldModel(spec, 3, WorldModelConfig(horizon=args.horizon))
    config = WorldModelTrainingConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size)
    start = time.perf_counter()
    train_world_model(model, splits.train, pipeline, args.window, config=config, seed=seed)
    seconds = time.perf_counter() - start
    metrics = evaluate_world_model(
        model, bars, splits.validation, pipeline, args.window, train=splits.train
    )
    return metrics | {"train_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-bars", type=int, default=3000, help="synthetic series length")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--model-dim", type=int, default=32)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--series", nargs="+", choices=list(SERIES), default=list(SERIES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"window={args.window} model_dim={args.model_dim} layers={args.layers} "
        f"horizon={args.horizon} epochs={args.epochs} lr={args.lr} batch={args.batch_size} "
        f"threads={args.threads}; validation split, pinball x1e4"
    )
    header = (
        f"{'series':<12} {'seed':>4} {'n':>5} {'model':>7} {'zero':>7} {'hist':>7} "
        f"{'next':>7} {'n.zero':>7} {'n.hist':>7} {'IC':>7} {'t':>6} {'volIC':>6} {'vol t':>6} "
        f"{'train s':>7}"
    )
    print(header)
    for name in args.series:
        bars = SERIES[name](args.n_bars)
        for seed in args.seeds:
            m = run(bars, args, seed)
            losses = [
                m[f"pinball_{kind}{suffix}"] * 1e4
                for suffix in ("", "_next")
                for kind in ("model", "zero", "historical")
            ]
            print(
                f"{name:<12} {seed:>4} {m['n']:>5.0f} "
                + " ".join(f"{loss:>7.3f}" for loss in losses)
                + f" {m['ic']:>+7.3f} {m['ic_t']:>+6.2f} {m['volatility_ic']:>+6.3f}"
                f" {m['volatility_ic_t']:>+6.2f} {m['train_s']:>7.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
