"""VectorMarketEnv: many MarketEnv accounts stepped at once with numpy, no per-env loop.

Each sub-environment trades one symbol (drawn at every reset) from a shared, concatenated
feature array, using exactly MarketEnv's arithmetic (the same ``rebalance`` and marks)
on arrays. Autoreset follows Gymnasium's default NEXT_STEP mode: the step after an
episode ends resets that sub-environment and ignores its action.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import gymnasium as gym
import numpy as np
import pandas as pd

from evotrader.data.features import FeaturePipeline
from evotrader.env.execution import rebalance
from evotrader.env.market_data import MarketData, env_pipeline, fill_agent_state, window_view
from evotrader.env.rewards import differential_sharpe
from evotrader.env.spec import EnvSpec


class VectorMarketEnv(gym.vector.VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` independent accounts over one or many symbols' bars.

    ``spec``, ``random_start``, ``pipeline`` and ``fit_bars`` work as in MarketEnv: without a
    fitted pipeline the normalisation is fitted on the first ``fit_bars`` bars of every
    symbol, pooled, and those bars are never traded.
    """

    # gymnasium declares metadata as an instance attribute though it is read per class.
    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}  # type: ignore[misc]

    def __init__(
        self,
        bars: pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame],
        num_envs: int,
        pipeline: FeaturePipeline | None = None,
        spec: EnvSpec | None = None,
        *,
        random_start: bool = True,
        fit_bars: int | None = None,
    ) -> None:
        frames = _as_frames(bars)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.env_spec = spec = spec or EnvSpec()
        pipeline, first_bar = env_pipeline(frames, pipeline, fit_bars)
        self.pipeline = pipeline
        markets = [
            MarketData.build(f, pipeline, spec.window, spec.execution, spec.agent_state, first_bar)
            for f in frames
        ]
        offsets = np.cumsum([0] + [m.num_bars for m in markets[:-1]])
        self._first = np.array(
            [o + m.first_decision for o, m in zip(offsets, markets, strict=True)]
        )
        self._last = np.array([o + m.last_decision for o, m in zip(offsets, markets, strict=True)])
        self._features = np.concatenate([m.features for m in markets])
        self._windows = window_view(self._features, spec.window)
        self._fill = np.concatenate([m.prices.fill for m in markets])
        self._mark = np.concatenate([m.prices.mark for m in markets])
        self._impact = np.concatenate([m.prices.impact for m in markets])
        self._linear_rate = spec.execution.linear_rate

        self.num_envs = num_envs
        self.positions = np.asarray(spec.positions, dtype=np.float64)
        self.random_start = random_start
        self.single_action_space = gym.spaces.Discrete(len(self.positions))
        self.single_observation_space = markets[0].observation_space(self.positions)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self._rng = np.random.default_rng()
        zeros = np.zeros(num_envs)
        self._t = np.zeros(num_envs, dtype=np.int64)
        self._end = np.zeros(num_envs, dtype=np.int64)
        self._cash, self._units, self._target = zeros.copy(), zeros.copy(), zeros.copy()
        self._equity, self._entry_equity = zeros.copy(), zeros.copy()
        self._sharpe_mean, self._sharpe_second = zeros.copy(), zeros.copy()
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._reset_envs(np.ones(self.num_envs, dtype=bool))
        return self._observations(), {"equity": self._equity.copy()}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        resetting = self._needs_reset.copy()
        if resetting.any():
            self._reset_envs(resetting)
        active = ~resetting
        target = self.positions[np.asarray(actions)]
        trade = active & (target != self._target)
        if trade.any():
            t = self._t
            cash, units, _ = rebalance(
                self._cash, self._units, target, self._fill[t], self._linear_rate, self._impact[t]
            )
            self._cash = np.where(trade, cash, self._cash)
            self._units = np.where(trade, units, self._units)
            self._target = np.where(trade, target, self._target)
            entry = self._cash + self._units * self._fill[t]
            self._entry_equity = np.where(trade, entry, self._entry_equity)
        self._t += active
        previous = self._equity
        equity = self._cash + self._units * self._mark[self._t]
        terminated = active & (equity <= 0.0)
        equity = np.where(terminated, 1e-12 * self.env_spec.initial_cash, equity)
        self._equity = np.where(active, equity, previous)
        rewards = np.where(active, self._rewards(previous, equity), 0.0)
        truncated = active & ~terminated & (self._t >= self._end)
        self._needs_reset = terminated | truncated
        infos = {"equity": self._equity.copy()}
        return self._observations(), rewards, terminated, truncated, infos

    def _rewards(self, previous: np.ndarray, equity: np.ndarray) -> np.ndarray:
        if self.env_spec.reward == "log_return":
            return cast(np.ndarray, np.log(equity / previous))
        eta = self.env_spec.sharpe_eta
        reward, self._sharpe_mean, self._sharpe_second = differential_sharpe(
            equity / previous - 1.0, self._sharpe_mean, self._sharpe_second, eta
        )
        return reward

    def _reset_envs(self, mask: np.ndarray) -> None:
        count = int(mask.sum())
        symbol = self._rng.integers(len(self._first), size=count)
        first, last = self._first[symbol], self._last[symbol]
        length = self.env_spec.episode_length or int((last - first).max()) + 1
        start = first
        if self.random_start:
            latest = np.maximum(last - length + 1, first)
            start = first + (self._rng.random(count) * (latest - first + 1)).astype(np.int64)
        self._t[mask] = start
        self._end[mask] = np.minimum(start + length, last + 1)
        self._cash[mask] = self.env_spec.initial_cash
        self._equity[mask] = self._entry_equity[mask] = self.env_spec.initial_cash
        self._units[mask] = self._target[mask] = 0.0
        self._sharpe_mean[mask] = self._sharpe_second[mask] = 0.0
        self._needs_reset[mask] = False

    def _observations(self) -> np.ndarray:
        obs = self._windows[self._t - self.env_spec.window + 1]
        if self.env_spec.agent_state:
            unrealised = np.where(self._target != 0, self._equity / self._entry_equity - 1.0, 0.0)
            fill_agent_state(obs, self._target, unrealised)
        return obs


def _as_frames(
    bars: pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame],
) -> list[pd.DataFrame]:
    if isinstance(bars, pd.DataFrame):
        return [bars]
    frames = list(bars.values()) if isinstance(bars, Mapping) else list(bars)
    if not frames:
        raise ValueError("VectorMarketEnv needs bars for at least one symbol")
    return frames
