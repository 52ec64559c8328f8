"""The CoreTransformer: the one trunk every training stage (PPO, MoE, MAML, NAS) shares.

Plain PyTorch written top to bottom (nanoGPT style) rather than ``nn.TransformerEncoderLayer``,
whose fused inference fast path bypasses the autograd graph that ``torch.func`` transforms need.
The architecture is described by a frozen ``TransformerSpec`` (a ``TransformerShape``, which
the run config holds, plus the input size) whose dict form round-trips exactly through JSON,
so checkpoints and the NAS stage can rebuild and mutate networks while every invalid
combination is rejected before it reaches torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from numbers import Real
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from evotrader.core.checks import require_int

POSITIONAL_KINDS = ("sinusoidal", "learned", "none")
POOLING_KINDS = ("last", "mean", "attention")

_INT_FIELDS = (
    "input_dim",
    "model_dim",
    "num_heads",
    "num_layers",
    "ff_dim",
    "output_dim",
    "max_len",
)


@dataclass(frozen=True)
class TransformerShape:
    """A ``TransformerSpec`` without its input size: what a run's config chooses (its ``model``
    section), while the size comes from the observations (``with_input``). Validated on
    construction, so a bad config value fails when the run starts."""

    model_dim: int = 64
    num_heads: int = 4
    num_layers: int = 2
    ff_dim: int = 128
    output_dim: int = 64
    dropout: float = 0.0
    max_len: int = 512
    positional: str = "sinusoidal"
    pooling: str = "last"

    def __post_init__(self) -> None:
        # Normalise numeric types (numpy / OmegaConf values) to plain int / float so that
        # ``to_dict`` is JSON-able and equality survives the JSON round trip.
        require_int("", self, 1, *(f.name for f in fields(self) if f.name in _INT_FIELDS))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, Real):
            raise ValueError(f"dropout must be a float, got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "dropout", float(self.dropout))
        if self.model_dim % self.num_heads != 0:
            raise ValueError(
                f"model_dim ({self.model_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.positional not in POSITIONAL_KINDS:
            raise ValueError(
                f"positional must be one of {POSITIONAL_KINDS}, got {self.positional!r}"
            )
        if self.pooling not in POOLING_KINDS:
            raise ValueError(f"pooling must be one of {POOLING_KINDS}, got {self.pooling!r}")

    def to_dict(self) -> dict[str, int | float | str]:
        """Plain dict of every field; ``from_dict(json.loads(json.dumps(d)))`` rebuilds it."""
        return asdict(self)

    def with_input(self, input_dim: int) -> TransformerSpec:
        """The full spec for observations with ``input_dim`` channels."""
        shape = {f.name: getattr(self, f.name) for f in fields(TransformerShape)}
        return TransformerSpec(input_dim=input_dim, **shape)


@dataclass(frozen=True)
class TransformerSpec(TransformerShape):
    """Architecture of a ``CoreTransformer``: its shape and input size (keyword-only, since it
    follows the shape's defaulted fields); validated on construction, JSON-able via dicts."""

    input_dim: int = field(kw_only=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransformerSpec:
        """Strict inverse of ``to_dict``: unknown keys are errors, not silently dropped."""
        check_known_keys(cls, data)
        if "input_dim" not in data:
            raise ValueError("input_dim is required")
        return cls(**data)


def check_known_keys(cls: type[Any], data: Mapping[str, Any]) -> None:
    """A ValueError naming every key of ``data`` that is no field of the dataclass ``cls``:
    what a strict ``from_dict`` checks first, so that no key is silently dropped."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s): {unknown}; known: {sorted(known)}")


def _sinusoidal_table(length: int, dim: int) -> Tensor:
    """Fixed sin/cos positions (Vaswani et al.); handles odd ``dim`` by dropping a cos column."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class SelfAttention(nn.Module):
    """Multi-head full (non-causal) self-attention: the window only ever holds past bars."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        self.num_heads = spec.num_heads
        self.dropout = spec.dropout
        self.qkv = nn.Linear(spec.model_dim, 3 * spec.model_dim)
        self.proj = nn.Linear(spec.model_dim, spec.model_dim)
        self.resid_dropout = nn.Dropout(spec.dropout)

    def forward(self, x: Tensor, last_only: bool = False) -> Tensor:
        """(B, W, D) -> (B, W, D); with ``last_only`` (B, 1, D): only the last position
        queries, while every position still serves as a key and a value."""
        batch, dim = x.shape[0], x.shape[2]
        if last_only:  # project the queries of the last position only
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, -1:], weight[:dim], bias[:dim])
            k, v = F.linear(x, weight[dim:], bias[dim:]).split(dim, dim=-1)
        else:
            q, k, v = self.qkv(x).split(dim, dim=-1)
        # (B, W, D) -> (B, heads, W, head_dim)
        q, k, v = (
            t.view(batch, -1, self.num_heads, t.shape[-1] // self.num_heads) for t in (q, k, v)
        )
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            dropout_p=self.dropout if self.training else 0.0,
        )
        y = y.transpose(1, 2).reshape(batch, -1, dim)
        return self.resid_dropout(self.proj(y))


class EncoderBlock(nn.Module):
    """Pre-LayerNorm block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(spec.model_dim)
        self.attn = SelfAttention(spec)
        self.ln_mlp = nn.LayerNorm(spec.model_dim)
        self.mlp = nn.Sequential(
            nn.Linear(spec.model_dim, spec.ff_dim),
            nn.GELU(),
            nn.Linear(spec.ff_dim, spec.model_dim),
            nn.Dropout(spec.dropout),
        )

    def forward(self, x: Tensor, last_only: bool = False) -> Tensor:
        """(B, W, D) -> (B, W, D); with ``last_only`` just the last position, (B, 1, D)."""
        residual = x[:, -1:] if last_only else x
        x = residual + self.attn(self.ln_attn(x), last_only)
        return x + self.mlp(self.ln_mlp(x))


class CoreTransformer(nn.Module):
    """Observations (batch, window, channels) -> embeddings (batch, output_dim)."""

    # Buffer, registered in __init__ (None unless positional == "sinusoidal").
    pos_table: Tensor | None

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        self.spec = spec
        self.input_proj = nn.Linear(spec.input_dim, spec.model_dim)
        self.pos_embedding: nn.Parameter | None = None
        if spec.positional == "learned":
            self.pos_embedding = nn.Parameter(torch.zeros(spec.max_len, spec.model_dim))
        # Non-persistent: deterministic from the spec, so it stays out of the state_dict but
        # still follows ``.to()`` / ``.double()``.
        table = _sinusoidal_table(spec.max_len, spec.model_dim)
        self.register_buffer(
            "pos_table", table if spec.positional == "sinusoidal" else None, persistent=False
        )
        self.embed_dropout = nn.Dropout(spec.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(spec) for _ in range(spec.num_layers))
        self.ln_final = nn.LayerNorm(spec.model_dim)
        self.pool_query: nn.Parameter | None = None
        if spec.pooling == "attention":
            # Zero query = uniform weights: attention pooling starts out as mean pooling.
            self.pool_query = nn.Parameter(torch.zeros(spec.model_dim))
        self.output_proj = nn.Linear(spec.model_dim, spec.output_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2 init: N(0, 0.02) weights, zero biases, residual projections scaled down."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        if self.pos_embedding is not None:
            nn.init.normal_(self.pos_embedding, std=0.02)
        # Each block adds two residual branches; scaling keeps the stream's variance flat in depth.
        residual_std = 0.02 / math.sqrt(2 * self.spec.num_layers)
        for block in self.blocks:
            assert isinstance(block, EncoderBlock)
            mlp_out = block.mlp[2]
            assert isinstance(mlp_out, nn.Linear)
            nn.init.normal_(block.attn.proj.weight, std=residual_std)
            nn.init.normal_(mlp_out.weight, std=residual_std)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CoreTransformer:
        """Build from ``TransformerSpec.to_dict()`` output (checkpoints, NAS genomes)."""
        return cls(TransformerSpec.from_dict(data))

    def forward(self, x: Tensor) -> Tensor:
        spec = self.spec
        if x.dim() != 3:
            raise ValueError(
                f"expected input (batch, window, channels), got shape {tuple(x.shape)}"
            )
        window, channels = x.shape[1], x.shape[2]
        if channels != spec.input_dim:
            raise ValueError(f"expected {spec.input_dim} channels (input_dim), got {channels}")
        if window > spec.max_len:
            raise ValueError(f"window {window} is longer than max_len {spec.max_len}")
        if window < 1:
            raise ValueError("window must hold at least one bar")

        h = self.input_proj(x)
        if self.pos_embedding is not None:
            h = h + self.pos_embedding[:window]
        elif self.pos_table is not None:
            h = h + self.pos_table[:window]
        h = self.embed_dropout(h)
        # "last" pooling reads only the last position, so the final block computes just that
        # one (every position still attends in the blocks before and serves as key and value):
        # the same function, about a window's worth cheaper in the block's attention and MLP.
        last_only = spec.pooling == "last"
        for index, block in enumerate(self.blocks):
            h = block(h, last_only=last_only and index == len(self.blocks) - 1)
        h = self.ln_final(h)

        if last_only:
            pooled = h[:, -1]
        elif spec.pooling == "mean":
            pooled = h.mean(dim=1)
        else:
            scores = h @ self.pool_query / math.sqrt(spec.model_dim)  # (B, W)
            weights = scores.softmax(dim=-1)
            pooled = (weights.unsqueeze(-1) * h).sum(dim=1)
        return self.output_proj(pooled)


@contextmanager
def math_attention() -> Iterator[None]:
    """Force the reference (MATH) scaled-dot-product-attention kernel inside the block.

    The fused SDPA kernels (flash attention, including the CPU flash kernel PyTorch picks by
    default, and memory-efficient attention) have backward passes that are not themselves
    differentiable, so second-order gradients through attention (MAML's outer step
    differentiating through an inner SGD step) fail with them. The MATH kernel is composed of
    ordinary differentiable ops; it is slower, so use it only where higher-order gradients are
    needed.
    """
    with sdpa_kernel(SDPBackend.MATH):
        yield
