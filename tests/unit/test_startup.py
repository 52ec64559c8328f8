"""Start-up: the scripts' ``--help``, the backtest engine with a numpy policy and the episodic
memory load none of the heavy libraries (torch above all). Each check runs in a fresh
interpreter, since this one has long imported them. Behaviour only: bench/bench_startup.py
times it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "matplotlib", "hydra", "ray", "backtesting", "nautilus_trader", "sqlalchemy")
REPORT = f"import json, sys; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"


def _heavy_loaded_after(code: str) -> list[str]:
    """The heavy top-level modules a fresh interpreter holds after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{REPORT}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_backtest_engine_leaves_torch_out() -> None:
    assert "torch" not in _heavy_loaded_after("import evotrader.backtest.engine")


def test_backtesting_a_numpy_policy_needs_no_torch() -> None:
    code = """
from evotrader.backtest.engine import run_backtest
from evotrader.backtest.policies import MovingAverageCrossover
from evotrader.data import FeaturePipeline, generate_synthetic
from evotrader.env import EnvSpec

bars = generate_synthetic(400, seed=7, kind="regimes").bars
pipeline = FeaturePipeline().fit(bars.iloc[:200])
for agent_state in (False, True):
    spec = EnvSpec(window=24, agent_state=agent_state)
    policy = MovingAverageCrossover(pipeline, 5, 20)
    result = run_backtest(policy, bars, pipeline=pipeline, spec=spec)
    assert len(result.positions) > 300 and result.positions.abs().sum() > 0
"""
    assert "torch" not in _heavy_loaded_after(code)


def test_the_episodic_memory_stores_and_retrieves_numpy_without_torch() -> None:
    code = """
import numpy as np
from evotrader.memory import EventDetector, ExternalMemory

memory = ExternalMemory(8)
memory.store(np.eye(8), np.arange(8.0), kind="x")
assert memory.retrieve(np.eye(8)[2], 1).ids.tolist() == [[2]]
"""
    assert "torch" not in _heavy_loaded_after(code)


@pytest.mark.parametrize("script", ["run_backtest.py", "run_live_bot.py"])
def test_script_help_imports_no_heavy_library(script: str) -> None:
    code = f"""
import runpy, sys
sys.argv = [{script!r}, "--help"]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as stop:
    assert stop.code == 0, stop.code
"""
    assert _heavy_loaded_after(code) == []


def test_the_operator_command_s_help_imports_no_heavy_library() -> None:
    code = """
from evotrader.__main__ import main
try:
    main(["--help"])
except SystemExit as stop:
    assert stop.code == 0, stop.code
"""
    assert _heavy_loaded_after(code) == []


def test_the_operator_command_s_default_registry_is_the_runs_one() -> None:
    from evotrader.__main__ import DEFAULT_REGISTRY
    from evotrader.lifecycle.store import REGISTRY_FILE

    assert Path(DEFAULT_REGISTRY) == Path("runs") / REGISTRY_FILE
