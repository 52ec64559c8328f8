"""Weather Forecaster and Chartist: accuracy on held-out synthetic labels, and batched speed.

Forecasters are fitted on synthetic regime series (seeds 0..3) and scored on held-out seeds
against the generator's true regimes, on raw log returns and on the standardised ``log_return``
feature the agent sees. Chartists are trained on seed 0 and scored on a held-out seed.
Chance is 25% for regimes and 12.5% for patterns.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from common import median_seconds
from evotrader.data import FeaturePipeline, generate_synthetic, load_bars, split_by_time
from evotrader.reasoning import (
    PATTERNS,
    REGIME_LABELS,
    available_classifiers,
    evaluate_chartist,
    evaluate_classifier,
    make_classifier,
    make_recognizer,
    train_chartist,
)


def rate(fn: Callable[[], Any], items: int, repeats: int = 5) -> float:
    """Items per second of ``fn``, median of ``repeats`` after one warm-up call."""
    return items / median_seconds(fn, repeats)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def print_matrix(title: str, labels: tuple[str, ...], confusion: np.ndarray) -> None:
    print(f"  {title} (rows true, columns predicted)")
    width = max(len(label) for label in labels)
    print("  " + " " * width + "".join(f"{label[:8]:>9}" for label in labels))
    for label, row in zip(labels, confusion, strict=True):
        print(f"  {label:>{width}}" + "".join(f"{count:>9}" for count in row))


def bench_forecasters(args: argparse.Namespace) -> None:
    train = [generate_synthetic(args.bars, seed=seed, kind="regimes").bars for seed in range(4)]
    raw = np.concatenate([np.diff(np.log(bars["close"].to_numpy())) for bars in train])
    pipeline = FeaturePipeline().fit(train)
    column = pipeline.features.index("log_return")
    scaled = np.concatenate([pipeline.transform(b)[pipeline.warmup :, column] for b in train])
    held_out = range(100, 100 + args.seeds)
    windows = np.random.default_rng(0).standard_normal((args.batch, args.window))
    print(f"Weather Forecaster: window={args.window}, {args.seeds} held-out series of {args.bars}")
    for name in available_classifiers():
        for inputs, series, pipe in (("raw", raw, None), ("standardised", scaled, pipeline)):
            classifier = make_classifier(name)
            fit_s = _timed(partial(classifier.fit, series))
            report = evaluate_classifier(
                classifier, held_out, n_bars=args.bars, window=args.window, pipeline=pipe
            )
            recall = " ".join(f"{r:.2f}" for r in report.recall())
            print(
                f"{name:>6} {inputs:<12} accuracy {report.accuracy:.3f} over {report.n} bars, "
                f"recall [{recall}], fit {fit_s:.2f} s"
            )
        print_matrix(f"{name}, standardised", REGIME_LABELS, report.confusion)
        speed = rate(partial(classifier.predict_proba, windows), args.batch)
        print(f"  predict_proba ({args.batch}, {args.window}): {speed:,.0f} windows/s")

    bars = load_bars("embedded", "GOOG")
    splits = split_by_time(bars)
    print("GOOG test split, label shares (no truth to score; fitted on GOOG's train split):")
    for name in available_classifiers():
        classifier = make_classifier(name).fit(np.diff(np.log(splits.train["close"].to_numpy())))
        shares = classifier.classify_bars(splits.test, args.window).value_counts(normalize=True)
        shown = ", ".join(f"{label} {shares.get(label, 0.0):.0%}" for label in REGIME_LABELS)
        print(f"{name:>6} {shown}")


def bench_chartists(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    cnn = train_chartist(seed=0)
    train_s = time.perf_counter() - start
    paths = np.cumsum(np.random.default_rng(0).standard_normal((args.batch, args.window)), axis=1)
    close = np.log(split_by_time(load_bars("embedded", "GOOG")).test["close"].to_numpy())
    goog = np.lib.stride_tricks.sliding_window_view(close, args.window)
    print(f"\nChartist: held-out seed 1234, {args.patterns} patterns; cnn trained {train_s:.1f} s")
    for name, recognizer in (("cnn", cnn), ("templates", make_recognizer("templates"))):
        report = evaluate_chartist(recognizer, seed=1234, n_samples=args.patterns)
        print(f"{name:>9} accuracy {report.accuracy:.3f}")
        for pattern, precision, recall in zip(
            PATTERNS, report.precision, report.recall, strict=True
        ):
            print(f"  {pattern:<28} precision {precision:.2f}  recall {recall:.2f}")
        print_matrix(name, PATTERNS, report.confusion)
        speed = rate(partial(recognizer.predict, paths), args.batch)
        print(f"  predict ({args.batch}, {args.window}): {speed:,.0f} paths/s")
        labels, confidence, _ = recognizer.predict(goog)
        shares = np.bincount(labels, minlength=len(PATTERNS)) / len(labels)
        shown = ", ".join(f"{p} {share:.0%}" for p, share in zip(PATTERNS, shares, strict=True))
        print(f"  GOOG test windows (no truth): {shown}; mean confidence {confidence.mean():.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--patterns", type=int, default=4000)
    args = parser.parse_args()
    bench_forecasters(args)
    bench_chartists(args)


if __name__ == "__main__":
    main()
