"""Aligned bars of several symbols prepared once for the portfolio environments.

Each asset goes through ``MarketData.build`` (the same features, prices and first decision
bar as MarketEnv would give it); this module only checks the calendars agree, refuses by
symbol bars the default features or the impact cannot use (close-only bars), and stacks the
per-asset arrays so one step slices them all at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from evotrader.data.errors import DataError
from evotrader.data.features import DEFAULT_FEATURES, FeaturePipeline, require_carried
from evotrader.env.execution import ExecutionModel
from evotrader.env.market_data import MAX_UNREALISED, MarketData, env_pipeline

MAX_WEIGHT = 10.0  # the current-weight channel is clipped to ±MAX_WEIGHT


def aligned_frames(bars: Mapping[str, pd.DataFrame]) -> tuple[tuple[str, ...], list[pd.DataFrame]]:
    """Symbols and frames of ``bars``, refusing anything not on one calendar.

    A portfolio is marked at one time for every asset, so each frame's index must equal
    the first symbol's; the ``DataError`` names the symbol and its first differing bar.
    """
    if not isinstance(bars, Mapping) or not bars:
        raise DataError("a portfolio needs a non-empty mapping of symbol -> bars")
    symbols = tuple(str(symbol) for symbol in bars)
    frames = list(bars.values())
    reference = pd.DatetimeIndex(frames[0].index)
    for symbol, frame in zip(symbols[1:], frames[1:], strict=True):
        index = pd.DatetimeIndex(frame.index)
        if index.equals(reference):
            continue
        common = min(len(index), len(reference))
        differs = np.flatnonzero(index[:common] != reference[:common])
        where = (
            f"bar {differs[0]} is {index[differs[0]]} there but {reference[differs[0]]} "
            f"for {symbols[0]}"
            if differs.size
            else f"it has {len(index)} bars, {symbols[0]} has {len(reference)}"
        )
        raise DataError(f"bars for {symbol} are not aligned with {symbols[0]}: {where}")
    return symbols, frames


def portfolio_pipeline(
    bars: Mapping[str, pd.DataFrame], pipeline: FeaturePipeline | None, fit_bars: int | None
) -> tuple[FeaturePipeline, int]:
    """``env_pipeline`` for aligned ``bars``. Without a pipeline the envs fit the default
    features, so bars that cannot carry them (close-only bars) are refused first, naming the
    symbol, where the pooled fit could only number the frames."""
    symbols, frames = aligned_frames(bars)
    if pipeline is None:
        for symbol, frame in zip(symbols, frames, strict=True):
            require_carried(
                DEFAULT_FEATURES,
                frame,
                f"the bars of {symbol}",
                "pass the env pipeline=FeaturePipeline(CLOSE_ONLY_FEATURES) fitted on earlier bars",
            )
    return env_pipeline(frames, pipeline, fit_bars)


@dataclass(frozen=True)
class PortfolioData:
    """Features (bars, assets, channels) and prices (bars, assets) on one calendar."""

    symbols: tuple[str, ...]
    timestamps: pd.DatetimeIndex
    features: np.ndarray
    fill: np.ndarray
    mark: np.ndarray
    impact: np.ndarray
    window: int
    first_decision: int
    agent_state: bool
    clip: float

    @classmethod
    def build(
        cls,
        bars: Mapping[str, pd.DataFrame],
        pipeline: FeaturePipeline,
        window: int,
        execution: ExecutionModel,
        agent_state: bool = True,
        first_bar: int = 0,
    ) -> PortfolioData:
        symbols, frames = aligned_frames(bars)
        markets = []
        for symbol, frame in zip(symbols, frames, strict=True):
            try:
                markets.append(
                    MarketData.build(frame, pipeline, window, execution, agent_state, first_bar)
                )
            except DataError as error:  # the bars do not carry a feature or the impact
                raise DataError(f"{symbol}: {error}") from error
        return cls(
            symbols=symbols,
            timestamps=markets[0].timestamps,
            features=np.ascontiguousarray(np.stack([m.features for m in markets], axis=1)),
            fill=np.stack([m.prices.fill for m in markets], axis=1),
            mark=np.stack([m.prices.mark for m in markets], axis=1),
            impact=np.stack([m.prices.impact for m in markets], axis=1),
            window=window,
            first_decision=markets[0].first_decision,
            agent_state=agent_state,
            clip=markets[0].clip,
        )

    @property
    def num_assets(self) -> int:
        return len(self.symbols)

    @property
    def last_decision(self) -> int:
        """The last bar whose decision still has a fill and a later mark."""
        return len(self.timestamps) - 2

    def windows(self) -> np.ndarray:
        """Zero-copy view (bars - window + 1, assets, window, channels)."""
        return sliding_window_view(self.features, self.window, axis=0).transpose(0, 1, 3, 2)

    def observation_space(self) -> gym.spaces.Box:
        """Clipped features; with agent state, each asset's current weight (clipped to
        ±MAX_WEIGHT) and the portfolio's unrealised return since its last rebalance."""
        shape = (self.num_assets, self.window, self.features.shape[2])
        low = np.full(shape, -self.clip, dtype=np.float32)
        high = -low
        if self.agent_state:
            low[..., -2], high[..., -2] = -MAX_WEIGHT, MAX_WEIGHT
            low[..., -1], high[..., -1] = -1.0, MAX_UNREALISED
        return gym.spaces.Box(low, high, dtype=np.float32)
