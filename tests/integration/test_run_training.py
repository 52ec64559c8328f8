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


def test_default_entry_point_reports_an_out_of_sample_baseline(tmp_path: Path) -> None:
    done = _run("data=synthetic", "data.options.n_bars=900", "run_name=smoke", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "validation split, after costs" in done.stdout
    assert "buy & hold" in done.stdout
    assert "No training stages" in done.stdout
    assert (tmp_path / "smoke" / "hydra" / "config.yaml").exists()


def test_a_misspelt_config_key_stops_the_run_naming_it(tmp_path: Path) -> None:
    done = _run("data.symbl=AAPL", tmp_path=tmp_path)
    assert done.returncode != 0
    assert "symbl" in done.stderr


def test_a_wrong_type_stops_the_run_naming_the_key(tmp_path: Path) -> None:
    done = _run("env.window=sixty", tmp_path=tmp_path)
    assert done.returncode != 0
    assert "env.window" in done.stderr
