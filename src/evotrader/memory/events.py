"""EventDetector: which steps of a trading history are significant enough to remember.

The agent's memory should hold the moments worth recalling, not every bar. Over a time-ordered
batch of N steps the detector flags, each by its own criterion:

- ``flash_crash``: the market return falls below ``-crash_sigma`` times the trailing
  volatility (std of the ``vol_window`` returns before the step, so a crash never inflates its
  own yardstick; steps with fewer than ``min_vol_periods`` earlier returns are not judged);
- ``large_loss`` / ``large_win``: the step's P&L is at most ``-large_loss`` / at least
  ``large_win`` (in P&L units, e.g. a fraction of equity);
- ``regime_shift``: the regime label differs from the previous step's;
- ``rare_action``: the action taken has a frequency in the batch below ``rare_action_freq``;
- ``rare_outcome``: a P&L this extreme (two-sided, from a normal fitted robustly with median
  and MAD) has probability below ``rare_outcome_freq``.

Frequencies are the batch's own, so pass a meaningful stretch (hundreds of steps), not one
step. A step's kind joins its criteria in ``CRITERIA`` order (``"flash_crash+large_loss"``),
so combined events are a kind of their own, rarer, for the memory's ``keep_rare`` eviction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import erfc

from evotrader.core.checks import require_int
from evotrader.memory.episodic_memory import EpisodicMemoryError, torch_of

CRITERIA = (
    "flash_crash",
    "large_loss",
    "large_win",
    "regime_shift",
    "rare_action",
    "rare_outcome",
)
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its std


@dataclass(frozen=True)
class EventConfig:
    """Thresholds of the event criteria; ``criteria`` lists those that are checked.

    ``crash_sigma`` is 5 rather than 4 because a trailing std from a few dozen returns is
    noisy: the ratio of a calm return to it is t-distributed, and P(t_20 < -4) is about 4e-4
    per step, too many false crashes; P(t_20 < -5) is about 3e-5.
    """

    criteria: tuple[str, ...] = CRITERIA
    crash_sigma: float = 5.0
    vol_window: int = 64
    min_vol_periods: int = 20
    large_win: float = 0.03
    large_loss: float = 0.03
    rare_action_freq: float = 0.02
    rare_outcome_freq: float = 1e-4

    def __post_init__(self) -> None:
        criteria = tuple(self.criteria)
        unknown = [c for c in criteria if c not in CRITERIA]
        if unknown or len(set(criteria)) != len(criteria):
            raise EpisodicMemoryError(
                f"event criteria must be distinct names from {CRITERIA}, got {self.criteria!r}"
            )
        object.__setattr__(self, "criteria", criteria)
        require_int("event ", self, 2, "vol_window", "min_vol_periods", error=EpisodicMemoryError)
        if self.min_vol_periods > self.vol_window:
            raise EpisodicMemoryError(
                f"event min_vol_periods ({self.min_vol_periods}) cannot exceed "
                f"vol_window ({self.vol_window})"
            )
        for name in ("crash_sigma", "large_win", "large_loss"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise EpisodicMemoryError(f"event {name} must be a number > 0, got {value!r}")
        for name in ("rare_action_freq", "rare_outcome_freq"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
                raise EpisodicMemoryError(f"event {name} must be in (0, 1), got {value!r}")


@dataclass(frozen=True, eq=False)
class Events:
    """What the detector found in N steps.

    ``flags`` (N, len(CRITERIA)) bool, one column per criterion in ``CRITERIA`` order;
    ``steps`` (E,) the indices of the steps with any flag, ascending; ``kinds`` their E kinds.
    """

    flags: np.ndarray
    steps: np.ndarray
    kinds: tuple[str, ...]


class EventDetector:
    """Flags significant steps by the criteria of its config, vectorised over a batch."""

    def __init__(self, config: EventConfig | None = None) -> None:
        self.config = config or EventConfig()

    def detect(
        self,
        *,
        returns: Any = None,
        pnl: Any = None,
        actions: Any = None,
        regimes: Any = None,
    ) -> Events:
        """Judge N time-ordered steps; each input, when given, is (N,).

        ``returns`` are the market's returns (flash crash), ``pnl`` the agent's per-step P&L
        (large win/loss, rare outcome), ``actions`` and ``regimes`` discrete labels. A
        criterion whose input is not given is not checked (its column stays False). NaN
        returns or P&L mark missing values and are never events.
        """
        inputs = {
            name: _vector(name, value)
            for name, value in (
                ("returns", returns),
                ("pnl", pnl),
                ("actions", actions),
                ("regimes", regimes),
            )
            if value is not None
        }
        if not inputs:
            raise EpisodicMemoryError(
                "event detect: give at least one of returns, pnl, actions, regimes"
            )
        lengths = {name: len(value) for name, value in inputs.items()}
        if len(set(lengths.values())) != 1:
            raise EpisodicMemoryError(f"event detect: inputs differ in length: {lengths}")
        n = next(iter(lengths.values()))
        checks = {
            "flash_crash": ("returns", self._flash_crash),
            "large_loss": ("pnl", lambda p: p <= -self.config.large_loss),
            "large_win": ("pnl", lambda p: p >= self.config.large_win),
            "regime_shift": ("regimes", _changes),
            "rare_action": ("actions", lambda a: _frequency(a) < self.config.rare_action_freq),
            "rare_outcome": ("pnl", self._rare_outcome),
        }
        flags = np.zeros((n, len(CRITERIA)), bool)
        for column, criterion in enumerate(CRITERIA):
            source, check = checks[criterion]
            if criterion in self.config.criteria and source in inputs:
                flags[:, column] = check(inputs[source])
        steps = np.flatnonzero(flags.any(axis=1))
        names = np.array(CRITERIA)
        kinds = tuple("+".join(names[row]) for row in flags[steps])
        return Events(flags=flags, steps=steps, kinds=kinds)

    def _flash_crash(self, returns: np.ndarray) -> np.ndarray:
        cfg = self.config
        trailing = pd.Series(returns).rolling(cfg.vol_window, min_periods=cfg.min_vol_periods)
        sigma = trailing.std().shift(1).to_numpy()
        return np.nan_to_num(returns, nan=0.0) < -cfg.crash_sigma * np.nan_to_num(sigma, nan=np.inf)

    def _rare_outcome(self, pnl: np.ndarray) -> np.ndarray:
        finite = pnl[np.isfinite(pnl)]
        if len(finite) < 2:
            return np.zeros(len(pnl), bool)
        center = np.median(finite)
        scale = _MAD_TO_SIGMA * np.median(np.abs(finite - center)) or np.std(finite)
        if scale == 0:
            return np.zeros(len(pnl), bool)
        tail = erfc(np.abs(pnl - center) / (scale * np.sqrt(2.0)))
        return np.nan_to_num(tail, nan=1.0) < self.config.rare_outcome_freq


def _vector(name: str, value: Any) -> np.ndarray:
    if torch_of(value) is not None:
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim != 1 or len(array) == 0:
        raise EpisodicMemoryError(
            f"event {name}: expected a non-empty 1-D array, got {array.shape}"
        )
    if name in ("returns", "pnl"):
        if not np.issubdtype(array.dtype, np.number):
            raise EpisodicMemoryError(f"event {name}: expected numbers, got {array.dtype}")
        array = array.astype(np.float64)
        bad = np.flatnonzero(np.isinf(array))
        if len(bad):
            raise EpisodicMemoryError(f"event {name}: step {bad[0]} is {array[bad[0]]}")
    return array


def _changes(labels: np.ndarray) -> np.ndarray:
    return np.concatenate([[False], labels[1:] != labels[:-1]])


def _frequency(labels: np.ndarray) -> np.ndarray:
    """Each step's label share of the batch."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)] / len(labels)
