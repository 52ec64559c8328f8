"""Supervised training of the TransformerWorldModel, and its evaluation on a later split.

A sample is the observation window ending at bar t (exactly what the backtest engine feeds a
policy with ``agent_state=False``) and its targets, the log close-to-close returns of bars
t+1..t+horizon. Samples whose targets run past the bars they are built from are dropped, so
training on the train split never sees a validation return. The prediction heads learn with
the pinball loss (quantiles) and a Gaussian NLL (volatility), the regime head with cross-
entropy when labels are given; the policy and value heads are left to the agent's training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from numbers import Real

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import spearmanr
from torch import Tensor

from evotrader.core.checks import require_int
from evotrader.data.features import FeaturePipeline
from evotrader.data.sources.synthetic import REGIMES
from evotrader.env.execution import ExecutionModel
from evotrader.env.market_data import MarketData
from evotrader.models.world_model import TransformerWorldModel, WorldModelOutput

log = logging.getLogger(__name__)

_UNTRAINED_HEADS = ("policy.", "value.")


@dataclass(frozen=True)
class WorldModelTrainingConfig:
    """Optimiser and loss settings of the supervised stage (AdamW, fixed number of epochs)."""

    lr: float = 3e-3
    epochs: int = 10
    batch_size: int = 64
    weight_decay: float = 1e-4
    volatility_weight: float = 1.0
    regime_weight: float = 1.0
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        require_int("", self, 1, "epochs", "batch_size")
        for name in ("lr", "weight_decay", "volatility_weight", "regime_weight", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not float(value) >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.lr == 0 or self.grad_clip == 0:
            raise ValueError("lr and grad_clip must be > 0")


@dataclass(frozen=True)
class HorizonSamples:
    """Windows ending at the ``decisions`` bars and the returns of the bars that follow.

    obs (S, window, channels) float32; targets (S, horizon) float32 with targets[i, k] the log
    return from bar t to bar t+k+1; regimes (S,) int64 label of bar t; context (S, context_dim).
    """

    obs: np.ndarray
    targets: np.ndarray
    decisions: pd.DatetimeIndex
    regimes: np.ndarray | None = None
    context: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.targets)


def horizon_samples(
    bars: pd.DataFrame,
    pipeline: FeaturePipeline,
    window: int,
    horizon: int,
    *,
    start: str | pd.Timestamp | None = None,
    regimes: pd.Series | None = None,
    context: np.ndarray | None = None,
) -> HorizonSamples:
    """Every sample of ``bars`` whose window is complete and whose targets lie inside ``bars``.

    ``start`` keeps only windows ending at or after it (earlier bars serve as history);
    ``regimes`` are labels by timestamp (ints or names from ``REGIMES``); ``context`` has one
    row per bar of ``bars``.
    """
    data = MarketData.build(bars, pipeline, window, ExecutionModel(), agent_state=False)
    first = data.first_decision
    if start is not None:
        first = max(first, int(bars.index.searchsorted(pd.Timestamp(start))))
    decisions = np.arange(first, len(bars) - horizon)
    if len(decisions) == 0:
        raise ValueError(
            f"no world-model samples from {start or 'the first bar'}: {len(bars)} bars leave "
            f"none with a full window (first at bar {data.first_decision}) and {horizon} later bars"
        )
    returns = np.diff(np.log(bars["close"].to_numpy(np.float64)))
    return HorizonSamples(
        obs=data.windows()[decisions - window + 1],
        targets=sliding_window_view(returns, horizon)[decisions].astype(np.float32),
        decisions=bars.index[decisions],
        regimes=None if regimes is None else _regime_ids(regimes, bars.index)[decisions],
        context=None if context is None else _context_rows(context, len(bars))[decisions],
    )


def _regime_ids(regimes: pd.Series, index: pd.DatetimeIndex) -> np.ndarray:
    labels = regimes.reindex(index)
    missing = labels.isna()
    if missing.any():
        raise ValueError(
            f"regime labels missing for {int(missing.sum())} bars, first at {index[missing][0]}"
        )
    if labels.dtype == object:
        unknown = sorted(set(labels) - set(REGIMES))
        if unknown:
            raise ValueError(f"unknown regime labels {unknown}; known: {list(REGIMES)}")
        return labels.map(REGIMES.index).to_numpy(np.int64)
    return labels.to_numpy(np.int64)


def _context_rows(context: np.ndarray, n_bars: int) -> np.ndarray:
    context = np.asarray(context, dtype=np.float32)
    if context.ndim != 2 or len(context) < n_bars:
        raise ValueError(
            f"context must have one row per bar, shape ({n_bars}, context_dim), got {context.shape}"
        )
    return context[:n_bars]


def pinball_loss(quantiles: Tensor, targets: Tensor, levels: Tensor) -> Tensor:
    """Mean quantile (pinball) loss of quantiles (..., N, Q) at ``levels`` for targets (..., N)."""
    error = targets.unsqueeze(-1) - quantiles
    return torch.maximum(levels * error, (levels - 1.0) * error).mean()


def world_model_loss(
    model: TransformerWorldModel,
    output: WorldModelOutput,
    targets: Tensor,
    regimes: Tensor | None,
    config: WorldModelTrainingConfig,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Pinball + weighted volatility NLL (+ weighted regime cross-entropy), in return-scale units.

    The volatility is the spread around the predicted median, which is detached so that the
    NLL trains the volatility head without pulling the quantiles.
    """
    scale = model.return_scale
    scaled = targets / scale
    pinball = pinball_loss(output.quantiles / scale, scaled, model.levels)
    median = output.quantiles[..., model.config.median_index].detach() / scale
    nll = F.gaussian_nll_loss(median, scaled, (output.volatility / scale) ** 2)
    total = pinball + config.volatility_weight * nll
    parts = {"pinball": pinball, "volatility_nll": nll}
    if regimes is not None:
        cross_entropy = F.cross_entropy(output.regime_logits, regimes)
        total = total + config.regime_weight * cross_entropy
        parts["regime_ce"] = cross_entropy
    return total, {name: part.detach() for name, part in {"loss": total, **parts}.items()}


def train_world_model(
    model: TransformerWorldModel,
    bars: pd.DataFrame,
    pipeline: FeaturePipeline,
    window: int,
    *,
    regimes: pd.Series | None = None,
    context: np.ndarray | None = None,
    config: WorldModelTrainingConfig | None = None,
    seed: int = 0,
    verbose: bool = False,
) -> list[dict[str, float]]:
    """Fit the prediction (and, given labels, regime) heads on ``bars``, the training split.

    Sets ``model.return_scale`` to the std of the training targets, trains for
    ``config.epochs`` epochs on shuffled minibatches and leaves the model in eval mode.
    Deterministic for a seed; the global torch RNG is restored afterwards. Returns the mean
    losses of each epoch.
    """
    config = config or WorldModelTrainingConfig()
    samples = horizon_samples(
        bars, pipeline, window, model.config.horizon, regimes=regimes, context=context
    )
    _check_fits(model, samples)
    device = model.return_scale.device
    scale = float(samples.targets.std())
    if not scale > 0:
        raise ValueError("training targets are constant: the bars' closes never change")
    model.return_scale.fill_(scale)
    obs, targets, labels, ctx = _tensors(samples, device)
    parameters = [p for n, p in model.named_parameters() if not n.startswith(_UNTRAINED_HEADS)]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    history = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model.train()
        for epoch in range(config.epochs):
            totals: dict[str, Tensor] = {}
            batches = torch.randperm(len(samples)).to(device).split(config.batch_size)
            for batch in batches:
                output = model(obs[batch], None if ctx is None else ctx[batch])
                loss, parts = world_model_loss(
                    model, output, targets[batch], None if labels is None else labels[batch], config
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
                optimizer.step()
                for key, value in parts.items():
                    totals[key] = totals.get(key, 0.0) + value / len(batches)
            history.append({key: value.item() for key, value in totals.items()})
            if verbose:
                line = "  ".join(f"{key} {value:.4f}" for key, value in history[-1].items())
                log.info(f"world model epoch {epoch + 1}/{config.epochs}  {line}")
    model.eval()
    return history


def evaluate_world_model(
    model: TransformerWorldModel,
    bars: pd.DataFrame,
    split: pd.DataFrame,
    pipeline: FeaturePipeline,
    window: int,
    *,
    train: pd.DataFrame,
    regimes: pd.Series | None = None,
    context: np.ndarray | None = None,
    batch_size: int = 4096,
) -> dict[str, float]:
    """Forecast quality on ``split`` (validation), earlier ``bars`` serving as history only.

    Pinball loss of the model and of two unconditional baselines fitted on the ``train``
    split: ``historical`` (the per-step empirical quantiles of the training targets) and
    ``zero`` (the same quantiles shifted to a zero median), over the whole horizon and, with
    the suffix ``_next``, for the next bar alone. The information coefficient is the
    Spearman correlation of the predicted next-bar median with the realised next-bar return
    (one sample per bar), with t = ic * sqrt((n - 2) / (1 - ic^2)); ``volatility_ic`` is the
    same for the predicted next-bar volatility against the absolute error of that median.
    """
    horizon, median = model.config.horizon, model.config.median_index
    samples = horizon_samples(
        bars.loc[: split.index[-1]],
        pipeline,
        window,
        horizon,
        start=split.index[0],
        regimes=regimes,
        context=context,
    )
    _check_fits(model, samples)
    output = predict(model, samples, batch_size)
    levels = model.levels.cpu()
    train_targets = horizon_samples(train, pipeline, window, horizon).targets
    historical = torch.as_tensor(np.quantile(train_targets, levels.numpy(), axis=0).T)
    zero = historical - historical[:, median : median + 1]
    targets = torch.as_tensor(samples.targets)
    n = len(samples)
    next_median = output.quantiles[:, 0, median]
    ic, ic_t = information_coefficient(next_median, targets[:, 0])
    volatility_ic, volatility_t = information_coefficient(
        output.volatility[:, 0], (targets[:, 0] - next_median).abs()
    )
    metrics = {"n": float(n)}
    for name, quantiles in (
        ("model", output.quantiles),
        ("zero", zero.expand(n, -1, -1)),
        ("historical", historical.expand(n, -1, -1)),
    ):
        metrics[f"pinball_{name}"] = pinball_loss(quantiles, targets, levels).item()
        next_bar = pinball_loss(quantiles[:, :1], targets[:, :1], levels)
        metrics[f"pinball_{name}_next"] = next_bar.item()
    metrics |= {
        "ic": ic,
        "ic_t": ic_t,
        "volatility_ic": volatility_ic,
        "volatility_ic_t": volatility_t,
    }
    if samples.regimes is not None:
        predicted = output.regime_logits.argmax(dim=-1).numpy()
        metrics["regime_accuracy"] = float((predicted == samples.regimes).mean())
    return metrics


@torch.no_grad()
def predict(
    model: TransformerWorldModel, samples: HorizonSamples, batch_size: int = 4096
) -> WorldModelOutput:
    """Every head for every sample, in eval mode, batched, gathered on the CPU."""
    model.eval()
    obs, _, _, ctx = _tensors(samples, model.return_scale.device)
    outputs = [
        model(obs[rows], None if ctx is None else ctx[rows])
        for rows in torch.arange(len(samples)).split(batch_size)
    ]
    return WorldModelOutput(
        **{
            name: torch.cat([getattr(out, name) for out in outputs]).cpu()
            for name in WorldModelOutput.__dataclass_fields__
        }
    )


def information_coefficient(predicted: Tensor, realised: Tensor) -> tuple[float, float]:
    """Spearman rank correlation and its t-statistic; NaN when either side is constant."""
    n = len(predicted)
    if n < 3 or predicted.unique().numel() < 2 or realised.unique().numel() < 2:
        return float("nan"), float("nan")
    ic = float(spearmanr(predicted.numpy(), realised.numpy()).statistic)
    if abs(ic) >= 1.0:
        return ic, float(np.sign(ic) * np.inf)
    return ic, ic * float(np.sqrt((n - 2) / (1.0 - ic**2)))


def _check_fits(model: TransformerWorldModel, samples: HorizonSamples) -> None:
    """Labels and context that the model's heads can take, named when they cannot."""
    if samples.regimes is not None:
        bad = (samples.regimes < 0) | (samples.regimes >= model.config.num_regimes)
        if bad.any():
            raise ValueError(
                f"regime labels must be in 0..{model.config.num_regimes - 1}, "
                f"got {int(samples.regimes[bad][0])} at {samples.decisions[bad][0]}"
            )
    expected = model.config.context_dim
    if samples.context is None and expected:
        raise ValueError(
            f"this world model needs a context array (one row per bar, {expected} wide)"
        )
    if samples.context is not None and samples.context.shape[1] != expected:
        raise ValueError(
            f"context has {samples.context.shape[1]} columns, the model expects {expected}"
        )


def _tensors(
    samples: HorizonSamples, device: torch.device
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Samples as tensors on ``device`` (obs, targets, regime ids, context)."""
    obs = torch.as_tensor(np.ascontiguousarray(samples.obs), device=device)
    targets = torch.as_tensor(samples.targets, device=device)
    labels = None if samples.regimes is None else torch.as_tensor(samples.regimes, device=device)
    ctx = None if samples.context is None else torch.as_tensor(samples.context, device=device)
    return obs, targets, labels, ctx
