import subprocess
import sys

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical
from tests.support.checkpoints import model_checkpoint

from evotrader.agents.loading import policy_from_checkpoint
from evotrader.core.checkpoint import load_checkpoint, save_checkpoint
from evotrader.models import TransformerSpec
from evotrader.models.ppo_model import TransformerPPOModule
from evotrader.models.transformer_policy import TransformerPolicy

ENCODER = {"model_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32, "output_dim": 8}


def _module() -> TransformerPPOModule:
    return TransformerPPOModule(
        observation_space=gym.spaces.Box(-5, 5, (12, 8), np.float32),
        action_space=gym.spaces.Discrete(3),
        model_config={"encoder": ENCODER},
    )


def test_rl_module_forward_passes_and_values() -> None:
    torch.manual_seed(0)
    module = _module()
    batch = {Columns.OBS: torch.randn(5, 12, 8)}
    assert module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS].shape == (5, 3)
    assert module.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS].shape == (5, 3)
    train = module.forward_train(batch)
    values = module.compute_values(batch, embeddings=train[Columns.EMBEDDINGS])
    assert values.shape == (5,)
    torch.testing.assert_close(values, module.compute_values(batch))
    loss = train[Columns.ACTION_DIST_INPUTS].sum() + values.sum()
    loss.backward()
    assert all(p.grad is not None for p in module.parameters())


def test_checkpoint_round_trip_gives_identical_actions(tmp_path) -> None:
    torch.manual_seed(1)
    policy = TransformerPolicy(TransformerSpec(input_dim=8, **ENCODER), num_actions=3)
    with torch.no_grad():  # large random weights: the greedy action depends on the input
        for parameter in policy.parameters():
            parameter.normal_()
    path = save_checkpoint(model_checkpoint("ppo", policy), tmp_path / "TEST_stage_1_ppo.pth")
    rebuilt = policy_from_checkpoint(load_checkpoint(path))
    obs = np.random.default_rng(0).standard_normal((64, 12, 8)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.act(obs), policy.eval().act(obs))
    assert len(set(policy.act(obs).tolist())) > 1


def test_loaded_policy_runs_without_ray(tmp_path) -> None:
    policy = TransformerPolicy(TransformerSpec(input_dim=8, **ENCODER), num_actions=3)
    path = save_checkpoint(model_checkpoint("ppo", policy), tmp_path / "TEST_stage_1_ppo.pth")
    code = (
        "import sys, numpy as np\n"
        "from evotrader.agents.loading import policy_from_checkpoint\n"
        "from evotrader.core.checkpoint import load_checkpoint\n"
        f"policy = policy_from_checkpoint(load_checkpoint({str(path)!r}))\n"
        "print(policy.act(np.zeros((2, 12, 8), np.float32)))\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_sampling_draws_what_rllibs_categorical_draws_and_stays_in_eval_mode() -> None:
    """The module samples its own actions (skipping RLlib's per-step distribution object)
    with the same actions and log-probabilities TorchCategorical gives for the same seed,
    and switches to eval mode once instead of around every call."""
    torch.manual_seed(0)
    module = _module()
    batch = {Columns.OBS: torch.randn(256, 12, 8)}
    module.forward_train(batch)
    assert module.training
    torch.manual_seed(7)
    explored = module.forward_exploration(batch)
    assert not module.training and not module.net.encoder.training  # no dropout while sampling
    distribution = TorchCategorical.from_logits(explored[Columns.ACTION_DIST_INPUTS])
    torch.manual_seed(7)
    module.net(batch[Columns.OBS])  # the forward draws nothing: the same generator state
    actions = distribution.sample()
    assert torch.equal(explored[Columns.ACTIONS], actions)
    assert torch.equal(explored[Columns.ACTION_LOGP], distribution.logp(actions))
    assert len(set(actions.tolist())) == 3  # near-uniform initial policy: all three drawn
    assert Columns.ACTIONS not in module.forward_inference(batch)  # greedy: RLlib's argmax
    module.forward_train(batch)
    assert module.training
