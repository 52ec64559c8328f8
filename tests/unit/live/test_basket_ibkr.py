"""The basket bot paper-trading four symbols through IBKRBroker and the real ib_async
client against the TWS API stand-in, then restarted on its journal with positions open in
several symbols: every symbol reconciled, nothing sent twice."""

import json
import sqlite3
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.support.tws_server import HistoricalBar, Stock, TwsServer
from tests.unit.live.basket_helpers import SYMBOLS, make_portfolio_checkpoint
from tests.unit.live.helpers import LOOSE_PREFERENCES, decisions, subscriptions

from evotrader.live import session
from evotrader.live.telemetry import RunSummary
from evotrader.training.guards import PortfolioCheckpoint

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("one_torch_thread")]
HISTORY, LIVE, FUTURE = 40, 3, 9  # bars of history; bars each run trades; days to stream


def universe_bars(checkpoint: Path) -> dict[str, list[HistoricalBar]]:
    """The checkpoint's universe, its last bars re-dated: history up to yesterday, then
    future business days to stream."""
    universe = PortfolioCheckpoint.load(checkpoint).universe.load()
    today = pd.Timestamp.now(tz="UTC").normalize().tz_localize(None)
    past = pd.bdate_range(end=today - pd.Timedelta(days=1), periods=HISTORY)
    future = pd.bdate_range(start=today + pd.Timedelta(days=1), periods=FUTURE)
    days = past.append(future)
    bars = {}
    for symbol in SYMBOLS:
        prices = universe.bars[symbol].iloc[-len(days) :]
        rows = prices[["open", "high", "low", "close", "volume"]].itertuples(index=False)
        bars[symbol] = [
            HistoricalBar(int(day.tz_localize("UTC").timestamp()), *row)
            for day, row in zip(days, rows, strict=True)
        ]
    return bars


def feed(tws: TwsServer, bars: dict, days: range, journal: Path, subscribed: int) -> None:
    """Once the bot subscribed to every symbol, stream one day at a time (each symbol's
    new bar closes the one forming before it) and wait for the bot's decision on it."""
    tws.wait_for(lambda: subscriptions(tws) >= subscribed + len(SYMBOLS), timeout=30)
    done = decisions(journal)
    for k, day in enumerate(days, start=1):
        for symbol in SYMBOLS:
            tws.set_price(symbol, bars[symbol][day].open)
            tws.stream_bar(symbol, bars[symbol][day])
        tws.wait_for(lambda k=k: decisions(journal) >= done + k, timeout=20)


def run_bot(
    tws: TwsServer, tmp_path: Path, checkpoint: Path, bars: dict, days: range
) -> RunSummary:
    out = tmp_path / "bot"
    feeder = threading.Thread(
        target=feed,
        args=(tws, bars, days, out / "journal.sqlite", subscriptions(tws)),
        daemon=True,
    )
    feeder.start()
    summary = session.run(
        session.LiveOptions(
            broker="ibkr", checkpoint=checkpoint, port=tws.port, client_id=7,
            bar_size="1 day", preferences=tmp_path / "preferences.yaml",
            config=tmp_path / "runner.yaml", max_bars=len(days), out=out,
            runs_dir=tmp_path / "runs",
        )
    )  # fmt: skip
    feeder.join(timeout=10)
    return summary


def test_basket_bot_trades_through_ibkr_and_restarts_without_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("IBKR_HOST", "IBKR_PORT", "IBKR_CLIENT_ID", "IBKR_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    always = {"timezone": "UTC", "days": list(range(7)), "start": "00:00", "end": "23:59:59"}
    prefs = LOOSE_PREFERENCES | {
        "trading_hours": always,
        "allowed_instruments": list(SYMBOLS),
        "max_orders_per_minute": 100,  # the stand-in streams days seconds apart
    }
    (tmp_path / "preferences.yaml").write_text(yaml.safe_dump(prefs))
    runner = {"history_bars": 64, "poll_seconds": 0.2, "lot_size": 1.0}
    (tmp_path / "runner.yaml").write_text(yaml.safe_dump(runner))
    checkpoint = make_portfolio_checkpoint(tmp_path / "portfolio_stage_1_ppo.pth")
    bars = universe_bars(checkpoint)
    stocks = [Stock(symbol, 1000 + k) for k, symbol in enumerate(SYMBOLS)]
    journal = tmp_path / "bot" / "journal.sqlite"
    with TwsServer(stocks, lifetime_s=100.0) as tws:
        for symbol in SYMBOLS:  # bar HISTORY is forming
            tws.set_history(symbol, bars[symbol][: HISTORY + 1])
        first = run_bot(tws, tmp_path, checkpoint, bars, range(HISTORY + 1, HISTORY + 1 + LIVE))
        assert first.halt is None and first.stopped.startswith("max_bars"), first.stopped
        refs = [fields[26] for fields in tws.messages(3)]
        assert len(refs) == len(set(refs)) > 0
        held = {s for s in SYMBOLS if tws.position(s)}
        assert len(held) >= 2, "the seeded policy should hold several symbols here"
        assert all(float(q).is_integer() for q in map(tws.position, SYMBOLS))  # whole shares

        # The bot stops with the positions open; a restart on the same journal reconciles
        # every symbol with the broker and trades on, sending nothing twice.
        days = range(HISTORY + 1 + LIVE, HISTORY + 1 + 2 * LIVE)
        second = run_bot(tws, tmp_path, checkpoint, bars, days)
        assert second.halt is None and second.stopped.startswith("max_bars"), second.stopped
        refs_after = [fields[26] for fields in tws.messages(3)]
        assert refs_after[: len(refs)] == refs
        assert len(refs_after) == len(set(refs_after))
        with sqlite3.connect(journal) as db:
            journaled = {r[0] for r in db.execute("SELECT client_ref FROM orders")}
            fills = {r[0] for r in db.execute("SELECT exec_id FROM fills")}
            positions = dict(db.execute("SELECT symbol, quantity FROM positions").fetchall())
            runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        assert journaled == set(refs_after) and runs == 2
        assert fills == {e.exec_id for e in tws.executions()}
        assert positions == {s: tws.position(s) for s in SYMBOLS if tws.position(s)}
    reports = [json.loads(p.read_text()) for p in (tmp_path / "bot" / "reports").glob("*.json")]
    traded = {trade["symbol"] for report in reports for trade in report["trades"]}
    assert traded >= held  # a paper bot writes its reports, every symbol's trades in them
