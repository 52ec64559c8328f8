"""A live session paper-trading through IBKRBroker and the real ib_async client.

The TWS API stand-in plays the exchange: it serves real GOOG bars re-dated around today,
streams new daily bars while the bot runs, and fills its market orders at the next bar's
open. A second run on the same journal checks the restart: nothing is sent twice and the
position comes from the broker.
"""

import logging
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.integration.cli import ROOT
from tests.support.tws_server import HistoricalBar, Stock, TwsServer
from tests.unit.live.helpers import (
    LOOSE_PREFERENCES,
    decisions,
    make_checkpoint,
    preferences,
    subscriptions,
)

from evotrader.data import load_bars
from evotrader.live import session
from evotrader.live.ib.broker import IBKRBroker
from evotrader.live.retry import Backoff
from evotrader.live.telemetry import RunSummary
from evotrader.training.guards import TradableCheckpoint

pytestmark = pytest.mark.timeout(120)
HISTORY, LIVE = 80, 6  # bars of warm-up history; bars the first run trades


def goog_bars() -> tuple[list[HistoricalBar], list[HistoricalBar]]:
    """Real GOOG prices on business days: history up to yesterday, then future days to
    stream (their ends lie ahead, so only the next bar closes them, whatever the hour)."""
    prices = load_bars("embedded", "GOOG").iloc[-(HISTORY + 2 * LIVE + 2) :]
    today = pd.Timestamp.now(tz="UTC").normalize().tz_localize(None)
    past = pd.bdate_range(end=today - pd.Timedelta(days=1), periods=HISTORY)
    future = pd.bdate_range(start=today + pd.Timedelta(days=1), periods=len(prices) - HISTORY)
    bars = [
        HistoricalBar(int(day.tz_localize("UTC").timestamp()), *row)
        for day, row in zip(
            past.append(future),
            prices[["open", "high", "low", "close", "volume"]].itertuples(index=False),
            strict=True,
        )
    ]
    return bars[:HISTORY], bars[HISTORY:]


def feed(
    tws: TwsServer, bars: list[HistoricalBar], journal: Path, subscribed: int, drop_at: int
) -> None:
    """Stream bars as the exchange would once the bot subscribes: each new bar closes the
    one forming before it; wait for the bot's decision on that bar before the next, so
    every order fills at the open of the bar after its decision. Before bar ``drop_at``
    the server drops the connection and refuses new ones for a moment."""
    tws.wait_for(lambda: subscriptions(tws) > subscribed, timeout=30)
    done = decisions(journal)
    for k, bar in enumerate(bars, start=1):
        if k == drop_at:
            before = subscriptions(tws)
            tws.drop_connections(refuse_for_s=0.3)
            tws.wait_for(lambda before=before: subscriptions(tws) > before, timeout=30)
        tws.set_price("GOOG", bar.open)
        tws.stream_bar("GOOG", bar)
        tws.wait_for(lambda k=k: decisions(journal) >= done + k, timeout=10)


def run_bot(
    tws: TwsServer, tmp_path: Path, checkpoint: Path, live: list[HistoricalBar], drop_at: int = 0
) -> RunSummary:
    """Run the bot until it has decided on one bar per streamed bar."""
    out = tmp_path / "bot"
    journal = out / "journal.sqlite"
    feeder = threading.Thread(
        target=feed, args=(tws, live, journal, subscriptions(tws), drop_at), daemon=True
    )
    feeder.start()
    summary = session.run(
        session.LiveOptions(
            broker="ibkr", checkpoint=checkpoint, symbol="GOOG",
            port=tws.port, client_id=7, bar_size="1 day",
            preferences=tmp_path / "preferences.yaml", config=tmp_path / "runner.yaml",
            max_bars=len(live), out=out, runs_dir=tmp_path / "runs",
        )
    )  # fmt: skip
    feeder.join(timeout=10)
    return summary


def done(summary: RunSummary) -> bool:
    """The run traded all its bars (run_live_bot.py exits 0)."""
    return summary.halt is None and summary.stopped.startswith("max_bars")


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("IBKR_HOST", "IBKR_PORT", "IBKR_CLIENT_ID", "IBKR_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    always = {"timezone": "UTC", "days": list(range(7)), "start": "00:00", "end": "23:59:59"}
    prefs = LOOSE_PREFERENCES | {"trading_hours": always}
    (tmp_path / "preferences.yaml").write_text(yaml.safe_dump(prefs))
    runner = {
        "history_bars": 64,
        "poll_seconds": 0.2,
        "lot_size": 1.0,
        "max_divergence_pct": 50.0,
        "reconnect_attempts": 5,  # 0.7 s of backoff outlasts the server's 0.3 s refusal
        "backoff_seconds": 0.1,
        "backoff_max_seconds": 0.2,
    }
    (tmp_path / "runner.yaml").write_text(yaml.safe_dump(runner))
    return make_checkpoint(tmp_path / "GOOG_stage_1_ppo.pth", seed=3)


def test_the_sessions_ibkr_broker_gets_the_preferences_hours(tmp_path: Path) -> None:
    hours = {"timezone": "Europe/London", "days": ["Mon"], "start": "08:00", "end": "16:30"}
    prefs = preferences(trading_hours=hours)
    options = session.LiveOptions(broker="ibkr", symbol="GOOG", port=4002)
    tradable = TradableCheckpoint.load(make_checkpoint(tmp_path / "GOOG_stage_1_ppo.pth"))
    config = session.runner_config(options, "GOOG")
    broker = session.build_broker(session.BrokerSetup(options, tradable, config, prefs))
    assert isinstance(broker, IBKRBroker) and broker.config.port == 4002
    assert broker.hours == prefs.trading_hours  # daily bars close at the human's session end
    assert config.backoff == Backoff(8, 1.0, 60.0)  # the one reconnect policy: the runner's
    assert logging.getLogger("ib_async").level == logging.WARNING


def test_paper_bot_trades_through_ibkr_reconnects_and_restarts_without_duplicates(
    tmp_path: Path, setup: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # ib_async logs orders, with their account, at INFO
    history, live = goog_bars()
    with TwsServer([Stock("GOOG", 208813720)], lifetime_s=100.0) as tws:
        tws.set_history("GOOG", [*history, live[0]])  # live[0] is forming
        assert done(run_bot(tws, tmp_path, setup, live[1 : LIVE + 1], drop_at=4))
        journal = tmp_path / "bot" / "journal.sqlite"
        summary = yaml.safe_load((tmp_path / "bot" / "summary.json").read_text())
        assert (summary["bars"], summary["errors"]) == (LIVE, 1)  # the one disconnect
        refs = [fields[26] for fields in tws.messages(3)]
        assert refs, "the seeded policy should trade on these bars"
        assert len(refs) == len(set(refs))
        opens = {bar.open for bar in live[1:]}
        assert all(e.price in opens for e in tws.executions())
        with sqlite3.connect(journal) as db:
            journaled = {r[0] for r in db.execute("SELECT client_ref FROM orders")}
            fills = {r[0] for r in db.execute("SELECT exec_id FROM fills")}
            position = db.execute("SELECT quantity FROM positions WHERE symbol='GOOG'").fetchone()
            health = [r[0] for r in db.execute("SELECT status FROM health")]
        assert journaled == set(refs)
        assert health.index("disconnected") < health.index("reconnected")  # and trades on
        assert fills == {e.exec_id for e in tws.executions()}
        assert (position[0] if position else 0.0) == tws.position("GOOG")
        assert tws.account not in caplog.text

        # The bot stops; the account still holds the position. A restart on the same
        # journal reconciles with the broker and trades on, sending nothing twice.
        assert done(run_bot(tws, tmp_path, setup, live[LIVE + 1 :]))
        refs_after = [fields[26] for fields in tws.messages(3)]
        assert refs_after[: len(refs)] == refs
        assert len(refs_after) == len(set(refs_after))
        with sqlite3.connect(journal) as db:
            position = db.execute("SELECT quantity FROM positions WHERE symbol='GOOG'").fetchone()
            runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        assert runs == 2
        assert (position[0] if position else 0.0) == tws.position("GOOG")


@pytest.mark.slow
def test_a_paper_bot_killed_mid_run_resumes_on_its_out(tmp_path: Path, setup: Path) -> None:
    """kill -9 of the bot process between bars, then the same command: it reconciles its
    journal with the broker and trades on (exit 0) or halts (3); nothing is sent twice."""
    history, live = goog_bars()
    out = tmp_path / "bot"
    args = [
        "--broker", "ibkr", "--checkpoint", str(setup), "--symbol", "GOOG",
        "--client-id", "7", "--bar-size", "1 day",
        "--preferences", str(tmp_path / "preferences.yaml"),
        "--config", str(tmp_path / "runner.yaml"), "--out", str(out),
        "--runs-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    with TwsServer([Stock("GOOG", 208813720)], lifetime_s=100.0) as tws:
        tws.set_history("GOOG", [*history, live[0]])
        command = [sys.executable, str(ROOT / "run_live_bot.py"), *args, "--port", str(tws.port)]
        first = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        feed(tws, live[1 : LIVE + 1], out / "journal.sqlite", subscriptions(tws), drop_at=0)
        first.send_signal(signal.SIGKILL)  # mid-run: it would trade more bars
        assert first.wait(timeout=30) == -signal.SIGKILL
        refs = [fields[26] for fields in tws.messages(3)]
        assert refs, "the seeded policy should trade on these bars"

        rest = live[LIVE + 1 :]
        feeder = threading.Thread(
            target=feed,
            args=(tws, rest, out / "journal.sqlite", subscriptions(tws), 0),
            daemon=True,
        )
        feeder.start()
        second = subprocess.run(
            [*command, "--max-bars", str(len(rest))],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
        )
        feeder.join(timeout=10)
        assert second.returncode in (0, 3), second.stderr
        assert "Traceback" not in second.stderr
        refs_after = [fields[26] for fields in tws.messages(3)]
        assert refs_after[: len(refs)] == refs and len(refs_after) == len(set(refs_after))
        with sqlite3.connect(out / "journal.sqlite") as db:
            position = db.execute("SELECT quantity FROM positions WHERE symbol='GOOG'").fetchone()
        assert (position[0] if position else 0.0) == tws.position("GOOG")
