"""TransformerWorldModel: the autonomous agent's forecaster, on the shared CoreTransformer trunk.

From an observation window (and optionally a context vector: memory summaries, regime and
chart-pattern probabilities) it predicts the next ``horizon`` bars as per-step return quantiles
and volatilities, reads the regime, and proposes an action (policy and value heads). The
trunk's embedding is exposed on its own because the agent uses it as its memory key.

``what_if`` turns the predicted quantiles into sampled return paths and replays a candidate
action sequence over them, so the agent can compare the equity distributions of its options
before it acts. Returns are log close-to-close returns in real units: the heads work in units
of ``return_scale`` (the training split's return std, set by ``train_world_model``), which
lives in the state_dict and so travels with every checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from numbers import Integral, Real
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evotrader.env.execution import ExecutionModel
from evotrader.models.core_transformer import CoreTransformer, TransformerSpec, check_known_keys

DEFAULT_COST_BPS = ExecutionModel().linear_rate * 1e4  # commission + half spread + slippage
_MIN_PROB = 1e-6  # uniforms are kept inside (0, 1) so the exponential tails stay finite


@dataclass(frozen=True)
class WorldModelConfig:
    """Shape of the world model's heads; JSON-able via ``to_dict`` / ``from_dict``.

    ``quantiles`` are the predicted levels (strictly increasing in (0, 1), including the median,
    which is the point forecast); ``context_dim`` 0 means the model takes no context input;
    ``fusion_dim`` is the hidden width of the MLP that fuses context into the embedding.
    """

    horizon: int = 5
    quantiles: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
    num_regimes: int = 4
    context_dim: int = 0
    fusion_dim: int = 64

    def __post_init__(self) -> None:
        minimums = {"horizon": 1, "num_regimes": 1, "context_dim": 0, "fusion_dim": 1}
        for name, minimum in minimums.items():
            _check_int(name, getattr(self, name), minimum)
            object.__setattr__(self, name, int(getattr(self, name)))
        levels = tuple(self.quantiles) if isinstance(self.quantiles, Sequence) else ()
        if len(levels) < 2 or any(isinstance(q, bool) or not isinstance(q, Real) for q in levels):
            raise ValueError(f"quantiles must be at least two numbers, got {self.quantiles!r}")
        levels = tuple(float(q) for q in levels)
        if not all(0.0 < q < 1.0 for q in levels) or any(a >= b for a, b in pairwise(levels)):
            raise ValueError(f"quantiles must be strictly increasing in (0, 1), got {levels}")
        if 0.5 not in levels:
            raise ValueError(f"quantiles must include the median 0.5, got {levels}")
        object.__setattr__(self, "quantiles", levels)

    @property
    def median_index(self) -> int:
        return self.quantiles.index(0.5)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"quantiles": list(self.quantiles)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorldModelConfig:
        """Strict inverse of ``to_dict``: unknown keys are errors, not silently dropped."""
        check_known_keys(cls, data)
        return cls(**data)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True, eq=False)
class WorldModelOutput:
    """Every head for a batch of B windows (returns in real log-return units).

    quantiles (B, horizon, Q) non-decreasing along Q; volatility (B, horizon) > 0; regime_logits
    (B, num_regimes); policy_logits (B, num_actions); value (B,); embedding (B, output_dim) is the
    trunk's context-free embedding (the memory key).
    """

    quantiles: Tensor
    volatility: Tensor
    regime_logits: Tensor
    policy_logits: Tensor
    value: Tensor
    embedding: Tensor


@dataclass(frozen=True, eq=False)
class EquityForecast:
    """Predicted distribution of final equity multiples (1.0 = unchanged) per batch row.

    samples (B, n_paths); mean (B,); quantiles (B, len(levels)) at ``levels``.
    """

    samples: Tensor
    mean: Tensor
    levels: tuple[float, ...]
    quantiles: Tensor


class TransformerWorldModel(nn.Module):
    """Observations (B, window, channels) [+ context (B, context_dim)] -> ``WorldModelOutput``."""

    # Buffers, registered in __init__; declared here so type checkers see tensors.
    levels: Tensor
    return_scale: Tensor

    def __init__(
        self, spec: TransformerSpec, num_actions: int, config: WorldModelConfig | None = None
    ) -> None:
        super().__init__()
        _check_int("num_actions", num_actions, 1)
        self.spec, self.num_actions = spec, int(num_actions)
        self.config = config = config or WorldModelConfig()
        dim, horizon, n_levels = spec.output_dim, config.horizon, len(config.quantiles)
        self.encoder = CoreTransformer(spec)
        self.fuse: nn.Module | None = None
        if config.context_dim:
            self.fuse = nn.Sequential(
                nn.Linear(dim + config.context_dim, config.fusion_dim),
                nn.GELU(),
                nn.Linear(config.fusion_dim, dim),
            )
        self.quantile_head = nn.Linear(dim, horizon * n_levels)
        self.volatility_head = nn.Linear(dim, horizon)
        self.regime_head = nn.Linear(dim, config.num_regimes)
        self.policy = nn.Linear(dim, self.num_actions)
        self.value = nn.Linear(dim, 1)
        self.register_buffer("levels", torch.tensor(config.quantiles), persistent=False)
        self.register_buffer("return_scale", torch.tensor(1.0))
        self._init_heads()

    def _init_heads(self) -> None:
        """Start at a unit-Gaussian forecast (in ``return_scale`` units) and a uniform policy."""
        for head in (self.quantile_head, self.volatility_head, self.policy, self.value):
            nn.init.normal_(head.weight, std=0.01)
        normal = torch.special.ndtri(self.levels)
        steps = torch.cat([normal[:1], _inverse_softplus(normal.diff())])
        with torch.no_grad():
            self.quantile_head.bias.copy_(steps.repeat(self.config.horizon))
            self.volatility_head.bias.fill_(_inverse_softplus(torch.tensor(1.0)).item())
            self.policy.bias.zero_()
            self.value.bias.zero_()

    def architecture(self) -> dict[str, Any]:
        """JSON-able description that rebuilds this network (goes into checkpoints)."""
        return {
            "encoder": self.spec.to_dict(),
            "num_actions": self.num_actions,
            "world_model": self.config.to_dict(),
        }

    @classmethod
    def from_architecture(cls, architecture: Mapping[str, Any]) -> TransformerWorldModel:
        spec = TransformerSpec.from_dict(architecture["encoder"])
        config = WorldModelConfig.from_dict(architecture["world_model"])
        return cls(spec, int(architecture["num_actions"]), config)

    def embed(self, obs: Tensor) -> Tensor:
        """The trunk's embedding (B, output_dim), without context: the agent's memory key."""
        return self.encoder(obs)

    def forward(
        self, obs: Tensor, context: Tensor | None = None, embedding: Tensor | None = None
    ) -> WorldModelOutput:
        """All heads for ``obs``; pass ``embedding`` (from ``embed(obs)``) to skip the trunk."""
        if embedding is None:
            embedding = self.encoder(obs)
        hidden = self._fused(embedding, context)
        batch, horizon = obs.shape[0], self.config.horizon
        raw = self.quantile_head(hidden).view(batch, horizon, -1)
        # Cumulative positive increments keep the quantiles ordered whatever the weights.
        increments = torch.cat([raw[..., :1], F.softplus(raw[..., 1:])], dim=-1)
        scale = self.return_scale
        volatility = (F.softplus(self.volatility_head(hidden)) + _MIN_PROB) * scale
        return WorldModelOutput(
            quantiles=increments.cumsum(dim=-1) * scale,
            volatility=volatility,
            regime_logits=self.regime_head(hidden),
            policy_logits=self.policy(hidden),
            value=self.value(hidden).squeeze(-1),
            embedding=embedding,
        )

    def _fused(self, embedding: Tensor, context: Tensor | None) -> Tensor:
        """Embedding plus an MLP of (embedding, context); the embedding itself without context."""
        expected = self.config.context_dim
        if self.fuse is None:
            if context is not None:
                raise ValueError("this world model has context_dim=0 but a context was given")
            return embedding
        if context is None:
            raise ValueError(f"this world model needs a context of shape (B, {expected})")
        if context.shape != (embedding.shape[0], expected):
            raise ValueError(
                f"context must have shape ({embedding.shape[0]}, {expected}), "
                f"got {tuple(context.shape)}"
            )
        return embedding + self.fuse(torch.cat([embedding, context], dim=-1))

    @torch.no_grad()
    def what_if(
        self,
        obs: Tensor,
        actions: Tensor | Sequence[int],
        positions: Sequence[float],
        *,
        n_paths: int = 256,
        context: Tensor | None = None,
        generator: torch.Generator | None = None,
        cost_bps: float = DEFAULT_COST_BPS,
        held: float | Tensor = 0.0,
    ) -> EquityForecast:
        """Predicted equity after following ``actions`` for the next T <= horizon bars.

        ``actions`` (T,) shared by the batch or (B, T) per row index into ``positions`` (target
        exposures, e.g. (-1, 0, 1)); ``held`` is the exposure before the first step. Each step's
        log return is drawn independently from that step's predicted quantiles (inverse CDF,
        linear between quantiles, exponential tails); a change of exposure costs ``cost_bps`` of
        the traded notional. Equity that reaches zero stays there. Deterministic for a given
        ``generator`` (on the model's device, or CPU).
        """
        if n_paths < 1:
            raise ValueError(f"n_paths must be >= 1, got {n_paths}")
        if cost_bps < 0:
            raise ValueError(f"cost_bps must be >= 0, got {cost_bps}")
        output = self(obs, context)
        batch, device = obs.shape[0], output.quantiles.device
        paths = self._action_paths(actions, batch, len(positions), device)
        steps = paths.shape[1]
        exposure = torch.as_tensor(positions, dtype=torch.float32, device=device)[paths]
        before = torch.as_tensor(held, dtype=torch.float32, device=device).reshape(-1, 1)
        if before.shape[0] not in (1, batch):
            raise ValueError(f"held must be a number or have shape ({batch},), got {held!r:.80}")
        traded = (exposure - torch.cat([before.expand(batch, 1), exposure[:, :-1]], dim=1)).abs()
        gen_device = generator.device if generator is not None else device
        uniform = torch.rand((batch, n_paths, steps), generator=generator, device=gen_device)
        returns = sample_quantiles(
            output.quantiles[:, None, :steps], self.levels, uniform.to(device)
        )
        growth = (1.0 - cost_bps / 1e4 * traded)[:, None] * (
            1.0 + exposure[:, None] * torch.expm1(returns)
        )
        samples = growth.clamp_min(0.0).prod(dim=-1)
        return EquityForecast(
            samples=samples,
            mean=samples.mean(dim=1),
            levels=self.config.quantiles,
            quantiles=torch.quantile(samples, self.levels, dim=1).T,
        )

    def _action_paths(
        self, actions: Tensor | Sequence[int], batch: int, n_positions: int, device: torch.device
    ) -> Tensor:
        """Actions as a (B, T) long tensor, with every problem named."""
        paths = torch.as_tensor(actions, device=device)
        if paths.is_floating_point() or paths.dtype == torch.bool:
            raise ValueError(f"actions must be integer indices into positions, got {paths.dtype}")
        if paths.dim() == 1:
            paths = paths.expand(batch, -1)
        if paths.dim() != 2 or paths.shape[0] != batch:
            raise ValueError(
                f"actions must have shape (T,) or ({batch}, T), got {tuple(paths.shape)}"
            )
        if not 1 <= paths.shape[1] <= self.config.horizon:
            raise ValueError(
                f"action sequence length must be in 1..{self.config.horizon} (the horizon), "
                f"got {paths.shape[1]}"
            )
        if paths.min() < 0 or paths.max() >= n_positions:
            raise ValueError(
                f"actions must index the {n_positions} positions (0..{n_positions - 1}), "
                f"got values in [{int(paths.min())}, {int(paths.max())}]"
            )
        return paths.long()


def sample_quantiles(quantiles: Tensor, levels: Tensor, uniform: Tensor) -> Tensor:
    """Inverse-CDF samples from distributions given by their quantiles.

    ``quantiles`` (..., Q) at ``levels`` (Q,) broadcast against ``uniform`` (...). Between the
    outer levels the CDF is linear; beyond them it has exponential tails fitted to the two
    outermost quantiles on each side, so extreme draws are not clipped at the last quantile.
    """
    u = uniform.clamp(_MIN_PROB, 1.0 - _MIN_PROB)
    quantiles = quantiles.expand(*u.shape, -1)
    upper = torch.searchsorted(levels, u.contiguous(), right=True).clamp(1, len(levels) - 1)
    q_lo = quantiles.gather(-1, (upper - 1).unsqueeze(-1)).squeeze(-1)
    q_hi = quantiles.gather(-1, upper.unsqueeze(-1)).squeeze(-1)
    t_lo, t_hi = levels[upper - 1], levels[upper]
    inside = q_lo + (u - t_lo) / (t_hi - t_lo) * (q_hi - q_lo)
    first, last = levels[0], levels[-1]
    low_scale = (quantiles[..., 1] - quantiles[..., 0]) / torch.log(levels[1] / first)
    high_scale = (quantiles[..., -1] - quantiles[..., -2]) / torch.log(
        (1.0 - levels[-2]) / (1.0 - last)
    )
    below = quantiles[..., 0] + low_scale * torch.log(u / first)
    above = quantiles[..., -1] + high_scale * torch.log((1.0 - last) / (1.0 - u))
    return torch.where(u < first, below, torch.where(u > last, above, inside))


def _inverse_softplus(x: Tensor) -> Tensor:
    return x + torch.log(-torch.expm1(-x))
