"""The Chartist: which chart pattern a price window shows, with a confidence.

Recognisers take any price-like paths (batch, L) - close prices, cumulative log returns, or the
cumulative sum of the standardised ``log_return`` feature - resample them to their fixed length
and remove offset and scale (``normalise_paths``), then return probabilities over PATTERNS.
Two sit behind one interface and a registry:

- ``cnn`` (the default ``Chartist``): a small 1-d CNN trained in seconds on the seeded synthetic
  patterns of ``chart_patterns``; deterministic for a seed, optionally cached on disk.
- ``templates``: no learning; the best normalised correlation of any window segment with each
  pattern's noiseless template, ``none`` when nothing correlates well enough.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import Tensor, nn

from evotrader.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from evotrader.core.checks import check_fields
from evotrader.core.registry import Registry
from evotrader.reasoning.chart_patterns import (
    NONE,
    PATTERNS,
    PatternConfig,
    generate_patterns,
    normalise_paths,
    template_paths,
)
from evotrader.reasoning.checks import as_batch, build_config

MIN_PATH_LENGTH = 16
CACHE_ENV = "EVOTRADER_CACHE"
_CACHE_KIND = "chartist"


class PatternRecognizer(ABC):
    """Paths (batch, L) -> probabilities (batch, len(PATTERNS)), labels and confidences."""

    name: ClassVar[str]
    config_type: ClassVar[type[Any]]

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def create(cls, **options: Any) -> Self:
        return cls(build_config(cls.config_type, f"recognizer {cls.name!r}", options))

    @property
    def length(self) -> int:
        """The fixed number of bars every path is resampled to."""
        return int(self.config.length)

    @abstractmethod
    def _proba(self, normalised: np.ndarray) -> np.ndarray:
        """(batch, len(PATTERNS)) probabilities from normalised float32 (batch, length)."""

    def predict_proba(self, paths: Any) -> np.ndarray:
        checked = as_batch(paths, f"{self.name}.predict paths", MIN_PATH_LENGTH)
        return self._proba(normalise_paths(checked, self.length))

    def predict(self, paths: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels (batch,) indexing PATTERNS, their confidence (batch,), all probabilities."""
        probs = self.predict_proba(paths)
        labels = probs.argmax(axis=1)
        return labels, probs[np.arange(len(labels)), labels], probs


RECOGNIZERS: Registry[type[PatternRecognizer]] = Registry("pattern recognizer")


def make_recognizer(name: str = "cnn", **options: Any) -> PatternRecognizer:
    """A ready recogniser by registry name (``cnn`` trains, or loads from ``cache_dir``)."""
    return RECOGNIZERS.get(name).create(**options)


def available_recognizers() -> tuple[str, ...]:
    return RECOGNIZERS.names()


@dataclass(frozen=True)
class ChartistConfig:
    """CNN architecture (length, channels, hidden) and its training settings."""

    length: int = 64
    channels: int = 16
    hidden: int = 64
    train_samples: int = 16384
    epochs: int = 8
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patterns: PatternConfig = field(default_factory=PatternConfig)

    def __post_init__(self) -> None:
        if isinstance(self.patterns, dict):
            object.__setattr__(self, "patterns", PatternConfig(**self.patterns))
        problems = [
            (
                self.length < MIN_PATH_LENGTH or self.length % 16 != 0,
                f"length must be a multiple of 16 (>= {MIN_PATH_LENGTH}), got {self.length}",
            ),
            (
                self.channels < 1 or self.hidden < 1,
                f"channels and hidden must be >= 1, got {self.channels}, {self.hidden}",
            ),
            (
                self.train_samples < len(PATTERNS),
                f"train_samples must be >= {len(PATTERNS)}, got {self.train_samples}",
            ),
            (
                self.epochs < 1 or self.batch_size < 1,
                f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}",
            ),
            (
                self.lr <= 0 or self.weight_decay < 0,
                f"need lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}",
            ),
        ]
        check_fields("ChartistConfig", problems)

    def architecture(self) -> dict[str, int]:
        return {"length": self.length, "channels": self.channels, "hidden": self.hidden}


class ChartistNet(nn.Module):
    """Four conv blocks, each halving the length, so the last one sees the whole window."""

    def __init__(self, length: int, channels: int, hidden: int) -> None:
        super().__init__()
        widths = (1, channels, 2 * channels, 2 * channels, 2 * channels)
        blocks: list[nn.Module] = []
        for i in range(4):
            kernel = 7 if i == 0 else 5
            blocks += [
                nn.Conv1d(widths[i], widths[i + 1], kernel, padding=kernel // 2),
                nn.ReLU(),
                nn.MaxPool1d(2),
            ]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(widths[-1] * (length // 16), hidden),
            nn.ReLU(),
            nn.Linear(hidden, len(PATTERNS)),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Normalised paths (batch, length) -> logits (batch, len(PATTERNS))."""
        return self.head(self.features(x.unsqueeze(1)))


class Chartist(PatternRecognizer):
    """The CNN recogniser; build with ``train_chartist`` or rebuild with ``from_state``."""

    name = "cnn"
    config_type = ChartistConfig

    def __init__(self, config: ChartistConfig | None = None) -> None:
        super().__init__(config or ChartistConfig())
        self.net = ChartistNet(**self.config.architecture()).eval()

    @classmethod
    def create(
        cls, seed: int = 0, cache_dir: str | os.PathLike[str] | None = None, **options: Any
    ) -> Self:
        config = build_config(cls.config_type, f"recognizer {cls.name!r}", options)
        return train_chartist(config, seed, cache_dir=cache_dir)  # type: ignore[return-value]

    def _proba(self, normalised: np.ndarray) -> np.ndarray:
        device = next(self.net.parameters()).device
        with torch.no_grad():
            logits = self.net(torch.from_numpy(normalised).to(device))
        return torch.softmax(logits.double(), dim=1).cpu().numpy()

    def architecture(self) -> dict[str, int]:
        return self.config.architecture()

    def state_dict(self) -> dict[str, Tensor]:
        return self.net.state_dict()

    @classmethod
    def from_state(cls, architecture: dict[str, Any], state_dict: dict[str, Tensor]) -> Chartist:
        """Rebuild a trained Chartist from ``architecture()`` and ``state_dict()``."""
        unknown = sorted(set(architecture) - {"length", "channels", "hidden"})
        if unknown:
            raise ValueError(f"Chartist.from_state: unknown architecture keys {unknown}")
        chartist = cls(ChartistConfig(**architecture))
        try:
            chartist.net.load_state_dict(state_dict)
        except RuntimeError as error:
            raise ValueError(
                f"Chartist.from_state: weights do not fit {architecture}: {error}"
            ) from error
        return chartist


def train_chartist(
    config: ChartistConfig | None = None,
    seed: int = 0,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    threads: int | None = 1,
) -> Chartist:
    """Train the CNN on ``config.train_samples`` synthetic patterns drawn with ``seed``.

    Deterministic for a seed on CPU; the global torch RNG is left untouched. With ``cache_dir``
    the trained weights are loaded from, or saved atomically to, a checkpoint there keyed by
    the config and seed (``chartist_cache_dir()`` is the usual place). ``threads`` caps torch's
    CPU threads while training (such small convolutions run fastest on one; None: as set).
    """
    config = config or ChartistConfig()
    if cache_dir is not None:
        cached = _load_cached(Path(cache_dir), config, seed)
        if cached is not None:
            return cached
    previous_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        chartist = _train(config, seed, device)
    finally:
        torch.set_num_threads(previous_threads)
    if cache_dir is not None:
        _save_cached(Path(cache_dir), chartist, seed)
    return chartist


def _train(config: ChartistConfig, seed: int, device: str | torch.device | None) -> Chartist:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    paths, labels = generate_patterns(
        config.train_samples, config.length, seed=seed, config=config.patterns
    )
    inputs = torch.from_numpy(normalise_paths(paths, config.length)).to(device)
    targets = torch.from_numpy(labels).to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        chartist = Chartist(config)
    net = chartist.net.to(device).train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(inputs) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, config.lr, total_steps=config.epochs * steps_per_epoch
    )
    shuffle = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(config.epochs):
        order = torch.randperm(len(inputs), generator=shuffle).to(device)
        for batch in order.split(config.batch_size):
            optimiser.zero_grad(set_to_none=True)
            loss_fn(net(inputs[batch]), targets[batch]).backward()
            optimiser.step()
            schedule.step()
    net.eval()
    return chartist


def chartist_cache_dir() -> Path:
    """``$EVOTRADER_CACHE/chartist`` if that is set, else ``~/.cache/evotrader/chartist``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "evotrader") / "chartist"


def _cache_key(config: ChartistConfig, seed: int) -> tuple[str, dict[str, Any]]:
    """File name and the JSON hyperparameters it stands for."""
    hyperparameters = json.loads(json.dumps({**asdict(config), "seed": seed}))
    digest = hashlib.sha256(json.dumps(hyperparameters, sort_keys=True).encode()).hexdigest()
    return f"chartist_{digest[:16]}.pth", hyperparameters


def _load_cached(directory: Path, config: ChartistConfig, seed: int) -> Chartist | None:
    name, hyperparameters = _cache_key(config, seed)
    path = directory / name
    if not path.exists():
        return None
    saved = load_checkpoint(path)
    if saved.kind != _CACHE_KIND or saved.hyperparameters != hyperparameters:
        raise ValueError(f"chartist cache {path} holds other weights; delete it to retrain")
    chartist = Chartist.from_state(saved.architecture, saved.state_dict)
    chartist.config = config
    return chartist


def _save_cached(directory: Path, chartist: Chartist, seed: int) -> None:
    name, hyperparameters = _cache_key(chartist.config, seed)
    checkpoint = Checkpoint(
        kind=_CACHE_KIND,
        architecture=chartist.architecture(),
        state_dict=chartist.state_dict(),
        hyperparameters=hyperparameters,
        feature_pipeline={},
        env={},
        symbol="synthetic_patterns",
        data_range={},
        metrics={},
    )
    save_checkpoint(checkpoint, directory / name)


@dataclass(frozen=True)
class TemplateConfig:
    """Segments of ``spans`` (fractions of ``length``) are matched at every offset."""

    length: int = 64
    spans: tuple[float, ...] = (0.5, 0.75, 1.0)
    none_threshold: float = 0.7
    sharpness: float = 20.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "spans", tuple(float(span) for span in self.spans))
        problems = [
            (self.length < MIN_PATH_LENGTH, f"length must be >= {MIN_PATH_LENGTH}: {self.length}"),
            (
                not self.spans or not all(0.25 <= span <= 1 for span in self.spans),
                f"spans must be fractions in [0.25, 1], got {self.spans}",
            ),
            (
                not -1 < self.none_threshold < 1,
                f"none_threshold must be in (-1, 1), got {self.none_threshold}",
            ),
            (self.sharpness <= 0, f"sharpness must be > 0, got {self.sharpness}"),
        ]
        check_fields("TemplateConfig", problems)


class TemplateMatcher(PatternRecognizer):
    """Best Pearson correlation of any segment with each template; softmax over the scores.

    ``none`` scores ``none_threshold``, so it wins when no template fits better than that.
    """

    name = "templates"
    config_type = TemplateConfig

    def __init__(self, config: TemplateConfig | None = None) -> None:
        super().__init__(config or TemplateConfig())
        keys = list(template_paths(MIN_PATH_LENGTH))
        self._classes = [PATTERNS.index(key.split(":")[0]) for key in keys]
        self._templates = [
            _standardise(np.stack(list(template_paths(round(span * self.length)).values())))
            for span in self.config.spans
        ]

    def _proba(self, normalised: np.ndarray) -> np.ndarray:
        scores = np.full((len(normalised), len(PATTERNS)), -1.0)
        for templates in self._templates:
            segments = _standardise(sliding_window_view(normalised, templates.shape[1], axis=1))
            best = np.einsum("bos,ts->bot", segments, templates).max(axis=1)
            np.maximum.at(scores.T, self._classes, best.T)
        scores[:, NONE] = self.config.none_threshold
        logits = self.config.sharpness * scores
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        return weights / weights.sum(axis=1, keepdims=True)


RECOGNIZERS.register(Chartist.name, Chartist)
RECOGNIZERS.register(TemplateMatcher.name, TemplateMatcher)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit norm along the last axis, so dot products are correlations."""
    centred = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(centred, axis=-1, keepdims=True)
    return centred / np.where(norm > 1e-12, norm, np.inf)


@dataclass(frozen=True)
class PatternReport:
    """Per-class precision and recall (PATTERNS order), accuracy, and confusion counts
    (rows: true pattern, columns: predicted)."""

    precision: np.ndarray
    recall: np.ndarray
    accuracy: float
    confusion: np.ndarray


def evaluate_chartist(
    recognizer: PatternRecognizer,
    *,
    seed: int,
    n_samples: int = 4000,
    config: PatternConfig | None = None,
) -> PatternReport:
    """Score ``recognizer`` on ``n_samples`` fresh synthetic patterns drawn with ``seed``.

    Use a seed the recogniser was not trained on. A class never predicted has precision 0.
    """
    paths, truth = generate_patterns(n_samples, recognizer.length, seed=seed, config=config)
    predicted, _, _ = recognizer.predict(paths)
    k = len(PATTERNS)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    hits = np.diag(confusion).astype(np.float64)
    return PatternReport(
        precision=hits / np.maximum(confusion.sum(axis=0), 1),
        recall=hits / np.maximum(confusion.sum(axis=1), 1),
        accuracy=float(hits.sum() / n_samples),
        confusion=confusion,
    )
