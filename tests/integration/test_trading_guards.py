"""Guards on what gets traded, through run_backtest.py and run_live_bot.py as a user runs them.

A damaged or edited checkpoint (NaN weights, non-finite normalisation, an edited symbol or
data path) and a --symbol that is not the checkpoint's are refused by both scripts with one
`error:` line and their own exit code; --trade-as maps a checkpoint to another symbol and
says so; a sim bot killed with SIGKILL resumes on its --out without sending an order twice;
both scripts run from any working directory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
import torch
import yaml
from tests.integration.cli import ROOT, run_script, start_script
from tests.unit.live.helpers import LOOSE_PREFERENCES, make_checkpoint

from evotrader.cli import ExitCode
from evotrader.training.guards import TradableCheckpoint

Edit = Callable[[dict[str, Any]], None]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def goog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained-format GOOG checkpoint (a small seeded TransformerPolicy)."""
    return make_checkpoint(tmp_path_factory.mktemp("runs") / "r" / "GOOG_stage_1_ppo.pth")


@pytest.fixture
def prefs(tmp_path: Path) -> Path:
    path = tmp_path / "preferences.yaml"
    allowed = [*LOOSE_PREFERENCES["allowed_instruments"], "AAPL"]
    path.write_text(yaml.safe_dump(LOOSE_PREFERENCES | {"allowed_instruments": allowed}))
    return path


def edited(source: Path, target: Path, edit: Edit) -> Path:
    """A copy of the checkpoint file with ``edit`` applied to its raw payload, as a user
    (or a bit flip) could leave it; saved with plain torch.save, so no check runs."""
    payload = torch.load(source, weights_only=True)
    edit(payload)
    torch.save(payload, target)
    return target


def nan_weight(payload: dict[str, Any]) -> None:
    payload["state_dict"]["encoder.input_proj.weight"][0, 0] = float("nan")


def inf_std(payload: dict[str, Any]) -> None:
    payload["feature_pipeline"]["std"][2] = float("inf")


def edited_symbol(payload: dict[str, Any]) -> None:
    payload["symbol"] = "AAPL"


def edited_data_path(payload: dict[str, Any]) -> None:
    payload["extra"]["data"] = {
        "source": "csv",
        "symbol": "GOOG",
        "options": {"path": "/etc/passwd"},
    }


def unknown_source(payload: dict[str, Any]) -> None:
    payload["extra"]["data"]["source"] = "ftp"


def backtest(checkpoint: Path, tmp_path: Path, *extra: str) -> CompletedProcess[str]:
    return run_script(
        "run_backtest.py", "--checkpoint", str(checkpoint), "--out", str(tmp_path), *extra
    )


def bot(checkpoint: Path, tmp_path: Path, prefs: Path, *extra: str) -> CompletedProcess[str]:
    return run_script(
        "run_live_bot.py", "--broker", "sim", "--checkpoint", str(checkpoint),
        "--runs-dir", str(tmp_path), "--out", str(tmp_path / "bot"), "--preferences", str(prefs),
        *extra,
    )  # fmt: skip


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (nan_weight, r"state_dict\['encoder.input_proj.weight'\] holds 1 non-finite value"),
        (inf_std, r"normalisation statistic feature_pipeline\['std'\]\[2\] is inf"),
        (edited_symbol, r"field 'symbol' is 'AAPL' but its data reference .* is 'GOOG'"),
        (edited_data_path, r"option path='/etc/passwd' lies outside the data folders"),
        (unknown_source, r"unknown data source 'ftp'"),
    ],
    ids=["nan_weight", "inf_std", "edited_symbol", "edited_data_path", "unknown_source"],
)
@pytest.mark.parametrize("script", ["backtest", "bot"])
def test_a_damaged_or_edited_checkpoint_is_refused_by_both_scripts(
    goog, tmp_path, prefs, edit: Edit, message: str, script: str
) -> None:
    checkpoint = edited(goog, tmp_path / "GOOG_stage_1_ppo.pth", edit)
    if script == "backtest":
        done = backtest(checkpoint, tmp_path / "out")
    else:
        done = bot(checkpoint, tmp_path, prefs)
    code, err = done.returncode, done.stderr
    assert code == ExitCode.CHECKPOINT
    assert f"checkpoint {checkpoint}" in one_error_line(err)
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "bot").exists()  # nothing ran


def test_debug_lets_the_traceback_through(goog, tmp_path) -> None:
    checkpoint = edited(goog, tmp_path / "nan.pth", nan_weight)
    done = backtest(checkpoint, tmp_path, "--debug")
    assert done.returncode == ExitCode.INTERNAL
    assert "Traceback" in done.stderr and "CheckpointError" in done.stderr
    assert "non-finite" in done.stderr


@pytest.mark.parametrize("script", ["backtest", "bot"])
def test_a_symbol_other_than_the_checkpoints_is_refused(goog, tmp_path, prefs, script: str) -> None:
    """Before: --symbol AAPL with a GOOG checkpoint traded GOOG's prices under AAPL's name."""
    if script == "backtest":
        done = backtest(goog, tmp_path / "out", "--symbol", "AAPL")
    else:
        done = bot(goog, tmp_path, prefs, "--symbol", "AAPL")
    code, err = done.returncode, done.stderr
    assert code == ExitCode.CHECKPOINT
    line = one_error_line(err)
    assert "was trained on GOOG, not AAPL" in line and "--trade-as AAPL" in line


def test_trade_as_backtests_the_policy_on_the_other_symbols_bars(goog, tmp_path) -> None:
    done = backtest(goog, tmp_path, "--trade-as", "AAPL")
    assert done.returncode == ExitCode.OK, done.stderr
    assert done.stdout.startswith(
        "note: trading AAPL with a policy trained on GOOG (--trade-as AAPL)"
    )
    written = json.loads((tmp_path / "GOOG_stage_1_ppo_as_AAPL_test.json").read_text())
    tradable = TradableCheckpoint.load(goog)
    expected = tradable.backtest(tradable.bars("AAPL"))
    assert written["buy_and_hold"] == expected.benchmark  # AAPL's buy and hold, not GOOG's
    assert written["strategy"] == expected.metrics
    own = tradable.backtest()
    assert own.benchmark["total_return"] != expected.benchmark["total_return"]


def test_trade_as_runs_the_sim_bot_on_the_other_symbols_bars(goog, tmp_path, prefs):
    done = bot(goog, tmp_path, prefs, "--trade-as", "AAPL", "--max-bars", "5")
    assert done.returncode == ExitCode.OK, done.stderr
    assert "note: trading AAPL with a policy trained on GOOG" in done.stdout
    aapl = TradableCheckpoint.load(goog).bars("AAPL")
    with sqlite3.connect(tmp_path / "bot" / "journal.sqlite") as db:
        decided = db.execute("SELECT bar, price FROM decisions").fetchall()
        symbols = {row[0] for row in db.execute("SELECT symbol FROM orders")}
    assert len(decided) == 5 and symbols <= {"AAPL"}
    for bar, price in decided:
        assert price == aapl.loc[bar, "close"]


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda tmp: ["--preferences", str(tmp / "missing.yaml")], ExitCode.USAGE, "preferences"),
        (lambda tmp: ["--bars-path", str(tmp / "bad.csv")], ExitCode.DATA, "bad.csv"),
        (lambda tmp: ["--out", str(tmp / "garbage")], ExitCode.RUN, "journal"),
        (lambda tmp: ["--start", "2030-01-01"], ExitCode.USAGE, "sim replay of GOOG"),
    ],
    ids=["preferences", "data", "journal", "setup"],
)
def test_every_expected_bot_failure_is_one_line_with_its_own_code(
    goog, tmp_path, prefs, change, code: ExitCode, message: str
) -> None:
    (tmp_path / "bad.csv").write_text("date,open,high,low,close,volume\n2020-01-02,1,0,1,1,1\n")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "journal.sqlite").write_bytes(b"not a database" * 100)
    done = bot(goog, tmp_path, prefs, *change(tmp_path))
    assert done.returncode == code
    assert message in one_error_line(done.stderr)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_broker_is_one_line_and_its_own_code(goog, tmp_path, prefs) -> None:
    done = run_script(
        "run_live_bot.py", "--broker", "ibkr", "--checkpoint", str(goog),
        "--port", str(closed_port()), "--preferences", str(prefs), "--out", str(tmp_path / "bot"),
        "--runs-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == ExitCode.BROKER
    assert "ibkr" in one_error_line(done.stderr).lower()


def test_an_edited_data_path_is_one_error_line_not_a_traceback(goog, tmp_path) -> None:
    """The issue's case, as a user runs it: before, the backtest read the file and crashed."""
    checkpoint = edited(goog, tmp_path / "GOOG_stage_1_ppo.pth", edited_data_path)
    done = run_script("run_backtest.py", "--checkpoint", str(checkpoint), timeout=120)
    assert done.returncode == ExitCode.CHECKPOINT
    assert "/etc/passwd" in one_error_line(done.stderr) and "Traceback" not in done.stderr


def test_a_sim_bot_killed_mid_run_resumes_on_its_out(goog, tmp_path, prefs) -> None:
    """kill -9 in the middle of the replay, then the same command: the bot carries on after
    the last bar it saved (exit 0) or halts (3), never crashes, never sends an order twice."""
    args = ["--broker", "sim", "--checkpoint", str(goog), "--out", str(tmp_path / "bot"),
            "--preferences", str(prefs)]  # fmt: skip
    first = start_script(
        "run_live_bot.py",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    assert first.stdout is not None
    bars = 0
    for line in first.stdout:
        bars += line.startswith("[sim] 20")
        if bars == 40:
            first.send_signal(signal.SIGKILL)
            break
    assert first.wait(timeout=60) == -signal.SIGKILL
    with sqlite3.connect(tmp_path / "bot" / "journal.sqlite") as db:
        before = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    assert before > 0

    done = run_script("run_live_bot.py", *args, timeout=300)
    assert done.returncode in (ExitCode.OK, ExitCode.HALTED), done.stderr
    assert "Traceback" not in done.stderr and "error" not in done.stderr
    assert "resuming the replay after" in done.stdout
    with sqlite3.connect(tmp_path / "bot" / "journal.sqlite") as db:
        refs = [row[0] for row in db.execute("SELECT client_ref FROM orders")]
        runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert len(refs) == len(set(refs)) > before and runs == 2


def test_both_scripts_run_from_another_directory(goog, tmp_path) -> None:
    """Default config files resolve against the scripts, not the working directory."""
    done = run_script(
        "run_backtest.py", "--checkpoint", str(goog), "--out", "reports", cwd=tmp_path
    )
    assert done.returncode == ExitCode.OK, done.stderr
    assert (tmp_path / "reports" / "GOOG_stage_1_ppo_test.json").exists()
    done = run_script(
        "run_live_bot.py", "--broker", "sim", "--checkpoint", str(goog), "--max-bars", "3",
        "--out", "bot", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode in (ExitCode.OK, ExitCode.HALTED), done.stderr
    assert f"preferences: {ROOT / 'configs' / 'preferences.yaml'}" in done.stdout
    assert (tmp_path / "bot" / "summary.json").exists()
