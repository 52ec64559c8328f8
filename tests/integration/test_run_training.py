"""run_training.py as a user meets it: clean failures, run folders bound to their settings,
one run per folder, Ctrl-C and resume, and any working directory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from tests.integration.cli import ROOT, run_script, start_script

from evotrader.cli import ExitCode
from evotrader.data.reference import DATA_DIRS_ENV
from evotrader.training.run_folder import run_lock

TINY = ("profile=tiny", "data=synthetic", "data.options.n_bars=700")
PPO = (*TINY, "stages=[stage_1_ppo]", "stage_1_ppo.iterations=1")
BAD_CSV = "date,open,high,low,close,volume\n2024-01-02,1,1,1,1,10\n2024-01-02,1,1,1,1,10\n"


def _train(runs: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return run_script("run_training.py", f"runs_dir={runs}", *args, cwd=cwd, timeout=600)


def _assert_one_error(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Exit ``code``, exactly one ``error:`` line holding ``fragments``, no traceback."""
    assert done.returncode == code, done.stdout[-3000:] + done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-iteration PPO run, started from another directory with a relative
    runs_dir: the run lands there, and configs/ is still found."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    done = run_script("run_training.py", "runs_dir=runs", "run_name=base", *PPO, cwd=elsewhere)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = elsewhere / "runs" / "base"
    assert (run / "AR1_stage_1_ppo.pth").exists() and (run / "fingerprint.json").exists()
    return run


def test_an_empty_stage_list_says_so_and_exits_cleanly(tmp_path: Path) -> None:
    done = _train(tmp_path, "stages=[]", "run_name=empty")
    assert done.returncode == 0, done.stderr
    assert "No stages configured" in done.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("stages=[stage_9_magic]",), ExitCode.USAGE, "stage_9_magic"),
        (("data.symbl=AAPL",), ExitCode.USAGE, "symbl"),
        (("env.window=sixty",), ExitCode.USAGE, "env.window"),
        ((*TINY, "stage_4_autonomous.population=-2"), ExitCode.USAGE, "population must be >= 1"),
        ((*TINY, "stages=[stage_1_ppo]", "env.window=5000"), ExitCode.USAGE, "window 5000"),
        (
            (*TINY, "stages=[strategy_search]", "strategy_search.preferences=missing.yaml"),
            ExitCode.USAGE,
            "missing.yaml",
        ),
        (("data.source=csv", "+data.options.path={tmp}/none.csv"), ExitCode.DATA, "none.csv"),
        (("data.source=csv", "+data.options.path={tmp}/bad.csv"), ExitCode.DATA, "bad.csv"),
    ],
    ids=[
        "unknown-stage",
        "misspelt-key",
        "wrong-type",
        "bad-population",
        "window-over-data",
        "missing-preferences",
        "missing-csv",
        "duplicate-csv-rows",
    ],
)
def test_a_bad_input_gives_one_error_line_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    code: int,
    fragment: str,
) -> None:
    monkeypatch.setenv(DATA_DIRS_ENV, str(tmp_path))  # the CSVs lie in a data folder
    (tmp_path / "bad.csv").write_text(BAD_CSV)
    runs = tmp_path / "runs"
    done = _train(runs, *(arg.format(tmp=tmp_path) for arg in args))
    _assert_one_error(done, code, fragment)
    assert not runs.exists()  # validated before any folder is written


def test_training_data_outside_the_data_folders_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint's data reference must name a file inside the data folders, or the backtest
    and the bot refuse it; training refuses such a file first, before hours of training."""
    monkeypatch.delenv(DATA_DIRS_ENV, raising=False)
    (tmp_path / "bad.csv").write_text(BAD_CSV)
    runs = tmp_path / "runs"
    done = _train(runs, "data.source=csv", f"+data.options.path={tmp_path}/bad.csv")
    _assert_one_error(done, ExitCode.DATA, "outside the data folders", DATA_DIRS_ENV)
    assert not runs.exists()


def test_debug_lets_the_traceback_through(tmp_path: Path) -> None:
    done = _train(tmp_path, "--debug", "stages=[stage_9_magic]")
    assert done.returncode != 0 and "Traceback" in done.stderr and "ConfigError" in done.stderr


def test_an_unreachable_ray_address_is_a_ray_error_from_any_directory(tmp_path: Path) -> None:
    # From another directory: strategy_search's configs/preferences.yaml is still found.
    args = (*TINY, "stages=[strategy_search]", "ray.address=127.0.0.1:1")
    done = _train(tmp_path / "runs", *args, cwd=tmp_path)
    _assert_one_error(done, ExitCode.RAY, "ray.address='127.0.0.1:1'")


def test_a_rerun_resumes_and_a_changed_key_is_refused_by_name(trained: Path) -> None:
    resumed = _train(trained.parent, "run_name=base", *PPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "[stage_1_ppo] already complete" in resumed.stdout

    config = (trained / "config.yaml").read_bytes()
    done = _train(trained.parent, "run_name=base", *PPO, "stage_1_ppo.lr=0.001", "seed=1")
    _assert_one_error(done, ExitCode.RUN, "seed: 0 -> 1", "stage_1_ppo.lr: 0.0003 -> 0.001")
    assert (trained / "config.yaml").read_bytes() == config


def test_new_run_trains_the_changed_settings_under_a_printed_name(trained: Path) -> None:
    done = _train(trained.parent, "--new-run", "run_name=base", *PPO, "stage_1_ppo.lr=0.001")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    name = next(
        line.split("run_name=")[1] for line in done.stdout.splitlines() if "run_name=" in line
    )
    assert name.startswith("base-") and name != "base"
    assert (trained.parent / name / "AR1_stage_1_ppo.pth").exists()
    assert _ppo_lr(trained.parent / name) == 0.001
    assert _ppo_lr(trained) == 0.0003


def _ppo_lr(run: Path) -> float:
    return yaml.safe_load((run / "config.yaml").read_text())["stage_1_ppo"]["lr"]


def test_a_second_run_of_a_held_folder_is_refused_naming_the_holder(trained: Path) -> None:
    with run_lock(trained):  # stands in for a first run still training
        done = _train(trained.parent, "run_name=base", *PPO)
    _assert_one_error(done, ExitCode.RUN, f"in use by process {os.getpid()}")


def _as_from_a_terminal() -> None:
    """SIGINT as a shell hands it to a foreground command: unblocked, default action. A child
    inherits its parent's blocked-signal mask and an ignored SIGINT, and earlier tests' native
    libraries may leave either on the test process, which would make the run deaf to Ctrl-C."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_with_one_error_line_and_a_rerun_resumes(tmp_path: Path) -> None:
    # enough iterations that a busy machine still signals mid-training, not after the run
    args = (f"runs_dir={tmp_path}", "run_name=stopped", *PPO, "stage_1_ppo.iterations=12")
    process = start_script(
        "run_training.py",
        *args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_as_from_a_terminal,
    )
    last = tmp_path / "stopped" / "stage_1_ppo" / "last.pth"
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    stopped = subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
    _assert_one_error(stopped, ExitCode.INTERRUPTED, "interrupted")

    done = _train(tmp_path, *args[1:])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resuming after iteration" in done.stdout
