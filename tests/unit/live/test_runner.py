"""LiveRunner on the SimBroker: backtest equality, risk halts, restarts, reconnects, faults."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.unit.live.helpers import preferences

from evotrader.backtest.engine import BacktestResult, run_backtest
from evotrader.core.trading import Instrument, OrderRequest, OrderState, OrderStatus
from evotrader.data import FeaturePipeline
from evotrader.env.spec import EnvSpec
from evotrader.live.broker import BrokerError
from evotrader.live.journal import Journal, JournalError
from evotrader.live.runner import LiveRunner, RunnerConfig
from evotrader.live.sim_broker import Faults, SimBroker
from evotrader.live.telemetry import EventLog, RunSummary
from evotrader.risk import BreakerKind, KillSwitch, Preferences, RiskEngine

SYN = Instrument("SYN")
START, END = 320, 400  # replayed bars; the ones before are history
ENV = EnvSpec(window=8, agent_state=False)
ENV_STATE = EnvSpec(window=8, agent_state=True)


class Momentum:
    """Long after an up bar, short after a down bar, flat in between; with agent state it
    also cuts a position whose unrealised return falls below -1%."""

    def __init__(self, threshold: float = 0.3) -> None:
        self.threshold = threshold
        self.calls = 0

    def act(self, observations: np.ndarray) -> np.ndarray:
        self.calls += 1
        last = observations[:, -1, 0]  # standardised log return of the newest bar
        actions = np.where(last > self.threshold, 2, np.where(last < -self.threshold, 0, 1))
        if observations.shape[2] > 6:  # position and unrealised return channels
            losing = (observations[:, -1, 6] != 0) & (observations[:, -1, 7] < -0.01)
            actions = np.where(losing, 1, actions)
        return actions.astype(np.int64)


class Hook:
    """A policy wrapper that runs ``action`` just before its ``n``-th decision."""

    def __init__(self, policy: Momentum, n: int, action: Callable[[], None]) -> None:
        self.policy, self.n, self.action = policy, n, action

    def act(self, observations: np.ndarray) -> np.ndarray:
        if self.policy.calls + 1 == self.n:
            self.action()
        return self.policy.act(observations)


class Crash(BaseException):
    """The process dies here (nothing catches a BaseException subclass)."""


class CrashingSim(SimBroker):
    """Dies on its ``crash_at``-th order, before or after the order reached the broker."""

    def __init__(self, *args, crash_at: int, after_send: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.crash_at, self.after_send, self.placed = crash_at, after_send, 0

    def place_order(self, request: OrderRequest) -> OrderState:
        self.placed += 1
        if self.placed == self.crash_at:
            if self.after_send:
                super().place_order(request)
            raise Crash
        return super().place_order(request)


def sim(bars: pd.DataFrame, env: EnvSpec, prefs: Preferences, cls=SimBroker, **kwargs):
    return cls(
        bars.iloc[:END],
        SYN,
        start=bars.index[START],
        execution=env.execution,
        initial_cash=env.initial_cash,
        hours=prefs.trading_hours,
        **kwargs,
    )


def trade(
    tmp_path: Path,
    broker: SimBroker,
    pipeline: FeaturePipeline,
    policy,
    *,
    env: EnvSpec = ENV,
    prefs: Preferences | None = None,
    kill: KillSwitch | None = None,
    journal: str = "journal.sqlite",
    **config,
) -> tuple[RunSummary, Journal, EventLog, list[str]]:
    """Run to the end of the replay; returns the summary, the (open) journal and the logs."""
    prefs = prefs or preferences()
    lines: list[str] = []
    events = EventLog(tmp_path / "events.jsonl")
    book = Journal(tmp_path / journal)
    runner = LiveRunner(
        broker,
        policy,
        pipeline,
        env,
        RiskEngine(prefs),
        book,
        RunnerConfig(SYN, history_bars=128, **config),
        kill_switch=kill,
        events=events,
        console=lines.append,
    )
    return runner.run(), book, events, lines


def trade_faulty(
    tmp_path: Path, bars: pd.DataFrame, pipeline: FeaturePipeline, faults: Faults, **config
) -> tuple[RunSummary, Journal, EventLog, list[str]]:
    """``Momentum`` on a sim that misbehaves as ``faults`` say (see ``trade``)."""
    prefs = config.pop("prefs", None) or preferences()
    broker = sim(bars, ENV, prefs, faults=faults)
    return trade(tmp_path, broker, pipeline, Momentum(), prefs=prefs, **config)


def backtest(bars, pipeline, policy, env: EnvSpec = ENV, **kwargs) -> BacktestResult:
    start = bars.index[START]
    return run_backtest(policy, bars.iloc[:END], start=start, pipeline=pipeline, spec=env, **kwargs)


def assert_same_trading(summary: RunSummary, journal: Journal, expected: BacktestResult) -> None:
    live = summary.equity_series
    np.testing.assert_allclose(live.to_numpy(), expected.equity.loc[live.index], rtol=1e-12)
    fills = journal.fills()
    reference = expected.fills.iloc[: len(fills)]
    assert len(fills) == len(reference) > 5
    np.testing.assert_allclose([f.price for f in fills], reference["price"], rtol=1e-12)
    np.testing.assert_allclose([f.signed_quantity for f in fills], reference["units"], rtol=1e-9)
    np.testing.assert_allclose([f.cost for f in fills], reference["cost"], rtol=1e-9)


def event_names(events: EventLog) -> list[str]:
    return [e["event"] for e in events.events]


@pytest.mark.parametrize("env", [ENV, ENV_STATE], ids=["stateless", "agent_state"])
def test_fills_and_equity_equal_the_backtest(tmp_path, bars, pipeline, env) -> None:
    prefs = preferences()
    summary, journal, events, lines = trade(
        tmp_path, sim(bars, env, prefs), pipeline, Momentum(), env=env
    )
    assert summary.stopped.startswith("feed ended") and summary.halt is None
    assert summary.bars == END - START
    assert_same_trading(summary, journal, backtest(bars, pipeline, Momentum(), env))
    assert summary.equity == summary.expected  # telemetry: no divergence at all
    assert events.events[0]["preferences_sha256"] == prefs.sha256
    assert "risk ok" in lines[-2]


class WallClockSim(SimBroker):
    """Daily bars as IBKR delivers them: the runner sees a bar's 16:00 close and decides
    ``lag`` later by the wall clock, outside the 09:30-16:00 trading hours."""

    def __init__(self, *args, lag: pd.Timedelta, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lag = lag

    def now(self) -> pd.Timestamp:
        return super().now() + self.lag


def test_daily_bars_trade_a_moment_after_the_session_end(tmp_path, bars, pipeline) -> None:
    prefs = preferences()  # New York 09:30-16:00, where daily bars close
    assert prefs.trading_hours.end.hour == 16
    late = sim(bars, ENV, prefs, cls=WallClockSim, lag=pd.Timedelta(milliseconds=300))
    summary, journal, _, _ = trade(tmp_path, late, pipeline, Momentum(), prefs=prefs)
    assert summary.rejected == 0 and summary.orders > 5
    assert_same_trading(summary, journal, backtest(bars, pipeline, Momentum()))

    stale = pd.Timedelta(minutes=10)  # decided long after the close: opening is refused
    late = sim(bars, ENV, prefs, cls=WallClockSim, lag=stale)
    summary, journal, _, _ = trade(tmp_path, late, pipeline, Momentum(), journal="stale.sqlite")
    assert summary.rejected > 5 and summary.orders == 0 and journal.fills() == []
    refused = [e["detail"] for e in journal.risk_events() if e["kind"] == "order_refused"]
    assert all("outside trading hours" in detail for detail in refused)


def test_daily_loss_breaker_flattens_and_halts_where_the_risky_backtest_does(
    tmp_path, bars, pipeline
) -> None:
    prefs = preferences(max_daily_loss_pct=1.0)
    summary, journal, _, _ = trade(
        tmp_path, sim(bars, ENV, prefs), pipeline, Momentum(), prefs=prefs
    )
    risky = backtest(bars, pipeline, Momentum(), risk=RiskEngine(prefs), instrument=SYN)
    trips = risky.risk_events[risky.risk_events["kind"] == "daily_loss"]
    assert summary.halt is not None and summary.halt.kind is BreakerKind.DAILY_LOSS
    assert len(trips) == 1 and summary.halt.reason == trips["reason"].iloc[0]
    assert summary.stopped.startswith("halted by daily_loss") and "STILL" not in summary.stopped
    assert_same_trading(summary, journal, risky)
    assert journal.positions() == {}
    assert risky.positions.loc[trips.index[0] :].iloc[1:].eq(0).all()  # flat for good
    kinds = [e["kind"] for e in journal.risk_events()]
    assert kinds[-2:] == ["halt", "flattened"]
    flatten = journal.orders()[-1]
    assert "flat" in flatten.request.client_ref and flatten.state.status is OrderStatus.FILLED


def test_the_model_cannot_trade_past_the_limits(tmp_path, bars, pipeline) -> None:
    env = EnvSpec(window=8, agent_state=False, positions=(-2.0, 0.0, 2.0))
    prefs = preferences(max_position_pct=100.0, max_leverage=1.0)
    summary, journal, _, lines = trade(
        tmp_path, sim(bars, env, prefs), pipeline, Momentum(), env=env, prefs=prefs
    )
    assert summary.rejected > 5 and summary.orders == 0 and journal.fills() == []
    refused = [e for e in journal.risk_events() if e["kind"] == "order_refused"]
    assert len(refused) == summary.rejected
    assert "exceeds 100%" in refused[0]["detail"]
    assert any("risk refused" in line for line in lines)


@pytest.mark.parametrize("how", ["file", "sigterm"])
def test_kill_switch_flattens_and_halts_at_once(tmp_path, bars, pipeline, how) -> None:
    kill_file = tmp_path / "KILL"
    kill = KillSwitch(kill_file)
    pull = kill_file.touch if how == "file" else lambda: os.kill(os.getpid(), signal.SIGTERM)
    policy = Hook(Momentum(), n=30, action=pull)
    prefs = preferences()
    with kill:
        summary, journal, events, _ = trade(
            tmp_path, sim(bars, ENV, prefs), pipeline, policy, kill=kill, prefs=prefs
        )
    assert summary.halt is not None and summary.halt.kind is BreakerKind.KILL_SWITCH
    assert summary.bars == 30  # the decision on bar 30 was the last
    assert journal.positions() == {}
    assert journal.open_orders() == []
    assert "risk.flattened" in event_names(events)
    expected = "received SIGTERM" if how == "sigterm" else "kill file"
    assert expected in summary.halt.reason


def crashed_run(
    tmp_path: Path, bars: pd.DataFrame, pipeline: FeaturePipeline, after_send: bool
) -> tuple[RunSummary, Journal, CrashingSim]:
    """An uninterrupted run (under whole/), then the same bot dying on its sixth order, before
    or after the order reached the broker; returns the whole run and the crashed broker."""
    prefs = preferences()
    whole, whole_journal, _, _ = trade(
        tmp_path / "whole", sim(bars, ENV, prefs), pipeline, Momentum()
    )
    broker = sim(bars, ENV, prefs, CrashingSim, crash_at=6, after_send=after_send)
    with pytest.raises(Crash):
        trade(tmp_path, broker, pipeline, Momentum())
    return whole, whole_journal, broker


@pytest.mark.parametrize("after_send", [False, True], ids=["before_send", "after_send"])
def test_a_restart_reconciles_without_duplicate_orders(
    tmp_path, bars, pipeline, after_send
) -> None:
    whole, whole_journal, broker = crashed_run(tmp_path, bars, pipeline, after_send)
    assert broker.positions()  # it died holding a position
    broker.disconnect()  # and its connection died with it
    crashed = Journal(tmp_path / "journal.sqlite")
    pending = crashed.open_orders()
    assert len(pending) == 1 and pending[0].state.status is OrderStatus.PENDING
    crashed.close()

    summary, journal, events, _ = trade(tmp_path, broker, pipeline, Momentum())
    reconciled = next(e for e in events.events if e["event"] == "reconciled")
    assert reconciled["resent"] == ([] if after_send else [pending[0].request.client_ref])
    assert summary.halt is None
    fills = journal.fills()
    assert [f.exec_id for f in fills] == [f.exec_id for f in broker.fills()]
    refs = [f.client_ref for f in fills]
    assert len(refs) == len(set(refs))  # one fill per order: nothing went twice
    assert [(f.price, f.quantity) for f in fills] == [
        (f.price, f.quantity) for f in whole_journal.fills()
    ]
    assert summary.equity_series.iloc[-1] == whole.equity_series.iloc[-1]


def without_session(refs: list[str]) -> list[str]:
    """Client references minus the journal's random session id."""
    return [ref.split("-", 1)[1] for ref in refs]


@pytest.mark.parametrize("after_send", [False, True], ids=["before_send", "after_send"])
def test_a_killed_replay_resumes_from_its_journal_as_if_never_stopped(
    tmp_path, bars, pipeline, after_send
) -> None:
    """A kill -9 takes the replay down with the bot: a fresh SimBroker resumed from the
    journal carries on after the last bar the bot saw, sends nothing twice, and ends where
    an uninterrupted run ends."""
    whole, whole_journal, _ = crashed_run(tmp_path, bars, pipeline, after_send)
    fresh = sim(bars, ENV, preferences())
    with Journal(tmp_path / "journal.sqlite") as crashed:
        seen = fresh.resume(crashed)
        assert seen == pd.Timestamp(crashed.open_orders()[0].bar)  # died on that bar's order
    summary, journal, events, _ = trade(tmp_path, fresh, pipeline, Momentum())
    reconciled = next(e for e in events.events if e["event"] == "reconciled")
    assert len(reconciled["resent"]) == 1  # the order it died sending, on its own bar
    assert summary.halt is None and summary.stopped.startswith("feed ended")
    refs = [order.request.client_ref for order in journal.orders()]
    assert len(refs) == len(set(refs))
    assert without_session(refs) == without_session(
        [order.request.client_ref for order in whole_journal.orders()]
    )
    fills, expected = journal.fills(), whole_journal.fills()
    assert [(f.price, f.quantity) for f in fills] == [(f.price, f.quantity) for f in expected]
    assert summary.equity_series.iloc[-1] == pytest.approx(whole.equity_series.iloc[-1], rel=1e-12)


def test_a_finished_replay_restarted_on_its_journal_ends_at_once(tmp_path, bars, pipeline):
    prefs = preferences()
    first, _, _, _ = trade(tmp_path, sim(bars, ENV, prefs), pipeline, Momentum())
    fresh = sim(bars, ENV, prefs)
    with Journal(tmp_path / "journal.sqlite") as done:
        assert fresh.resume(done) == bars.index[END - 1]
        orders = len(done.orders())
    summary, journal, _, _ = trade(tmp_path, fresh, pipeline, Momentum())
    assert summary.stopped.startswith("feed ended") and summary.halt is None
    assert (summary.bars, len(journal.orders())) == (0, orders)
    assert fresh.account().equity == pytest.approx(first.equity_series.iloc[-1], rel=1e-12)


def test_a_journal_of_another_replay_is_refused(tmp_path, bars, pipeline) -> None:
    prefs = preferences()
    trade(tmp_path, sim(bars, ENV, prefs), pipeline, Momentum(), max_bars=5)
    shifted = bars.set_axis(bars.index + pd.Timedelta(hours=1))
    with (
        Journal(tmp_path / "journal.sqlite") as other,
        pytest.raises(JournalError, match="is not a bar of this SYN replay"),
    ):
        sim(shifted, ENV, prefs).resume(other)


def test_a_lost_journal_adopts_the_brokers_position(tmp_path, bars, pipeline) -> None:
    prefs = preferences()
    broker = sim(bars, ENV, prefs)
    first, _, _, _ = trade(tmp_path, broker, pipeline, Momentum(), max_bars=20)
    held = broker.positions()
    assert held and first.stopped.startswith("max_bars")
    broker.disconnect()
    summary, journal, _, _ = trade(tmp_path, broker, pipeline, Momentum(), journal="new.sqlite")
    adopted = [
        json.loads(e["detail"]) for e in journal.risk_events() if e["kind"] == "target_adopted"
    ]
    assert len(adopted) == 1 and adopted[0]["now"] == np.sign(held["SYN"].quantity)
    assert summary.bars == END - START - 20 and summary.halt is None
    first_order = journal.orders()[0].request  # the broker's own position is not bought again
    assert first_order.target_weight != adopted[0]["now"]
    assert journal.positions() == broker.positions()


def test_disconnects_reconnect_with_backoff_and_resume(tmp_path, bars, pipeline) -> None:
    faults = Faults(disconnects=frozenset({5, 40}), failed_reconnects=2)
    summary, journal, events, _ = trade_faulty(tmp_path, bars, pipeline, faults)
    assert summary.halt is None and summary.bars == END - START
    assert_same_trading(summary, journal, backtest(bars, pipeline, Momentum()))
    names = event_names(events)
    assert names.count("disconnected") == 2 and names.count("reconnected") == 2
    assert names.count("connect_failed") == 4
    health = [row["status"] for row in journal.health()]
    assert health.count("disconnected") == 2 and health.count("reconnected") == 2


def test_a_connection_that_never_returns_stops_the_bot(tmp_path, bars, pipeline) -> None:
    faults = Faults(disconnects=frozenset({5}), failed_reconnects=100)
    summary, _, events, _ = trade_faulty(tmp_path, bars, pipeline, faults, reconnect_attempts=3)
    assert summary.stopped.startswith("connection lost") and summary.bars == 5
    assert event_names(events).count("connect_failed") == 3


def test_bad_broker_replies_are_handled_and_logged(tmp_path, bars, pipeline) -> None:
    faults = Faults(
        reject_orders=frozenset({1}),
        partial_fills={2: 0.5},
        duplicate_bars=frozenset({10}),
        out_of_order_bars=frozenset({20}),
        bad_bars=frozenset({30}),
    )
    broker = sim(bars, ENV, preferences(), faults=faults)
    summary, journal, events, _ = trade(
        tmp_path, broker, pipeline, Momentum(), max_divergence_pct=100.0
    )
    assert summary.halt is None and summary.bars == END - START
    errors = [e["kind"] for e in events.events if e["event"] == "error"]
    assert sorted(errors) == ["bad_bar", "bad_bar", "bad_bar", "order_rejected"]
    details = [e["detail"] for e in events.events if e["event"] == "error"]
    assert any("duplicate" in d for d in details) and any("out of order" in d for d in details)
    assert "partial_fill" in event_names(events)
    statuses = [o.state.status for o in journal.orders()]
    assert OrderStatus.REJECTED in statuses and OrderStatus.PENDING not in statuses
    assert [f.exec_id for f in journal.fills()] == [f.exec_id for f in broker.fills()]
    assert journal.positions() == broker.positions()
    assert summary.errors == 4


def test_divergence_from_the_backtest_expectation_halts(tmp_path, bars, pipeline) -> None:
    faults = Faults(reject_orders=frozenset({1}))
    summary, _, _, _ = trade_faulty(tmp_path, bars, pipeline, faults, max_divergence_pct=0.1)
    assert summary.halt is not None and summary.halt.kind is BreakerKind.DIVERGENCE
    assert "from the backtest's expectation" in summary.halt.reason


def test_a_stalled_feed_trips_the_stale_data_breaker(tmp_path, bars, pipeline) -> None:
    prefs = preferences(stale_data_seconds=3 * 3600)
    stall_before = 12
    last_end = sim(bars, ENV, prefs)._ends[START + stall_before - 1]  # bar 11 closes
    later = last_end + pd.Timedelta(hours=20)  # next day, 12:00 in New York
    while later.tz_convert("America/New_York").weekday() > 4:
        later += pd.Timedelta(days=1)
    faults = Faults(stalls={stall_before: (later - last_end).total_seconds()})
    summary, journal, _, _ = trade_faulty(tmp_path, bars, pipeline, faults, prefs=prefs)
    assert summary.halt is not None and summary.halt.kind is BreakerKind.STALE_DATA
    assert summary.bars == stall_before
    assert journal.positions() == {}


def test_an_error_burst_flattens_and_halts(tmp_path, bars, pipeline) -> None:
    prefs = preferences(error_burst_count=3)
    faults = Faults(
        duplicate_bars=frozenset({8}), out_of_order_bars=frozenset({8}), bad_bars=frozenset({8})
    )
    summary, journal, _, _ = trade_faulty(tmp_path, bars, pipeline, faults, prefs=prefs)
    assert summary.halt is not None and summary.halt.kind is BreakerKind.ERROR_BURST
    assert journal.positions() == {}


def test_end_of_day_flatten_is_flat_over_every_night(tmp_path, bars, pipeline) -> None:
    days = pd.bdate_range("2024-01-08", periods=30)
    hours = [pd.Timedelta(hours=14.5 + h) for h in range(6)]  # bars 09:30..14:30 New York
    intraday = bars.iloc[: len(days) * 6].copy()
    intraday.index = pd.DatetimeIndex([d + h for d in days for h in hours], name="timestamp")
    prefs = preferences()
    broker = SimBroker(intraday, SYN, start=intraday.index[60], hours=prefs.trading_hours)
    summary, journal, _, _ = trade(
        tmp_path,
        broker,
        pipeline,
        Momentum(threshold=0.0),
        flatten_at_close=True,
        close_window_minutes=90,  # the bar ending 14:30 goes flat: it fills at 14:30's open
    )
    decisions = pd.DataFrame(journal.decisions())
    closing = decisions[decisions["bar"].str.endswith(("18:30:00", "19:30:00"))]
    assert len(closing) > 20 and (closing["target"] == 0.0).all()
    assert decisions["target"].abs().sum() > 0  # it does trade during the day
    fills = journal.fills()
    assert len(fills) > 10
    for day in days[11:]:
        session_close = day + pd.Timedelta(hours=20, minutes=30)
        held = sum(
            f.signed_quantity for f in fills if f.timestamp.tz_localize(None) < session_close
        )
        assert abs(held) < 1e-9, day
    assert summary.halt is None


def test_a_real_money_account_needs_the_explicit_flag(tmp_path, bars, pipeline) -> None:
    class RealAccount(SimBroker):
        is_paper = False  # type: ignore[assignment]

    broker = sim(bars, ENV, preferences(), RealAccount)
    with pytest.raises(BrokerError, match="not a paper account"):
        trade(tmp_path, broker, pipeline, Momentum())
    assert not broker.is_connected()
    broker.connect()
    assert broker.fills() == [] and broker.open_orders() == []


def test_runner_config_is_validated(bars, pipeline, tmp_path) -> None:
    with pytest.raises(ValueError, match="history_bars 10 < 29"):
        LiveRunner(
            sim(bars, ENV, preferences()),
            Momentum(),
            pipeline,
            ENV,
            RiskEngine(preferences()),
            Journal(tmp_path / "j.sqlite"),
            RunnerConfig(SYN, history_bars=10),
        )
    with pytest.raises(ValueError, match=r"unknown keys \['polll_seconds'\]"):
        RunnerConfig.from_mapping("SYN", {"polll_seconds": 1.0})
    with pytest.raises(ValueError, match="poll_seconds must be > 0"):
        RunnerConfig(SYN, poll_seconds=0)
