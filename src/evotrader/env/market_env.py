"""MarketEnv: one symbol, one account, Gymnasium API, honest fills and costs.

At step t the agent sees the feature window ending at bar t (plus its own position and
unrealised return) and picks a target position. The order fills by the shared execution
model (bar t+1's open by default) and the reward is the log change of equity marked at
bar t+1's close, after costs. Nothing after bar t is visible when deciding at bar t,
including through the normalisation: see ``env_pipeline`` for an env built from bars alone.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd

from evotrader.data.features import FeaturePipeline
from evotrader.env.execution import rebalance
from evotrader.env.market_data import (
    AGENT_STATE_CHANNELS,
    MarketData,
    clip_unrealised,
    env_pipeline,
    episode_bounds,
)
from evotrader.env.rewards import differential_sharpe
from evotrader.env.spec import EnvSpec

OBSERVATION_BLOCK = 64  # windows copied at once: 128 KiB at window 64 with 8 channels


class MarketEnv(gym.Env[np.ndarray, np.int64]):
    """Single-symbol trading environment over precomputed, causal features.

    ``spec`` (default ``EnvSpec()``) says what the agent sees and how it is filled and
    rewarded; it is kept as ``env_spec``. Training episodes start at a random bar and last
    ``spec.episode_length`` steps; evaluation (``random_start=False`` with
    ``episode_length=None``) is one sequential pass from the first bar with a full window to
    the end of the data.

    ``pipeline`` is a FeaturePipeline fitted on earlier (training) bars. Without one, the
    first ``fit_bars`` bars (default ``DEFAULT_FIT_BARS`` = 252) only fit the
    normalisation and are never traded, so no observation depends on a later bar.
    Without ``bars``, the embedded GOOG daily bars are used.
    """

    # gymnasium declares metadata as an instance attribute though it is read per class.
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}  # type: ignore[misc]

    def __init__(
        self,
        bars: pd.DataFrame | None = None,
        pipeline: FeaturePipeline | None = None,
        spec: EnvSpec | None = None,
        *,
        random_start: bool = True,
        render_mode: str | None = None,
        fit_bars: int | None = None,
    ) -> None:
        if bars is None:
            from evotrader.data import load_bars

            bars = load_bars("embedded", "GOOG")
        pipeline, first_bar = env_pipeline([bars], pipeline, fit_bars)
        # Not ``self.spec``: gym.make sets that to gymnasium's own EnvSpec.
        self.env_spec = spec = spec or EnvSpec()
        self.pipeline = pipeline
        self.market = MarketData.build(
            bars, pipeline, spec.window, spec.execution, spec.agent_state, first_bar
        )
        self.positions = spec.positions
        self.random_start = random_start
        self.render_mode = render_mode
        self.action_space = gym.spaces.Discrete(len(self.positions))
        self.observation_space = self.market.observation_space(self.positions)
        self._windows = self.market.windows()
        self._lag = spec.window - 1
        self._agent_state = spec.agent_state
        # The agent's state as one 64-bit word (the float32 pair of channels), written into a
        # whole window's rows at once.
        self._state = np.zeros(AGENT_STATE_CHANNELS, dtype=np.float32)
        self._state_word = self._state.view(np.int64)
        self._fill = self.market.prices.fill.tolist()
        self._mark = self.market.prices.mark.tolist()
        self._impact = self.market.prices.impact.tolist()
        self._linear_rate = spec.execution.linear_rate
        self._log_return = spec.reward == "log_return"
        self._t = self._end = 0

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
        cash = self.env_spec.initial_cash
        self._cash, self._units, self._target = cash, 0.0, 0.0
        self._equity = self._entry_equity = cash
        self._sharpe_mean = self._sharpe_second = 0.0
        self._copy_block()
        return self._observation(), {"equity": self._equity, "t": self._t}

    def step(
        self, action: int | np.integer
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        t = self._t
        target = self.positions[action]
        cost = 0.0
        if target != self._target:
            self._cash, self._units, cost = rebalance(
                self._cash, self._units, target, self._fill[t], self._linear_rate, self._impact[t]
            )
            self._target = target
            self._entry_equity = self._cash + self._units * self._fill[t]
        self._t = t = t + 1
        previous, equity = self._equity, self._cash + self._units * self._mark[t]
        terminated = equity <= 0.0
        if terminated:
            equity = 1e-12 * self.env_spec.initial_cash
        self._equity = equity
        if self._log_return:
            reward = math.log(equity / previous)
        else:
            reward = self._differential_sharpe(equity / previous - 1.0)
        truncated = not terminated and t >= self._end
        info = {"equity": equity, "position": target, "cost": cost, "t": t}
        return self._observation(), reward, terminated, truncated, info

    def _differential_sharpe(self, simple_return: float) -> float:
        eta = self.env_spec.sharpe_eta
        reward, self._sharpe_mean, self._sharpe_second = differential_sharpe(
            simple_return, self._sharpe_mean, self._sharpe_second, eta
        )
        return float(reward)

    def _copy_block(self) -> None:
        """Copy the windows of the next ``OBSERVATION_BLOCK`` decision bars from bar t on.

        Each observation is then one row of this fresh block, written (its agent state) once
        just before it is returned and never again, so callers may keep it (RLlib does): a
        view costs far less per step than allocating and copying a window.
        """
        start = self._t - self._lag
        self._block_first = self._t
        self._block = self._windows[start : start + OBSERVATION_BLOCK].copy()
        if self._agent_state:
            self._block_states = self._block[..., -AGENT_STATE_CHANNELS:].view(np.int64)[..., 0]

    def _observation(self) -> np.ndarray:
        """The window ending at bar t: the block's next row, as a step moves t on by one bar
        and a reset copies a new block, so no row is handed out twice."""
        row = self._t - self._block_first
        if row == len(self._block):
            self._copy_block()
            row = 0
        if self._agent_state:
            state = self._state
            state[0] = self._target
            if self._target:
                state[1] = clip_unrealised(self._equity / self._entry_equity - 1.0)
            else:
                state[1] = 0.0
            self._block_states[row] = self._state_word
        obs: np.ndarray = self._block[row]
        return obs

    # gymnasium types render() with a TypeVar bound to nothing; "ansi" mode returns text.
    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi":
            return None
        when = self.market.timestamps[self._t]
        return f"{when} position={self._target:+.2f} equity={self._equity:,.2f}"
