"""PortfolioMoE: the portfolio transformer with its cross-asset blocks as routed experts."""

import pytest
import torch

from evotrader.models import TransformerSpec
from evotrader.models.moe_policy import Routing, load_balancing_loss
from evotrader.models.portfolio_moe import PortfolioMoE
from evotrader.models.portfolio_transformer import PortfolioTransformer

ENCODER = {"model_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32, "output_dim": 8}
SPEC = TransformerSpec(input_dim=5, **ENCODER)


def _loud(net: torch.nn.Module, seed: int) -> None:
    """Larger weights than the init, so outputs and routing depend visibly on the inputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))


def _mixture(seed: int = 0, **kwargs: int) -> PortfolioMoE:
    torch.manual_seed(seed)
    mixture = PortfolioMoE(SPEC, 3, **{"num_experts": 3, **kwargs})
    _loud(mixture, seed)
    return mixture.eval()


def _ppo(
    seed: int = 0, spec: TransformerSpec = SPEC, cross_layers: int = 1
) -> PortfolioTransformer:
    torch.manual_seed(seed)
    net = PortfolioTransformer(spec, 3, cross_layers)
    _loud(net, seed)
    return net.eval()


def _obs(batch: int, assets: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, assets, 12, 5, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("top_k", [0, 1])
def test_permuting_assets_permutes_logits_and_routing_and_keeps_the_value(top_k: int) -> None:
    mixture, obs = _mixture(top_k=top_k), _obs(4, 5)
    order = torch.tensor([3, 0, 4, 1, 2])
    (logits, value), (permuted_logits, permuted_value) = mixture(obs), mixture(obs[:, order])
    torch.testing.assert_close(permuted_logits, logits[:, order], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(permuted_value, value, rtol=1e-5, atol=1e-5)
    routing = mixture.route(mixture.encode_assets(obs))
    permuted = mixture.route(mixture.encode_assets(obs[:, order]))
    for mine, theirs in zip(permuted, routing, strict=True):  # probabilities and weights
        torch.testing.assert_close(mine, theirs[:, order], rtol=1e-5, atol=1e-6)
    # Not trivially so: assets differ, and the gate sees them differently.
    assert (logits[:, 0] - logits[:, 1]).abs().max() > 1e-3
    assert (routing.probs[:, 0] - routing.probs[:, 1]).abs().max() > 1e-2
    assert mixture.act(_obs(2, 7).numpy()).shape == (2, 7)  # any universe size


def test_warm_started_from_ppo_it_reproduces_ppo_and_its_experts_differ_by_the_noise() -> None:
    ppo, obs = _ppo(), _obs(6, 4)
    exact = _mixture(seed=3)
    exact.warm_start(ppo, noise=0.0)
    for mine, theirs in zip(exact(obs), ppo(obs), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    noisy = _mixture(seed=3)
    noisy.warm_start(ppo, seed=5)  # the stage's default noise, 1e-3
    logits, value = noisy(obs)
    assert (logits - ppo(obs)[0]).abs().max() < 2e-2 and (value - ppo(obs)[1]).abs().max() < 2e-2
    first, second = (dict(expert.named_parameters()) for expert in noisy.experts[:2])
    assert not torch.equal(first["0.attn.qkv.weight"], second["0.attn.qkv.weight"])
    again = _mixture(seed=3)
    again.warm_start(ppo, seed=5)
    assert all(
        torch.equal(a, b)
        for a, b in zip(again.state_dict().values(), noisy.state_dict().values(), strict=True)
    )


def test_a_donor_of_another_shape_is_refused_naming_both_shapes() -> None:
    mixture = _mixture()
    narrower = TransformerSpec(input_dim=5, **{**ENCODER, "model_dim": 8})
    with pytest.raises(
        ValueError,
        match=r"shaped \{'encoder': \{'model_dim': 8.*shaped \{'encoder': \{'model_dim': 16",
    ):
        mixture.warm_start(_ppo(spec=narrower))
    with pytest.raises(
        ValueError, match=r"'cross_layers': 2\}: the mixture's .*'cross_layers': 1\}"
    ):
        mixture.warm_start(_ppo(cross_layers=2))
    with pytest.raises(ValueError, match=r"from a PortfolioMoE"):
        mixture.warm_start(_mixture(seed=1))


def test_routed_wholly_to_one_expert_it_is_that_expert_alone() -> None:
    mixture, obs = _mixture(top_k=1), _obs(3, 4)
    with torch.no_grad():
        mixture.gate[2].weight.zero_()
        mixture.gate[2].bias.copy_(torch.tensor([0.0, 5.0, 0.0]))
    assert mixture.utilisation(obs).tolist() == [0.0, 1.0, 0.0]
    expert = mixture.expert_policy(1).eval()
    for mine, theirs in zip(mixture(obs), expert(obs), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_rebuilt_from_its_architecture_and_checked_settings() -> None:
    mixture, obs = _mixture(top_k=2), _obs(2, 3)
    assert mixture.architecture()["num_experts"] == 3 and mixture.architecture()["top_k"] == 2
    rebuilt = PortfolioMoE.from_architecture(mixture.architecture())
    rebuilt.load_state_dict(mixture.state_dict())
    torch.testing.assert_close(rebuilt.eval()(obs), mixture(obs), rtol=0, atol=0)
    with pytest.raises(ValueError, match="cross_layers must be >= 1, got 0"):
        PortfolioMoE(SPEC, 3, cross_layers=0)
    with pytest.raises(ValueError, match=r"top_k must be in \[0, num_experts=2\], got 3"):
        PortfolioMoE(SPEC, 3, num_experts=2, top_k=3)


def test_the_balance_loss_counts_every_sample_and_asset() -> None:
    probs = torch.softmax(torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(0)), -1)
    per_asset = load_balancing_loss(Routing(probs, probs), top_k=0)
    flat = probs.reshape(-1, 3)
    assert per_asset == load_balancing_loss(Routing(flat, flat), top_k=0)
    uniform = torch.full((4, 5, 3), 1 / 3)
    assert load_balancing_loss(Routing(uniform, uniform), top_k=0).item() == pytest.approx(1.0)


def test_utilisation_in_batches_is_the_mean_over_every_sample_and_asset() -> None:
    mixture, obs = _mixture(), _obs(10, 4)
    weights = mixture.route(mixture.encode_assets(obs)).weights.detach()
    expected = weights.reshape(-1, 3).mean(dim=0)
    torch.testing.assert_close(mixture.utilisation(obs, batch=3), expected, rtol=0, atol=1e-6)
    assert mixture.utilisation(obs).sum().item() == pytest.approx(1.0)
