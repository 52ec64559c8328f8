"""VectorPortfolioEnv: many PortfolioEnv accounts over one universe, stepped together.

Every sub-environment trades all the assets from its own start bar with PortfolioEnv's
arithmetic: observations, marks and rewards are computed for the batch with numpy, and
the accounts that trade rebalance in one batched ``rebalance_portfolio`` call, whose
arithmetic per account is PortfolioEnv's, so a sub-environment moves exactly as a
PortfolioEnv does. Autoreset follows
Gymnasium's default NEXT_STEP mode, as VectorMarketEnv's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd

from evotrader.data.features import FeaturePipeline
from evotrader.env.execution import rebalance_portfolio
from evotrader.env.market_data import fill_agent_state
from evotrader.env.portfolio_data import MAX_WEIGHT, PortfolioData, portfolio_pipeline
from evotrader.env.portfolio_env import equity_reward
from evotrader.env.portfolio_spec import PortfolioSpec
from evotrader.env.spec import EnvSpec


class VectorPortfolioEnv(gym.vector.VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` independent portfolios over the same aligned bars.

    Settings work as in PortfolioEnv; with ``random_start`` each sub-environment draws its
    own start bar at every reset from the generator ``reset(seed=...)`` seeds.
    """

    # gymnasium declares metadata as an instance attribute though it is read per class.
    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}  # type: ignore[misc]

    def __init__(
        self,
        bars: Mapping[str, pd.DataFrame],
        num_envs: int,
        pipeline: FeaturePipeline | None = None,
        spec: EnvSpec | None = None,
        portfolio: PortfolioSpec | None = None,
        *,
        random_start: bool = True,
        fit_bars: int | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        pipeline, first_bar = portfolio_pipeline(bars, pipeline, fit_bars)
        self.env_spec = spec = spec or EnvSpec()
        self.portfolio = portfolio = portfolio or PortfolioSpec()
        self.pipeline = pipeline
        self.market = market = PortfolioData.build(
            bars, pipeline, spec.window, spec.execution, spec.agent_state, first_bar
        )
        self.symbols = market.symbols
        self.num_assets = assets = market.num_assets
        self.num_envs = num_envs
        self.positions = np.asarray(spec.positions, dtype=np.float64)
        self.random_start = random_start
        self.single_action_space = portfolio.action_space(assets, spec.positions)
        self.single_observation_space = market.observation_space()
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self._windows = market.windows()
        self._linear_rate = spec.execution.linear_rate
        self._rng = np.random.default_rng()
        zeros = np.zeros(num_envs)
        self._t = np.zeros(num_envs, dtype=np.int64)
        self._end = np.zeros(num_envs, dtype=np.int64)
        self._cash, self._equity, self._entry_equity = zeros.copy(), zeros.copy(), zeros.copy()
        self._units, self._target = np.zeros((num_envs, assets)), np.zeros((num_envs, assets))
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
        target = self.portfolio.weights(actions, self.num_assets, self.positions)
        if target.shape[0] != self.num_envs:
            raise ValueError(
                f"need one action per sub-environment ({self.num_envs}), got {len(target)}"
            )
        costs = np.zeros((self.num_envs, self.num_assets))
        trading = np.flatnonzero(active & (target != self._target).any(axis=1))
        fill, impact = self.market.fill[self._t], self.market.impact[self._t]
        self._cash[trading], self._units[trading], costs[trading] = rebalance_portfolio(
            self._cash[trading],
            self._units[trading],
            target[trading],
            fill[trading],
            self._linear_rate,
            impact[trading],
        )
        self._target[trading] = target[trading]
        entry = self._cash[trading] + (self._units[trading] * fill[trading]).sum(axis=1)
        self._entry_equity[trading] = entry
        self._t += active
        previous = self._equity
        equity = self._cash + (self._units * self.market.mark[self._t]).sum(axis=1)
        terminated = active & (equity <= 0.0)
        equity = np.where(terminated, 1e-12 * self.env_spec.initial_cash, equity)
        self._equity = np.where(active, equity, previous)
        reward, self._sharpe_mean, self._sharpe_second = equity_reward(
            self.env_spec, previous, equity, self._sharpe_mean, self._sharpe_second
        )
        rewards = np.where(active, reward, 0.0)
        truncated = active & ~terminated & (self._t >= self._end)
        self._needs_reset = terminated | truncated
        infos = {"equity": self._equity.copy(), "cost": costs.sum(axis=1)}
        return self._observations(), rewards, terminated, truncated, infos

    def _reset_envs(self, mask: np.ndarray) -> None:
        count = int(mask.sum())
        first, last = self.market.first_decision, self.market.last_decision
        length = self.env_spec.episode_length or last - first + 1
        start = np.full(count, first, dtype=np.int64)
        if self.random_start:
            latest = max(last - length + 1, first)
            start += (self._rng.random(count) * (latest - first + 1)).astype(np.int64)
        self._t[mask] = start
        self._end[mask] = np.minimum(start + length, last + 1)
        self._cash[mask] = self.env_spec.initial_cash
        self._equity[mask] = self._entry_equity[mask] = self.env_spec.initial_cash
        self._units[mask] = self._target[mask] = 0.0
        self._sharpe_mean[mask] = self._sharpe_second[mask] = 0.0
        self._needs_reset[mask] = False

    def _observations(self) -> np.ndarray:
        # The gathered windows keep the view's strides: copying them to C order costs more
        # than the gather, and nothing downstream needs it.
        obs: np.ndarray = self._windows[self._t - self.env_spec.window + 1]
        if self.env_spec.agent_state:
            weights = self._units * self.market.mark[self._t] / self._equity[:, None]
            weights = np.clip(weights, -MAX_WEIGHT, MAX_WEIGHT)
            held = self._target.any(axis=1)
            unrealised = np.where(held, self._equity / self._entry_equity - 1.0, 0.0)
            for asset in range(self.num_assets):  # each (envs, window, channels) slice
                fill_agent_state(obs[:, asset], weights[:, asset], unrealised)
        return obs
