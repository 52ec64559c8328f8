"""The paper monitor's judgement on made-up paper days (the sim end to end is in
tests/integration/test_paper_monitor.py): band, hit rate, slippage, and the verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from tests.unit.lifecycle.alert_server import webhook
from tests.unit.lifecycle.helpers import lifecycle_checkpoint

from evotrader.core.trading import Fill, Side
from evotrader.lifecycle.alerts import Alerts
from evotrader.lifecycle.monitor import (
    DEMOTE,
    PROMOTE,
    WATCH,
    Expected,
    MonitorSettings,
    PaperRecord,
    apply_verdict,
    judge_paper,
    verdict_table,
)
from evotrader.lifecycle.states import CANDIDATE, CHAMPION, PAPER, LifecycleError
from evotrader.lifecycle.store import ModelRegistry
from evotrader.live.telemetry import EventLog

DAYS = pd.bdate_range("2011-01-03", periods=21)
SIGMA = 0.01
ENTRY = SimpleNamespace(id=7)


def equity(returns: np.ndarray) -> pd.Series:
    return pd.Series(100_000 * np.cumprod(np.r_[1.0, 1 + returns]), index=DAYS[: len(returns) + 1])


def expected_returns(days: int = 20) -> np.ndarray:
    return np.random.default_rng(0).normal(0.0005, SIGMA, days)


def record(realised: pd.Series, fills: tuple[Fill, ...] = (), halt=None) -> PaperRecord:
    return PaperRecord(Path("bot"), None, None, realised, realised, fills, halt, "feed ended")


def expected(days: int = 20, fills: pd.DataFrame | None = None) -> Expected:
    assumed = pd.DataFrame() if fills is None else fills
    return Expected(equity(expected_returns(days)), assumed, SIGMA, "test")


def fill(day: str, price: float, cost: float, side: Side = Side.BUY) -> Fill:
    at = pd.Timestamp(f"{day} 14:30", tz="UTC")
    return Fill("x", "ref", None, "GOOG", side, 100.0, price, cost, at)


def test_a_paper_bot_matching_its_backtest_is_promoted_after_n_days() -> None:
    verdict = judge_paper(ENTRY, record(equity(expected_returns())), expected(), MonitorSettings())
    assert verdict.decision == PROMOTE and verdict.days == 21 and not verdict.breaches
    assert verdict.figures["tracking_error_daily"] == 0 and verdict.figures["hit_rate"] == 1
    assert len(verdict.table) == 20 and all(day.inside for day in verdict.table)
    assert verdict.table[-1].band == pytest.approx(2 * SIGMA * np.sqrt(20))
    assert "PROMOTE after 21 days" in verdict_table(verdict)


def test_out_of_band_days_demote_after_n_days_and_flag_or_demote_before() -> None:
    drift = expected_returns() - 0.02  # 2% a day behind the backtest
    verdict = judge_paper(ENTRY, record(equity(drift)), expected(), MonitorSettings())
    assert verdict.decision == DEMOTE
    first = verdict.breaches[0]
    assert first == "2011-01-04: cumulative deviation -2.02% outside the band +-2.00%"
    assert "20 breaches" in verdict.reason

    early = record(equity(drift[:5]))
    flagged = judge_paper(ENTRY, early, expected(5), MonitorSettings())
    assert flagged.decision == WATCH and flagged.breaches
    assert "6 of 20 trading days" in flagged.reason and "breaches flagged" in flagged.reason
    demoted = judge_paper(ENTRY, early, expected(5), MonitorSettings(breach_action="demote"))
    assert demoted.decision == DEMOTE


def test_fewer_days_a_halt_or_a_low_hit_rate_keep_watching() -> None:
    returns = expected_returns()
    short = judge_paper(ENTRY, record(equity(returns[:9])), expected(9), MonitorSettings())
    assert short.decision == WATCH and "10 of 20" in short.reason
    halt = {"kind": "daily_loss", "reason": "down 6%", "at": "2011-01-20"}
    halted = judge_paper(ENTRY, record(equity(returns), halt=halt), expected(), MonitorSettings())
    assert halted.decision == WATCH and "halted (daily_loss" in halted.reason
    flipped = returns * np.where(np.arange(20) % 2, 1, -1) * 0.1  # small, half the signs wrong
    low = judge_paper(ENTRY, record(equity(flipped)), expected(), MonitorSettings(z=50))
    assert low.decision == WATCH and "hit rate" in low.reason and not low.breaches


def test_fills_are_held_against_the_backtests_prices_and_costs() -> None:
    assumed = pd.DataFrame(
        {"price": [100.0, 110.0], "units": [100.0, -100.0], "cost": [3.0, 3.3]},
        index=pd.DatetimeIndex(["2011-01-04", "2011-01-10"]),
    )
    fills = (fill("2011-01-04", 100.1, 3.0), fill("2011-01-10", 110.0, 3.3, Side.SELL))
    fine = judge_paper(
        ENTRY, record(equity(expected_returns()), fills), expected(fills=assumed), MonitorSettings()
    )
    slip = fine.figures["slippage"]
    assert slip["matched"] == 2 and slip["assumed_cost_bps"] == pytest.approx(3.0)
    assert slip["price_bps"] == pytest.approx(10 * 100.1 / (100.1 + 110.0), 1e-6)
    assert fine.decision == PROMOTE  # about 4.8 bps, under the 5 bps limit

    dear = (fill("2011-01-04", 101.0, 9.0), fill("2011-01-12", 100.0, 3.0))
    costly = judge_paper(
        ENTRY, record(equity(expected_returns()), dear), expected(fills=assumed), MonitorSettings()
    )
    assert costly.figures["slippage"]["unmatched"] == 1
    assert costly.decision == DEMOTE and "beyond the backtest's assumption" in costly.breaches[-1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"days": 1}, "days must be an int >= 2"),
        ({"z": 0.0}, "z must be positive"),
        ({"min_hit_rate": 1.5}, r"min_hit_rate must lie in \[0, 1\]"),
        ({"max_slippage_bps": -1.0}, "max_slippage_bps must be finite and >= 0"),
        ({"breach_action": "panic"}, "breach_action must be one of"),
    ],
)
def test_settings_are_checked(change, message) -> None:
    with pytest.raises(LifecycleError, match=message):
        MonitorSettings(**change)


def test_verdicts_go_through_the_registry_with_reasons_and_alerts(tmp_path: Path) -> None:
    with ModelRegistry(tmp_path / "registry.sqlite") as registry:
        a = registry.record_checkpoint(lifecycle_checkpoint(tmp_path / "a.pth", 0))
        b = registry.record_checkpoint(lifecycle_checkpoint(tmp_path / "b.pth", 1))
        for entry in (a, b):
            registry.promote(entry.id, PAPER, "looks sane")
        good = judge_paper(a, record(equity(expected_returns())), expected(), MonitorSettings())
        drift = record(equity(expected_returns() - 0.02))
        bad = judge_paper(b, drift, expected(), MonitorSettings())
        events = EventLog(tmp_path / "events.jsonl")
        with webhook() as hook:
            alerts = Alerts(events, webhook=hook.url)
            (promoted,) = apply_verdict(registry, good, alerts)
            (demoted,) = apply_verdict(registry, bad, alerts)
        events.close()
        assert (promoted.from_state, promoted.to_state) == (PAPER, CHAMPION)
        assert (demoted.from_state, demoted.to_state) == (PAPER, CANDIDATE)
        assert registry.entry(b.id).state == CANDIDATE
        stored = registry.history(b.id)[-1]
        assert stored.reason.startswith("paper monitor: 21 days") and "breaches" in stored.reason
        assert stored.figures["evidence"]["monitor"]["breaches"] == 20
        assert registry.history(a.id)[-1].figures["evidence"]["monitor"]["hit_rate"] == 1
    assert [posted["kind"] for posted in hook.received] == ["demotion"]
    logged = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [event["kind"] for event in logged if event["event"] == "alert"] == ["demotion"]
