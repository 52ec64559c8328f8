"""Shared pieces of the agent tests: a tiny architecture and a tiny learn."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from evotrader.agents import AgentArchitecture, AgentHyperparameters, AutonomousAgent, LearnReport
from evotrader.data import FeaturePipeline, TimeSplits
from evotrader.models import TransformerSpec
from evotrader.models.world_model import WorldModelConfig
from evotrader.reasoning import PatternRecognizer


@dataclass(frozen=True)
class Learned:
    bars: pd.DataFrame
    splits: TimeSplits
    pipeline: FeaturePipeline
    agent: AutonomousAgent
    report: LearnReport


WINDOW = 16
TINY = AgentHyperparameters(
    epochs=5, memory_epochs=1, policy_epochs=30, what_if_paths=32, what_if_horizon=2
)


def tiny_architecture(input_dim: int = 6, **changes: object) -> AgentArchitecture:
    spec = TransformerSpec(
        input_dim=input_dim,
        model_dim=16,
        num_heads=2,
        num_layers=1,
        ff_dim=32,
        output_dim=16,
        max_len=WINDOW,
    )
    settings: dict[str, object] = {
        "encoder": spec,
        "world_model": WorldModelConfig(horizon=2, fusion_dim=16),
        "window": WINDOW,
        "chartist_options": {"length": 16, "train_samples": 256, "epochs": 1, "seed": 0},
    }
    return AgentArchitecture(**(settings | changes))  # type: ignore[arg-type]


def learn_tiny(
    bars: pd.DataFrame,
    splits: TimeSplits,
    pipeline: FeaturePipeline,
    chartist: PatternRecognizer,
    *,
    seed: int = 0,
    hyperparameters: AgentHyperparameters = TINY,
) -> tuple[AutonomousAgent, LearnReport]:
    agent = AutonomousAgent(tiny_architecture(), hyperparameters, seed=seed, chartist=chartist)
    report = agent.learn(bars, pipeline, splits.train, seed=seed)
    return agent, report
