"""Bot reports on real sim-bot folders: the figures agree with the summary and the journal,
a halt and an alert show as events, a bad folder is one error line, and the page renders."""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.support.chromium import screenshot
from tests.unit.live.helpers import LOOSE_PREFERENCES, make_checkpoint
from tests.unit.live.test_runner import trade_faulty

from evotrader.__main__ import main
from evotrader.cli import ExitCode
from evotrader.lifecycle.alerts import Alerts
from evotrader.live.bot_record import BotFolderError
from evotrader.live.journal import Journal
from evotrader.live.report import write_reports
from evotrader.live.session import LiveOptions, run, write_summary
from evotrader.live.sim_broker import Faults
from evotrader.live.telemetry import EventLog

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NEW_YORK = "America/New_York"
BARS = 15  # three ISO weeks of daily bars, with trades in them


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three sim bots on one checkpoint, as run_live_bot.py runs them: one runs its bars, one
    is halted by a tight daily-loss breaker, one has its orders refused (10% position cap)."""
    root = tmp_path_factory.mktemp("bots")
    runs = root / "runs"
    checkpoint = make_checkpoint(runs / "GOOG-quick-seed0" / "GOOG_stage_1_ppo.pth")
    prefs = root / "preferences.yaml"
    prefs.write_text(yaml.safe_dump(LOOSE_PREFERENCES | {"max_daily_loss_pct": 20.0}))

    def bot(name: str, **options: Any) -> Path:
        out = root / name
        run(
            LiveOptions(
                broker="sim",
                checkpoint=checkpoint,
                runs_dir=runs,
                out=out,
                preferences=prefs,
                **options,
            )
        )
        return out

    return {
        "ran": bot("ran", seed=3, max_bars=BARS),
        "halted": bot("halted", max_bars=BARS, tighten=["max_daily_loss_pct=0.5"]),
        "refused": bot("refused", max_bars=BARS, tighten=["max_position_pct=10"]),
    }


@pytest.fixture(scope="module")
def reports(folders: dict[str, Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each bot's JSON reports, by file stem, written once."""
    loaded = {}
    for name, folder in folders.items():
        written = write_reports(folder)
        assert {path.suffix for path in written} == {".html", ".json"}
        loaded[name] = {
            path.stem: json.loads(path.read_text()) for path in written if path.suffix == ".json"
        }
    return loaded


def marks(folder: Path, key: str = "equity") -> pd.Series:
    raw = json.loads((folder / "summary.json").read_text())[key]
    return pd.Series(raw.values(), index=pd.to_datetime(list(raw)), dtype=np.float64)


def of_kind(reports: dict[str, dict[str, Any]], period: str) -> list[dict[str, Any]]:
    return [reports[stem] for stem in sorted(reports) if stem.startswith(period)]


def test_period_returns_compound_to_the_whole_runs(folders, reports) -> None:
    equity, expected = marks(folders["ran"]), marks(folders["ran"], "expected")
    assert len(equity) == BARS and equity.nunique() > 3  # it traded: the marks move
    daily, weekly = of_kind(reports["ran"], "daily"), of_kind(reports["ran"], "weekly")
    assert [r["label"] for r in daily] == [f"{day:%Y-%m-%d}" for day in equity.index]
    weeks = sorted({f"{y}-W{w:02d}" for y, w, _ in equity.index.isocalendar().to_numpy()})
    assert [r["label"] for r in weekly] == weeks and len(weeks) >= 3
    for kind in (daily, weekly):
        growth = np.prod([1 + r["figures"]["realised_return"] for r in kind])
        assert growth == pytest.approx(equity.iloc[-1] / equity.iloc[0], rel=1e-12)
        growth = np.prod([1 + r["figures"]["expected_return"] for r in kind])
        assert growth == pytest.approx(expected.iloc[-1] / expected.iloc[0], rel=1e-12)
        assert sum(r["figures"]["bars"] for r in kind) == BARS
    for before, day in itertools.pairwise(daily):  # a day opens at the last close
        assert day["figures"]["start_equity"] == before["figures"]["end_equity"]
    for report in daily:
        closed = equity[equity.index.normalize() == pd.Timestamp(report["label"])]
        assert report["figures"]["end_equity"] == float(closed.iloc[-1])
        assert report["figures"]["bars_expected"] == 1 == report["figures"]["bars"]
        assert report["figures"]["tracking_difference"] == 0.0  # the sim fills as expected


def test_fills_notional_and_costs_per_day_agree_with_the_journal(folders, reports) -> None:
    with Journal(folders["ran"] / "journal.sqlite") as journal:
        fills = journal.fills()
    assert len(fills) >= 3
    day = [f"{f.timestamp.tz_convert(NEW_YORK):%Y-%m-%d}" for f in fills]
    daily = {r["label"]: r["figures"] for r in of_kind(reports["ran"], "daily")}
    assert {label: figures["fills"] for label, figures in daily.items() if figures["fills"]} == (
        dict(Counter(day))
    )
    for label, figures in daily.items():
        mine = [f for f, d in zip(fills, day, strict=True) if d == label]
        assert figures["costs"] == pytest.approx(sum(f.cost for f in mine))
        notional = sum(abs(f.quantity) * f.price for f in mine)
        assert figures["traded_notional"] == pytest.approx(notional)
    weekly = of_kind(reports["ran"], "weekly")
    assert sum(r["figures"]["fills"] for r in weekly) == len(fills)
    assert sum(len(r["trades"]) for r in weekly) == len(fills)


def test_max_drawdown_is_measured_from_the_periods_opening_mark(folders, reports) -> None:
    equity = marks(folders["ran"])
    for report in of_kind(reports["ran"], "weekly"):
        first, last = pd.Timestamp(report["first_day"]), pd.Timestamp(report["last_day"])
        inside = equity[(equity.index >= first) & (equity.index <= last)]
        before = equity[equity.index < first]
        path = pd.concat([before.iloc[-1:], inside])
        assert report["figures"]["max_drawdown"] == pytest.approx((path / path.cummax() - 1).min())
        assert report["figures"]["bars"] == len(inside)


def test_a_halt_shows_as_a_risk_event_on_its_day(folders, reports) -> None:
    summary = json.loads((folders["halted"] / "summary.json").read_text())
    halt = summary["halt"]
    assert halt and halt["kind"] == "daily_loss"
    day = f"{pd.Timestamp(halt['at']).tz_convert(NEW_YORK):%Y-%m-%d}"
    halted = reports["halted"]
    events = [e for e in halted[f"daily-{day}"]["events"] if e["kind"] == "halt"]
    assert [e["detail"]["kind"] for e in events] == ["daily_loss"]
    assert {r["label"]: r["figures"]["halts"] for r in of_kind(halted, "daily") if r["figures"][
        "halts"
    ]} == {day: 1}  # fmt: skip
    assert sum(r["figures"]["halts"] for r in of_kind(halted, "weekly")) == 1
    assert of_kind(reports["ran"], "daily")[0]["figures"]["halts"] == 0  # the control
    page = (folders["halted"] / "reports" / f"daily-{day}.html").read_text()
    assert "daily_loss" in page and "halts" in page


def test_refused_orders_count_on_the_day_the_journal_stamped_them(folders, reports) -> None:
    summary = json.loads((folders["refused"] / "summary.json").read_text())
    with Journal(folders["refused"] / "journal.sqlite") as journal:
        refused = [row for row in journal.risk_events() if row["kind"] == "order_refused"]
    assert summary["rejected"] == len(refused) > 0
    days = Counter(f"{pd.Timestamp(row['at']).tz_convert(NEW_YORK):%Y-%m-%d}" for row in refused)
    daily = of_kind(reports["refused"], "daily")
    assert {r["label"]: r["figures"]["refusals"] for r in daily if r["figures"]["refusals"]} == (
        dict(days)
    )
    assert sum(r["figures"]["refusals"] for r in of_kind(reports["ran"], "daily")) == 0


def test_an_alert_in_the_event_log_lands_on_its_wall_clock_day(folders, tmp_path) -> None:
    bot = tmp_path / "bot"
    shutil.copytree(folders["ran"], bot, ignore=shutil.ignore_patterns("reports"))
    events = EventLog(bot / "events.jsonl")
    line = Alerts(events).halt({"kind": "kill_switch", "reason": "a test"})
    events.close()
    day = f"{pd.Timestamp(line['time']).tz_convert(NEW_YORK):%Y-%m-%d}"
    written = write_reports(bot, ("daily",))
    report = json.loads((bot / "reports" / f"daily-{day}.json").read_text())
    assert report["figures"]["alerts"] == 1 and report["figures"]["bars"] == 0
    assert [e["source"] for e in report["events"]] == ["event log"]
    assert sum(json.loads(p.read_text())["figures"]["alerts"] for p in written[1::2]) == 1


def test_a_divergence_shows_as_tracking_difference_on_its_day(folders, tmp_path) -> None:
    """A planted 1% gap between realised and expected equity at one bar's close shows on
    its day and reverts on the next; the other days are the control and track exactly."""
    bot = tmp_path / "bot"
    shutil.copytree(folders["ran"], bot, ignore=shutil.ignore_patterns("reports"))
    summary = json.loads((bot / "summary.json").read_text())
    bars, equity = list(summary["equity"]), list(summary["equity"].values())
    summary["equity"][bars[7]] *= 1.01
    (bot / "summary.json").write_text(json.dumps(summary))
    write_reports(bot, ("daily",))
    tracking = {
        path.stem[len("daily-") :]: json.loads(path.read_text())["figures"]["tracking_difference"]
        for path in (bot / "reports").glob("daily-*.json")
    }
    planted, after = bars[7][:10], bars[8][:10]
    assert tracking[planted] == pytest.approx(0.01 * equity[7] / equity[6], rel=1e-9)
    assert tracking[after] == pytest.approx((1 / 1.01 - 1) * equity[8] / equity[7], rel=1e-9)
    assert len(tracking) == BARS
    assert all(value == 0.0 for day, value in tracking.items() if day not in (planted, after))


def test_closed_periods_are_kept_unless_rewritten(folders, reports, tmp_path) -> None:
    bot = tmp_path / "bot"
    shutil.copytree(folders["ran"], bot)  # its reports are written already
    latest = {
        f"{kind}-{of_kind(reports['ran'], kind)[-1]['label']}" for kind in ("daily", "weekly")
    }
    assert {path.stem for path in write_reports(bot)} == latest  # the days still open
    weeks = of_kind(reports["ran"], "weekly")
    assert len(write_reports(bot, ("weekly",), rewrite=True)) == 2 * len(weeks)


def test_the_command_prints_the_paths_it_wrote(folders, tmp_path, capsys) -> None:
    bot = tmp_path / "bot"
    shutil.copytree(folders["halted"], bot, ignore=shutil.ignore_patterns("reports"))
    assert main(["report", str(bot), "--period", "weekly"]) == ExitCode.OK
    printed = capsys.readouterr().out.split()
    assert printed and all(
        re.fullmatch(r".*/reports/weekly-\d{4}-W\d\d\.(html|json)", p) for p in printed
    )
    assert sorted(printed) == sorted(str(p) for p in (bot / "reports").iterdir())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda bot: shutil.rmtree(bot), "no such folder"),
        (lambda bot: (bot / "events.jsonl").unlink(), "events.jsonl is missing"),
        (lambda bot: (bot / "summary.json").write_text("{not json"), "summary.json: unreadable"),
        (lambda bot: (bot / "events.jsonl").write_text("{}\n"), "events.jsonl: line 1 is not an"),
        (lambda bot: (bot / "journal.sqlite").write_bytes(b"x" * 4096), "sqlite: unreadable"),
    ],
)  # fmt: skip
def test_a_bad_folder_is_one_clear_error(folders, tmp_path, capsys, damage, message) -> None:
    bot = tmp_path / "bot"
    shutil.copytree(folders["ran"], bot, ignore=shutil.ignore_patterns("reports", "*-wal", "*-shm"))
    damage(bot)
    with pytest.raises(BotFolderError, match=re.escape(message)):
        write_reports(bot)
    assert main(["report", str(bot)]) == ExitCode.USAGE
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bot) in lines[0]
    assert not (bot / "reports").exists()


def test_the_weekly_page_renders_in_headless_chromium(folders, reports, tmp_path) -> None:
    week = of_kind(reports["ran"], "weekly")[1]
    page = folders["ran"] / "reports" / f"weekly-{week['label']}.html"
    text = page.read_text()
    assert "<script" not in text.lower() and not re.search(r"(src|href)=\"(?!data:)", text)
    assert "realised" in text and "expected" in text and "what it is" in text
    pixels = screenshot(page, tmp_path)
    assert pixels.shape[:2] == (2000, 1280)
    grey = pixels.mean(axis=2)
    assert grey.std() > 0.05 and (grey < 0.3).mean() > 0.002 and (grey > 0.95).mean() > 0.5
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50  # the equity chart renders (anti-aliased lines)
    assert math.isfinite(week["figures"]["realised_return"])


def test_disconnects_and_bad_bars_show_as_health_on_their_days(tmp_path, bars, pipeline) -> None:
    """The runner on a sim that drops the connection once (one reconnect attempt fails) and
    sends one bad bar; the reports count each on the day the journal stamped it."""
    faults = Faults(disconnects=frozenset({5}), failed_reconnects=1, bad_bars=frozenset({10}))
    summary, journal, events, _ = trade_faulty(tmp_path, bars, pipeline, faults, max_bars=BARS)
    health = journal.health()
    journal.close()
    events.close()
    write_summary(tmp_path / "summary.json", summary, {})
    written = write_reports(tmp_path, ("daily",))
    daily = [json.loads(path.read_text()) for path in written if path.suffix == ".json"]

    def days(figure: str) -> dict[str, int]:
        return {r["label"]: r["figures"][figure] for r in daily if r["figures"][figure]}

    dropped = [row for row in health if row["status"] == "disconnected"]
    assert len(dropped) == 1
    assert days("disconnects") == {f"{pd.Timestamp(dropped[0]['at']):%Y-%m-%d}": 1}
    assert sum(days("reconnects").values()) == 1 and sum(days("connect_failures").values()) == 1
    assert sum(days("stale_or_bad_bars").values()) == 1
    assert sum(days("errors").values()) == summary.errors == 2  # the drop and the bad bar
    assert sum(r["figures"]["bars"] for r in daily) == summary.bars
