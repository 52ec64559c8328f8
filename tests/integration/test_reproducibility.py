"""Same seed, same CPU, same config: the autonomous champion's tensors are byte-identical."""

from __future__ import annotations

from pathlib import Path

from evotrader.core.checkpoint import load_checkpoint
from evotrader.training.autonomous_trainer import run_autonomous_stage

TINY = [
    "profile=tiny",
    "data=synthetic",
    "data.options.n_bars=900",
    "stages=[stage_4_autonomous]",
    "stage_4_autonomous.generations=2",
]


def test_same_seed_runs_give_byte_identical_champion_tensors(
    ray_session, stage_context, tmp_path: Path
) -> None:
    first = stage_context("stage_4_autonomous", *TINY)
    second = stage_context("stage_4_autonomous", *TINY, run_dir=tmp_path / "again")
    champions = [load_checkpoint(run_autonomous_stage(ctx).checkpoint) for ctx in (first, second)]
    a, b = (champion.state_dict for champion in champions)
    assert list(a) == list(b) and "memory.archive" in a
    for name, tensor in a.items():
        assert (tensor.dtype, tensor.shape) == (b[name].dtype, b[name].shape), name
        assert tensor.numpy().tobytes() == b[name].numpy().tobytes(), name
    assert champions[0].extra["member"] == champions[1].extra["member"]
