"""The staged pipeline: runs the configured stages in order under runs/<run_name>/.

A run directory holds the resolved config, one TensorBoard log dir per stage, the stage
checkpoints and ``state.json``. Rerunning the same run skips completed stages; a stage
that was interrupted resumes from its own last checkpoint.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import ray
from omegaconf import OmegaConf
from torch import nn

from evotrader.backtest.significance import TEST, VALIDATION
from evotrader.config import TrainingConfig, bars_from, pipeline_from, splits_from
from evotrader.data import FeaturePipeline, TimeSplits
from evotrader.training.checkpoint import Checkpoint, checkpoint_name
from evotrader.training.trials import LEDGER_NAME, TrialLedger


@dataclass(frozen=True)
class StageContext:
    """What a stage needs: the config, the data and where to write."""

    name: str
    config: TrainingConfig
    run_dir: Path
    bars: pd.DataFrame
    splits: TimeSplits
    pipeline: FeaturePipeline
    completed: dict[str, StageResult]  # the stages finished before this one, in order

    @property
    def stage_dir(self) -> Path:
        return self.run_dir / self.name

    @property
    def tensorboard_dir(self) -> Path:
        return self.run_dir / "tensorboard" / self.name

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / checkpoint_name(self.config.data.symbol, self.name)

    @property
    def trials(self) -> TrialLedger:
        """Every candidate the run scored on the validation split: the DSR's trials."""
        return TrialLedger(self.run_dir / LEDGER_NAME)

    def data_source(self) -> dict[str, Any]:
        """How to load these bars again (run_backtest and the live bot need it)."""
        data = self.config.data
        return {"source": data.source, "symbol": data.symbol, "options": dict(data.options)}

    def data_range(self) -> dict[str, str]:
        ranges = {}
        for split in ("train", "validation", "test"):
            index = getattr(self.splits, split).index
            ranges[f"{split}_start"], ranges[f"{split}_end"] = str(index[0]), str(index[-1])
        return ranges

    def best_previous_checkpoint(self) -> Path | None:
        """The earlier policy stage with the best validation Sharpe (what later stages start
        from); strategy_search leaves a registry, not weights, so it never counts."""
        policies = [done for done in self.completed.values() if done.checkpoint.endswith(".pth")]
        if not policies:
            return None
        return Path(max(policies, key=lambda done: done.validation["sharpe"]).checkpoint)

    def checkpoint(
        self,
        kind: str,
        policy: nn.Module,
        hyperparameters: dict[str, Any],
        metrics: dict[str, float],
        **extra: Any,
    ) -> Checkpoint:
        """This stage's policy in the common checkpoint format, with data and env settings."""
        return Checkpoint(
            kind=kind,
            architecture=policy.architecture(),
            state_dict=policy.state_dict(),
            hyperparameters={**hyperparameters, "seed": self.config.seed},
            feature_pipeline=self.pipeline.state_dict(),
            env=asdict(self.config.env),
            symbol=self.config.data.symbol,
            data_range=self.data_range(),
            metrics={key: float(value) for key, value in metrics.items()},
            extra={"stage": self.name, "data": self.data_source(), **extra},
        )


@dataclass
class StageResult:
    """A finished stage: its checkpoint and headline figures, each named by its split.

    ``validation`` is the kept candidate on the validation split, the split it was selected
    on: the best of many tries, so optimistic and never out of sample. A stage that crowns a
    champion also reports it once on the test split (``test``), with the ``verdict`` on its
    edge over buy-and-hold.
    """

    checkpoint: str
    validation: dict[str, float]
    seconds: float
    test: dict[str, float] = field(default_factory=dict)
    verdict: str = ""


Stage = Callable[[StageContext], StageResult]


@dataclass
class RunState:
    """Completed stages, persisted atomically in state.json after every stage."""

    completed: dict[str, StageResult] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RunState:
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
            return cls({name: StageResult(**done) for name, done in raw["completed"].items()})
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path}: unreadable run state ({error}); move it away to restart the run"
            ) from error

    def save(self, path: Path) -> None:
        payload = {"completed": {name: asdict(done) for name, done in self.completed.items()}}
        temporary = path.with_suffix(".json.tmp")
        with open(temporary, "w") as handle:
            json.dump(payload, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)


STAGES = {
    "stage_1_ppo": "evotrader.training.ppo_stage:run_ppo_stage",
    "stage_2_moe": "evotrader.training.moe_stage:run_moe_stage",
    "stage_3_maml": "evotrader.training.maml_stage:run_maml_stage",
    "stage_4_autonomous": "evotrader.training.autonomous_trainer:run_autonomous_stage",
    "strategy_search": "evotrader.training.strategy_stage:run_strategy_stage",
}


def stage_runner(name: str) -> Stage:
    """The stage's runner, imported only when it runs (each pulls in its own heavy libraries)."""
    module, function = STAGES[name].split(":")
    return getattr(importlib.import_module(module), function)


def run_pipeline(config: TrainingConfig) -> dict[str, StageResult]:
    """Run every configured stage not yet completed; returns all stages' results."""
    unknown = [name for name in config.stages if name not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; available: {sorted(STAGES)}")
    run_dir = Path(config.runs_dir) / config.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(config)))
    state_path = run_dir / "state.json"
    state = RunState.load(state_path)

    bars = bars_from(config.data)
    splits = splits_from(config.data, bars)
    pipeline = pipeline_from(config.features).fit(splits.train)
    print(f"[run] {run_dir}  data={config.data.source}:{config.data.symbol}")
    print(splits.describe())
    _start_ray(config)

    for name in config.stages:
        if name in state.completed:
            print(f"[{name}] already complete -> {state.completed[name].checkpoint}")
            continue
        before = config.stages[: config.stages.index(name)]
        earlier = {done: state.completed[done] for done in before if done in state.completed}
        context = StageContext(name, config, run_dir, bars, splits, pipeline, earlier)
        started = time.perf_counter()
        result = stage_runner(name)(context)
        result.seconds = time.perf_counter() - started
        state.completed[name] = result
        state.save(state_path)
    print(summary_table(state.completed))
    return state.completed


def _start_ray(config: TrainingConfig) -> None:
    if ray.is_initialized():
        return
    ray.init(
        address=config.ray.address or None,
        num_cpus=None if config.ray.address else config.ray.num_cpus,
        include_dashboard=False,
        log_to_driver=False,
    )


def summary_table(results: dict[str, StageResult]) -> str:
    """One table per split, each named: every stage on the validation split it was selected
    on, then any champion on the test split, ending with the verdict on its edge."""
    lines = [
        "",
        f"Summary, {VALIDATION}, after costs: each stage's best of its candidates on the",
        "split it was chosen on, so optimistic",
        *_split_table("val", {name: (done.validation, done) for name, done in results.items()}),
    ]
    champions = {name: (done.test, done) for name, done in results.items() if done.test}
    if champions:
        lines += [
            "",
            f"Champion, {TEST}: out of sample, after costs",
            *_split_table("test", champions),
        ]
        lines += [done.verdict for _, done in champions.values() if done.verdict]
    return "\n".join(lines)


def _split_table(split: str, rows: dict[str, tuple[dict[str, float], StageResult]]) -> list[str]:
    """Header, rule and one row per stage: ``split`` figures next to buy-and-hold's."""
    header = (
        f"{'stage':<20}{split + ' Sharpe':>12}{'B&H Sharpe':>11}{split + ' return':>13}"
        f"{'B&H return':>12}{'max DD':>9}{'trades':>8}{'time':>8}  checkpoint"
    )
    lines = [header, "-" * len(header)]
    for name, (v, done) in rows.items():
        lines.append(
            f"{name:<20}{v['sharpe']:>12.2f}{v['buy_hold_sharpe']:>11.2f}"
            f"{v['total_return']:>13.2%}{v['buy_hold_return']:>12.2%}{v['max_drawdown']:>9.2%}"
            f"{int(v['n_trades']):>8d}{done.seconds:>7.0f}s  {done.checkpoint}"
        )
    return lines
