"""AutonomousAgent: thinks before it acts, then trades through the one Policy contract.

For a batch of observation windows (B, window, channels), built with ``agent_state=False`` so
the backtest engine calls it in large batches, the think loop

1. embeds each window with the world model's trunk (the memory key),
2. recalls the ``memory_k`` nearest significant events from its ExternalMemory and
   summarises them (similarity-weighted mean outcome, spread, similarity, share found),
3. reads the regime (Weather Forecaster on the window's standardised ``log_return``
   channel) and the chart pattern (Chartist on that channel's cumulative sum),
4. feeds state + memory summary + regime + pattern to the world model as its context,
5. scores each action: the policy head's log-probabilities, plus ``what_if_weight`` times
   the action's predicted Sharpe from what-if rollouts of the world model's quantiles, plus
   ``log(risk_scale) * |position|`` (how readily it leaves flat), and takes the best.

Acting is a pure function of the learned state: the memory is written only by ``learn``,
so a decision never depends on earlier calls or on the other rows of its batch.

Persistence: ``state_dict`` holds the world model and Chartist weights, the fitted
forecaster (its JSON state as bytes) and the whole memory (its versioned archive as bytes),
so one checkpoint file rebuilds the agent with ``policy_from_checkpoint`` alone. The issue
suggested the memory beside the checkpoint; one self-contained file cannot be half-copied
into the live bot, and a memory of 10k 32-d events adds about 1.5 MB.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from evotrader.agents.agent_config import (
    AgentArchitecture,
    AgentError,
    AgentHyperparameters,
)
from evotrader.agents.agent_learning import LearnReport, learn_agent
from evotrader.agents.thinking import memory_summary, rollout_uniforms, what_if_sharpe
from evotrader.core.checkpoint import Checkpoint
from evotrader.data.features import FeaturePipeline
from evotrader.env.spec import EnvSpec
from evotrader.memory import ExternalMemory
from evotrader.models.world_model import TransformerWorldModel
from evotrader.reasoning import (
    Chartist,
    ChartistConfig,
    PatternRecognizer,
    RegimeClassifier,
    classifier_from_state,
    make_classifier,
    make_recognizer,
)
from evotrader.reasoning.pattern_recognizer import MIN_PATH_LENGTH

KIND = "autonomous"
CAUSAL_SEARCH = 2048  # events ranked per training window when filtering out later ones
_WORLD, _CHARTIST = "world_model.", "chartist."
_MEMORY, _FORECASTER = "memory.archive", "forecaster.state"


@dataclass(frozen=True, eq=False)
class Thought:
    """Every step of the think loop for a batch of B windows, as the agent saw it.

    ``memory`` (B, 4), ``regime`` (B, 4) and ``pattern`` (B, 8) are numpy; ``context``
    (B, CONTEXT_DIM) their concatenation; ``what_if`` (B, A) each action's predicted Sharpe
    (zeros when the refinement is off); ``scores`` (B, A) what the action maximises.
    """

    embedding: Tensor
    memory: np.ndarray
    regime: np.ndarray
    pattern: np.ndarray
    context: Tensor
    policy_logits: Tensor
    what_if: Tensor
    scores: Tensor
    actions: np.ndarray


class AutonomousAgent:
    """A world model, an episodic memory, a forecaster and a chartist, and its own knobs.

    Build one from an ``AgentArchitecture`` (plus ``AgentHyperparameters``), ``learn`` it on a
    training split, then ``act``. ``chartist`` may be a trained recogniser shared by many
    agents (it is trained on synthetic patterns, never on market data); otherwise ``learn``
    makes one. ``seed`` fixes the initial weights and the what-if rollouts.
    """

    def __init__(
        self,
        architecture: AgentArchitecture,
        hyperparameters: AgentHyperparameters | None = None,
        *,
        seed: int = 0,
        chartist: PatternRecognizer | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(architecture, AgentArchitecture):
            raise AgentError(f"architecture must be an AgentArchitecture, got {architecture!r:.80}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise AgentError(f"agent seed must be an int >= 0, got {seed!r}")
        self.arch, self.seed = architecture, seed
        self.hyperparameters = hyperparameters or AgentHyperparameters()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.world_model = TransformerWorldModel(
                architecture.encoder, architecture.num_actions, architecture.world_model
            )
        self.world_model.to(self.device).eval()
        self.memory = self.new_memory()
        try:
            self.forecaster: RegimeClassifier = make_classifier(
                architecture.forecaster, **architecture.forecaster_options
            )
        except (TypeError, ValueError) as error:
            raise AgentError(f"architecture forecaster: {error}") from error
        needed = max(self.forecaster.min_window, MIN_PATH_LENGTH)
        if architecture.window < needed:
            raise AgentError(
                f"architecture window {architecture.window} is shorter than the {needed} bars "
                f"the {architecture.forecaster!r} forecaster and the chartist need"
            )
        if chartist is not None and getattr(chartist, "name", None) != architecture.chartist:
            raise AgentError(
                f"the chartist given is {getattr(chartist, 'name', chartist)!r}, the architecture "
                f"says {architecture.chartist!r}"
            )
        self.forecaster_fitted = False  # set by learn and by loading a learned state
        self.chartist = chartist
        self._uniforms: dict[tuple[int, int], Tensor] = {}

    @property
    def hyperparameters(self) -> AgentHyperparameters:
        return self._hyperparameters

    @hyperparameters.setter
    def hyperparameters(self, value: AgentHyperparameters) -> None:
        """Replaceable between generations; act reads the current value on every call."""
        if not isinstance(value, AgentHyperparameters):
            raise AgentError(f"hyperparameters must be AgentHyperparameters, got {value!r:.80}")
        horizon = self.arch.world_model.horizon
        if value.what_if_horizon > horizon:
            raise AgentError(
                f"hyperparameter what_if_horizon {value.what_if_horizon} exceeds the world "
                f"model's horizon {horizon}"
            )
        self._hyperparameters = value

    @property
    def positions(self) -> tuple[float, ...]:
        return self.arch.positions

    @property
    def fitted(self) -> bool:
        """Whether the agent has learned (or loaded) its forecaster and has a chartist."""
        return self.chartist is not None and self.forecaster_fitted

    def new_memory(self) -> ExternalMemory:
        """An empty memory keyed by the trunk's embedding (``learn`` refills it)."""
        return ExternalMemory(self.arch.encoder.output_dim, self.arch.memory, seed=self.seed)

    # -- acting -------------------------------------------------------------------------------

    def act(self, observations: np.ndarray) -> np.ndarray:
        """Actions (B,) int64, indices into ``positions``, for windows (B, window, channels)."""
        return self.think(observations).actions

    @torch.no_grad()
    def think(self, observations: np.ndarray) -> Thought:
        """Run the whole think loop on a batch and return every intermediate result."""
        obs = self._checked(observations, "act")
        hp = self.hyperparameters
        x = torch.as_tensor(obs, device=self.device)
        embedding = self.world_model.embed(x)
        memory, regime, pattern = self.context_parts(obs, embedding)
        context = torch.as_tensor(
            np.concatenate([memory, regime, pattern], axis=1), dtype=torch.float32
        ).to(self.device)
        output = self.world_model(x, context, embedding)  # the trunk runs once per act
        positions = torch.tensor(self.positions, device=self.device)
        scores = torch.log_softmax(output.policy_logits, dim=-1)
        what_if = torch.zeros_like(scores)
        if hp.what_if_weight > 0:
            what_if = what_if_sharpe(
                output.quantiles,
                self.world_model.levels,
                self._rollout_uniforms(hp.what_if_paths, hp.what_if_horizon),
                positions,
                self.arch.cost_bps / 1e4,
            )
            scores = scores + hp.what_if_weight * what_if
        scores = scores + math.log(hp.risk_scale) * positions.abs()
        return Thought(
            embedding=embedding,
            memory=memory,
            regime=regime,
            pattern=pattern,
            context=context,
            policy_logits=output.policy_logits,
            what_if=what_if,
            scores=scores,
            actions=scores.argmax(dim=-1).cpu().numpy().astype(np.int64),
        )

    def context_parts(
        self,
        obs: np.ndarray,
        embedding: Tensor,
        *,
        event_bars: np.ndarray | None = None,
        decision_bars: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Memory summary (B, 4), regime (B, 4) and pattern (B, 8) probabilities for windows.

        When learning, ``event_bars`` (the bar of each stored event, by memory id) and
        ``decision_bars`` (B,) keep a window from recalling any event whose outcome it could
        not have known yet (an event at bar s is known from bar s + 1): it recalls its k
        nearest among the earlier events of the ``CAUSAL_SEARCH`` nearest (so exactly, in a
        memory no larger). Acting needs no filter: every stored event precedes the bars traded.
        """
        hp = self.hyperparameters
        causal = event_bars is not None and decision_bars is not None and len(self.memory) > 0
        k = min(len(self.memory), CAUSAL_SEARCH) if causal else hp.memory_k
        recalled = self.memory.retrieve(embedding.cpu().numpy(), k)
        keep = recalled.found
        if causal and event_bars is not None and decision_bars is not None:
            past = np.where(keep, event_bars[np.maximum(recalled.ids, 0)], np.iinfo(np.int64).max)
            keep &= past < decision_bars[:, None]
            keep &= np.cumsum(keep, axis=1) <= hp.memory_k
        scale = float(self.world_model.return_scale)
        memory = memory_summary(
            recalled.scores, recalled.outcomes, keep, hp.memory_k, scale, hp.memory_temperature
        )
        returns = obs[:, :, self.arch.return_channel].astype(np.float64)
        regime = self.forecaster.predict_proba(returns).astype(np.float32)
        if self.chartist is None:
            raise AgentError("the agent has no chartist yet: learn or load it first")
        pattern = self.chartist.predict_proba(np.cumsum(returns, axis=1)).astype(np.float32)
        return memory, regime, pattern

    def _rollout_uniforms(self, n_paths: int, horizon: int) -> Tensor:
        key = (n_paths, horizon)
        if key not in self._uniforms:
            self._uniforms[key] = rollout_uniforms(self.seed, n_paths, horizon)
        return self._uniforms[key]

    def _checked(self, observations: Any, caller: str) -> np.ndarray:
        """Observations as a finite float32 (B, window, channels) array, or a clear error."""
        if not self.fitted:
            raise AgentError(
                f"AutonomousAgent.{caller}: the agent has not learned yet; call learn(...) or "
                "load a checkpoint first"
            )
        if isinstance(observations, Tensor):
            observations = observations.detach().cpu().numpy()
        obs = np.asarray(observations, dtype=np.float32)
        expected = (self.arch.window, self.arch.encoder.input_dim)
        if obs.ndim != 3 or obs.shape[1:] != expected or len(obs) == 0:
            raise AgentError(
                f"AutonomousAgent.{caller}: observations must have shape (B >= 1, {expected[0]}, "
                f"{expected[1]}) (window, feature channels, agent_state=False), got {obs.shape}"
            )
        bad = ~np.isfinite(obs)
        if bad.any():
            row, bar, channel = np.argwhere(bad)[0]
            raise AgentError(
                f"AutonomousAgent.{caller}: {int(bad.sum())} non-finite value(s) in the "
                f"observations, first at [{row}, {bar}, {channel}]"
            )
        return np.ascontiguousarray(obs)

    # -- learning -----------------------------------------------------------------------------

    def learn(
        self,
        bars: pd.DataFrame,
        pipeline: FeaturePipeline,
        train_split: pd.DataFrame,
        *,
        seed: int,
        chartist_cache: str | PathLike[str] | None = None,
    ) -> LearnReport:
        """Train on ``train_split`` (a contiguous slice of ``bars``, earlier bars serving as
        feature history) with the agent's own hyperparameters; see ``agent_learning``.

        ``chartist_cache`` (e.g. ``chartist_cache_dir()``) keeps trained Chartist weights on
        disk for other agents and runs; unused when the agent was given a chartist.
        """
        return learn_agent(self, bars, pipeline, train_split, seed=seed, cache_dir=chartist_cache)

    def check_pipeline(self, pipeline: FeaturePipeline) -> None:
        """The pipeline must produce the channels the encoder reads, log_return where expected."""
        if not isinstance(pipeline, FeaturePipeline) or not pipeline.is_fitted:
            raise AgentError("the agent needs a fitted FeaturePipeline")
        channel = self.arch.return_channel
        if pipeline.num_features != self.arch.encoder.input_dim:
            raise AgentError(
                f"the pipeline makes {pipeline.num_features} feature channels, the agent's "
                f"encoder reads {self.arch.encoder.input_dim} (input_dim)"
            )
        if pipeline.features[channel] != "log_return":
            raise AgentError(
                f"the agent reads log_return from channel {channel}, but the pipeline's channel "
                f"{channel} is {pipeline.features[channel]!r} (features {list(pipeline.features)})"
            )

    # -- persistence --------------------------------------------------------------------------

    def architecture(self) -> dict[str, Any]:
        """JSON-able description that rebuilds this agent, knobs and seed included."""
        return {
            "agent": self.arch.to_dict(),
            "hyperparameters": self.hyperparameters.to_dict(),
            "seed": self.seed,
        }

    @classmethod
    def from_architecture(cls, architecture: Mapping[str, Any]) -> AutonomousAgent:
        """An unlearned agent from ``architecture()``; ``load_state_dict`` fills it in."""
        unknown = sorted(set(architecture) - {"agent", "hyperparameters", "seed"})
        if unknown:
            raise AgentError(f"unknown autonomous architecture key(s): {unknown}")
        try:
            return cls(
                AgentArchitecture.from_dict(architecture["agent"]),
                AgentHyperparameters.from_dict(architecture["hyperparameters"]),
                seed=architecture["seed"],
                device="cpu",
            )
        except KeyError as error:
            raise AgentError(f"autonomous architecture lacks {error}") from error

    def state_dict(self) -> dict[str, Tensor]:
        """Plain tensors: world model and chartist weights, the memory and the fitted
        forecaster as bytes (an agent that has not learned yet has no forecaster entry)."""
        state = {_WORLD + k: v for k, v in self.world_model.state_dict().items()}
        if isinstance(self.chartist, Chartist):
            state |= {_CHARTIST + k: v for k, v in self.chartist.state_dict().items()}
        if self.forecaster_fitted:
            state[_FORECASTER] = _bytes_tensor(json.dumps(self.forecaster.state_dict()).encode())
        state[_MEMORY] = _bytes_tensor(self.memory.to_bytes())
        return state

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Install ``state_dict()`` output; every missing, extra or unfitting part is named."""
        prefixes, blobs = (_WORLD, _CHARTIST), (_MEMORY, _FORECASTER)
        unknown = [k for k in state if not k.startswith(prefixes) and k not in blobs]
        if unknown or _MEMORY not in state:
            raise AgentError(
                f"agent state: unknown keys {unknown}"
                + ("" if _MEMORY in state else f", missing key {_MEMORY!r}")
            )
        part = {p: {k[len(p) :]: v for k, v in state.items() if k.startswith(p)} for p in prefixes}
        try:
            self.world_model.load_state_dict(part[_WORLD])
        except RuntimeError as error:
            raise AgentError(f"agent state: world model weights do not fit: {error}") from error
        try:
            memory = ExternalMemory.from_bytes(_tensor_bytes(state[_MEMORY]))
            forecaster = self.forecaster
            if _FORECASTER in state:
                forecaster = classifier_from_state(json.loads(_tensor_bytes(state[_FORECASTER])))
        except (ValueError, UnicodeDecodeError) as error:
            raise AgentError(f"agent state: {error}") from error
        if forecaster.name != self.arch.forecaster:
            raise AgentError(
                f"agent state: forecaster {forecaster.name!r}, architecture says "
                f"{self.arch.forecaster!r}"
            )
        if memory.dim != self.arch.encoder.output_dim or memory.config != self.arch.memory:
            raise AgentError(
                f"agent state: memory (dim {memory.dim}, {memory.config}) does not match the "
                f"architecture (dim {self.arch.encoder.output_dim}, {self.arch.memory})"
            )
        self.chartist = self._chartist_from(part[_CHARTIST])
        self.forecaster, self.memory = forecaster, memory
        self.forecaster_fitted = _FORECASTER in state

    def _chartist_from(self, weights: dict[str, Tensor]) -> PatternRecognizer | None:
        """The chartist the state describes: a CNN from its weights (None without any),
        a recogniser with nothing learned straight from the registry."""
        options = dict(self.arch.chartist_options)
        if self.arch.chartist != "cnn":
            if weights:
                raise AgentError(f"agent state: chartist weights for a {self.arch.chartist!r}")
            return make_recognizer(self.arch.chartist, **options)
        if not weights:
            return None
        options.pop("seed", None)
        config = ChartistConfig(**options)
        try:
            chartist = Chartist.from_state(config.architecture(), weights)
        except ValueError as error:
            raise AgentError(f"agent state: {error}") from error
        chartist.config = config
        return _on(chartist, self.device)

    def acting_mode(self) -> AutonomousAgent:
        """Acting mode (the world model has no dropout at act time); returns self."""
        self.world_model.train(False)
        return self

    eval = acting_mode  # the nn.Module spelling, which policy loading calls

    def to(self, device: str | torch.device) -> AutonomousAgent:
        """Move the networks (Faiss and the forecaster stay on the CPU); returns self."""
        self.device = torch.device(device)
        self.world_model.to(self.device)
        if self.chartist is not None:
            _on(self.chartist, self.device)
        return self

    def to_checkpoint(
        self,
        pipeline: FeaturePipeline,
        *,
        env: EnvSpec,
        symbol: str,
        data_range: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Checkpoint:
        """This agent in the common checkpoint format (kind ``"autonomous"``)."""
        self.check_pipeline(pipeline)
        if (env.window, env.positions, env.agent_state) != (
            self.arch.window,
            self.positions,
            False,
        ):
            raise AgentError(
                f"env (window {env.window}, positions {list(env.positions)}, agent_state "
                f"{env.agent_state}) must match the agent (window {self.arch.window}, positions "
                f"{list(self.positions)}, agent_state False)"
            )
        return Checkpoint(
            kind=KIND,
            architecture=self.architecture(),
            state_dict=self.state_dict(),
            hyperparameters=self.hyperparameters.to_dict() | {"seed": self.seed},
            feature_pipeline=pipeline.state_dict(),
            env=env.to_dict(),
            symbol=symbol,
            data_range=data_range or {},
            metrics=metrics or {},
            extra=extra or {},
        )

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> AutonomousAgent:
        if checkpoint.kind != KIND:
            raise AgentError(f"checkpoint kind {checkpoint.kind!r} is not {KIND!r}")
        agent = cls.from_architecture(checkpoint.architecture)
        agent.load_state_dict(checkpoint.state_dict)
        return agent.acting_mode()

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles (Ray, deepcopy) travel as architecture + state: Faiss indexes
        cannot be pickled themselves."""
        return {"architecture": self.architecture(), "state_dict": self.state_dict()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        rebuilt = self.from_architecture(state["architecture"])
        rebuilt.load_state_dict(state["state_dict"])
        self.__dict__.update(rebuilt.__dict__)


def _on(chartist: PatternRecognizer, device: torch.device) -> PatternRecognizer:
    if isinstance(chartist, Chartist):
        chartist.net.to(device)
    return chartist


def _bytes_tensor(data: bytes) -> Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _tensor_bytes(tensor: Tensor) -> bytes:
    if not isinstance(tensor, Tensor) or tensor.dtype != torch.uint8 or tensor.dim() != 1:
        raise AgentError("agent state: memory and forecaster must be 1-d uint8 tensors")
    return tensor.cpu().numpy().tobytes()
