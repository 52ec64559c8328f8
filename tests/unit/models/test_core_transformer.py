import itertools
import json
from typing import Any

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad

from evotrader.models import CoreTransformer, TransformerSpec, math_attention
from evotrader.models.core_transformer import TransformerShape

POSITIONALS = ("sinusoidal", "learned", "none")
POOLINGS = ("last", "mean", "attention")
COMBOS = list(itertools.product(POOLINGS, POSITIONALS))


def tiny_spec(**overrides: Any) -> TransformerSpec:
    base: dict[str, Any] = dict(
        input_dim=5, model_dim=16, num_heads=4, num_layers=2, ff_dim=32, output_dim=6, max_len=16
    )
    return TransformerSpec(**{**base, **overrides})


def make_model(seed: int = 0, **overrides: Any) -> CoreTransformer:
    torch.manual_seed(seed)
    return CoreTransformer(tiny_spec(**overrides)).eval()


@pytest.mark.parametrize(("pooling", "positional"), COMBOS)
def test_output_shape_for_every_pooling_and_positional(pooling: str, positional: str) -> None:
    model = make_model(pooling=pooling, positional=positional)
    for batch, window in [(1, 1), (3, 7), (2, 16)]:
        out = model(torch.randn(batch, window, 5))
        assert out.shape == (batch, 6)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "spec",
    [
        TransformerSpec(input_dim=3),
        TransformerSpec(
            input_dim=7,
            model_dim=24,
            num_heads=3,
            num_layers=3,
            ff_dim=40,
            output_dim=9,
            dropout=0.25,
            max_len=33,
            positional="learned",
            pooling="attention",
        ),
    ],
)
def test_spec_json_round_trip_is_exact(spec: TransformerSpec) -> None:
    data = json.loads(json.dumps(spec.to_dict()))
    assert TransformerSpec.from_dict(data) == spec
    assert data == spec.to_dict()


def test_a_shape_with_its_input_size_is_the_spec_checkpoints_store() -> None:
    shape = TransformerShape(model_dim=8, num_heads=2, ff_dim=16, pooling="mean")
    spec = shape.with_input(5)
    assert spec == TransformerSpec(input_dim=5, model_dim=8, num_heads=2, ff_dim=16, pooling="mean")
    assert spec.to_dict() == {"input_dim": 5, **shape.to_dict()}
    # An encoder dict as checkpoints wrote it before the shape existed (input_dim first).
    saved = {"input_dim": 5, **{k: v for k, v in spec.to_dict().items() if k != "input_dim"}}
    assert TransformerSpec.from_dict(saved) == spec
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TransformerShape(model_dim=9, num_heads=2)


def test_numpy_sizes_are_normalised_so_the_dict_stays_json_able() -> None:
    spec = TransformerSpec(input_dim=np.int64(5), model_dim=np.int32(8), dropout=np.float32(0.5))
    data = spec.to_dict()
    assert type(data["input_dim"]) is int and type(data["dropout"]) is float
    assert TransformerSpec.from_dict(json.loads(json.dumps(data))) == spec


@pytest.mark.parametrize(("pooling", "positional"), [("attention", "learned"), ("last", "none")])
def test_model_rebuilt_from_dict_and_state_dict_gives_identical_outputs(
    pooling: str, positional: str
) -> None:
    original = make_model(seed=1, pooling=pooling, positional=positional)
    with torch.no_grad():  # move away from init so the state_dict really carries information
        for p in original.parameters():
            p.add_(0.1 * torch.randn_like(p))
    rebuilt = CoreTransformer.from_dict(json.loads(json.dumps(original.spec.to_dict())))
    rebuilt.load_state_dict(original.state_dict())
    rebuilt.eval()
    x = torch.randn(4, 9, 5)
    assert torch.equal(original(x), rebuilt(x))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"input_dim": 0}, "input_dim"),
        ({"model_dim": -4}, "model_dim"),
        ({"num_heads": 0}, "num_heads"),
        ({"num_layers": 0}, "num_layers"),
        ({"ff_dim": 0}, "ff_dim"),
        ({"output_dim": 0}, "output_dim"),
        ({"max_len": 0}, "max_len"),
        ({"model_dim": 10, "num_heads": 4}, "model_dim"),
        ({"model_dim": 10, "num_heads": 4}, "num_heads"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": float("nan")}, "dropout"),
        ({"dropout": "0.1"}, "dropout"),
        ({"dropout": True}, "dropout"),
        ({"positional": "rope"}, "positional"),
        ({"pooling": "max"}, "pooling"),
        ({"model_dim": "16"}, "model_dim"),
        ({"ff_dim": 32.0}, "ff_dim"),
        ({"num_layers": True}, "num_layers"),
    ],
)
def test_invalid_spec_is_rejected_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        tiny_spec(**overrides)


def test_from_dict_rejects_unknown_missing_and_mistyped_keys() -> None:
    data = tiny_spec().to_dict()
    with pytest.raises(ValueError, match="num_expert"):
        TransformerSpec.from_dict({**data, "num_expert": 4})
    with pytest.raises(ValueError, match="input_dim"):
        TransformerSpec.from_dict({k: v for k, v in data.items() if k != "input_dim"})
    with pytest.raises(ValueError, match="num_heads"):
        TransformerSpec.from_dict({**data, "num_heads": "4"})
    with pytest.raises(ValueError, match="pooling"):
        CoreTransformer.from_dict({**data, "pooling": "cls"})


def test_bad_input_shapes_are_rejected_with_both_numbers() -> None:
    model = make_model()
    with pytest.raises(ValueError, match=r"5 channels.*got 4"):
        model(torch.randn(2, 8, 4))
    with pytest.raises(ValueError, match=r"window 17.*max_len 16"):
        model(torch.randn(2, 17, 5))
    with pytest.raises(ValueError, match="batch, window, channels"):
        model(torch.randn(8, 5))


@pytest.mark.parametrize(("pooling", "positional"), COMBOS)
def test_every_parameter_gets_a_nonzero_finite_gradient(pooling: str, positional: str) -> None:
    model = make_model(pooling=pooling, positional=positional).train()
    # A full-length window so every row of a learned position table is used.
    model(torch.randn(3, 16, 5)).pow(2).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_functional_call_uses_given_params_and_leaves_module_untouched() -> None:
    model = make_model(pooling="attention", positional="learned")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 10, 5)
    baseline = model(x)
    params = {k: v + 0.05 * torch.randn_like(v) for k, v in model.named_parameters()}
    perturbed = functional_call(model, params, (x,))
    assert not torch.allclose(perturbed, baseline)
    assert torch.equal(functional_call(model, dict(model.named_parameters()), (x,)), baseline)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(model(x), baseline)


def test_second_order_meta_gradient_matches_finite_differences() -> None:
    model = make_model(num_layers=1, model_dim=8, num_heads=2, ff_dim=16, output_dim=3).double()
    gen = torch.Generator().manual_seed(3)
    support_x, query_x = (torch.randn(4, 6, 5, generator=gen, dtype=torch.float64) for _ in "sq")
    support_y, query_y = (torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in "sq")
    inner_lr = 0.5

    def task_loss(
        params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        return (functional_call(model, params, (x,)) - y).pow(2).mean()

    def meta_loss(params: dict[str, torch.Tensor], first_order: bool = False) -> torch.Tensor:
        inner_grads = grad(task_loss)(params, support_x, support_y)
        if first_order:
            inner_grads = {k: g.detach() for k, g in inner_grads.items()}
        adapted = {k: p - inner_lr * inner_grads[k] for k, p in params.items()}
        return task_loss(adapted, query_x, query_y)

    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    direction = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}
    eps = 1e-6  # truncation error ~eps² (measured ~1e-8 relative); rounding ~1e-10
    with math_attention():
        meta_grad = grad(meta_loss)(params)
        first_order_grad = grad(lambda p: meta_loss(p, first_order=True))(params)
        plus = meta_loss({k: p + eps * direction[k] for k, p in params.items()})
        minus = meta_loss({k: p - eps * direction[k] for k, p in params.items()})

    def along(g: dict[str, torch.Tensor]) -> float:
        return sum(float((g[k] * direction[k]).sum()) for k in params)

    finite_difference = float(plus - minus) / (2 * eps)
    assert along(meta_grad) == pytest.approx(finite_difference, rel=1e-6, abs=1e-9)
    # The second-order term is really there: the first-order approximation is measurably off.
    assert abs(along(first_order_grad) - finite_difference) > 1e-4 * abs(finite_difference)


def test_last_pooling_still_sees_earlier_tokens_through_attention() -> None:
    model = make_model(pooling="last", num_layers=1)
    x = torch.randn(2, 8, 5)
    changed = x.clone()
    changed[:, 0] += 1.0
    assert not torch.allclose(model(x), model(changed), atol=1e-6)


def full_sequence_last(model: CoreTransformer, x: torch.Tensor) -> torch.Tensor:
    """The reference "last" pooling: every block over every position, then the last one."""
    assert model.pos_table is not None
    h = model.input_proj(x) + model.pos_table[: x.shape[1]]
    for block in model.blocks:
        h = block(h)
    return model.output_proj(model.ln_final(h)[:, -1])


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_last_pooling_computes_only_the_last_position_with_the_same_result(
    num_layers: int,
) -> None:
    """The final block's last-position shortcut is the same function as running it over the
    whole window (to float rounding), in value and in gradient."""
    model = make_model(pooling="last", num_layers=num_layers)
    x = torch.randn(64, 12, 5, dtype=torch.float64)
    model = model.double()
    torch.testing.assert_close(model(x), full_sequence_last(model, x), rtol=1e-12, atol=1e-12)
    fast = torch.autograd.grad(model(x).square().sum(), list(model.parameters()))
    slow = torch.autograd.grad(
        full_sequence_last(model, x).square().sum(), list(model.parameters())
    )
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_without_positions_pooled_output_is_permutation_invariant(pooling: str) -> None:
    model = make_model(pooling=pooling, positional="none")
    if model.pool_query is not None:  # a non-zero query, so attention pooling is not just mean
        torch.nn.init.normal_(model.pool_query, std=1.0)
    x = torch.randn(3, 10, 5)
    permuted = x[:, torch.randperm(10)]
    torch.testing.assert_close(model(permuted), model(x), rtol=1e-5, atol=1e-6)
    positioned = make_model(pooling=pooling, positional="sinusoidal")
    assert not torch.allclose(positioned(permuted), positioned(x), atol=1e-4)


def test_same_seed_gives_identical_weights_and_different_seed_does_not() -> None:
    a, b, c = (make_model(seed=s, positional="learned", pooling="attention") for s in (7, 7, 8))
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not all(torch.equal(state_a[k], state_c[k]) for k in state_a)


def test_dropout_is_active_in_training_and_off_in_eval() -> None:
    model = make_model(dropout=0.5)
    x = torch.randn(2, 8, 5)
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


def test_positional_buffer_follows_dtype_changes() -> None:
    model = make_model(positional="sinusoidal").double()
    assert model.pos_table is not None and model.pos_table.dtype == torch.float64
    assert "pos_table" not in model.state_dict()  # derived from the spec, not a weight
    assert model(torch.randn(2, 8, 5, dtype=torch.float64)).dtype == torch.float64
