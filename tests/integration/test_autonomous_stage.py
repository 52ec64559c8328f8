"""stage_4_autonomous end to end (tiny profile): champion, report, resume, a 2-node cluster,
and results independent of the order jobs are submitted and finish in."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from ray.cluster_utils import Cluster
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests.integration.cli import kill_training_at, run_script, run_script_ok

from evotrader.core.checkpoint import load_checkpoint
from evotrader.training import autonomous_trainer
from evotrader.training.member_scheduling import as_completed, longest_first

TINY = [
    "profile=tiny",
    "data=synthetic",
    "data.options.n_bars=900",
    "stages=[stage_4_autonomous]",
    "stage_4_autonomous.generations=3",
]


def _args(runs: Path, name: str, *overrides: str) -> list[str]:
    return [f"runs_dir={runs}", f"run_name={name}", *TINY, *overrides]


def _train(runs: Path, name: str, *overrides: str) -> str:
    return run_script_ok("run_training.py", *_args(runs, name, *overrides), timeout=900).stdout


def _champion_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    champion = load_checkpoint(run_dir / "AR1_autonomous_final.pth")
    return {k: v for k, v in champion.state_dict.items() if k.startswith("world_model.")}


def _assert_same_champion(first: Path, second: Path) -> None:
    a, b = (
        load_checkpoint(first / "AR1_autonomous_final.pth"),
        load_checkpoint(second / "AR1_autonomous_final.pth"),
    )
    assert a.extra["member"] == b.extra["member"]
    assert a.metrics == b.metrics
    weights_a, weights_b = _champion_weights(first), _champion_weights(second)
    assert weights_a.keys() == weights_b.keys()
    for name, tensor in weights_a.items():
        assert torch.equal(tensor, weights_b[name]), name


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    runs = tmp_path_factory.mktemp("runs")
    stdout = _train(runs, "base", "ray.num_cpus=1")
    return runs / "base", stdout


def test_champion_is_saved_with_each_figure_under_its_split(baseline) -> None:
    run_dir, stdout = baseline
    champion = load_checkpoint(run_dir / "AR1_autonomous_final.pth")
    assert champion.kind == "autonomous"
    assert {
        "test_sharpe",
        "test_buy_hold_sharpe",
        "validation_dsr",
        "validation_trials",
        "test_excess_psr",
        "test_edge_p_value",
        "fitness",
    } <= set(champion.metrics)
    assert "dsr" not in champion.metrics  # no unlabelled figure
    assert "pbo" in champion.metrics or champion.extra["pbo"].startswith("PBO undefined: ")
    assert champion.metrics["members"] == 12  # 3 generations of 4
    assert champion.metrics["validation_trials"] == 12  # the only stage of this run
    assert champion.extra["trials_by_stage"] == {"stage_4_autonomous": 12}
    assert champion.extra["lineage"][0]["id"] == champion.extra["member"]
    selection, test = stdout.split("Champion, test split (touched once): out of sample", 1)
    assert "validation split (used for selection)" in selection
    assert "Deflated Sharpe Ratio" in selection and "over 12 trials" in selection
    assert "Deflated Sharpe" not in test and "out of sample" not in selection
    assert "edge over buy-and-hold: " in test and "12 trials behind selection" in test
    assert stdout.rstrip().splitlines()[-1] == champion.extra["verdict"]  # the summary ends so
    assert "generation 3" in stdout
    archive = json.loads((run_dir / "stage_4_autonomous" / "archive.json").read_text())
    assert archive["generations_done"] == 3 and len(archive["members"]) == 12


def test_tensorboard_has_a_point_per_generation(baseline) -> None:
    run_dir, _ = baseline
    events = EventAccumulator(str(run_dir / "tensorboard" / "stage_4_autonomous"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"fitness/best", "fitness/mean", "fitness/median", "population/diversity"} <= scalars
    assert "self_modification/events" in scalars
    assert [e.step for e in events.Scalars("fitness/best")] == [1, 2, 3]
    assert any(tag.startswith("genes/") for tag in events.Tags()["histograms"])


def test_run_backtest_loads_the_champion_exclusively(baseline) -> None:
    run_dir, _ = baseline
    done = run_script("run_backtest.py", "--symbol", "AR1", "--runs-dir", str(run_dir.parent))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "AR1_autonomous_final.pth (autonomous, AR1)" in done.stdout


def test_killed_mid_generation_resumes_to_the_same_champion(baseline, tmp_path: Path) -> None:
    # At "generation 1 " generation 1 is saved and generation 2 has started.
    kill_training_at("generation 1 ", *_args(tmp_path, "killed", "ray.num_cpus=1"))
    stdout = _train(tmp_path, "killed", "ray.num_cpus=1")
    assert "resuming after generation" in stdout
    _assert_same_champion(baseline[0], tmp_path / "killed")


def test_a_two_node_cluster_finds_the_same_champion(baseline, tmp_path: Path) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        cluster.wait_for_nodes()
        _train(tmp_path, "cluster", f"ray.address={cluster.address}")
    finally:
        cluster.shutdown()
    _assert_same_champion(baseline[0], tmp_path / "cluster")


@pytest.mark.slow
def test_submission_and_completion_order_change_nothing(
    ray_session, stage_context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = [o for o in TINY if "generations" not in o] + ["stage_4_autonomous.generations=2"]
    planned = stage_context("stage_4_autonomous", *overrides, run_dir=tmp_path / "planned")
    autonomous_trainer.run_autonomous_stage(planned)
    arrivals: list[list[int]] = []

    def backwards(refs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Every result, consumed in the reverse of the order it finished in."""
        arrived = list(as_completed(refs))
        arrivals.append([index for index, _ in arrived][::-1])
        yield from reversed(arrived)

    monkeypatch.setattr(autonomous_trainer, "as_completed", backwards)
    monkeypatch.setattr(autonomous_trainer, "longest_first", lambda c: longest_first(c)[::-1])
    shuffled = stage_context("stage_4_autonomous", *overrides, run_dir=tmp_path / "shuffled")
    autonomous_trainer.run_autonomous_stage(shuffled)

    assert len(arrivals) == 2 and all(order != sorted(order) for order in arrivals)
    stage = "stage_4_autonomous"
    for name in ("archive.json", "../trials.jsonl"):
        a, b = (ctx.stage_dir / name for ctx in (planned, shuffled))
        assert a.read_bytes() == b.read_bytes(), name
    agents = sorted(p.name for p in (planned.stage_dir / "agents").iterdir())
    assert agents == sorted(p.name for p in (shuffled.stage_dir / "agents").iterdir())
    for name in [f"{stage}/agents/{agent}" for agent in agents] + ["AR1_autonomous_final.pth"]:
        a, b = (load_checkpoint(ctx.run_dir / name) for ctx in (planned, shuffled))
        assert a.metrics == b.metrics, name
        assert list(a.state_dict) == list(b.state_dict), name
        for key, tensor in a.state_dict.items():
            assert tensor.numpy().tobytes() == b.state_dict[key].numpy().tobytes(), (name, key)
