"""Seeded labelled chart patterns embedded in noise: the Chartist's training and test data.

Each pattern is a template of keypoints (time in [0, 1], price in pattern amplitudes) drawn
with jittered keypoints over a random span and position of the window, inside a random-walk
background with a random trend and observation noise. ``none`` is the background alone. The
generated paths are price-like in arbitrary units; recognisers normalise them with
``normalise_paths``, which removes offset and scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evotrader.core.checks import check_fields

PATTERNS: tuple[str, ...] = (
    "head_and_shoulders",
    "inverse_head_and_shoulders",
    "double_top",
    "double_bottom",
    "ascending_triangle",
    "descending_triangle",
    "flag",
    "none",
)
NONE = PATTERNS.index("none")

_HEAD_AND_SHOULDERS = ((0, 0.14, 0.28, 0.5, 0.72, 0.86, 1), (0, 0.6, 0.3, 1, 0.3, 0.6, -0.05))
_DOUBLE_TOP = ((0, 0.25, 0.5, 0.75, 1), (0, 1, 0.45, 1, 0.1))
_ASCENDING_TRIANGLE = (
    (0, 0.2, 0.36, 0.52, 0.65, 0.77, 0.87, 0.95, 1),
    (0, 1, 0.3, 1, 0.6, 1, 0.8, 1, 1.15),
)
_FLAG = ((0, 0.3, 0.42, 0.54, 0.66, 0.78, 0.9, 1), (0, 1, 0.8, 0.9, 0.7, 0.8, 0.6, 0.7))
# Keypoints (times, prices) per pattern and the sign applied to the prices; "none" has none.
TEMPLATES: dict[str, tuple[tuple[float, ...], tuple[float, ...], float]] = {
    "head_and_shoulders": (*_HEAD_AND_SHOULDERS, 1.0),
    "inverse_head_and_shoulders": (*_HEAD_AND_SHOULDERS, -1.0),
    "double_top": (*_DOUBLE_TOP, 1.0),
    "double_bottom": (*_DOUBLE_TOP, -1.0),
    "ascending_triangle": (*_ASCENDING_TRIANGLE, 1.0),
    "descending_triangle": (*_ASCENDING_TRIANGLE, -1.0),
    "flag": (*_FLAG, 1.0),
}
# A flag is either bullish (the template) or bearish (its mirror): both are "flag".
_EITHER_SIGN = frozenset({"flag"})


@dataclass(frozen=True)
class PatternConfig:
    """Randomisation ranges; amplitudes are relative to the pattern's height (1)."""

    min_span: float = 0.4
    max_span: float = 1.0
    jitter: float = 0.08
    noise: tuple[float, float] = (0.02, 0.25)
    walk: tuple[float, float] = (0.01, 0.06)
    trend: float = 1.0

    def __post_init__(self) -> None:
        problems = [
            (
                not 0 < self.min_span <= self.max_span <= 1,
                f"need 0 < min_span <= max_span <= 1, got {self.min_span}, {self.max_span}",
            ),
            (not 0 <= self.jitter < 0.5, f"jitter must be in [0, 0.5), got {self.jitter}"),
            (self.trend < 0, f"trend must be >= 0, got {self.trend}"),
        ]
        for name in ("noise", "walk"):
            low, high = getattr(self, name)
            problems.append((not 0 <= low <= high, f"{name} must be 0 <= low <= high"))
        check_fields("PatternConfig", problems)


def generate_patterns(
    n: int, length: int = 64, *, seed: int = 0, config: PatternConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` paths (n, length) float32 and their labels (n,) indices into PATTERNS.

    Classes are balanced (``n // 8`` each, the remainder spread from the first class) and
    shuffled; everything is determined by ``seed``.
    """
    if n < 1 or length < 16:
        raise ValueError(f"generate_patterns: need n >= 1 and length >= 16, got {n}, {length}")
    config = config or PatternConfig()
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(PATTERNS))
    paths = np.empty((n, length), dtype=np.float32)
    for i, label in enumerate(labels):
        paths[i] = _draw(rng, PATTERNS[label], length, config)
    return paths, labels.astype(np.int64)


def _draw(rng: np.random.Generator, pattern: str, length: int, config: PatternConfig) -> np.ndarray:
    """One path: background walk + trend, the pattern over its span, observation noise."""
    walk = np.cumsum(rng.normal(0.0, rng.uniform(*config.walk), length))
    trend = rng.uniform(-config.trend, config.trend) * np.linspace(0.0, 1.0, length)
    path = walk + trend
    if pattern != "none":
        span = round(rng.uniform(config.min_span, config.max_span) * length)
        start = int(rng.integers(0, length - span + 1))
        shape = _jittered(rng, pattern, config.jitter, span)
        # The pattern replaces the walk's moves over its span; moves outside it carry on.
        inside = slice(start, start + span)
        path[inside] = path[start] + shape + trend[inside] - trend[start]
        path[start + span :] += shape[-1] - (walk[start + span - 1] - walk[start])
    return path + rng.normal(0.0, rng.uniform(*config.noise), length)


def _jittered(rng: np.random.Generator, pattern: str, jitter: float, span: int) -> np.ndarray:
    """The template's keypoints, jittered in time and price, interpolated onto ``span`` bars."""
    times, prices, sign = (np.asarray(part, dtype=np.float64) for part in TEMPLATES[pattern])
    gaps = np.diff(times) * (1 + rng.uniform(-jitter, jitter, len(times) - 1) * 2)
    times = np.concatenate(([0.0], np.cumsum(gaps) / gaps.sum()))
    prices = prices + rng.normal(0.0, jitter, len(prices))
    if pattern in _EITHER_SIGN and rng.random() < 0.5:
        sign = -sign
    return sign * np.interp(np.linspace(0.0, 1.0, span), times, prices - prices[0])


def template_paths(length: int) -> dict[str, np.ndarray]:
    """Each pattern's noiseless template over ``length`` bars (both signs of either-sign ones)."""
    grid = np.linspace(0.0, 1.0, length)
    out: dict[str, np.ndarray] = {}
    for pattern, (times, prices, sign) in TEMPLATES.items():
        out[pattern] = sign * np.interp(grid, times, prices)
        if pattern in _EITHER_SIGN:
            out[f"{pattern}:mirror"] = -out[pattern]
    return out


def normalise_paths(paths: np.ndarray, length: int) -> np.ndarray:
    """Resample (batch, L) paths linearly to ``length`` bars, then zero mean and unit std.

    Offset- and scale-free, so close prices, cumulative log returns and cumulative standardised
    returns of the same shape normalise alike; a flat path becomes all zeros.
    """
    paths = np.asarray(paths, dtype=np.float64)
    if paths.shape[1] != length:
        position = np.linspace(0.0, paths.shape[1] - 1, length)
        left = np.minimum(position.astype(np.int64), paths.shape[1] - 2)
        frac = position - left
        paths = paths[:, left] * (1 - frac) + paths[:, left + 1] * frac
    centred = paths - paths.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, keepdims=True)
    scale = np.where(std > 1e-12 * (1 + np.abs(paths).max(axis=1, keepdims=True)), std, np.inf)
    return (centred / scale).astype(np.float32)
