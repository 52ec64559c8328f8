"""Backtest engine: any policy over bars, with MarketEnv's own execution arithmetic.

Decisions at bars ``first_decision .. last_decision`` become target positions. A policy
that does not read its own state (``agent_state=False``) is called on large batches of
observation windows. One that does is, when its decisions are row-wise (see
``_row_wise_decisions``), called on batches of the observations it would see if it kept its
position (``_targets_speculative``), else stepped bar by bar through MarketEnv itself. Either
way the account is then replayed by ``simulate``, which calls the same ``rebalance`` as
the environments, once per trade, and marks equity at every close with numpy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from evotrader.backtest import metrics
from evotrader.core.trading import Instrument
from evotrader.data.errors import DataError
from evotrader.data.features import FeaturePipeline
from evotrader.env.execution import ExecutionModel, ExecutionPrices, rebalance
from evotrader.env.market_data import MarketData, fill_agent_state
from evotrader.env.market_env import MarketEnv
from evotrader.env.spec import EnvSpec
from evotrader.risk.guard import RiskGuard
from evotrader.risk.risk_engine import RiskEngine

if TYPE_CHECKING:  # core.policy imports torch: loaded only when a policy needs wrapping
    import torch

    from evotrader.core.policy import Policy


@dataclass(frozen=True)
class Simulation:
    """An account replayed over marks: equity and held position per mark, and the fills."""

    equity: np.ndarray
    positions: np.ndarray
    fill_decisions: np.ndarray
    fill_prices: np.ndarray
    fill_units: np.ndarray
    fill_costs: np.ndarray


@dataclass(frozen=True)
class BacktestResult:
    """Everything one backtest produced, strategy and buy-and-hold on the same bars."""

    equity: pd.Series
    positions: pd.Series
    trades: pd.DataFrame
    fills: pd.DataFrame
    metrics: dict[str, float]
    benchmark_equity: pd.Series
    benchmark: dict[str, float]
    risk_events: pd.DataFrame | None = None  # refusals and halts when run with ``risk=``

    def report(self, title: str = "Backtest (after costs)") -> str:
        return metrics.format_comparison(self.metrics, self.benchmark, title=title)


def simulate(
    targets: np.ndarray,
    prices: ExecutionPrices,
    first_decision: int,
    linear_rate: float,
    initial_cash: float,
) -> Simulation:
    """Replay target positions decided at bars ``first_decision + i``.

    Marks are the closes from ``first_decision`` on (one more than decisions); the
    position only changes when the target does, exactly as in MarketEnv. Equity that
    reaches zero stays there (ruin ends trading).
    """
    start, count = first_decision, len(targets)
    fill = prices.fill[start : start + count].tolist()
    impact = prices.impact[start : start + count].tolist()
    mark = prices.mark[start : start + count + 1]
    changes = np.flatnonzero(np.diff(targets, prepend=0.0)).tolist()
    cash, units = [initial_cash], [0.0]
    held: list[float] = [0.0]
    costs: list[float] = []
    traded: list[float] = []
    for i in changes:
        if cash[-1] + units[-1] * fill[i] <= 0.0:
            changes = changes[: len(costs)]
            break
        new_cash, new_units, cost = rebalance(
            cash[-1], units[-1], float(targets[i]), fill[i], linear_rate, impact[i]
        )
        traded.append(new_units - units[-1])
        cash.append(new_cash)
        units.append(new_units)
        held.append(float(targets[i]))
        costs.append(cost)
    segment = np.searchsorted(np.asarray(changes, dtype=np.int64), np.arange(count + 1))
    equity = np.asarray(cash)[segment] + np.asarray(units)[segment] * mark
    ruined = np.flatnonzero(equity <= 0.0)
    if len(ruined):
        equity[ruined[0] :] = 0.0
    return Simulation(
        equity=equity,
        positions=np.asarray(held)[segment],
        fill_decisions=np.asarray(changes, dtype=np.int64),
        fill_prices=np.asarray([fill[i] for i in changes], dtype=np.float64),
        fill_units=np.asarray(traded, dtype=np.float64),
        fill_costs=np.asarray(costs, dtype=np.float64),
    )


def run_backtest(
    policy: Policy | torch.nn.Module | Callable[[np.ndarray], np.ndarray],
    bars: pd.DataFrame,
    *,
    pipeline: FeaturePipeline,
    spec: EnvSpec,
    batch_size: int = 4096,
    periods_per_year: float | None = None,
    start: str | pd.Timestamp | None = None,
    risk: RiskEngine | None = None,
    instrument: Instrument | None = None,
    per_bar: bool = False,
) -> BacktestResult:
    """Run ``policy`` over ``bars`` after costs and compare it with buy-and-hold.

    ``pipeline`` must be fitted on training data, never on these bars, so that the
    result stays out of sample. ``spec`` is the env the policy was trained in: its window,
    positions, execution and cash apply (the whole period is one pass, so its episode and
    reward settings do not), and ``spec.agent_state`` True means the policy's observations
    carry its own position and unrealised return.
    ``start`` makes the earlier bars history only (feature and window warm-up): trading
    and every reported number begin at the first bar at or after it (a ``DataError`` when
    too few bars come before it), and ``periods_per_year`` defaults to the bars per year of
    that reported period.
    ``risk`` (with the traded ``instrument``) puts every decision through the live bot's
    risk engine: refused target changes keep the old target and a tripped breaker goes
    flat for good, as the bot would; ``risk_events`` lists what happened.
    ``per_bar`` steps a state-reading policy bar by bar through MarketEnv even when its
    decisions are row-wise: the reference the batched path is tested against (same targets).
    """
    policy = _as_policy(policy)
    execution, positions, initial_cash = spec.execution, spec.positions, spec.initial_cash
    market = MarketData.build(bars, pipeline, spec.window, execution, spec.agent_state)
    first = _first_decision(market, start)
    guard = None
    if risk is not None:
        if instrument is None:
            raise ValueError("a backtest with risk= needs the traded instrument=")
        if 0.0 not in positions:
            raise ValueError(f"risk halts go flat, so positions need a 0, got {list(positions)}")
        guard = RiskGuard(
            risk, instrument, market.timestamps, market.prices, execution, initial_cash
        )
    decide = None if per_bar or not spec.agent_state else _row_wise_decisions(policy)
    if decide is not None:
        targets = _targets_speculative(decide, market, spec, first, guard)
    elif spec.agent_state:
        targets = _targets_stepwise(policy, bars, pipeline, spec, first, guard)
    else:
        targets = _targets_batched(policy, market, positions, batch_size, first)
        if guard is not None:
            targets = np.asarray([guard.step(first + i, t) for i, t in enumerate(targets)])
    # annualised over the reported bars: the history before ``first`` may be sparser or denser
    ppy = periods_per_year or metrics.periods_per_year(market.timestamps[first:])
    strategy = _evaluate(targets, market, first, execution, initial_cash, ppy)
    benchmark = _evaluate(np.ones_like(targets), market, first, execution, initial_cash, ppy)
    return BacktestResult(
        equity=strategy.equity,
        positions=strategy.positions,
        trades=strategy.trades,
        fills=strategy.fills,
        metrics=strategy.metrics,
        benchmark_equity=benchmark.equity,
        benchmark=benchmark.metrics,
        risk_events=guard.events_frame() if guard is not None else None,
    )


def _as_policy(policy: Policy | torch.nn.Module | Callable[[np.ndarray], np.ndarray]) -> Policy:
    """``as_policy``, without importing torch for a policy that already has ``act``.

    Without torch loaded nothing can be a torch module, so ``as_policy`` would return such a
    policy as it is; modules and plain callables go through ``as_policy`` itself.
    """
    if "torch" not in sys.modules and hasattr(policy, "act"):
        return cast("Policy", policy)
    from evotrader.core.policy import as_policy

    return as_policy(policy)


def _row_wise_decisions(policy: Policy) -> Callable[[np.ndarray], np.ndarray] | None:
    """The policy's batch decisions when each row's action depends on that row alone and
    deciding changes nothing (so that deciding rows never traded is harmless), else None.

    A policy says so with a true ``row_wise`` attribute (its ``act`` is then used); a torch
    policy in eval mode qualifies through ``backtest.batched.torch_decisions``. Stateful
    policies (a seeded ``RandomPolicy``, anything that remembers) step bar by bar.
    """
    if getattr(policy, "row_wise", False):
        return policy.act
    if "torch" not in sys.modules:  # then nothing can be a torch policy
        return None
    from evotrader.backtest.batched import torch_decisions

    return torch_decisions(policy)


def _first_decision(market: MarketData, start: str | pd.Timestamp | None) -> int:
    if start is None:
        return market.first_decision
    first = int(market.timestamps.searchsorted(pd.Timestamp(start)))
    if first < market.first_decision:
        raise DataError(
            f"backtest start {start} leaves {first} bars of history; window and feature "
            f"warm-up need {market.first_decision}"
        )
    if first > market.last_decision:
        raise DataError(f"backtest start {start} is at or after the last tradable bar")
    return first


@dataclass(frozen=True)
class _Evaluation:
    equity: pd.Series
    positions: pd.Series
    trades: pd.DataFrame
    fills: pd.DataFrame
    metrics: dict[str, float]


def _evaluate(
    targets: np.ndarray,
    market: MarketData,
    first: int,
    execution: ExecutionModel,
    initial_cash: float,
    periods_per_year: float,
) -> _Evaluation:
    sim = simulate(targets, market.prices, first, execution.linear_rate, initial_cash)
    index = market.timestamps[first:]
    entry_price = np.full(len(index), np.nan)  # the fill that put each mark's position on
    entry_price[sim.fill_decisions + 1] = sim.fill_prices
    trades = metrics.round_trips(index, sim.positions, sim.equity, entry_price)
    fill_bar = sim.fill_decisions + (1 if execution.fill == "next_open" else 0)
    fills = pd.DataFrame(
        {"price": sim.fill_prices, "units": sim.fill_units, "cost": sim.fill_costs},
        index=pd.DatetimeIndex(index[fill_bar], name="timestamp"),
    )
    equity = pd.Series(sim.equity, index=index, name="equity")
    summary = metrics.summarize(
        equity,
        sim.positions,
        trades,
        fees=float(sim.fill_costs.sum()),
        traded_notional=float(np.abs(sim.fill_units * sim.fill_prices).sum()),
        periods_per_year=periods_per_year,
    )
    positions = pd.Series(sim.positions, index=index, name="position")
    return _Evaluation(equity, positions, trades, fills, summary)


def _targets_batched(
    policy: Policy, market: MarketData, positions: Sequence[float], batch_size: int, first: int
) -> np.ndarray:
    """Decide every bar from its window in large batches: no per-bar model calls."""
    windows = market.windows()
    decisions = np.arange(first, market.last_decision + 1) - market.window + 1
    actions = np.concatenate(
        [
            _checked_actions(policy.act(windows[chunk]), len(chunk), len(positions))
            for chunk in np.array_split(decisions, max(1, -(-len(decisions) // batch_size)))
        ]
    )
    targets: np.ndarray = np.asarray(positions, dtype=np.float64)[actions]
    return targets


# Bars decided per call, the range it grows in: a call's fixed cost is ~0.3 ms, as much as
# ~25 rows, while past ~256 rows a row costs more (one thread: 11 us a row at 128, 16 at 512).
SPECULATE_MIN, SPECULATE_MAX = 32, 256


def _targets_speculative(
    decide: Callable[[np.ndarray], np.ndarray],
    market: MarketData,
    spec: EnvSpec,
    first: int,
    guard: RiskGuard | None = None,
) -> np.ndarray:
    """The targets ``_targets_stepwise`` gives a row-wise policy, from batched decisions.

    The observation at a bar is its window plus the agent's state: the target held and the
    unrealised return since the last trade. Until the policy trades, that state follows from
    the account alone (equity marked at each close over the equity after the last fill, as
    MarketEnv computes them), so the observations of the next bars are built in one batch as
    if the position were kept, decided in one call and walked in order; at the first bar
    that trades, the rest of the batch is dropped and the next batch starts after it. Every
    decision that counts is made on the exact observation MarketEnv would have built, so the
    targets are the per-bar path's (tests check it on PPO, MoE and MAML-style policies).
    A flat state has no unrealised return, so flat decisions stay valid beyond a trade and
    are reused whenever the policy is flat again. The first call after a trade covers
    ``SPECULATE_MIN`` bars and each call that ends without one covers half as many again,
    up to ``SPECULATE_MAX``: frequent trading wastes few rows, long holdings take few calls
    (1.25 rows decided a bar, in 38 calls, on the quick-profile PPO checkpoint over GOOG).
    ``guard`` judges each decision first, in order, as in the per-bar path.
    """
    windows, offset, positions = market.windows(), market.window - 1, spec.positions
    last, rate = market.last_decision, spec.execution.linear_rate
    fill, impact = market.prices.fill.tolist(), market.prices.impact.tolist()
    marks = market.prices.mark
    mark = marks.tolist()

    def decided(observations: np.ndarray) -> list[int]:
        actions = _checked_actions(decide(observations), len(observations), len(positions))
        return cast("list[int]", actions.tolist())

    targets = np.zeros(last - first + 1, dtype=np.float64)  # ruin leaves the rest flat
    cash, units, target, entry = spec.initial_cash, 0.0, 0.0, spec.initial_cash
    flat: list[int] = []  # flat decisions for bars flat_start, flat_start + 1, ...
    flat_start = t = first
    size = SPECULATE_MIN
    while t <= last:
        if target == 0.0:
            if t >= flat_start + len(flat):
                flat_start, end = t, min(t + size, last + 1)
                flat = decided(windows[t - offset : end - offset].copy())
            actions = flat[t - flat_start :]
        else:
            end = min(t + size, last + 1)
            observations = windows[t - offset : end - offset].copy()
            equity = cash + units * marks[t:end]  # MarketEnv's equity at each close
            fill_agent_state(observations, np.full(end - t, target), equity / entry - 1.0)
            actions = decided(observations)
        traded = False
        for bar, action in enumerate(actions, start=t):
            wanted = positions[action]
            new = guard.step(bar, wanted) if guard is not None else wanted
            targets[bar - first] = new
            if new != target:
                cash, units, _ = rebalance(cash, units, new, fill[bar], rate, impact[bar])
                entry = cash + units * fill[bar]
                target, size, traded = new, SPECULATE_MIN, True
            if cash + units * mark[bar + 1] <= 0.0:  # ruin ends the episode, as in MarketEnv
                return targets
            if traded:  # the rest of the batch assumed the old target
                break
        t = bar + 1
        if not traded:
            size = min(size + size // 2, SPECULATE_MAX)
    return targets


def _targets_stepwise(
    policy: Policy,
    bars: pd.DataFrame,
    pipeline: FeaturePipeline,
    spec: EnvSpec,
    first: int,
    guard: RiskGuard | None = None,
) -> np.ndarray:
    """Step a state-reading policy through MarketEnv, one bar at a time (each decision
    through ``guard`` first, when given)."""
    env = MarketEnv(bars, pipeline, replace(spec, episode_length=None), random_start=False)
    obs, _ = env.reset(options={"start": first})
    targets: list[float] = []
    done = False
    while not done:
        action = int(_checked_actions(policy.act(obs[None]), 1, len(env.positions))[0])
        if guard is not None:
            action = env.positions.index(guard.step(first + len(targets), env.positions[action]))
        targets.append(env.positions[action])
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    decisions = env.market.last_decision - first + 1
    targets += [0.0] * (decisions - len(targets))  # ruin ended the episode: flat after it
    return np.asarray(targets, dtype=np.float64)


def _checked_actions(actions: np.ndarray, expected: int, num_actions: int) -> np.ndarray:
    actions = np.asarray(actions).reshape(-1)
    if len(actions) != expected:
        raise ValueError(f"policy returned {len(actions)} actions for {expected} observations")
    if not np.issubdtype(actions.dtype, np.integer):
        raise TypeError(f"policy actions must be integer indices, got dtype {actions.dtype}")
    if len(actions) and (actions.min() < 0 or actions.max() >= num_actions):
        raise ValueError(
            f"policy actions must lie in [0, {num_actions}), got {actions.min()}..{actions.max()}"
        )
    return actions
