"""The trial ledger: every candidate a run scored on the validation split, across all stages.

Each stage selects on the validation split (PPO, MoE and MAML keep their best evaluation, the
autonomous stage its fittest member), so every one of those evaluations is a trial behind the
champion and the Deflated Sharpe Ratio must count them all. The ledger is
``runs/<run>/trials.jsonl``, one line per evaluation: the stage, a label naming the
candidate ("iteration 10", "agent 7"), and its per-bar returns on the validation split after
costs next to buy-and-hold's on the same bars. Lines are only appended; a resumed stage that
scores the same candidate again writes a newer line with the same key (stage, label), and the
newest one wins, so nothing is counted twice. A line cut short by a crash is skipped: the stage
had not saved its progress past that evaluation, so it scores the candidate again on resume.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evotrader.core.checkpoint import Checkpoint

LEDGER_NAME = "trials.jsonl"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    """One candidate's validation returns, next to buy-and-hold's on the same bars."""

    stage: str
    label: str
    returns: tuple[float, ...]
    benchmark: tuple[float, ...]

    @property
    def key(self) -> tuple[str, str]:
        return self.stage, self.label

    @property
    def excess(self) -> np.ndarray:
        return np.asarray(self.returns) - np.asarray(self.benchmark)


@dataclass(frozen=True)
class TrialLedger:
    path: Path

    def record(
        self,
        stage: str,
        label: str,
        returns: Sequence[float] | np.ndarray,
        benchmark: Sequence[float] | np.ndarray,
    ) -> None:
        """Append one evaluation (durably: a crash loses at most the line being written)."""
        if len(returns) != len(benchmark):
            raise ValueError(
                f"{stage} {label}: {len(returns)} strategy returns against {len(benchmark)} "
                "for buy-and-hold"
            )
        trial = Trial(stage, label, tuple(map(float, returns)), tuple(map(float, benchmark)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            if handle.tell() and not _ends_with_newline(self.path):
                handle.write(b"\n")  # close a line cut short by a crash
            handle.write(json.dumps(asdict(trial)).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def trials(self) -> list[Trial]:
        """Every distinct candidate, the newest evaluation of each, in order of first record."""
        if not self.path.exists():
            return []
        latest: dict[tuple[str, str], Trial] = {}
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                raw = json.loads(line)
                trial = Trial(
                    raw["stage"], raw["label"], tuple(raw["returns"]), tuple(raw["benchmark"])
                )
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                log.warning("%s:%d: skipping a damaged trial line (%s)", self.path, number, error)
                continue
            latest[trial.key] = trial
        return list(latest.values())


def stage_counts(trials: Sequence[Trial]) -> dict[str, int]:
    """How many distinct candidates each stage scored on the validation split."""
    return dict(Counter(trial.stage for trial in trials))


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def trials_behind(checkpoint: Checkpoint, path: Path) -> int | None:
    """How many validation candidates stood behind this checkpoint's selection.

    A champion records its count; any other stage checkpoint is counted from its run
    folder's ledger, every candidate up to and including its own stage's (later stages had
    not run when it was chosen). None when neither record is at hand.
    """
    if "validation_trials" in checkpoint.metrics:
        return int(checkpoint.metrics["validation_trials"])
    stage = checkpoint.extra.get("stage")
    trials = TrialLedger(path.parent / LEDGER_NAME).trials()
    last = max((i for i, trial in enumerate(trials) if trial.stage == stage), default=None)
    return None if last is None else last + 1
