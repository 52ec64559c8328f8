"""The staged pipeline: runs the configured stages in order under runs/<run_name>/.

Everything is checked before anything is written: the config (each configured stage's
settings by the classes that will use them) and the data (loaded, validated, split). Only
then is the run folder opened (``run_folder``: locked, bound to a fingerprint of settings and
data). It holds the resolved config, the fingerprint, one TensorBoard log dir per stage, the
stage checkpoints and ``state.json``. Rerunning the same run skips completed stages; a stage
that was interrupted resumes from its own last checkpoint. A finished run's stage checkpoints
and champion are recorded as candidates in the model registry (``evotrader.lifecycle``).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import ray
from sqlalchemy.exc import SQLAlchemyError

from evotrader.backtest.significance import TEST, VALIDATION
from evotrader.config import (
    ConfigError,
    RayConfig,
    TrainingConfig,
    bars_from,
    config_errors,
    data_reference,
    pipeline_from,
    splits_from,
)
from evotrader.core.atomic import write_atomic
from evotrader.core.checkpoint import Checkpoint, CheckpointError, checkpoint_name
from evotrader.core.sql import shown_url
from evotrader.data import FeaturePipeline, TimeSplits
from evotrader.env import VectorMarketEnv, VectorPortfolioEnv
from evotrader.lifecycle.states import LifecycleError
from evotrader.lifecycle.store import REGISTRY_FILE, ModelRegistry
from evotrader.training.market_envs import UniverseInputs, universe_inputs
from evotrader.training.run_folder import FINGERPRINT_FILE, Fingerprint, RunFolderError, open_run
from evotrader.training.stages import STAGES, stage
from evotrader.training.trials import LEDGER_NAME, TrialLedger

log = logging.getLogger(__name__)


class CheckpointedPolicy(Protocol):
    """What ``StageContext.checkpoint`` stores: a torch module that names its architecture."""

    def architecture(self) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...


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
    universe: UniverseInputs | None = None  # a portfolio run's universe (env=portfolio)

    def __post_init__(self) -> None:
        if bool(self.config.portfolio) != (self.universe is not None):
            raise ValueError(
                "StageContext: a portfolio run (env=portfolio) and only one carries its "
                "universe; build contexts with prepare(config).context(...)"
            )

    @property
    def scope(self) -> str:
        """What the run trades: ``data.symbol``, or a universe's symbols joined by "+"."""
        return self.config.data.symbol if self.universe is None else self.universe.name

    @property
    def stage_dir(self) -> Path:
        return self.run_dir / self.name

    @property
    def tensorboard_dir(self) -> Path:
        return self.run_dir / "tensorboard" / self.name

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / checkpoint_name(self.scope, self.name)

    @property
    def trials(self) -> TrialLedger:
        """Every candidate the run scored on the validation split: the DSR's trials."""
        return TrialLedger(self.run_dir / LEDGER_NAME)

    def provenance(self) -> dict[str, Any]:
        """What every checkpoint of this stage records in ``extra`` beside its weights: the
        stage, how to load its bars again (run_backtest and the live bot need it) and the
        digest of the settings it was trained under (checked against the run folder)."""
        fingerprint = Fingerprint.load(self.run_dir / FINGERPRINT_FILE)
        return {
            "stage": self.name,
            "data": data_reference(self.config.data).to_dict(),
            "run": {
                "name": self.config.run_name,
                "fingerprint": fingerprint.stage_digest(self.name, STAGES.names()),
            },
        }

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
        policy: CheckpointedPolicy,
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
            env=self.config.env.to_dict(),
            symbol=self.config.data.symbol,
            data_range=self.data_range(),
            metrics={key: float(value) for key, value in metrics.items()},
            extra={**self.provenance(), **extra},
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
            raise RunFolderError(
                f"{path}: unreadable run state ({error}); move it away to restart the run"
            ) from error

    def save(self, path: Path) -> None:
        payload = {"completed": {name: asdict(done) for name, done in self.completed.items()}}
        write_atomic(path, json.dumps(payload, indent=2))


@dataclass(frozen=True)
class RunInputs:
    """The run's bars, validated and split, and the feature pipeline fitted on train; for a
    portfolio run the universe too, ``bars`` then being every symbol's bars side by side
    (columns ``(symbol, field)``: what the run folder's fingerprint binds)."""

    bars: pd.DataFrame
    splits: TimeSplits
    pipeline: FeaturePipeline
    universe: UniverseInputs | None = None

    def context(
        self, name: str, config: TrainingConfig, run_dir: Path, completed: dict[str, StageResult]
    ) -> StageContext:
        """What stage ``name`` is handed."""
        return StageContext(
            name, config, run_dir, self.bars, self.splits, self.pipeline, completed, self.universe
        )


def prepare(config: TrainingConfig) -> RunInputs:
    """Check the config and the data without writing anything: the stage list, the bars
    (loaded and validated by their source; every symbol of ``data.universe`` for a portfolio
    run, aligned on one calendar), the splits, the env over the training split, the model,
    then every configured stage's settings."""
    unknown = [name for name in config.stages if name not in STAGES.names()]
    if unknown:
        raise ConfigError(f"stages: unknown {unknown}; available: {list(STAGES.names())}")
    repeated = sorted({name for name in config.stages if config.stages.count(name) > 1})
    if repeated:
        raise ConfigError(f"stages: {repeated} listed more than once")
    if config.portfolio:
        single = [name for name in config.stages if not stage(name).portfolio]
        if single:
            able = [name for name in STAGES.names() if stage(name).portfolio]
            raise ConfigError(
                f"stages: {single} train one symbol only; over a universe (env=portfolio) "
                f"use {able}"
            )
    inputs = _universe_inputs(config) if config.portfolio else _symbol_inputs(config)
    run_dir = Path(config.runs_dir) / config.run_name  # not created: the checks write nothing
    for name in config.stages:
        with config_errors(name):
            stage(name).check_settings(inputs.context(name, config, run_dir, {}))
    return inputs


def _symbol_inputs(config: TrainingConfig) -> RunInputs:
    with config_errors("data"):
        data_reference(config.data)  # before any file is read
        bars = bars_from(config.data)
        splits = splits_from(config.data, bars)
    with config_errors("features"):
        pipeline = pipeline_from(config.features).fit(splits.train)
    with config_errors("env"):
        observations, _ = VectorMarketEnv(splits.train, 1, pipeline, config.env).reset(seed=0)
    with config_errors("model"):
        config.model.with_input(observations.shape[-1])
    return RunInputs(bars, splits, pipeline)


def _universe_inputs(config: TrainingConfig) -> RunInputs:
    universe = universe_inputs(config)
    with config_errors("env"):
        train = universe.bars(universe.splits.train)
        env = VectorPortfolioEnv(train, 1, universe.pipeline, config.env, universe.portfolio)
        observations, _ = env.reset(seed=0)
    with config_errors("model"):
        config.model.with_input(observations.shape[-1])
    panel = pd.concat(universe.universe.bars, axis=1)  # columns (symbol, field)
    return RunInputs(panel, universe.splits, universe.pipeline, universe)


def run_pipeline(config: TrainingConfig, *, new_run: bool = False) -> dict[str, StageResult]:
    """Check everything, then run every configured stage not yet completed in the run folder.

    A folder bound to other settings refuses the run (``RunFolderError``), unless ``new_run``
    starts a fresh one under a new name. Returns all stages' results.
    """
    inputs = prepare(config)
    with open_run(config, inputs.bars, STAGES.names(), new_run=new_run) as run:
        config, run_dir = run.config, run.path
        state_path = run_dir / "state.json"
        state = RunState.load(state_path)
        scope = inputs.universe.name if inputs.universe else config.data.symbol
        log.info(f"[run] {run_dir}  data={config.data.source}:{scope}")
        log.info(inputs.splits.describe())
        start_ray(config.ray)

        for name in config.stages:
            if name in state.completed:
                log.info(f"[{name}] already complete -> {state.completed[name].checkpoint}")
                continue
            before = config.stages[: config.stages.index(name)]
            earlier = {done: state.completed[done] for done in before if done in state.completed}
            run.start_stage(name)
            context = inputs.context(name, config, run_dir, earlier)
            started = time.perf_counter()
            result = stage(name).run(context)
            result.seconds = time.perf_counter() - started
            state.completed[name] = result
            state.save(state_path)
        record_run(config, state.completed)
        log.info(summary_table(state.completed))  # last: the run ends with its verdict
    return state.completed


def record_run(config: TrainingConfig, results: dict[str, StageResult]) -> None:
    """Index the run's stage checkpoints, champion and validated strategies as candidates
    in the model registry (``registry_url``, default ``<runs_dir>/registry.sqlite``); what
    was recorded before is a no-op. The run's files are its results: a registry that
    cannot take them costs the run one warning line, saying how to record them later,
    never the run."""
    url = config.registry_url or str(Path(config.runs_dir) / REGISTRY_FILE)
    paths = [done.checkpoint for done in results.values() if done.checkpoint.endswith(".pth")]
    # a strategy search's registry file (one behind a database URL is recorded by hand)
    searches = [done.checkpoint for done in results.values() if Path(done.checkpoint).is_file()]
    searches = [search for search in searches if not search.endswith(".pth")]
    reason = f"recorded by run {config.run_name}"
    try:
        with ModelRegistry(url) as registry:
            entries = [registry.record_checkpoint(path, reason) for path in paths]
            for search in searches:  # its strategies that passed validation
                entries += registry.record_strategies(search, reason)
    except (LifecycleError, CheckpointError, SQLAlchemyError, OSError) as error:
        log.warning(
            f"model registry {shown_url(url)}: run {config.run_name} not recorded: "
            f"{' '.join(str(error).split())}; record its checkpoints later with "
            "`python -m evotrader registry record PATH`"
        )
        return
    listed = ", ".join(f"{entry.id} {entry.stage} ({entry.state})" for entry in entries)
    log.info(f"model registry {shown_url(url)}: entries {listed or 'none'}")


class RayStartError(RuntimeError):
    """Ray could not start here, or the cluster ``ray.address`` names could not be joined."""


def start_ray(settings: RayConfig) -> None:
    """Empty ``ray.address``: a private local Ray, never another instance already running on
    this machine (``address="local"`` also ignores RAY_ADDRESS). "auto" or an address joins
    that cluster."""
    if ray.is_initialized():
        return
    address = settings.address or "local"
    try:
        _check_reachable(address)
        ray.init(
            address=address,
            num_cpus=settings.num_cpus if address == "local" else None,
            include_dashboard=False,
            log_to_driver=False,
        )
    except (OSError, RuntimeError, ValueError) as error:
        raise RayStartError(f"ray.address={settings.address!r}: {error}") from error


def _check_reachable(address: str) -> None:
    """Fail fast on a host:port nobody listens on; ray.init would retry it for minutes."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if host and port.isdigit():
        with socket.create_connection((host, int(port)), timeout=10):
            pass


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
