"""How an AutonomousAgent learns from a training split: in seconds, without look-ahead.

1. The Weather Forecaster is fitted on the split's standardised ``log_return`` feature.
2. The Chartist is the one the agent was given (shared by a population), else one trained
   on synthetic patterns (seconds; cached on disk when a cache folder is given).
3. The world model's trunk and prediction heads train (``train_world_model``) with the
   context an empty memory gives: regime and pattern probabilities, no recollections.
4. The memory is refilled with the split's significant events (``EventDetector``: flash
   crashes, moves beyond ``large_win`` / ``large_loss`` training sigmas, regime shifts, rare
   outcomes), each keyed by the trained trunk's embedding, its outcome the next-bar return.
5. With the trunk frozen, so that those keys stay valid, the context fusion and the heads
   train again, now with the memory summary in the context.
6. The policy head learns by direct reinforcement on the realised next-bar return: it
   maximises the mean of E_pi[position] * r_{t+1} minus ``turnover_penalty`` times the
   execution cost of each change of E_pi[position], over time-ordered blocks of bars. The
   observation carries no agent state, so this is how trading costs reach the policy.

No look-ahead: samples are the windows ending at the split's bars whose next ``horizon``
returns still lie inside the split (earlier bars serve as feature history only); a window's
context uses its own bars and only the events whose outcome was known at its last bar.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from evotrader.agents.agent_config import AgentArchitecture, AgentError, AgentHyperparameters
from evotrader.data.features import FeaturePipeline
from evotrader.memory import EventDetector, ExternalMemory
from evotrader.models.world_model import TransformerWorldModel
from evotrader.models.world_model_training import (
    HorizonSamples,
    WorldModelTrainingConfig,
    horizon_samples,
    train_world_model,
)
from evotrader.reasoning import (
    REGIME_LABELS,
    PatternRecognizer,
    RegimeClassifier,
    make_recognizer,
)

_CHUNK = 4096  # windows per no-grad pass when embedding or building contexts


class LearningAgent(Protocol):
    """What ``learn_agent`` reads and sets on an agent; ``AutonomousAgent`` is one. A protocol,
    so that ``autonomous_agent`` (whose ``learn`` calls this module) is not imported back."""

    arch: AgentArchitecture
    hyperparameters: AgentHyperparameters
    world_model: TransformerWorldModel
    forecaster: RegimeClassifier
    forecaster_fitted: bool
    chartist: PatternRecognizer | None
    memory: ExternalMemory
    device: torch.device

    def new_memory(self) -> ExternalMemory: ...

    def check_pipeline(self, pipeline: FeaturePipeline) -> None: ...

    def context_parts(
        self,
        obs: np.ndarray,
        embedding: Tensor,
        *,
        event_bars: np.ndarray | None = None,
        decision_bars: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class LearnReport:
    """What one ``learn`` did: ``samples`` training windows, ``events`` stored in memory, the
    mean losses per epoch of the world model (step 3) and of the fusion (step 5), the policy
    objective (in training-sigma units per bar) before training and after each epoch, and
    the wall time."""

    samples: int
    events: int
    world_model: list[dict[str, float]]
    fusion: list[dict[str, float]]
    policy_objective: list[float]
    seconds: float


def learn_agent(
    agent: LearningAgent,
    bars: pd.DataFrame,
    pipeline: FeaturePipeline,
    train: pd.DataFrame,
    *,
    seed: int,
    cache_dir: str | PathLike[str] | None = None,
) -> LearnReport:
    """Train ``agent`` on ``train`` (a contiguous slice of ``bars``); deterministic for a seed."""
    started = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise AgentError(f"learn seed must be an int >= 0, got {seed!r}")
    agent.check_pipeline(pipeline)
    arch, hp, model = agent.arch, agent.hyperparameters, agent.world_model
    segment, first_train_bar = learning_segment(bars, train, pipeline, arch.window)
    samples = horizon_samples(segment, pipeline, arch.window, arch.world_model.horizon)
    decision_bars = segment.index.get_indexer(samples.decisions)

    features = pipeline.transform(segment)[:, arch.return_channel]
    agent.forecaster.fit(features[max(pipeline.warmup, first_train_bar) :])
    agent.forecaster_fitted = True
    if agent.chartist is None:
        agent.chartist = make_chartist(agent.arch.chartist, agent.arch.chartist_options, cache_dir)
    agent.memory = agent.new_memory()

    def train_world(context: np.ndarray, epochs: int, train_seed: int) -> list[dict[str, float]]:
        """The world model for ``epochs`` on the segment, ``context`` for each sample."""
        config = WorldModelTrainingConfig(
            lr=hp.lr, epochs=epochs, batch_size=hp.batch_size, weight_decay=hp.weight_decay
        )
        rows = _rows(context, decision_bars, len(segment))
        return train_world_model(
            model, segment, pipeline, arch.window, context=rows, config=config, seed=train_seed
        )

    context, regimes = sample_contexts(agent, samples.obs, decision_bars)
    world = train_world(context, hp.epochs, seed)
    fusion: list[dict[str, float]] = []
    with frozen(model.encoder):
        embeddings = embed(agent, samples.obs)
        event_bars = fill_memory(agent, samples, embeddings, decision_bars, segment, regimes)
        context, _ = sample_contexts(
            agent, samples.obs, decision_bars, event_bars=event_bars, embeddings=embeddings
        )
        if hp.memory_epochs:
            fusion = train_world(context, hp.memory_epochs, seed + 1)
    scale = float(model.return_scale)
    hidden = policy_inputs(agent, samples.obs, context, embeddings)
    objective = train_policy_head(
        model.policy,
        hidden,
        torch.as_tensor(samples.targets[:, 0] / scale, device=hidden.device),
        torch.tensor(arch.positions, device=hidden.device),
        hp.turnover_penalty * arch.cost_bps / 1e4 / scale,
        hp,
        seed=seed + 2,
    )
    model.eval()
    return LearnReport(
        samples=len(samples),
        events=len(agent.memory),
        world_model=world,
        fusion=fusion,
        policy_objective=objective,
        seconds=time.perf_counter() - started,
    )


def learning_segment(
    bars: pd.DataFrame, train: pd.DataFrame, pipeline: FeaturePipeline, window: int
) -> tuple[pd.DataFrame, int]:
    """The training bars plus just enough earlier bars of ``bars`` for the first training
    window's features, and the position of the first training bar inside that segment."""
    if len(train) == 0:
        raise AgentError("learn: the training split is empty")
    try:
        first, last = bars.index.get_loc(train.index[0]), bars.index.get_loc(train.index[-1])
    except KeyError as error:
        raise AgentError(f"learn: train_split must be a slice of bars; {error} is not") from error
    if not isinstance(first, int) or not isinstance(last, int) or last - first + 1 != len(train):
        raise AgentError(
            f"learn: train_split must be a contiguous slice of bars ({train.index[0]} .. "
            f"{train.index[-1]} spans a different number of bars in them)"
        )
    begin = max(0, first - pipeline.warmup - window + 1)
    return bars.iloc[begin : last + 1], first - begin


def make_chartist(
    name: str, options: Mapping[str, object], cache_dir: str | PathLike[str] | None
) -> PatternRecognizer:
    """The architecture's chartist; the CNN trains on synthetic patterns (or loads its cache)."""
    if name == "cnn":
        return make_recognizer(name, cache_dir=cache_dir, **options)
    return make_recognizer(name, **options)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Exclude ``module``'s parameters from training inside the block, then restore them."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(module.parameters(), flags, strict=True):
            parameter.requires_grad_(flag)


@torch.no_grad()
def embed(agent: LearningAgent, obs: np.ndarray) -> np.ndarray:
    """Trunk embeddings (S, output_dim) of windows, in eval mode, on the CPU."""
    agent.world_model.eval()
    parts = [
        agent.world_model.embed(torch.as_tensor(obs[rows], device=agent.device)).cpu()
        for rows in np.array_split(np.arange(len(obs)), max(1, -(-len(obs) // _CHUNK)))
    ]
    return torch.cat(parts).numpy()


def sample_contexts(
    agent: LearningAgent,
    obs: np.ndarray,
    decision_bars: np.ndarray,
    *,
    event_bars: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Context (S, CONTEXT_DIM) of every training window, causal, and its regime argmax;
    ``embeddings`` are the windows' ``embed`` when the caller already has them."""
    keys = torch.as_tensor(embed(agent, obs) if embeddings is None else embeddings)
    contexts, regimes = [], []
    for rows in np.array_split(np.arange(len(obs)), max(1, -(-len(obs) // _CHUNK))):
        memory, regime, pattern = agent.context_parts(
            obs[rows], keys[rows], event_bars=event_bars, decision_bars=decision_bars[rows]
        )
        contexts.append(np.concatenate([memory, regime, pattern], axis=1))
        regimes.append(regime.argmax(axis=1))
    return np.concatenate(contexts), np.concatenate(regimes)


def fill_memory(
    agent: LearningAgent,
    samples: HorizonSamples,
    embeddings: np.ndarray,
    decision_bars: np.ndarray,
    segment: pd.DataFrame,
    regimes: np.ndarray,
) -> np.ndarray:
    """Store the significant training events; returns each stored id's bar in ``segment``."""
    scale = float(agent.world_model.return_scale)
    log_close = np.log(segment["close"].to_numpy(np.float64))
    own_returns = log_close[decision_bars] - log_close[decision_bars - 1]
    outcomes = samples.targets[:, 0].astype(np.float64)
    found = EventDetector(agent.arch.events).detect(
        returns=own_returns, pnl=outcomes / scale, regimes=regimes
    )
    event_bars = np.empty(len(found.steps), np.int64)
    capacity = agent.arch.memory.capacity
    for chunk in np.array_split(np.arange(len(found.steps)), -(-len(found.steps) // capacity)):
        if not len(chunk):
            continue
        steps = found.steps[chunk]
        metadata = [
            {"time": str(samples.decisions[s]), "regime": REGIME_LABELS[regimes[s]]} for s in steps
        ]
        kinds = [found.kinds[i] for i in chunk]
        ids = agent.memory.store(embeddings[steps], outcomes[steps], metadata, kind=kinds)
        event_bars[ids] = decision_bars[steps]
    return event_bars


@torch.no_grad()
def policy_inputs(
    agent: LearningAgent, obs: np.ndarray, context: np.ndarray, embeddings: np.ndarray
) -> Tensor:
    """What the policy head reads for each window: the fused hidden state (S, output_dim).
    ``embeddings`` are the windows' ``embed`` by the current trunk (the heads only run here)."""
    model, captured = agent.world_model.eval(), []
    handle = model.policy.register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    try:
        for rows in np.array_split(np.arange(len(obs)), max(1, -(-len(obs) // _CHUNK))):
            model(
                torch.as_tensor(obs[rows], device=agent.device),
                torch.as_tensor(context[rows], device=agent.device),
                embedding=torch.as_tensor(embeddings[rows], device=agent.device),
            )
    finally:
        handle.remove()
    return torch.cat(captured)


def trading_objective(logits: Tensor, positions: Tensor, returns: Tensor, cost: float) -> Tensor:
    """Mean per bar of E_pi[position_t] * r_{t+1} - cost * |E_pi[position_t] - E_pi[position_t-1]|
    over consecutive bars (the first bar's change is not charged)."""
    exposure = torch.softmax(logits, dim=-1) @ positions
    turnover = (exposure[1:] - exposure[:-1]).abs().sum()
    return ((exposure * returns).sum() - cost * turnover) / len(returns)


def train_policy_head(
    head: nn.Linear,
    hidden: Tensor,
    returns: Tensor,
    positions: Tensor,
    cost: float,
    hp: AgentHyperparameters,
    *,
    seed: int,
) -> list[float]:
    """Adam ascent of ``trading_objective`` on time-ordered blocks of ``policy_batch`` bars,
    visited in a seeded random order; returns the whole-split objective before and after
    each epoch."""
    optimiser = torch.optim.Adam(head.parameters(), lr=hp.policy_lr, weight_decay=hp.weight_decay)
    blocks = torch.arange(len(hidden), device=hidden.device).split(hp.policy_batch)
    generator = torch.Generator().manual_seed(seed)

    def whole() -> float:
        with torch.no_grad():
            return float(trading_objective(head(hidden), positions, returns, cost))

    history = [whole()]
    for _ in range(hp.policy_epochs):
        for block in torch.randperm(len(blocks), generator=generator).tolist():
            rows = blocks[block]
            loss = -trading_objective(head(hidden[rows]), positions, returns[rows], cost)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        history.append(whole())
    return history


def _rows(context: np.ndarray, decision_bars: np.ndarray, n_bars: int) -> np.ndarray:
    """One context row per bar of the segment (zeros where no window ends), as
    ``train_world_model`` takes it."""
    rows = np.zeros((n_bars, context.shape[1]), np.float32)
    rows[decision_bars] = context
    return rows
