"""The Weather Forecaster: which market regime holds at the last bar of a window of returns.

Regimes are REGIME_LABELS, aligned one-to-one with the synthetic generator's REGIMES (bull ->
trending_up, bear -> trending_down, sideways -> ranging, high_vol -> volatile), so accuracy can be
measured against known truth. Classifiers sit behind one interface and a registry:

- ``rules``: moving-average crossover for the trend and a volatility breakout against the
  training series' typical volatility, softened into probabilities.
- ``hmm``: a 4-state Gaussian hidden Markov model fitted by EM (Baum-Welch, numpy); states are
  mapped to regimes by their fitted variance and mean, and probabilities are forward-filtered.

Input units: ``fit`` learns everything relative to the scale of the series it is given, so
predict on windows in the same units as the fit series. The autonomous agent fits on the
training split's standardised ``log_return`` feature and predicts on observation windows of
that channel; reports may fit and classify raw log returns instead. Either works, mixing does
not. Every prediction uses only the window it is given, so labels are causal by construction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from evotrader.core.checks import check_fields
from evotrader.core.registry import Registry
from evotrader.data import REGIMES, FeaturePipeline, generate_synthetic
from evotrader.reasoning.checks import as_batch, as_series, build_config

REGIME_LABELS: tuple[str, ...] = ("trending_up", "trending_down", "ranging", "volatile")
UP, DOWN, RANGING, VOLATILE = range(len(REGIME_LABELS))
_TREND = [UP, DOWN]
SYNTHETIC_TO_LABEL: dict[str, str] = dict(zip(REGIMES, REGIME_LABELS, strict=True))
STATE_VERSION = 1
_LOG_2PI = float(np.log(2 * np.pi))
_PSEUDO_COUNT = 1e-9


class RegimeClassifier(ABC):
    """Fit on a series of returns, then map windows (batch, window) to regime probabilities."""

    name: ClassVar[str]
    config_type: ClassVar[type[Any]]

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.config_type()
        self._fitted = False

    @classmethod
    def create(cls, **options: Any) -> Self:
        return cls(build_config(cls.config_type, f"classifier {cls.name!r}", options))

    @property
    @abstractmethod
    def min_window(self) -> int:
        """Shortest window ``predict_proba`` accepts."""

    @abstractmethod
    def _fit(self, returns: np.ndarray) -> None:
        """Learn parameters from a checked 1-d float64 series."""

    @abstractmethod
    def _proba(self, windows: np.ndarray) -> np.ndarray:
        """(batch, 4) probabilities from checked float64 windows."""

    @abstractmethod
    def _params(self) -> dict[str, Any]:
        """Fitted parameters as JSON-able values."""

    @abstractmethod
    def _load_params(self, params: dict[str, Any]) -> None:
        """Inverse of ``_params``."""

    def fit(self, returns: Any) -> Self:
        """Fit on a 1-d training series of returns (see the module doc for units)."""
        series = as_series(returns, f"{self.name}.fit returns", 4 * self.min_window)
        if series.std() <= 0:
            raise ValueError(f"{self.name}.fit returns: the series is constant")
        self._fit(series)
        self._fitted = True
        return self

    def predict_proba(self, windows: Any) -> np.ndarray:
        """Regime probabilities (batch, 4) at the last bar of each window, in REGIME_LABELS order.

        Uses only each window's own values, vectorised over the batch.
        """
        if not self._fitted:
            raise RuntimeError(f"{self.name}: predict called before fit()")
        return self._proba(as_batch(windows, f"{self.name}.predict windows", self.min_window))

    def predict(self, windows: Any) -> np.ndarray:
        """Most probable regime index (batch,) into REGIME_LABELS."""
        return self.predict_proba(windows).argmax(axis=1)

    def classify_bars(
        self, bars: pd.DataFrame, window: int, pipeline: FeaturePipeline | None = None
    ) -> pd.Series:
        """Regime label per bar from the trailing ``window`` returns (None before a full window).

        Returns are raw close-to-close log returns, or the standardised ``log_return`` feature of
        ``pipeline`` when given: use whichever the classifier was fitted on.
        """
        if window < self.min_window:
            raise ValueError(
                f"{self.name}.classify_bars: window {window} is below the minimum {self.min_window}"
            )
        returns, first = _bar_returns(bars, pipeline)
        labels = np.full(len(bars), None, dtype=object)
        if len(returns) - first >= window:
            windows = sliding_window_view(returns[first:], window)
            labels[first + window - 1 :] = np.asarray(REGIME_LABELS)[self.predict(windows)]
        return pd.Series(labels, index=bars.index, name="regime")

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state that ``classifier_from_state`` turns back into this classifier."""
        if not self._fitted:
            raise RuntimeError(f"{self.name}: cannot export an unfitted classifier")
        return {
            "version": STATE_VERSION,
            "name": self.name,
            "config": asdict(self.config),
            "params": self._params(),
        }


CLASSIFIERS: Registry[type[RegimeClassifier]] = Registry("regime classifier")


def make_classifier(name: str, **config: Any) -> RegimeClassifier:
    """An unfitted classifier by registry name, with its config fields as keyword options."""
    return CLASSIFIERS.get(name).create(**config)


def available_classifiers() -> tuple[str, ...]:
    return CLASSIFIERS.names()


def classifier_from_state(state: dict[str, Any]) -> RegimeClassifier:
    """Rebuild a fitted classifier from ``state_dict()`` output (e.g. inside a checkpoint)."""
    try:
        if state["version"] != STATE_VERSION:
            raise ValueError(f"unsupported regime classifier state version {state['version']}")
        classifier = make_classifier(state["name"], **state["config"])
        classifier._load_params(state["params"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"malformed regime classifier state: {error!r}") from error
    classifier._fitted = True
    return classifier


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class RuleConfig:
    """Windows are in bars; vol thresholds are ratios to the training series' median vol."""

    fast: int = 10
    slow: int = 40
    vol_window: int = 20
    vol_high: float = 1.6
    vol_low: float = 0.7
    vol_softness: float = 0.1
    trend_softness: float = 1.0

    def __post_init__(self) -> None:
        problems = [
            (not 2 <= self.fast < self.slow, f"need 2 <= fast < slow, got {self.fast}/{self.slow}"),
            (self.vol_window < 2, f"vol_window must be >= 2, got {self.vol_window}"),
            (
                not 0 < self.vol_low < 1 < self.vol_high,
                f"need 0 < vol_low < 1 < vol_high, got {self.vol_low}, {self.vol_high}",
            ),
            (self.vol_softness <= 0, f"vol_softness must be > 0, got {self.vol_softness}"),
            (self.trend_softness <= 0, f"trend_softness must be > 0, got {self.trend_softness}"),
        ]
        check_fields("RuleConfig", problems)


class RuleClassifier(RegimeClassifier):
    """Volatility breakout first (volatile / ranging), then the sign of a MA crossover.

    Realised vol over the last ``vol_window`` returns, relative to the median rolling vol of
    the fit series, is compared with ``vol_high`` and ``vol_low`` through soft (sigmoid)
    thresholds. The trend is the fast-minus-slow moving average of the price path inside the
    window, divided by its own standard deviation under a random walk: a t-statistic, so the
    trend test needs no fitted scale. The three soft decisions multiply into probabilities.
    """

    name = "rules"
    config_type = RuleConfig

    def __init__(self, config: RuleConfig | None = None) -> None:
        super().__init__(config)
        self.reference_vol = 0.0
        slow, fast = self.config.slow, self.config.fast
        # Return i of the last ``slow`` moves mean(fast prices) - mean(slow prices) by w[i].
        after = slow - np.arange(slow)
        weights = np.minimum(fast, after) / fast - after / slow
        self._trend_weights = weights / np.linalg.norm(weights)

    @property
    def min_window(self) -> int:
        return max(self.config.slow, self.config.vol_window)

    def _fit(self, returns: np.ndarray) -> None:
        rolling = sliding_window_view(returns, self.config.vol_window).std(axis=1)
        self.reference_vol = float(np.median(rolling))
        if self.reference_vol <= 0:
            raise ValueError(f"{self.name}.fit returns: median rolling volatility is zero")

    def _proba(self, windows: np.ndarray) -> np.ndarray:
        cfg = self.config
        vol = windows[:, -cfg.vol_window :].std(axis=1)
        log_ratio = np.log(np.maximum(vol, 1e-12) / self.reference_vol)
        volatile = _sigmoid((log_ratio - np.log(cfg.vol_high)) / cfg.vol_softness)
        quiet = _sigmoid((np.log(cfg.vol_low) - log_ratio) / cfg.vol_softness)
        slow = windows[:, -cfg.slow :]
        noise = np.maximum(slow.std(axis=1), 1e-12)
        up = _sigmoid(slow @ self._trend_weights / noise / cfg.trend_softness)
        trending = (1 - volatile) * (1 - quiet)
        return np.stack(
            [trending * up, trending * (1 - up), (1 - volatile) * quiet, volatile], axis=1
        )

    def _params(self) -> dict[str, Any]:
        return {"reference_vol": self.reference_vol}

    def _load_params(self, params: dict[str, Any]) -> None:
        self.reference_vol = float(params["reference_vol"])


@dataclass(frozen=True)
class HMMConfig:
    """EM settings; the fit series is cut into ``chunk``-bar pieces (the last one may be
    shorter) fitted in parallel."""

    max_iter: int = 200
    tol: float = 1e-6
    chunk: int = 256
    persistence: float = 0.95
    min_var: float = 1e-3
    min_window: int = 8

    def __post_init__(self) -> None:
        problems = [
            (self.max_iter < 1, f"max_iter must be >= 1, got {self.max_iter}"),
            (self.tol <= 0, f"tol must be > 0, got {self.tol}"),
            (self.chunk < 16, f"chunk must be >= 16, got {self.chunk}"),
            (not 0 < self.persistence < 1, f"persistence must be in (0, 1): {self.persistence}"),
            (self.min_var <= 0, f"min_var must be > 0, got {self.min_var}"),
            (self.min_window < 2, f"min_window must be >= 2, got {self.min_window}"),
        ]
        check_fields("HMMConfig", problems)


class HMMClassifier(RegimeClassifier):
    """Gaussian HMM with one state per regime, fitted by Baum-Welch on the training series.

    The two trend states share one variance, so they differ by drift alone, as bull and bear do
    in the generator; on real data this keeps "trending" about drift, not a volatility level.
    After fitting, the trend state with the higher mean is ``trending_up`` and, of the other two,
    the lower-variance one is ``ranging``. Means are free: "up" and "down" are relative drifts
    (the standardised feature has its training mean removed anyway), and on a strongly rising
    market both trend states can have positive means.

    EM runs on the series cut into ``chunk``-bar pieces, each starting from the fitted initial
    distribution, so the forward-backward recursion is vectorised across pieces; the last,
    shorter piece is padded with missing observations, so every return counts exactly once.
    Prediction runs the same forward filter over each window. Returns are divided by the fit
    series' std, so means and variances are in units of it.
    """

    name = "hmm"
    config_type = HMMConfig

    def __init__(self, config: HMMConfig | None = None) -> None:
        super().__init__(config)
        self.scale = 1.0
        self.initial = np.full(len(REGIME_LABELS), 1 / len(REGIME_LABELS))
        self.transition = np.eye(len(REGIME_LABELS))
        self.means = np.zeros(len(REGIME_LABELS))
        self.variances = np.ones(len(REGIME_LABELS))
        self.log_likelihood = float("nan")
        self.iterations = 0

    @property
    def min_window(self) -> int:
        return self.config.min_window

    def _fit(self, returns: np.ndarray) -> None:
        cfg = self.config
        self.scale = float(returns.std())
        x = returns / self.scale
        length = min(cfg.chunk, len(x))
        padded = -(-len(x) // length) * length
        chunks = np.pad(x, (0, padded - len(x))).reshape(-1, length)
        observed = (np.arange(padded) < len(x)).reshape(-1, length)
        self._initialise(x)
        previous = -np.inf
        for iteration in range(1, cfg.max_iter + 1):
            self.log_likelihood, self.iterations = self._em_step(chunks, observed), iteration
            if abs(self.log_likelihood - previous) <= cfg.tol * abs(self.log_likelihood):
                break
            previous = self.log_likelihood
        self._order_states()

    def _initialise(self, x: np.ndarray) -> None:
        """Deterministic start: variances at quantiles of rolling variance, means at +-drift."""
        k = len(REGIME_LABELS)
        rolling = sliding_window_view(x, 20)
        variances = np.quantile(rolling.var(axis=1), [0.5, 0.5, 0.1, 0.95])
        drift = np.quantile(np.abs(rolling.mean(axis=1)), 0.5)
        self.means = np.array([drift, -drift, 0.0, 0.0])
        self.variances = np.maximum(variances, self.config.min_var)
        stay = self.config.persistence
        self.transition = np.full((k, k), (1 - stay) / (k - 1))
        np.fill_diagonal(self.transition, stay)
        self.initial = np.full(k, 1 / k)

    def _emissions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian densities (..., states) divided by their max, and the log of that max."""
        log_b = -0.5 * (
            _LOG_2PI + np.log(self.variances) + (x[..., None] - self.means) ** 2 / self.variances
        )
        top = log_b.max(axis=-1, keepdims=True)
        return np.exp(log_b - top), top[..., 0]

    def _forward(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filtered state probabilities (batch, time, states) and per-step normalisers."""
        alpha = np.empty_like(b)
        norm = np.empty(b.shape[:2])
        prior = np.broadcast_to(self.initial, b[:, 0].shape)
        for t in range(b.shape[1]):
            joint = prior * b[:, t]
            norm[:, t] = joint.sum(axis=1)
            alpha[:, t] = joint / norm[:, t, None]
            prior = alpha[:, t] @ self.transition
        return alpha, norm

    def _em_step(self, chunks: np.ndarray, observed: np.ndarray) -> float:
        """One Baum-Welch iteration on (pieces, length); returns the log-likelihood before it.

        Padding (``observed`` False, only at the end of the last piece) is a missing
        observation: density 1 in every state, so it adds nothing to the likelihood, and it
        gets no weight in the updated parameters.
        """
        b, log_top = self._emissions(chunks)
        b[~observed], log_top[~observed] = 1.0, 0.0
        alpha, norm = self._forward(b)
        beta = np.ones_like(b)
        for t in range(chunks.shape[1] - 2, -1, -1):
            beta[:, t] = (b[:, t + 1] * beta[:, t + 1]) @ self.transition.T / norm[:, t + 1, None]
        gamma = alpha * beta
        gamma *= observed[..., None] / gamma.sum(axis=2, keepdims=True)
        ahead = b[:, 1:] * beta[:, 1:] * (observed[:, 1:] / norm[:, 1:])[..., None]
        xi = self.transition * np.einsum("nti,ntj->ij", alpha[:, :-1], ahead)

        # A tiny pseudo-count keeps a state that loses all its weight well defined.
        weight = gamma.sum(axis=(0, 1)) + _PSEUDO_COUNT
        xi += _PSEUDO_COUNT
        self.initial = gamma[:, 0].mean(axis=0)
        self.transition = xi / xi.sum(axis=1, keepdims=True)
        self.means = np.einsum("nt,nti->i", chunks, gamma) / weight
        spread = np.einsum("nti,nti->i", (chunks[..., None] - self.means) ** 2, gamma)
        variances = spread / weight
        variances[_TREND] = spread[_TREND].sum() / weight[_TREND].sum()
        self.variances = np.maximum(variances, self.config.min_var)
        return float(np.log(norm).sum() + log_top.sum())

    def _order_states(self) -> None:
        """Trend states by mean (up first), the other two by variance (ranging first)."""
        up, down = np.argsort(-self.means[_TREND])
        quiet, loud = np.argsort(self.variances[[RANGING, VOLATILE]]) + RANGING
        order = np.array([up, down, quiet, loud])
        self.initial = self.initial[order]
        self.transition = self.transition[np.ix_(order, order)]
        self.means, self.variances = self.means[order], self.variances[order]

    def _proba(self, windows: np.ndarray) -> np.ndarray:
        b, _ = self._emissions(windows / self.scale)
        alpha, _ = self._forward(b)
        return alpha[:, -1]

    def _params(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "initial": self.initial.tolist(),
            "transition": self.transition.tolist(),
            "means": self.means.tolist(),
            "variances": self.variances.tolist(),
        }

    def _load_params(self, params: dict[str, Any]) -> None:
        k = len(REGIME_LABELS)
        self.scale = float(params["scale"])
        self.initial = np.asarray(params["initial"], dtype=np.float64).reshape(k)
        self.transition = np.asarray(params["transition"], dtype=np.float64).reshape(k, k)
        self.means = np.asarray(params["means"], dtype=np.float64).reshape(k)
        self.variances = np.asarray(params["variances"], dtype=np.float64).reshape(k)


CLASSIFIERS.register(RuleClassifier.name, RuleClassifier)
CLASSIFIERS.register(HMMClassifier.name, HMMClassifier)


@dataclass(frozen=True)
class ClassifierReport:
    """Accuracy and confusion counts (rows: true regime, columns: predicted) over ``n`` bars."""

    accuracy: float
    confusion: np.ndarray
    n: int

    def recall(self) -> np.ndarray:
        """Per-regime recall, in REGIME_LABELS order."""
        return np.diag(self.confusion) / np.maximum(self.confusion.sum(axis=1), 1)


def evaluate_classifier(
    classifier: RegimeClassifier,
    seeds: Any,
    *,
    n_bars: int = 2000,
    window: int = 64,
    pipeline: FeaturePipeline | None = None,
    **synthetic: Any,
) -> ClassifierReport:
    """Score ``classifier`` against the true regimes of synthetic ``regimes`` series.

    One series per seed (use seeds the classifier was not fitted on); ``synthetic`` options go
    to ``generate_synthetic``. Bars are classified as ``classify_bars`` does, with ``pipeline``.
    """
    k = len(REGIME_LABELS)
    confusion = np.zeros((k, k), dtype=np.int64)
    for seed in seeds:
        sample = generate_synthetic(n_bars, seed=int(seed), kind="regimes", **synthetic)
        predicted = classifier.classify_bars(sample.bars, window, pipeline)
        known = predicted.notna().to_numpy()
        truth = sample.regimes.map(SYNTHETIC_TO_LABEL).to_numpy()[known]
        np.add.at(confusion, (_label_codes(truth), _label_codes(predicted[known])), 1)
    total = int(confusion.sum())
    if total == 0:
        raise ValueError(f"evaluate_classifier: no bar had a full {window}-bar window")
    return ClassifierReport(float(np.trace(confusion) / total), confusion, total)


def _label_codes(labels: Any) -> np.ndarray:
    return pd.Categorical(labels, categories=REGIME_LABELS).codes


def _bar_returns(bars: pd.DataFrame, pipeline: FeaturePipeline | None) -> tuple[np.ndarray, int]:
    """Per-bar returns aligned with ``bars`` and the index of the first valid one."""
    if pipeline is None:
        return np.diff(np.log(bars["close"].to_numpy(np.float64)), prepend=np.nan), 1
    if "log_return" not in pipeline.features:
        raise ValueError(
            f"classify_bars: the pipeline has no 'log_return' feature ({list(pipeline.features)})"
        )
    column = pipeline.features.index("log_return")
    return pipeline.transform(bars)[:, column].astype(np.float64), pipeline.warmup
