"""MAML's inner step and meta-gradient, checked against finite differences on a tiny model."""

import pytest
import torch

from evotrader.data import generate_synthetic
from evotrader.data.features import FeaturePipeline
from evotrader.env import EnvSpec, VectorMarketEnv
from evotrader.models.core_transformer import TransformerSpec, math_attention
from evotrader.models.maml_model import (
    Rollout,
    adapt_parameters,
    parameters_of,
    policy_gradient_loss,
)
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.training.rollouts import collect_rollout

TINY = TransformerSpec(input_dim=2, model_dim=4, num_heads=1, num_layers=1, ff_dim=4, output_dim=4)


def _policy(dtype: torch.dtype = torch.float32) -> TransformerPolicy:
    torch.manual_seed(0)
    policy = TransformerPolicy(TINY, 3).to(dtype)
    for parameter in policy.parameters():  # larger weights: gradients well above rounding
        torch.nn.init.normal_(parameter, std=0.5)
    return policy


def _rollout(seed: int, dtype: torch.dtype = torch.float32, steps: int = 4) -> Rollout:
    g = torch.Generator().manual_seed(seed)
    return Rollout(
        observations=torch.randn(steps, 3, 3, 2, generator=g, dtype=dtype),
        actions=torch.randint(0, 3, (steps, 3), generator=g),
        rewards=torch.randn(steps, 3, generator=g, dtype=dtype),
        alive=torch.ones(steps, 3, dtype=torch.bool),
    )


def test_inner_step_changes_the_functional_parameters_not_the_module() -> None:
    policy = _policy()
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    adapted = adapt_parameters(
        policy, parameters_of(policy), _rollout(1), inner_lr=0.5, gamma=0.9, first_order=False
    )
    for name, parameter in policy.named_parameters():
        assert torch.equal(parameter, before[name]), name
    moved = [n for n in adapted if not torch.allclose(adapted[n], before[n])]
    assert "pi.weight" in moved and "encoder.input_proj.weight" in moved
    assert torch.equal(adapted["vf.weight"], before["vf.weight"])  # the PG loss never reads it


def test_inner_step_makes_advantaged_actions_more_likely() -> None:
    policy, support = _policy(), _rollout(2)
    params = parameters_of(policy)
    adapted = adapt_parameters(policy, params, support, inner_lr=0.1, gamma=0.9, first_order=True)
    assert policy_gradient_loss(policy, adapted, support, 0.9) < policy_gradient_loss(
        policy, params, support, 0.9
    )


def _meta_loss(policy, params, support, query, first_order: bool) -> torch.Tensor:
    adapted = adapt_parameters(
        policy, params, support, inner_lr=0.3, gamma=0.9, first_order=first_order
    )
    return policy_gradient_loss(policy, adapted, query, 0.9)


def test_second_order_meta_gradient_matches_finite_differences() -> None:
    policy = _policy(torch.float64)
    support, query = _rollout(3, torch.float64), _rollout(4, torch.float64)
    names = ["pi.weight", "encoder.input_proj.weight", "encoder.blocks.0.attn.qkv.weight"]
    with math_attention():
        params = parameters_of(policy)
        loss = _meta_loss(policy, params, support, query, first_order=False)
        exact = torch.autograd.grad(loss, [params[n] for n in names])
        first_order = torch.autograd.grad(
            _meta_loss(policy, params, support, query, first_order=True),
            [params[n] for n in names],
        )
        eps, largest_gap = 1e-6, 0.0
        for name, grad, fo_grad in zip(names, exact, first_order, strict=True):
            for index in [(0, 0), (1, 1), (2, 0)]:
                bumped = {k: v.detach().clone() for k, v in params.items()}
                values = []
                for sign in (1, -1):
                    bumped[name] = params[name].detach().clone()
                    bumped[name][index] += sign * eps
                    bumped = {k: v.requires_grad_() for k, v in bumped.items()}
                    values.append(_meta_loss(policy, bumped, support, query, False).item())
                numeric = (values[0] - values[1]) / (2 * eps)
                assert grad[index].item() == pytest.approx(numeric, rel=1e-4, abs=1e-7), name
                largest_gap = max(largest_gap, abs(fo_grad[index].item() - numeric))
    # The check has teeth: dropping the second-order terms gives a visibly different gradient.
    assert largest_gap > 1e-4


def test_advantages_are_normalised_and_zero_after_an_episode_ends() -> None:
    rollout = _rollout(5, steps=6)
    alive = rollout.alive.clone()
    alive[3:, 0] = False
    rollout = Rollout(rollout.observations, rollout.actions, rollout.rewards, alive)
    advantages = rollout.advantages(0.9)
    assert torch.all(advantages[3:, 0] == 0)
    assert advantages[alive].std().item() == pytest.approx(1.0, rel=1e-4)
    assert rollout.mean_episode_return == pytest.approx(
        float((rollout.rewards * alive).sum(0).mean())
    )


def test_rollouts_are_reproducible_from_their_seeds() -> None:
    bars = generate_synthetic(400, seed=1, kind="ar1").bars
    pipeline = FeaturePipeline().fit(bars)
    spec = TransformerSpec(input_dim=8, model_dim=8, num_heads=2, num_layers=1, ff_dim=8)
    torch.manual_seed(0)
    policy = TransformerPolicy(spec, 3)

    def run(seed: int) -> Rollout:
        env = VectorMarketEnv(bars, 4, pipeline, EnvSpec(window=16, episode_length=20))
        generator = torch.Generator().manual_seed(seed)
        return collect_rollout(
            policy, parameters_of(policy), env, 20, env_seed=seed, generator=generator
        )

    first, again, other = run(0), run(0), run(1)
    assert torch.equal(first.actions, again.actions)
    assert torch.equal(first.rewards, again.rewards)
    assert not torch.equal(first.rewards, other.rewards)
    assert first.observations.shape == (20, 4, 16, 8)
