"""PortfolioEnv: several symbols on one calendar, one cash balance, Gymnasium API.

At step t the agent sees, for every asset, the feature window ending at bar t (the same
causal pipeline MarketEnv uses, fitted on earlier bars only) and picks target weights
(see ``PortfolioSpec`` for the action forms). A target that differs from the last one
rebalances every asset to it through ``rebalance_portfolio`` at the shared execution
model's fill (bar t+1's open by default), paying each asset's commission, spread, slippage
and impact from the one cash balance; repeating the target lets the weights drift, free.
The reward is MarketEnv's, on portfolio equity marked at bar t+1's close.

Observation: float32 (assets, window, channels). The channels are the asset's features,
then (with ``EnvSpec.agent_state``) two agent-state channels, constant along the window:
the asset's current weight (units x close / equity at bar t, clipped to ±MAX_WEIGHT; cash
is ``1 - sum``) and the portfolio's unrealised return since its last rebalance (as
MarketEnv's). Assets stay in the order of the bars mapping, so permuting the mapping
permutes the observation's first axis and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd

from evotrader.data.features import FeaturePipeline
from evotrader.env.execution import Number, rebalance_portfolio
from evotrader.env.market_data import episode_bounds, fill_agent_state
from evotrader.env.portfolio_data import MAX_WEIGHT, PortfolioData, portfolio_pipeline
from evotrader.env.portfolio_spec import PortfolioSpec
from evotrader.env.rewards import differential_sharpe
from evotrader.env.spec import EnvSpec


def equity_reward(
    spec: EnvSpec, previous: Number, equity: Number, mean: Number, second: Number
) -> tuple[Number, Number, Number]:
    """The reward for an equity change and the updated Sharpe estimates, for one account
    (floats, with MarketEnv's ``math.log``) or a batch (arrays)."""
    if spec.reward == "log_return":
        if isinstance(equity, np.ndarray):
            return np.log(equity / previous), mean, second
        return math.log(equity / previous), mean, second
    return differential_sharpe(equity / previous - 1.0, mean, second, spec.sharpe_eta)


class PortfolioEnv(gym.Env[np.ndarray, np.ndarray]):
    """Multi-asset trading environment over aligned bars (``symbol -> bars``).

    ``spec``, ``pipeline``, ``fit_bars``, ``random_start`` and ``options={"start": t}``
    work as in MarketEnv (without a pipeline the first ``fit_bars`` bars of every symbol,
    pooled, fit the normalisation and are never traded). ``portfolio`` picks the action
    form and gross-exposure limit; ``EnvSpec.positions`` serves the discrete form.
    """

    # gymnasium declares metadata as an instance attribute though it is read per class.
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}  # type: ignore[misc]

    def __init__(
        self,
        bars: Mapping[str, pd.DataFrame],
        pipeline: FeaturePipeline | None = None,
        spec: EnvSpec | None = None,
        portfolio: PortfolioSpec | None = None,
        *,
        random_start: bool = True,
        render_mode: str | None = None,
        fit_bars: int | None = None,
    ) -> None:
        pipeline, first_bar = portfolio_pipeline(bars, pipeline, fit_bars)
        self.env_spec = spec = spec or EnvSpec()
        self.portfolio = portfolio = portfolio or PortfolioSpec()
        self.pipeline = pipeline
        self.market = PortfolioData.build(
            bars, pipeline, spec.window, spec.execution, spec.agent_state, first_bar
        )
        self.symbols = self.market.symbols
        self.num_assets = self.market.num_assets
        self.positions = np.asarray(spec.positions, dtype=np.float64)
        self.random_start = random_start
        self.render_mode = render_mode
        self.action_space = portfolio.action_space(self.num_assets, spec.positions)
        self.observation_space = self.market.observation_space()
        self._windows = self.market.windows()
        self._linear_rate = spec.execution.linear_rate
        self._t = self._end = 0
        self._reset_account()

    def _reset_account(self) -> None:
        cash = self.env_spec.initial_cash
        self._cash, self._equity, self._entry_equity = cash, cash, cash
        self._units = np.zeros(self.num_assets)
        self._target = np.zeros(self.num_assets)
        self._sharpe_mean = self._sharpe_second = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``options={"start": t}`` fixes the first decision bar."""
        super().reset(seed=seed)
        self._t, self._end = episode_bounds(
            self.market.first_decision,
            self.market.last_decision,
            self.env_spec.episode_length,
            options.get("start") if options else None,
            self.np_random if self.random_start else None,
        )
        self._reset_account()
        return self._observation(), {"equity": self._equity, "t": self._t}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        t = self._t
        target = self.portfolio.weights(action, self.num_assets, self.positions)
        costs = np.zeros(self.num_assets)
        if not np.array_equal(target, self._target):
            fill = self.market.fill[t]
            self._cash, self._units, costs = rebalance_portfolio(
                self._cash, self._units, target, fill, self._linear_rate, self.market.impact[t]
            )
            self._target = target
            self._entry_equity = self._cash + float((self._units * fill).sum())
        self._t = t = t + 1
        previous = self._equity
        equity = self._cash + float((self._units * self.market.mark[t]).sum())
        terminated = equity <= 0.0
        if terminated:
            equity = 1e-12 * self.env_spec.initial_cash
        self._equity = equity
        reward, self._sharpe_mean, self._sharpe_second = equity_reward(
            self.env_spec, previous, equity, self._sharpe_mean, self._sharpe_second
        )
        truncated = not terminated and t >= self._end
        info = {
            "equity": equity,
            "weights": target.copy(),
            "cost": float(costs.sum()),
            "costs": costs,
            "t": t,
        }
        return self._observation(), float(reward), terminated, truncated, info

    def current_weights(self) -> np.ndarray:
        """Each asset's share of equity at the current bar's close (cash is the rest)."""
        weights: np.ndarray = self._units * self.market.mark[self._t] / self._equity
        return weights

    def _observation(self) -> np.ndarray:
        obs: np.ndarray = self._windows[self._t - self.market.window + 1].copy()
        if self.market.agent_state:
            weights = np.clip(self.current_weights(), -MAX_WEIGHT, MAX_WEIGHT)
            held = bool(self._target.any())
            unrealised = self._equity / self._entry_equity - 1.0 if held else 0.0
            fill_agent_state(obs, weights, np.full(self.num_assets, unrealised))
        return obs

    # gymnasium types render() with a TypeVar bound to nothing; "ansi" mode returns text.
    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi":
            return None
        when = self.market.timestamps[self._t]
        weights = " ".join(
            f"{s}={w:+.2f}" for s, w in zip(self.symbols, self.current_weights(), strict=True)
        )
        return f"{when} {weights} equity={self._equity:,.2f}"
