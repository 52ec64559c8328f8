"""Bars turned into what every market component reads: features, windows and prices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from evotrader.data.features import FeaturePipeline
from evotrader.env.execution import ExecutionModel, ExecutionPrices

AGENT_STATE_CHANNELS = 2  # position held, unrealised return since the last trade
MAX_UNREALISED = 10.0  # the unrealised-return channel is clipped to [-1, MAX_UNREALISED]
DEFAULT_FIT_BARS = 252  # one year of daily bars fits the normalisation of an env given none


def env_pipeline(
    frames: Sequence[pd.DataFrame], pipeline: FeaturePipeline | None, fit_bars: int | None
) -> tuple[FeaturePipeline, int]:
    """The feature pipeline an env uses and the first bar it may decide on.

    A given pipeline was fitted elsewhere (training fits it on the training split), so
    every bar with a full window is tradable. Without one, the normalisation is fitted on
    the first ``fit_bars`` bars of each frame (default ``DEFAULT_FIT_BARS``) and those bars
    are never traded, so the observation at bar t depends on bars <= t only. This is the
    training recipe in miniature: fit on the past, then trade what follows with fixed
    statistics, as checkpoints and the live bot do. Fitting on every bar given would leak
    the future into the first observation; expanding statistics would give one feature
    value a different meaning early and late and match no pipeline a checkpoint can carry.
    """
    if pipeline is not None:
        if fit_bars is not None:
            raise ValueError("fit_bars only applies when no fitted pipeline is given")
        return pipeline, 0
    fit_bars = DEFAULT_FIT_BARS if fit_bars is None else fit_bars
    shortest = min(len(frame) for frame in frames)
    if not 0 < fit_bars < shortest:
        raise ValueError(
            f"fit_bars must lie in [1, {shortest}) for {shortest} bars, got {fit_bars}; "
            "pass more bars, or a pipeline fitted on earlier data"
        )
    return FeaturePipeline().fit([frame.iloc[:fit_bars] for frame in frames]), fit_bars


@dataclass(frozen=True)
class MarketData:
    """One symbol's bars prepared once, so stepping only slices precomputed arrays.

    ``features`` carries ``AGENT_STATE_CHANNELS`` zero columns at the end when the
    observation includes the agent's own state; the environments fill them per step.
    """

    timestamps: pd.DatetimeIndex
    features: np.ndarray
    prices: ExecutionPrices
    window: int
    first_decision: int
    agent_state: bool
    clip: float

    @classmethod
    def build(
        cls,
        bars: pd.DataFrame,
        pipeline: FeaturePipeline,
        window: int,
        execution: ExecutionModel,
        agent_state: bool = True,
        first_bar: int = 0,
    ) -> MarketData:
        """Features, prices and the first decision bar: the later of ``first_bar`` and
        the first bar with a full feature and observation window."""
        if window < 1:
            raise ValueError(f"observation window must be >= 1, got {window}")
        features = pipeline.transform(bars)
        if agent_state:
            state = np.zeros((len(bars), AGENT_STATE_CHANNELS), dtype=np.float32)
            features = np.concatenate([features, state], axis=1)
        first_decision = max(pipeline.warmup + window - 1, first_bar)
        if len(bars) < first_decision + 2:
            raise ValueError(
                f"need at least {first_decision + 2} bars for window {window}, feature "
                f"warm-up {pipeline.warmup} and first decision bar {first_decision}, "
                f"got {len(bars)}"
            )
        return cls(
            timestamps=pd.DatetimeIndex(bars.index),
            features=np.ascontiguousarray(features),
            prices=execution.prices(bars),
            window=window,
            first_decision=first_decision,
            agent_state=agent_state,
            clip=pipeline.clip,
        )

    @property
    def num_bars(self) -> int:
        return len(self.timestamps)

    @property
    def last_decision(self) -> int:
        """The last bar whose decision still has a fill and a later mark."""
        return self.num_bars - 2

    @property
    def num_channels(self) -> int:
        return int(self.features.shape[1])

    @property
    def num_feature_channels(self) -> int:
        return self.num_channels - (AGENT_STATE_CHANNELS if self.agent_state else 0)

    def observation_space(self, positions: Sequence[float] | np.ndarray) -> gym.spaces.Box:
        """Exact bounds: clipped features, then position and unrealised-return channels."""
        low = np.full((self.window, self.num_channels), -self.clip, dtype=np.float32)
        high = -low
        if self.agent_state:
            column = self.num_feature_channels
            low[:, column], high[:, column] = min(positions), max(positions)
            low[:, column + 1], high[:, column + 1] = -1.0, MAX_UNREALISED
        return gym.spaces.Box(low, high, dtype=np.float32)

    def windows(self) -> np.ndarray:
        return window_view(self.features, self.window)


def episode_bounds(
    first_decision: int,
    last_decision: int,
    episode_length: int | None,
    start: int | None,
    rng: np.random.Generator | None,
) -> tuple[int, int]:
    """An episode's first decision bar and the bar it ends on (exclusive), for MarketEnv and
    PortfolioEnv: from ``start`` when given (checked), else from the first decision bar, or
    a random bar when ``rng`` is given and the episode is shorter than the data."""
    first, last = first_decision, last_decision
    if start is not None:
        first = int(start)
        if not first_decision <= first <= last:
            raise ValueError(
                f"start bar {first} outside [{first_decision}, {last}]: "
                "earlier bars lack a full feature window"
            )
    length = episode_length or (last - first + 1)
    begin = first
    if rng is not None and last - length + 1 > first:
        begin = int(rng.integers(first, last - length + 2))
    return begin, min(begin + length, last + 1)


def fill_agent_state(
    obs: np.ndarray, position: float | np.ndarray, unrealised: float | np.ndarray
) -> np.ndarray:
    """Write the agent's own state into the last two channels of ``obs``, in place.

    The one definition of those channels for VectorMarketEnv, the backtest engine and the live
    runner: the target position held, then the unrealised return since the last trade clipped
    to [-1, MAX_UNREALISED] (``clip_unrealised``). MarketEnv, on its per-step hot path, writes
    the same pair itself into a reused word (``MarketEnv._observation``; test_env_speedups
    holds both to the pre-speed-up outputs). ``obs`` is one window (window, channels) with
    float states, or a batch (n, window, channels) with (n,) arrays and contiguous channels.
    Returns ``obs``.
    """
    if obs.ndim == 3:
        # Each window's two channels are packed once and written as 64-bit words (a float32
        # pair's bytes, unchanged): one strided store per row instead of two, ~2x faster.
        pair = np.empty((len(obs), 2), dtype=obs.dtype)
        pair[:, 0] = position
        pair[:, 1] = np.clip(unrealised, -1.0, MAX_UNREALISED)
        obs[..., -2:].view(np.int64)[...] = pair.view(np.int64)[:, None, :]
    else:
        obs[:, -2] = position
        obs[:, -1] = clip_unrealised(float(unrealised))
    return obs


def clip_unrealised(unrealised: float) -> float:
    """The unrealised-return channel of one observation: clipped to [-1, MAX_UNREALISED].

    Comparisons rather than min(max()), which cost 3x more per step; NaN passes unchanged.
    """
    if unrealised < -1.0:
        return -1.0
    return MAX_UNREALISED if unrealised > MAX_UNREALISED else unrealised


def window_view(features: np.ndarray, window: int) -> np.ndarray:
    """Zero-copy view (bars - window + 1, window, channels); row i ends at bar i + window - 1."""
    return sliding_window_view(features, window, axis=0).transpose(0, 2, 1)
