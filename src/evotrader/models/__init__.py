"""Networks: the CoreTransformer trunk shared by every training stage."""

from evotrader.models.core_transformer import CoreTransformer, TransformerSpec, math_attention

__all__ = ["CoreTransformer", "TransformerSpec", "math_attention"]
