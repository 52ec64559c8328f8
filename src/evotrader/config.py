"""Typed configuration: the schema Hydra checks every run's YAML against.

A key that is not declared here, or a value of the wrong type, stops the run before any
work starts, with Hydra's message naming the key; a value out of range stops it with a
``ConfigError`` naming the key. The ``*_from`` helpers turn a config node into the object it
describes, so settings live in YAML and nowhere else.

Paths: ``runs_dir`` and data file paths are relative to the working directory, like any
command's output and input; paths to the project's own files (``strategy_search.preferences``)
are relative to the project root, so the shipped defaults work from any directory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, make_dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evotrader.data import (
    DataError,
    DataRef,
    FeaturePipeline,
    TimeSplits,
    data_roots,
    split_by_time,
)
from evotrader.env.spec import EnvSpec
from evotrader.models.core_transformer import TransformerShape
from evotrader.strategies.settings import (
    EvolverConfig,
    LLMConfig,
    ScreeningConfig,
    ValidationConfig,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout: configs/, run_training.py
CONFIG_DIR = PROJECT_ROOT / "configs"


class ConfigError(ValueError):
    """A setting that the schema's types allow but the run cannot use; names the key."""


@dataclass
class DataConfig:
    """Where the bars come from and how they are split in time."""

    source: str = "embedded"
    symbol: str = "GOOG"
    start: str | None = None
    end: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    universe: list[str] = field(default_factory=list)  # symbols for multi-symbol stages (MAML)
    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    embargo: int = 5


@dataclass
class FeatureConfig:
    features: list[str] = field(
        default_factory=lambda: ["log_return", "gap", "body", "range", "volatility", "volume_z"]
    )
    window: int = 20
    clip: float = 5.0


@dataclass
class PPOStageConfig:
    """PPO on RLlib: budget, optimisation and sampling settings."""

    iterations: int = 20
    train_batch_size: int = 512
    minibatch_size: int = 128
    num_epochs: int = 2
    lr: float = 3e-4
    gamma: float = 0.99
    lambda_: float = 0.95
    clip_param: float = 0.2
    entropy_coeff: float = 0.01
    vf_loss_coeff: float = 0.5
    grad_clip: float = 1.0
    num_env_runners: int = 0
    num_envs_per_env_runner: int = 8
    eval_interval: int = 5


@dataclass
class MoEStageConfig(PPOStageConfig):
    """PPO on a Mixture of Experts: the PPO settings plus the gate's."""

    num_experts: int = 4
    top_k: int = 0  # 0: soft routing over every expert; k: the k largest gate weights only
    gate_hidden: int = 32
    load_balance_coeff: float = 0.01
    warm_start: bool = True  # experts start from the best earlier stage's weights


@dataclass
class MAMLStageConfig:
    """MAML over (symbol, period) tasks: inner policy-gradient steps, outer meta-update."""

    meta_iterations: int = 30
    meta_batch_size: int = 4  # tasks per meta-update
    inner_steps: int = 1
    inner_lr: float = 0.1
    outer_lr: float = 1.0e-3
    first_order: bool = False  # true: drop the second-order terms (FOMAML)
    num_envs: int = 16  # parallel episodes per task per rollout
    episode_length: int = 64
    gamma: float = 0.9
    grad_clip: float = 1.0
    task_bars: int = 400  # bars in one (symbol, period) task
    adapt_bars: int = 256  # bars just before a split to adapt on before trading it
    eval_interval: int = 5


@dataclass
class FitnessConfig:
    """Validation fitness: Sharpe after costs, minus penalties for deep drawdowns and idling."""

    drawdown_limit: float = 0.25
    drawdown_penalty: float = 4.0  # per unit of drawdown beyond the limit
    min_trades: int = 5
    trades_penalty: float = 1.0  # times the missing share of min_trades


@dataclass
class SelfModificationConfig:
    """Thresholds that make an agent change itself after an evaluation (0 turns a rule off)."""

    max_drawdown: float = 0.25  # deeper: risk_scale *= risk_factor
    risk_factor: float = 0.7
    min_profit_factor: float = 0.9  # lower (with trades): ask the controller for a new design
    min_trades: int = 3  # fewer: risk_scale /= risk_factor, so it trades more readily


@dataclass
class AutonomousStageConfig:
    """The evolutionary stage: a population of AutonomousAgents, designed and tuned by NAS."""

    population: int = 8
    generations: int = 5
    controller: str = "evolution"  # or "random"
    controller_options: dict[str, Any] = field(
        default_factory=lambda: {"tournament_size": 3, "elitism": 2, "crossover_rate": 0.3}
    )
    genes: dict[str, Any] = field(default_factory=dict)  # the NAS search space (see the YAML)
    agent: dict[str, Any] = field(default_factory=dict)  # AgentArchitecture fields, fixed
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # AgentHyperparameters, fixed
    seed_from_previous: bool = True  # initial trunks from the best earlier stage where shapes fit
    augmentation: list[str] = field(default_factory=lambda: ["none", "block_bootstrap", "noise"])
    augmentation_block: int = 20
    augmentation_noise: float = 0.25  # noise sd in units of the training returns' sd
    adversarial_candidates: int = 4
    fitness: FitnessConfig = field(default_factory=FitnessConfig)
    self_modification: SelfModificationConfig = field(default_factory=SelfModificationConfig)
    pbo_splits: int = 8


@dataclass
class StrategySearchConfig:
    """The strategy track: generate template specs (Claude with ANTHROPIC_API_KEY, else
    offline), screen them (backtesting.py), validate the best (NautilusTrader), audit.

    ``screening``, ``validation`` (with its IB ``costs``), ``evolver`` and ``llm`` are the
    runtime settings themselves, which check their values as the config loads.
    """

    universes: list[list[str]] = field(default_factory=list)  # empty: from data.symbol/universe
    lists: list[str] = field(default_factory=list)  # shipped universe lists searched too
    accept_survivorship: list[str] = field(default_factory=list)  # lists the audit accepts
    source: str = ""  # data source of the universes; empty: data.source
    parallel: bool = False  # screen each batch as Ray tasks (pays off on a cluster)
    screening: ScreeningConfig = field(default_factory=ScreeningConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    evolver: EvolverConfig = field(default_factory=EvolverConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    preferences: str = "configs/preferences.yaml"  # audit limits; relative: from the project root
    registry_url: str = ""  # empty: runs/<run_name>/strategies.sqlite
    leaderboard_size: int = 10


@dataclass
class RayConfig:
    """Empty address: a private local Ray (never another instance running on the machine);
    "auto" or an address (e.g. "head:6379", "ray://head:10001") joins that cluster."""

    address: str = ""
    num_cpus: int | None = None


def small_model() -> TransformerShape:
    """The CoreTransformer every stage shares when no YAML says otherwise (configs/model/
    small.yaml); the input size comes from the observations."""
    return TransformerShape(model_dim=32, num_layers=1, ff_dim=64, output_dim=32)


@dataclass
class TrainingConfig:
    run_name: str = "default"
    runs_dir: str = "runs"
    registry_url: str = ""  # the model registry; empty: <runs_dir>/registry.sqlite
    seed: int = 0
    profile: str = "quick"
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    env: EnvSpec = field(default_factory=EnvSpec)
    # PortfolioSpec settings (action, max_gross); empty: a single-symbol run. env=portfolio
    # sets it, and the PPO stage then trades data.universe. Empty adds no fingerprint key.
    portfolio: dict[str, Any] = field(default_factory=dict)
    model: TransformerShape = field(default_factory=small_model)
    ray: RayConfig = field(default_factory=RayConfig)
    stage_1_ppo: PPOStageConfig = field(default_factory=PPOStageConfig)
    stage_2_moe: MoEStageConfig = field(default_factory=MoEStageConfig)
    stage_3_maml: MAMLStageConfig = field(default_factory=MAMLStageConfig)
    stage_4_autonomous: AutonomousStageConfig = field(default_factory=AutonomousStageConfig)
    strategy_search: StrategySearchConfig = field(default_factory=StrategySearchConfig)
    stages: list[str] = field(default_factory=list)


def register_configs() -> None:
    """Make the schema available to Hydra as ``training_schema``.

    The schema nests runtime dataclasses that are frozen (``EnvSpec`` with its
    ``ExecutionModel``, ``TransformerShape``): OmegaConf marks their nodes read-only, so their
    read-only flag is cleared here and a command-line override can still set them; the frozen
    objects are built once, when the config is turned into objects (``load_training_config``),
    and validate themselves there.
    """
    schema = OmegaConf.structured(training_schema())
    _overridable(schema)
    ConfigStore.instance().store(name="training_schema", node=schema)


def _overridable(node: DictConfig | ListConfig) -> None:
    """Clear the read-only flag that frozen dataclasses set, on ``node`` and every node below
    (list items too: e.g. one regime period of ``strategy_search.validation.regimes``)."""
    OmegaConf.set_readonly(node, None)
    keys = range(len(node)) if isinstance(node, ListConfig) else list(node)
    for key in keys:
        child = node._get_node(key)
        if isinstance(child, DictConfig | ListConfig):
            _overridable(child)


@cache
def training_schema() -> type[TrainingConfig]:
    """``TrainingConfig``, plus a section for every registered stage it does not declare:
    a new stage brings its own config type (see evotrader.training.stages). Only such a
    stage's module is imported here; the built-in stages' sections are declared above."""
    from evotrader.training.stages import STAGES, stage  # same layer; light until a new stage

    declared = {known.name for known in fields(TrainingConfig)}
    added = [stage(name) for name in STAGES.names() if name not in declared]
    if not added:
        return TrainingConfig
    sections = [(spec.name, spec.config, field(default_factory=spec.config)) for spec in added]
    schema = make_dataclass("TrainingConfig", sections, bases=(TrainingConfig,))
    schema.__module__ = __name__
    return schema


def load_training_config(overrides: Sequence[str] = ()) -> TrainingConfig:
    """configs/training_sequence.yaml with command-line ``overrides``, checked by the schema.

    Hydra's compose API rather than ``@hydra.main``: nothing is written and no logging is set
    up before the run is validated, and configs/ is found from any working directory. Hydra's
    and OmegaConf's complaints become a ``ConfigError`` naming the key.
    """
    register_configs()
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base=None):
            cfg = compose("training_sequence", overrides=list(overrides))
        sections: dict[str, Any] = {}
        for key in map(str, cfg):  # one section at a time, so a runtime class's complaint names it
            with config_errors(key):
                node = cfg[key]
                sections[key] = OmegaConf.to_object(node) if OmegaConf.is_config(node) else node
        return training_schema()(**sections)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(_hydra_message(error)) from error


def _hydra_message(error: Exception) -> str:
    """Hydra's complaint with its cause's first line, which names the key and the problem."""
    first, *rest = str(error).split("Config search path:")[0].strip().splitlines()
    if error.__cause__ is not None:
        first = f"{first.rstrip('.')}: {str(error.__cause__).splitlines()[0]}"
    details = " ".join(line.strip() for line in rest if line.strip())
    return f"{first}; {details}" if details else first


def project_path(path: str) -> Path:
    """A project file the config names; a relative path starts at the project root."""
    return PROJECT_ROOT / Path(path).expanduser()


@contextmanager
def config_errors(where: str) -> Iterator[None]:
    """Turn a runtime class's complaint about its settings into a ``ConfigError`` naming
    ``where`` they come from; data errors stay data errors."""
    try:
        yield
    except (DataError, ConfigError):
        raise
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where}: {error}") from error


def data_reference(config: DataConfig) -> DataRef:
    """The run's bars as its checkpoints name them: a registered source, its own options and
    files resolved inside the data folders, so run_backtest.py and the live bot, which
    refuse any other reference, can load them again."""
    raw = {
        "source": config.source,
        "symbol": config.symbol,
        "options": dict(config.options),
        "start": config.start,
        "end": config.end,
    }
    return DataRef.checked(raw, data_roots(PROJECT_ROOT))


def bars_from(config: DataConfig) -> pd.DataFrame:
    """The run's bars, read through its data reference (the files checked first)."""
    return data_reference(config).load()


def splits_from(config: DataConfig, bars: pd.DataFrame) -> TimeSplits:
    """Split the configured bars by time, with the embargo gap."""
    return split_by_time(
        bars,
        train=config.train,
        validation=config.validation,
        test=config.test,
        embargo=config.embargo,
    )


def pipeline_from(config: FeatureConfig) -> FeaturePipeline:
    """An unfitted feature pipeline; fit it on the training split only."""
    return FeaturePipeline(config.features, config.window, config.clip)
