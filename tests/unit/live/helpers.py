"""Shared by the live tests: a real checkpoint of a small TransformerPolicy, and preferences."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from evotrader.data import FeaturePipeline, TimeSplits, load_bars, split_by_time
from evotrader.env.spec import EnvSpec
from evotrader.models.core_transformer import TransformerSpec
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.risk import Preferences

if TYPE_CHECKING:
    from tests.support.tws_server import TwsServer

LOOSE_PREFERENCES: dict[str, Any] = {
    "max_position_pct": 100.0,
    "max_leverage": 1.0,
    "max_daily_loss_pct": 100.0,
    "max_drawdown_pct": 100.0,
    "max_orders_per_minute": 10,
    "allowed_instruments": ["GOOG", "SYN"],
    "allowed_asset_classes": ["STK"],
    "trading_hours": {
        "timezone": "America/New_York",
        "days": ["Mon", "Tue", "Wed", "Thu", "Fri"],
        "start": "09:30",
        "end": "16:00",
    },
    "stale_data_seconds": 432000,
    "error_burst_count": 5,
    "error_burst_seconds": 300,
}


def preferences(**changes: Any) -> Preferences:
    return Preferences.from_dict(LOOSE_PREFERENCES | changes)


def decisions(journal: Path) -> int:
    """How many decisions the bot's journal holds (0 before it exists)."""
    if not journal.exists():
        return 0
    with sqlite3.connect(journal) as db:
        return int(db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])


def subscriptions(tws: TwsServer) -> int:
    """How many market-data subscriptions the fake TWS received."""
    return sum(1 for fields in tws.messages(20) if fields[21] == "1")


def tiny_spec(input_dim: int) -> TransformerSpec:
    """The small transformer the live tests' checkpoints carry."""
    return TransformerSpec(
        input_dim=input_dim, model_dim=16, num_heads=2, num_layers=1, ff_dim=32, output_dim=16
    )


def split_range(splits: TimeSplits) -> dict[str, str]:
    """A checkpoint's data_range: each split's first and last bar."""
    data_range = {}
    for name in ("train", "validation", "test"):
        index = getattr(splits, name).index
        data_range[f"{name}_start"], data_range[f"{name}_end"] = str(index[0]), str(index[-1])
    return data_range


def make_checkpoint(
    path: Path,
    *,
    source: str = "embedded",
    symbol: str = "GOOG",
    options: dict[str, Any] | None = None,
    agent_state: bool = True,
    window: int = 16,
    positions: tuple[float, ...] = (-1.0, 0.0, 1.0),
    seed: int = 0,
    kind: str = "ppo",
    hyperparameters: dict[str, Any] | None = None,
) -> Path:
    """Save a checkpoint in training/checkpoint.py's format: features fitted on the train
    split, a seeded TransformerPolicy whose input projection is scaled up so it trades often."""
    from evotrader.core.checkpoint import Checkpoint, save_checkpoint

    options = options or {}
    bars = load_bars(source, symbol, **options)
    splits = split_by_time(bars, embargo=5)
    pipeline = FeaturePipeline().fit(splits.train)
    env = EnvSpec(window=window, positions=positions, agent_state=agent_state)
    torch.manual_seed(seed)
    spec = tiny_spec(pipeline.num_features + (2 if agent_state else 0))
    policy = TransformerPolicy(spec, len(positions))
    with torch.no_grad():
        policy.encoder.input_proj.weight.normal_(std=3.0)  # features, not positions, decide
    checkpoint = Checkpoint(
        kind=kind,
        architecture=policy.architecture(),
        state_dict=policy.state_dict(),
        hyperparameters={"seed": seed, **(hyperparameters or {})},
        feature_pipeline=pipeline.state_dict(),
        env=env.to_dict(),
        symbol=symbol,
        data_range=split_range(splits),
        metrics={},
        extra={
            "stage": {"ppo": "stage_1_ppo", "maml": "stage_3_maml"}.get(kind, kind),
            "data": {"source": source, "symbol": symbol, "options": options},
        },
    )
    return save_checkpoint(checkpoint, path)


def make_strategy_registry(
    path: Path,
    spec: Any,
    *,
    validated: bool | None = True,
    symbol: str = "GOOG",
    cash: float = 100_000.0,
    source: str = "embedded",
    options: dict[str, Any] | None = None,
) -> Path:
    """A strategy registry as strategy_search leaves one, without the search: ``spec``
    registered with a validation verdict (passed or not; ``None``: only screened) and the
    search's windows (``symbol``'s splits from ``source`` with ``options``), data, default
    costs and cash."""
    from dataclasses import asdict

    import pandas as pd

    from evotrader.env.execution import ExecutionModel
    from evotrader.strategies.registry import Registry
    from evotrader.strategies.spec import StrategyResult
    from evotrader.training.strategy_stage import SEARCH_META, Windows

    options = options or {}
    splits = split_by_time(load_bars(source, symbol, **options), embargo=5)
    with Registry(path) as registry:
        registry.set_meta(
            SEARCH_META,
            {
                "windows": Windows.from_splits(splits).to_dict(),
                "data": {"source": source, "start": None, "options": options},
                "execution": asdict(ExecutionModel()),
                "cash": cash,
            },
        )
        registry.add_spec(spec)
        phases = {"screen": True} | ({} if validated is None else {"validate": validated})
        for phase, passed in phases.items():
            registry.record(
                StrategyResult(
                    spec_id=spec.spec_id,
                    phase=phase,
                    passed=passed,
                    metrics={},
                    benchmark={},
                    parameters=dict(spec.parameters),
                    equity=pd.Series(dtype="float64"),
                    trades=pd.DataFrame(),
                )
            )
    return path


def in_paper(runs: Path, path: Path) -> int:
    """Record ``path`` in ``runs``'s model registry and promote it to paper, as an operator
    would before a paper (or sim) bot trades it by its symbol; returns the entry id."""
    from evotrader.lifecycle.states import PAPER
    from evotrader.lifecycle.store import REGISTRY_FILE, ModelRegistry

    with ModelRegistry(runs / REGISTRY_FILE) as registry:
        entry = registry.record_checkpoint(path)
        registry.promote(entry.id, PAPER, "a test's paper bot")
        return entry.id
