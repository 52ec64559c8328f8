import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*overrides: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run_training.py"), f"runs_dir={tmp_path}", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_empty_stage_list_says_so_and_exits_cleanly(tmp_path: Path) -> None:
    done = _run("stages=[]", "run_name=empty", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "No stages configured" in done.stdout


def test_an_unknown_stage_is_named(tmp_path: Path) -> None:
    done = _run(
        "data=synthetic", "data.options.n_bars=900", "stages=[stage_9_magic]", tmp_path=tmp_path
    )
    assert done.returncode != 0
    assert "stage_9_magic" in done.stderr


def test_a_misspelt_config_key_stops_the_run_naming_it(tmp_path: Path) -> None:
    done = _run("data.symbl=AAPL", tmp_path=tmp_path)
    assert done.returncode != 0
    assert "symbl" in done.stderr


def test_a_wrong_type_stops_the_run_naming_the_key(tmp_path: Path) -> None:
    done = _run("env.window=sixty", tmp_path=tmp_path)
    assert done.returncode != 0
    assert "env.window" in done.stderr
