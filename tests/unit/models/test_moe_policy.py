"""MoEPolicy: routing, the balance loss, K=1 equivalence, warm start and expert extraction."""

import json
import math

import pytest
import torch

from evotrader.models.core_transformer import TransformerSpec
from evotrader.models.moe_policy import MoEPolicy, Routing, gate_entropy, load_balancing_loss
from evotrader.models.transformer_policy import TransformerPolicy

SPEC = TransformerSpec(input_dim=5, model_dim=8, num_heads=2, num_layers=1, ff_dim=16, output_dim=8)


def _obs(batch: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 10, 5, generator=torch.Generator().manual_seed(seed))


def _mixture(**kwargs) -> MoEPolicy:
    torch.manual_seed(0)
    return MoEPolicy(SPEC, 3, **kwargs)


def test_soft_gate_weights_sum_to_one_and_depend_on_the_observation() -> None:
    mixture = _mixture(num_experts=4)
    torch.nn.init.normal_(mixture.gate[2].weight, std=1.0)
    routing = mixture.route(_obs())
    assert torch.allclose(routing.weights.sum(-1), torch.ones(6))
    assert torch.equal(routing.weights, routing.probs)
    assert (routing.weights.std(dim=0) > 1e-4).all()  # different windows, different routes


def test_top_k_keeps_the_k_largest_weights_renormalised() -> None:
    mixture = _mixture(num_experts=4, top_k=2)
    torch.nn.init.normal_(mixture.gate[2].weight, std=1.0)
    routing = mixture.route(_obs())
    assert ((routing.weights > 0).sum(-1) == 2).all()
    assert torch.allclose(routing.weights.sum(-1), torch.ones(6))
    chosen = routing.weights > 0
    top2 = routing.probs.topk(2, dim=-1).indices
    assert torch.equal(chosen, torch.zeros_like(chosen).scatter(-1, top2, True))


def test_routing_sends_an_input_to_the_expert_the_gate_prefers() -> None:
    mixture = _mixture(num_experts=2, top_k=1)
    with torch.no_grad():  # route on the last bar's first channel: positive -> expert 1
        mixture.gate[0].weight.zero_()
        mixture.gate[0].weight[0, 0] = 5.0
        mixture.gate[2].weight.zero_()
        mixture.gate[2].weight[1, 0], mixture.gate[2].weight[0, 0] = 5.0, -5.0
    obs = _obs(2)
    obs[0, -1, 0], obs[1, -1, 0] = 3.0, -3.0
    embedding, routing = mixture.encode(obs)
    assert routing.weights.argmax(-1).tolist() == [1, 0]
    expected = torch.stack([mixture.experts[1](obs[:1])[0], mixture.experts[0](obs[1:])[0]])
    assert torch.allclose(embedding, expected, atol=1e-6)


def test_with_one_expert_the_mixture_is_exactly_the_transformer_policy() -> None:
    torch.manual_seed(1)
    plain = TransformerPolicy(SPEC, 3)
    mixture = MoEPolicy(SPEC, 3, num_experts=1)
    mixture.warm_start(plain, noise=0.0)
    obs = _obs()
    assert torch.allclose(mixture(obs), plain(obs), atol=1e-6)
    logits, values = mixture.logits_and_values(obs)
    plain_logits, plain_values = plain.logits_and_values(obs)
    assert torch.allclose(logits, plain_logits, atol=1e-6)
    assert torch.allclose(values, plain_values, atol=1e-6)
    assert (mixture.act(obs.numpy()) == plain.act(obs.numpy())).all()


def test_balance_loss_is_one_when_balanced_and_k_when_collapsed() -> None:
    balanced = torch.full((8, 4), 0.25)
    assert load_balancing_loss(Routing(balanced, balanced), top_k=0).item() == pytest.approx(1.0)
    collapsed = torch.zeros(8, 4)
    collapsed[:, 0] = 1.0
    assert load_balancing_loss(Routing(collapsed, collapsed), top_k=0).item() == pytest.approx(4)
    assert gate_entropy(balanced).item() == pytest.approx(math.log(4))
    assert gate_entropy(collapsed).item() == pytest.approx(0.0, abs=1e-6)


def test_balance_loss_gradient_moves_probability_away_from_the_busy_expert() -> None:
    mixture = _mixture(num_experts=3)
    with torch.no_grad():
        mixture.gate[2].bias.copy_(torch.tensor([3.0, 0.0, 0.0]))
    routing = mixture.route(_obs(32))
    load_balancing_loss(routing, top_k=0).backward()
    # Gradient descent lowers the busy expert's bias and raises the others'.
    grad = mixture.gate[2].bias.grad
    assert grad[0] > 0 and (grad[1:] < 0).all()


def test_warm_start_copies_the_donor_with_small_distinct_noise() -> None:
    torch.manual_seed(2)
    donor = TransformerPolicy(SPEC, 3)
    mixture = _mixture(num_experts=3)
    mixture.warm_start(donor, noise=1e-3, seed=5)
    first = mixture.experts[0].input_proj.weight
    for expert in mixture.experts:
        assert torch.allclose(expert.input_proj.weight, donor.encoder.input_proj.weight, atol=1e-2)
    assert not torch.equal(first, mixture.experts[1].input_proj.weight)
    assert torch.equal(mixture.pi.weight, donor.pi.weight)


def test_warm_start_refuses_a_donor_of_another_shape() -> None:
    other = TransformerPolicy(TransformerSpec(input_dim=5, model_dim=16, num_heads=2), 3)
    with pytest.raises(ValueError, match="cannot warm-start"):
        _mixture().warm_start(other)


def test_expert_policy_is_that_expert_with_the_shared_heads() -> None:
    mixture = _mixture(num_experts=2)
    expert = mixture.expert_policy(1)
    obs = _obs()
    assert torch.allclose(expert(obs), mixture.pi(mixture.experts[1](obs)), atol=1e-6)
    assert mixture.utilisation(obs).sum().item() == pytest.approx(1.0)


def test_architecture_round_trips_through_json() -> None:
    mixture = _mixture(num_experts=3, top_k=2, gate_hidden=7)
    rebuilt = MoEPolicy.from_architecture(json.loads(json.dumps(mixture.architecture())))
    rebuilt.load_state_dict(mixture.state_dict())
    obs = _obs()
    assert torch.equal(rebuilt(obs), mixture(obs))
    assert rebuilt.architecture() == mixture.architecture()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"num_experts": 0}, "num_experts"), ({"top_k": 5}, "top_k"), ({"gate_hidden": 0}, "gate")],
)
def test_invalid_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MoEPolicy(SPEC, 3, **{"num_experts": 4, **kwargs})
