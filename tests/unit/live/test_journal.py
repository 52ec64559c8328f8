"""Journal: WAL-mode SQLite that keeps every order, fill and state through a crash."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from evotrader.core.trading import (
    Fill,
    Instrument,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from evotrader.live.journal import Journal, JournalError

NOW = pd.Timestamp("2024-01-08 21:00", tz="UTC")
BAR = pd.Timestamp("2024-01-08")
REQUEST = OrderRequest(
    "s-GOOG-1", Instrument("GOOG", broker_id="208813720"), Side.BUY, 12.5, target_weight=0.5
)


def test_wal_mode_and_a_session_id_that_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        session = journal.session_id
    with Journal(path) as journal:
        assert journal.session_id == session
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_orders_are_journaled_pending_then_updated(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.start_run(NOW, {"symbol": "GOOG"})
        journal.record_order(REQUEST, BAR, NOW)
        pending = journal.order(REQUEST.client_ref)
        assert pending.request == REQUEST and pending.bar == BAR.isoformat()
        assert pending.state.status is OrderStatus.PENDING
        assert journal.open_orders() == [pending]
        with pytest.raises(JournalError, match="already journaled"):
            journal.record_order(REQUEST, BAR, NOW)
        filled = OrderState(REQUEST.client_ref, OrderStatus.FILLED, "7", 12.5, 0.0, 101.0)
        journal.update_order(filled, NOW)
        assert journal.order(REQUEST.client_ref).state.status is OrderStatus.FILLED
        assert journal.open_orders() == []
        with pytest.raises(JournalError, match="no journaled order"):
            journal.update_order(OrderState("ghost", OrderStatus.FILLED), NOW)


def test_limit_orders_round_trip(tmp_path: Path) -> None:
    limit = OrderRequest("lim", Instrument("GOOG"), Side.SELL, 3.0, OrderType.LIMIT, 99.5)
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record_order(limit, BAR, NOW)
        assert journal.order("lim").request == limit


def test_fills_are_recorded_once_and_positions_replaced(tmp_path: Path) -> None:
    fill = Fill("e1", REQUEST.client_ref, "7", "GOOG", Side.BUY, 12.5, 101.0, 0.4, NOW)
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.record_fill(fill, NOW) is True
        assert journal.record_fill(fill, NOW) is False
        assert journal.fills() == [fill] and journal.fill_ids() == {"e1"}
        journal.set_positions({"GOOG": Position("GOOG", 12.5, 101.0)}, NOW)
        journal.set_positions({"AAPL": Position("AAPL", -3.0, 150.0)}, NOW)
        assert journal.positions() == {"AAPL": Position("AAPL", -3.0, 150.0)}


def test_state_events_decisions_and_health(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.start_run(NOW, {"symbol": "GOOG"})
        with journal.transaction():
            journal.set_state("bot", {"target": 1.0, "nested": [1, 2]})
            journal.record_decision(BAR, NOW, 2, 1.0, 100.0, 1e5, {"why": "policy"})
            journal.record_health(NOW, "ok", {"connected": True})
        journal.record_risk_event(NOW, "halt", {"kind": "daily_loss"})
        assert journal.get_state("bot") == {"target": 1.0, "nested": [1, 2]}
        assert journal.get_state("missing") is None
        assert journal.decisions()[0]["target"] == 1.0
        assert journal.health()[0]["status"] == "ok"
        assert journal.risk_events()[0]["kind"] == "halt"


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        with pytest.raises(RuntimeError), journal.transaction():
            journal.set_state("bot", {"target": 1.0})
            raise RuntimeError("crash mid-bar")
        assert journal.get_state("bot") is None


def test_a_killed_process_loses_nothing_it_wrote(tmp_path: Path) -> None:
    """The writer dies with os._exit (no close, no flush, no atexit): like kill -9."""
    path = tmp_path / "j.sqlite"
    script = textwrap.dedent(
        f"""
        import os
        import pandas as pd
        from evotrader.core.trading import Instrument, OrderRequest, Side
        from evotrader.live.journal import Journal
        journal = Journal({str(path)!r})
        now = pd.Timestamp("2024-01-08 21:00", tz="UTC")
        request = OrderRequest("crash-1", Instrument("GOOG"), Side.SELL, 4.0, target_weight=-1.0)
        journal.record_order(request, pd.Timestamp("2024-01-08"), now)
        journal.set_state("bot", {{"target": -1.0}})
        print(journal.session_id, flush=True)
        os._exit(9)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 9, run.stderr
    with Journal(path) as journal:
        assert journal.session_id == run.stdout.strip()
        assert [o.request.client_ref for o in journal.open_orders()] == ["crash-1"]
        assert journal.open_orders()[0].state.status is OrderStatus.PENDING
        assert journal.get_state("bot") == {"target": -1.0}


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not.sqlite"
    path.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(JournalError, match="cannot open"):
        Journal(path)
