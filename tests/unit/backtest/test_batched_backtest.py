"""A state-reading policy decided in batches trades exactly as it does stepped bar by bar
through MarketEnv (``run_backtest(per_bar=True)``): same positions, same equity, same fills,
for PPO (TransformerPolicy), MoE and MAML-style networks, under a risk engine and to ruin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tests.unit.live.helpers import preferences

from evotrader.backtest.batched import torch_decisions
from evotrader.backtest.engine import BacktestResult, run_backtest
from evotrader.backtest.policies import RandomPolicy
from evotrader.core.trading import Instrument
from evotrader.data import FeaturePipeline, generate_synthetic
from evotrader.env import EnvSpec
from evotrader.env.market_data import AGENT_STATE_CHANNELS, MarketData
from evotrader.models.core_transformer import TransformerSpec
from evotrader.models.moe_policy import MoEPolicy
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.risk import RiskEngine

SPEC = EnvSpec(window=16)  # agent_state=True: observations carry position and unrealised return


def _spec(input_dim: int, **shape: Any) -> TransformerSpec:
    settings: dict[str, Any] = {"model_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32}
    return TransformerSpec(input_dim=input_dim, output_dim=16, **settings | shape)


def _trading(policy: TransformerPolicy | MoEPolicy, seed: int) -> TransformerPolicy | MoEPolicy:
    """Seeded, louder weights, so that decisions move with the market and with the agent's
    own state channels and the policy trades often, holding for varied spells; in eval
    mode, as checkpoints load."""
    generator = torch.Generator().manual_seed(seed)
    encoders = policy.experts if isinstance(policy, MoEPolicy) else [policy.encoder]
    with torch.no_grad():
        policy.pi.weight.copy_(torch.randn(policy.pi.weight.shape, generator=generator))
        for encoder in encoders:
            encoder.input_proj.weight.mul_(10.0)
    return policy.eval()


def _policies(channels: int) -> dict[str, TransformerPolicy | MoEPolicy]:
    torch.manual_seed(1)
    return {
        "ppo": _trading(TransformerPolicy(_spec(channels), 3), seed=1),
        "moe": _trading(MoEPolicy(_spec(channels), 3, num_experts=2, top_k=1), seed=1),
        # MAML checkpoints hold a TransformerPolicy too (adapted weights); vary its shape
        "maml": _trading(
            TransformerPolicy(_spec(channels, positional="learned", pooling="mean"), 3), seed=1
        ),
    }


def _both(policy: object, bars: pd.DataFrame, pipeline: FeaturePipeline, **kwargs: Any):
    per_bar = run_backtest(policy, bars, pipeline=pipeline, per_bar=True, **kwargs)
    batched = run_backtest(policy, bars, pipeline=pipeline, **kwargs)
    return per_bar, batched


def _assert_same(per_bar: BacktestResult, batched: BacktestResult) -> None:
    pd.testing.assert_series_equal(batched.positions, per_bar.positions, check_exact=True)
    pd.testing.assert_series_equal(batched.equity, per_bar.equity, check_exact=True)
    pd.testing.assert_frame_equal(batched.fills, per_bar.fills, check_exact=True)


@pytest.mark.parametrize("kind", ["ppo", "moe", "maml"])
def test_batched_decisions_equal_per_bar_decisions(bars, pipeline, kind, one_torch_thread) -> None:
    channels = len(pipeline.features) + AGENT_STATE_CHANNELS
    policy = _policies(channels)[kind]
    per_bar, batched = _both(policy, bars, pipeline, spec=SPEC, start=bars.index[300])
    _assert_same(per_bar, batched)
    assert batched.metrics["n_trades"] >= 10  # holdings end, so speculation is dropped often
    assert set(np.unique(batched.positions)) == {-1.0, 0.0, 1.0}


def test_the_state_channels_change_decisions(bars, pipeline, one_torch_thread) -> None:
    """Guards the test above: these policies read their own state, so a path that ignored it
    (deciding every bar as if flat) would trade differently."""
    policy = _policies(len(pipeline.features) + AGENT_STATE_CHANNELS)["ppo"]
    result = run_backtest(policy, bars, pipeline=pipeline, spec=SPEC)
    decide = torch_decisions(policy)
    assert decide is not None
    market = MarketData.build(bars, pipeline, SPEC.window, SPEC.execution, True)
    first = market.first_decision - SPEC.window + 1
    windows = np.ascontiguousarray(market.windows()[first : market.last_decision - SPEC.window + 2])
    as_if_flat = np.asarray(SPEC.positions)[decide(windows)]  # zero state channels: flat
    held = result.positions.to_numpy()[1:]  # the target decided at each bar
    assert len(as_if_flat) == len(held) and not np.array_equal(as_if_flat, held)


def test_risk_engine_judges_batched_decisions_as_per_bar_ones(
    bars, pipeline, one_torch_thread
) -> None:
    policy = _policies(len(pipeline.features) + AGENT_STATE_CHANNELS)["ppo"]
    outcomes = [
        run_backtest(
            policy,
            bars,
            pipeline=pipeline,
            spec=SPEC,
            start=bars.index[300],
            risk=RiskEngine(preferences(max_daily_loss_pct=0.5, max_orders_per_minute=1)),
            instrument=Instrument("SYN"),
            per_bar=per_bar,
        )
        for per_bar in (True, False)
    ]
    _assert_same(*outcomes)
    events = [outcome.risk_events for outcome in outcomes]
    assert events[0] is not None and events[1] is not None and len(events[0]) > 0
    pd.testing.assert_frame_equal(events[1], events[0])


def test_ruin_ends_trading_where_the_env_ends_its_episode(one_torch_thread) -> None:
    bars = generate_synthetic(500, seed=3, vol=0.08).bars
    pipeline = FeaturePipeline().fit(bars.iloc[:200])
    spec = EnvSpec(window=8, positions=(-20.0, 0.0, 20.0))
    policy = _policies(len(pipeline.features) + AGENT_STATE_CHANNELS)["ppo"]
    per_bar, batched = _both(policy, bars, pipeline, spec=spec)
    _assert_same(per_bar, batched)
    ruined = np.flatnonzero(batched.equity.to_numpy() == 0.0)
    assert len(ruined) and ruined[0] < len(batched.equity) - 100  # well before the end


class StopLoss:
    """A numpy policy that reads its own state: long, flat again once unrealised is below
    -0.5% or above +1%, long again after a down bar. Declares its decisions row-wise, so it
    is decided in batches."""

    row_wise = True

    def __init__(self) -> None:
        self.rows = self.calls = 0

    def act(self, observations: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.rows += len(observations)
        position, unrealised = observations[:, -1, -2], observations[:, -1, -1]
        cut = (position != 0) & ((unrealised < -0.005) | (unrealised > 0.01))
        reenter = (position == 0) & (observations[:, -1, 0] < 0)
        return np.where(cut, 1, np.where(reenter | (position != 0), 2, 1)).astype(np.int64)


def test_a_declared_row_wise_numpy_policy_is_batched_and_agrees(bars, pipeline) -> None:
    per_bar_policy, batched_policy = StopLoss(), StopLoss()
    per_bar = run_backtest(per_bar_policy, bars, pipeline=pipeline, spec=SPEC, per_bar=True)
    batched = run_backtest(batched_policy, bars, pipeline=pipeline, spec=SPEC)
    _assert_same(per_bar, batched)
    decisions = len(batched.positions) - 1
    assert per_bar_policy.calls == decisions and batched.metrics["n_trades"] >= 100
    # it holds for two bars on average, speculation's worst case: still far fewer calls
    assert batched_policy.calls < decisions / 2


def test_stateful_policies_still_step_bar_by_bar(bars, pipeline) -> None:
    class Counting(RandomPolicy):
        calls = 0

        def act(self, observations: np.ndarray) -> np.ndarray:
            self.calls += 1
            return super().act(observations)

    policy = Counting(3, seed=0)
    result = run_backtest(policy, bars, pipeline=pipeline, spec=SPEC)
    assert policy.calls == len(result.positions) - 1


def test_only_eval_mode_greedy_torch_policies_are_batched() -> None:
    policy = TransformerPolicy(_spec(8), 3)
    assert torch_decisions(policy.train()) is None  # dropout would differ between calls
    assert torch_decisions(policy.eval()) is not None

    class Sampling(TransformerPolicy):
        def act(self, observations: np.ndarray) -> np.ndarray:
            return np.zeros(len(observations), dtype=np.int64)

    assert torch_decisions(Sampling(_spec(8), 3).eval()) is None  # its own act: not greedy


def test_near_ties_are_decided_again_one_row_at_a_time() -> None:
    """Batch and one-row forwards differ in the last bits: a near-tie goes to the policy's own
    one-row ``act``, which is what the per-bar path calls."""
    policy = TransformerPolicy(_spec(8), 3).eval()
    observations = np.random.default_rng(0).normal(size=(5, 16, 8)).astype(np.float32)
    single_rows: list[int] = []

    def spy(rows: np.ndarray) -> np.ndarray:
        single_rows.append(len(rows))
        return np.full(len(rows), 2, dtype=np.int64)

    policy.act = spy  # type: ignore[method-assign]
    with torch.no_grad():
        policy.pi.weight.zero_()
        policy.pi.bias.copy_(torch.tensor([0.0, 0.0, 0.0]))
    decide = torch_decisions(policy)
    assert decide is not None
    assert decide(observations).tolist() == [2] * 5 and single_rows == [1] * 5
    single_rows.clear()
    with torch.no_grad():
        policy.pi.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
    assert decide(observations).tolist() == [1] * 5 and single_rows == []


def test_batched_forwards_run_on_one_thread_and_restore_the_callers_setting() -> None:
    torch.manual_seed(0)
    policy = TransformerPolicy(_spec(8), 3).eval()
    seen: list[int] = []
    policy.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    decide = torch_decisions(policy)
    assert decide is not None
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        decide(np.zeros((4, 16, 8), dtype=np.float32))
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
