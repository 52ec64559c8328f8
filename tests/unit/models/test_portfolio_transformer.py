import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from evotrader.models import TransformerSpec
from evotrader.models.portfolio_ppo_model import PortfolioPPOModule
from evotrader.models.portfolio_transformer import PortfolioTransformer

ENCODER = {"model_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32, "output_dim": 8}


def _net(seed: int = 0, choices: int = 3) -> PortfolioTransformer:
    torch.manual_seed(seed)
    net = PortfolioTransformer(TransformerSpec(input_dim=5, **ENCODER), choices)
    with torch.no_grad():  # larger weights than the init: outputs depend visibly on inputs
        for parameter in net.parameters():
            parameter.normal_(std=0.3)
    return net.eval()


def _obs(batch: int, assets: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, assets, 12, 5, generator=generator)


def test_permuting_assets_permutes_logits_and_keeps_the_value() -> None:
    net, obs = _net(), _obs(4, 5)
    order = torch.tensor([3, 0, 4, 1, 2])
    logits, value = net(obs)
    permuted_logits, permuted_value = net(obs[:, order])
    torch.testing.assert_close(permuted_logits, logits[:, order], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(permuted_value, value, rtol=1e-5, atol=1e-5)
    # Not trivially so: the assets' logits differ from one another.
    assert (logits[:, 0] - logits[:, 1]).abs().max() > 1e-3


def test_assets_see_each_other_through_cross_attention() -> None:
    net, obs = _net(), _obs(2, 4)
    changed = obs.clone()
    changed[:, 0] += 1.0  # only asset 0's window changes
    logits, _ = net(obs)
    new_logits, _ = net(changed)
    assert (new_logits[:, 1:] - logits[:, 1:]).abs().max() > 1e-4


def test_works_for_another_number_of_assets_than_trained_on() -> None:
    net = _net()
    for assets in (1, 3, 11):
        logits, value = net(_obs(2, assets))
        assert logits.shape == (2, assets, 3) and value.shape == (2,)
        assert torch.isfinite(logits).all() and torch.isfinite(value).all()
        assert net.act(_obs(2, assets).numpy()).shape == (2, assets)


def test_deterministic_by_seed_and_rebuilt_from_its_architecture() -> None:
    first, second, other = _net(seed=7), _net(seed=7), _net(seed=8)
    obs = _obs(3, 4)
    torch.testing.assert_close(first(obs), second(obs), rtol=0, atol=0)
    assert not torch.equal(first(obs)[0], other(obs)[0])
    rebuilt = PortfolioTransformer.from_architecture(first.architecture())
    rebuilt.load_state_dict(first.state_dict())
    torch.testing.assert_close(rebuilt.eval()(obs), first(obs), rtol=0, atol=0)


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
        ),
    ],
)
def test_device_agnostic(device: str) -> None:
    net, obs = _net(), _obs(2, 3)
    logits, value = net.to(device)(obs.to(device))
    assert logits.device.type == device == value.device.type
    expected_logits, expected_value = _net()(obs)
    torch.testing.assert_close(logits.cpu(), expected_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(value.cpu(), expected_value, rtol=1e-4, atol=1e-4)
    assert net.act(obs.numpy()).shape == (2, 3)


def test_bad_observations_and_settings_are_refused_with_their_names() -> None:
    with pytest.raises(ValueError, match="batch, assets, window, channels"):
        _net()(torch.zeros(2, 12, 5))
    with pytest.raises(ValueError, match="num_choices"):
        PortfolioTransformer(TransformerSpec(input_dim=5, **ENCODER), 1)
    with pytest.raises(ValueError, match="output_dim"):
        spec = TransformerSpec(input_dim=5, **{**ENCODER, "num_heads": 4, "output_dim": 6})
        PortfolioTransformer(spec, 3)


def test_rl_module_gives_multicategorical_inputs_and_values() -> None:
    torch.manual_seed(0)
    module = PortfolioPPOModule(
        observation_space=gym.spaces.Box(-5, 5, (4, 12, 5), np.float32),
        action_space=gym.spaces.MultiDiscrete(np.full(4, 3)),
        model_config={"encoder": ENCODER},
    )
    batch = {Columns.OBS: _obs(6, 4)}
    inputs = module.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS]
    assert inputs.shape == (6, 4 * 3)
    dist = module.get_exploration_action_dist_cls().from_logits(inputs)
    actions = dist.sample()
    assert actions.shape == (6, 4) and int(actions.max()) < 3
    train = module.forward_train(batch)
    values = module.compute_values(batch, embeddings=train[Columns.EMBEDDINGS])
    torch.testing.assert_close(values, module.compute_values(batch))
    (train[Columns.ACTION_DIST_INPUTS].sum() + values.sum()).backward()
    assert all(p.grad is not None for p in module.parameters())
