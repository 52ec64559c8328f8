"""Stages register themselves: every stage of the sequence resolves to its own module's entry,
nothing heavy is imported until a stage is asked for, and a new stage needs only its module,
its YAML and a line in the sequence."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from evotrader.config import ConfigError, TrainingConfig, load_training_config, training_schema
from evotrader.core.checkpoint import find_checkpoint
from evotrader.training.stages import STAGES, stage, stage_modules


def test_every_stage_in_the_sequence_is_registered_by_its_own_module() -> None:
    sequence = load_training_config().stages  # configs/training_sequence.yaml: the order
    assert sequence[0] == "stage_1_ppo"
    assert set(sequence) == set(STAGES.names())  # no stage outside the sequence, none missing
    defaults = TrainingConfig()
    for name in sequence:
        spec = stage(name)
        assert spec.name == name
        assert spec.run.__module__ == STAGES.module_of(name) == spec.check_settings.__module__
        assert callable(spec.run) and callable(spec.check_settings)
        assert dataclasses.is_dataclass(spec.config)
        assert type(getattr(defaults, name)) is spec.config  # its section of the config
        assert spec.checkpoint_kind is None or isinstance(spec.checkpoint_kind, str)
    kinds = [stage(name).checkpoint_kind for name in sequence]
    assert kinds == ["ppo", "moe", "maml", "autonomous", None]


def test_finding_and_configuring_stages_imports_none_of_them() -> None:
    """The map is read from the module files; the stages' heavy libraries stay unloaded."""
    code = textwrap.dedent(
        """
        import sys
        from evotrader.config import load_training_config
        from evotrader.training.stages import STAGES
        assert len(STAGES.names()) == 5 and load_training_config().stages
        loaded = [m for m in sys.modules if m.split(".")[0] in ("ray", "nautilus_trader")]
        loaded += [m for m in STAGES._locate().values() if m in sys.modules]
        assert not loaded, loaded
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


DEMO = """
from dataclasses import dataclass

from evotrader.training.pipeline import StageContext, StageResult
from evotrader.training.stages import register_stage


@dataclass
class DemoConfig:
    steps: int = 1


def check_settings(ctx: StageContext) -> None:
    if ctx.config.stage_9_demo.steps < 1:
        raise ValueError("steps must be >= 1")


def run_demo(ctx: StageContext) -> StageResult:
    return StageResult(checkpoint="", validation={}, seconds=0.0)


register_stage(
    "stage_9_demo", config=DemoConfig, run=run_demo, check_settings=check_settings,
    checkpoint_kind=None,
)
"""


@pytest.fixture
def demo_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A stage module outside the package, as if it sat in evotrader/training/."""
    (tmp_path / "demo_stage.py").write_text(DEMO)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(STAGES, "_entries", dict(STAGES._entries))
    monkeypatch.setattr(STAGES, "_locate", lambda: stage_modules() | {"stage_9_demo": "demo_stage"})
    training_schema.cache_clear()
    yield "stage_9_demo"
    training_schema.cache_clear()
    sys.modules.pop("demo_stage", None)


def test_a_new_stage_brings_its_own_config_section(demo_stage: str) -> None:
    """No edit to config.py or pipeline.py: the module's config type becomes its section."""
    config = load_training_config([f"stages=[{demo_stage}]", f"{demo_stage}.steps=3"])
    assert config.stage_9_demo.steps == 3  # type: ignore[attr-defined]
    assert stage(demo_stage).run.__module__ == "demo_stage"
    with pytest.raises(ConfigError, match="steps"):
        load_training_config([f"{demo_stage}.steps=many"])  # checked by the schema


def test_the_latest_runs_most_advanced_checkpoint_follows_the_sequence(tmp_path: Path) -> None:
    """find_checkpoint (run_backtest.py, the live bot) takes the stage order a run recorded in
    its config.yaml, which comes from the sequence; without one, the newest checkpoint."""
    run = tmp_path / "GOOG-quick-seed0"
    run.mkdir()
    for age, stage_name in enumerate(("stage_2_moe", "stage_1_ppo")):  # MoE written first
        path = run / f"GOOG_{stage_name}.pth"
        path.write_bytes(b"")
        os.utime(path, (1_000 + age, 1_000 + age))
    assert find_checkpoint(tmp_path, "GOOG").name == "GOOG_stage_1_ppo.pth"
    config = OmegaConf.to_yaml(OmegaConf.structured(load_training_config()))
    (run / "config.yaml").write_text(config)  # as the run folder writes it
    assert find_checkpoint(tmp_path, "GOOG").name == "GOOG_stage_2_moe.pth"
