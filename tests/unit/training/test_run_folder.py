"""Run folders: the fingerprint binds results to their settings, the lock to one process."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evotrader.config import TrainingConfig
from evotrader.training.population import Archive
from evotrader.training.run_folder import (
    CONFIG_FILE,
    FINGERPRINT_FILE,
    Fingerprint,
    RunFolderError,
    fingerprint_values,
    open_run,
    run_lock,
    settings_note,
)

STAGES = ("stage_1_ppo", "stage_2_moe")


def _config(tmp_path: Path, **changes: object) -> TrainingConfig:
    return dataclasses.replace(
        TrainingConfig(run_name="run", runs_dir=str(tmp_path), stages=list(STAGES)), **changes
    )


def _with_lr(config: TrainingConfig, lr: float) -> TrainingConfig:
    return dataclasses.replace(config, stage_1_ppo=dataclasses.replace(config.stage_1_ppo, lr=lr))


def _started(tmp_path: Path, bars: pd.DataFrame, *stages: str) -> Path:
    """A run folder of the default settings in which ``stages`` have started."""
    with open_run(_config(tmp_path), bars, STAGES) as run:
        for stage in stages:
            run.start_stage(stage)
    return run.path


def test_the_fingerprint_holds_result_settings_and_the_bars_not_names(bars) -> None:
    values = fingerprint_values(TrainingConfig(), bars)
    assert values["seed"] == 0 and values["stage_1_ppo.lr"] == 3e-4
    assert values["bars.rows"] == len(bars) and values["bars.first"] == str(bars.index[0])
    assert not any(key.split(".")[0] in {"run_name", "runs_dir", "ray", "stages"} for key in values)
    renamed = dataclasses.replace(TrainingConfig(), run_name="other", stages=["stage_1_ppo"])
    assert fingerprint_values(renamed, bars) == values

    edited = bars.copy()
    edited.iloc[-1, edited.columns.get_loc("close")] *= 1.01
    assert fingerprint_values(TrainingConfig(), edited)["bars.sha256"] != values["bars.sha256"]


def test_only_keys_that_results_depend_on_conflict(bars) -> None:
    before = fingerprint_values(TrainingConfig(), bars)
    after = fingerprint_values(_with_lr(dataclasses.replace(TrainingConfig(), seed=1), 1e-3), bars)
    assert Fingerprint(before).conflicts(after, STAGES) == []  # nothing trained yet
    assert Fingerprint(before, ["stage_2_moe"]).conflicts(after, STAGES) == ["seed: 0 -> 1"]
    assert Fingerprint(before, ["stage_1_ppo"]).conflicts(after, STAGES) == [
        "seed: 0 -> 1",
        "stage_1_ppo.lr: 0.0003 -> 0.001",
    ]
    added = after | {"data.options.path": "bars.csv"}
    assert "data.options.path: (unset) -> bars.csv" in Fingerprint(
        before, ["stage_1_ppo"]
    ).conflicts(added, STAGES)


def test_a_rerun_with_other_settings_is_refused_naming_them(tmp_path: Path, bars) -> None:
    path = _started(tmp_path, bars, "stage_1_ppo")
    written = (path / CONFIG_FILE).read_bytes()
    changed = _with_lr(_config(tmp_path), 1e-3)
    with (
        pytest.raises(RunFolderError, match=r"stage_1_ppo\.lr: 0\.0003 -> 0\.001") as refused,
        open_run(changed, bars, STAGES),
    ):
        pass
    assert "--new-run" in str(refused.value)
    assert (path / CONFIG_FILE).read_bytes() == written  # never claims settings it lacks


def test_a_stage_not_started_may_change_and_the_record_follows(tmp_path: Path, bars) -> None:
    _started(tmp_path, bars, "stage_1_ppo")
    moe = dataclasses.replace(TrainingConfig().stage_2_moe, num_experts=2)
    with open_run(_config(tmp_path, stage_2_moe=moe), bars, STAGES) as run:
        assert run.fingerprint.started == ["stage_1_ppo"]
    record = Fingerprint.load(run.path / FINGERPRINT_FILE)
    assert record.values["stage_2_moe.num_experts"] == 2
    assert "num_experts: 2" in (run.path / CONFIG_FILE).read_text()


def test_new_run_starts_a_fresh_folder_that_the_same_command_resumes(tmp_path: Path, bars) -> None:
    _started(tmp_path, bars, "stage_1_ppo")
    changed = _config(tmp_path, seed=1)
    with open_run(changed, bars, STAGES, new_run=True) as fresh:
        fresh.start_stage("stage_1_ppo")
    assert fresh.path.name.startswith("run-") and fresh.config.run_name == fresh.path.name
    assert (
        fresh.path.name.removeprefix("run-")
        == Fingerprint(fingerprint_values(changed, bars)).digest[:8]
    )
    with open_run(changed, bars, STAGES, new_run=True) as again:
        assert again.path == fresh.path and again.fingerprint.started == ["stage_1_ppo"]


def test_a_folder_without_a_fingerprint_is_refused(tmp_path: Path, bars) -> None:
    legacy = tmp_path / "run"
    (legacy / "stage_4_autonomous").mkdir(parents=True)
    (legacy / "state.json").write_text('{"completed": {}}')
    with (
        pytest.raises(RunFolderError, match=r"no fingerprint\.json"),
        open_run(_config(tmp_path), bars, STAGES),
    ):
        pass


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    with (
        run_lock(tmp_path),
        pytest.raises(RunFolderError, match=f"in use by process {os.getpid()}"),
        run_lock(tmp_path),
    ):
        pass
    with run_lock(tmp_path):  # released on exit
        pass


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; "
        "from evotrader.training.run_folder import run_lock\n"
        "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(RunFolderError, match=f"process {holder.pid}"), run_lock(tmp_path):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_lock(tmp_path):
        pass


def test_an_archive_with_an_empty_finished_generation_is_never_saved(tmp_path: Path) -> None:
    path = tmp_path / "archive.json"
    with pytest.raises(ValueError, match=r"generations \[0\] have no members"):
        Archive(generations_done=1).save(path)
    assert not path.exists()
    Archive().save(path)  # nothing finished yet: a valid starting point
    assert Archive.load(path).generations_done == 0


def test_a_stage_digest_binds_run_wide_and_own_keys_only(bars) -> None:
    base = fingerprint_values(TrainingConfig(), bars)
    digest = Fingerprint(base).stage_digest("stage_1_ppo", STAGES)
    other_stage = base | {"stage_2_moe.lr": 1.0}
    assert Fingerprint(other_stage).stage_digest("stage_1_ppo", STAGES) == digest
    for changed in ({"stage_1_ppo.lr": 1.0}, {"seed": 7}, {"bars.rows": 1}):
        assert Fingerprint(base | changed).stage_digest("stage_1_ppo", STAGES) != digest


def test_the_settings_note_checks_a_checkpoint_against_its_folder(tmp_path: Path, bars) -> None:
    folder = _started(tmp_path, bars, "stage_1_ppo")
    digest = Fingerprint.load(folder / FINGERPRINT_FILE).stage_digest("stage_1_ppo", STAGES)
    path = folder / "GOOG_stage_1_ppo.pth"
    assert "match" in settings_note({"fingerprint": digest}, "stage_1_ppo", STAGES, path)
    assert "DIFFER" in settings_note({"fingerprint": "0" * 64}, "stage_1_ppo", STAGES, path)
    assert "records no settings" in settings_note(None, "stage_1_ppo", STAGES, path)
    elsewhere = tmp_path.parent / "moved.pth"
    note = settings_note({"fingerprint": digest}, "stage_1_ppo", STAGES, elsewhere)
    assert "cannot be checked" in note
