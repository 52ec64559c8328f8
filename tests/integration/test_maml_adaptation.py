"""MAML adapts to a held-out task faster than PPO's weights (planted sign-flipping signal).

Runs bench/bench_maml_adaptation.py: PPO then MAML through run_training.py on SIGN_SWITCH
bars (AR(1) +0.5 / -0.5 by 250-bar block), then both checkpoints take the same inner steps
on the blocks after the training split and are scored on fresh episodes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.integration.cli import run_script_ok


@pytest.mark.slow
def test_maml_adapts_to_held_out_tasks_where_ppo_weights_do_not(tmp_path: Path) -> None:
    out = tmp_path / "curves.json"
    args = ("--runs-dir", str(tmp_path / "runs"), "--steps", "2", "--seeds", "2", "--out", str(out))
    run_script_ok("bench/bench_maml_adaptation.py", *args, timeout=1500)
    curves = json.loads(out.read_text())
    maml, ppo = curves["maml"], curves["ppo"]
    print(f"held-out adaptation curves: maml {maml}, ppo {ppo}")
    assert maml[1] > maml[0] + 0.02  # one inner step finds the task's sign
    assert maml[1] > ppo[1] + 0.03  # the same step from PPO's weights does not
    assert maml[2] > ppo[2] + 0.03
