"""Warm start from an earlier stage: the one rule (training/warm_start.py), and that the MoE,
MAML and autonomous stages all take their weights from it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from evotrader.models.core_transformer import TransformerSpec
from evotrader.models.moe_policy import MoEPolicy
from evotrader.models.portfolio_moe import PortfolioMoE
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.training import warm_start
from evotrader.training.warm_start import (
    Donor,
    busiest_expert,
    donor_policy,
    portfolio_donor_policy,
    warm_start_donor,
)

SPEC = TransformerSpec(input_dim=5, model_dim=8, num_heads=2, num_layers=1, ff_dim=16, output_dim=8)


def _windows(seed: int = 0) -> torch.Tensor:
    return torch.randn(32, 10, 5, generator=torch.Generator().manual_seed(seed))


def _mixture(favoured: int) -> MoEPolicy:
    """Three experts; the gate's bias sends most weight to expert ``favoured``."""
    torch.manual_seed(0)
    mixture = MoEPolicy(SPEC, 3, num_experts=3)
    with torch.no_grad():
        mixture.gate[2].bias.zero_()
        mixture.gate[2].bias[favoured] = 3.0
    return mixture


def _checkpoint(kind: str, policy: torch.nn.Module) -> SimpleNamespace:
    return SimpleNamespace(
        kind=kind, architecture=policy.architecture(), state_dict=policy.state_dict()
    )


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _donor() -> Donor:
    torch.manual_seed(7)
    return Donor(TransformerPolicy(SPEC, 3), Path("stage_1_ppo.pth"), "ppo")


def test_a_moe_donates_its_busiest_expert_by_gate_utilisation_on_the_windows() -> None:
    mixture = _mixture(favoured=2)
    windows = _windows()
    assert busiest_expert(mixture, windows) == 2
    assert int(mixture.utilisation(windows).argmax()) == 2
    asked: list[int] = []

    def training_windows() -> torch.Tensor:
        asked.append(1)
        return windows

    donated = donor_policy(_checkpoint("moe", mixture), training_windows)
    assert donated is not None and asked == [1]
    policy, expert = donated
    assert expert == 2
    assert _same(policy.encoder, mixture.experts[2])
    assert not _same(policy.encoder, mixture.experts[0])
    assert _same(policy.pi, mixture.pi) and _same(policy.vf, mixture.vf)  # the shared heads


@pytest.mark.parametrize("kind", ["ppo", "maml"])
def test_ppo_and_maml_donate_their_policy_and_never_score_experts(kind: str) -> None:
    torch.manual_seed(1)
    saved = TransformerPolicy(SPEC, 3)

    def no_windows() -> torch.Tensor:
        raise AssertionError("only a MoE needs the training windows")

    donated = donor_policy(_checkpoint(kind, saved), no_windows)
    assert donated is not None
    policy, expert = donated
    assert expert is None and _same(policy, saved)


def test_other_kinds_donate_nothing() -> None:
    torch.manual_seed(1)
    saved = TransformerPolicy(SPEC, 3)
    assert donor_policy(_checkpoint("autonomous", saved), _windows) is None


def test_warm_start_donor_reads_the_best_earlier_checkpoint_and_the_training_split(
    monkeypatch,
) -> None:
    mixture = _mixture(favoured=1)
    loaded: list[Path] = []
    windows_for: list[Any] = []

    def load(path: Path) -> SimpleNamespace:
        loaded.append(path)
        return _checkpoint("moe", mixture)

    def training_windows(ctx: Any) -> torch.Tensor:
        windows_for.append(ctx)
        return _windows()

    monkeypatch.setattr(warm_start, "load_checkpoint", load)
    monkeypatch.setattr(warm_start, "training_windows", training_windows)
    source = Path("runs/x/stage_2_moe.pth")
    ctx = SimpleNamespace(name="stage_3_maml", best_previous_checkpoint=lambda: source)
    donor = warm_start_donor(ctx)
    assert donor is not None and loaded == [source] and windows_for == [ctx]
    assert (donor.source, donor.kind, donor.expert) == (source, "moe", 1)
    assert _same(donor.policy.encoder, mixture.experts[1])
    assert "expert 1 (the busiest)" in donor.describe()

    nothing = SimpleNamespace(name="stage_2_moe", best_previous_checkpoint=lambda: None)
    assert warm_start_donor(nothing) is None


def test_the_moe_stage_copies_the_donor_into_every_expert(monkeypatch) -> None:
    from evotrader.training import moe_stage

    donor = _donor()
    monkeypatch.setattr(moe_stage, "warm_start_donor", lambda ctx: donor)
    ctx = SimpleNamespace(
        name="stage_2_moe",
        config=SimpleNamespace(seed=0, stage_2_moe=SimpleNamespace(warm_start=True)),
    )
    config = {"num_experts": 2, "top_k": 0, "gate_hidden": 4}
    stage = SimpleNamespace(module_spec=SimpleNamespace(model_config=config), universe=None)
    weights = moe_stage.warm_start_weights(ctx, stage)
    assert weights is not None
    encoder = donor.policy.encoder.state_dict()
    for k in range(2):
        for name, value in encoder.items():
            assert torch.allclose(weights[f"experts.{k}.{name}"], value, atol=1e-2)
    assert torch.equal(weights["pi.weight"], donor.policy.pi.weight)

    ctx.config.stage_2_moe.warm_start = False
    monkeypatch.setattr(moe_stage, "warm_start_donor", pytest.fail)
    assert moe_stage.warm_start_weights(ctx, stage) is None


def test_the_maml_stage_takes_the_donors_encoder_with_fresh_heads(monkeypatch) -> None:
    from evotrader.training import maml_stage

    donor = _donor()
    torch.manual_seed(3)
    fresh = TransformerPolicy(SPEC, 3)
    heads = fresh.pi.weight.clone()
    monkeypatch.setattr(maml_stage, "fresh_policy", lambda ctx: fresh)
    monkeypatch.setattr(maml_stage, "warm_start_donor", lambda ctx: donor)
    policy = maml_stage.initial_policy(SimpleNamespace(name="stage_3_maml"))
    assert _same(policy.encoder, donor.policy.encoder)
    assert torch.equal(policy.pi.weight, heads)  # its own heads, not the donor's


def test_the_autonomous_stage_seeds_members_with_the_donors_encoder(monkeypatch) -> None:
    from evotrader.training import autonomous_trainer

    donor = _donor()
    monkeypatch.setattr(autonomous_trainer, "warm_start_donor", lambda ctx: donor)
    trunk = autonomous_trainer.earlier_trunk(SimpleNamespace(name="stage_4_autonomous"))
    assert trunk is not None
    expected = {f"encoder.{k}": v for k, v in donor.policy.encoder.state_dict().items()}
    assert trunk["state_dict"].keys() == expected.keys()
    assert all(torch.equal(trunk["state_dict"][k], v) for k, v in expected.items())
    monkeypatch.setattr(autonomous_trainer, "warm_start_donor", lambda ctx: None)
    assert autonomous_trainer.earlier_trunk(SimpleNamespace(name="stage_4_autonomous")) is None


def test_portfolio_kinds_donate_their_network_or_a_mixtures_busiest_expert() -> None:
    torch.manual_seed(2)
    saved = PortfolioTransformer(SPEC, 3)

    def no_windows() -> torch.Tensor:
        raise AssertionError("only a portfolio_moe needs the training windows")

    for kind in ("portfolio_ppo", "portfolio_maml"):
        donated = portfolio_donor_policy(_checkpoint(kind, saved), no_windows)
        assert donated is not None and donated[1] is None and _same(donated[0], saved)
    assert portfolio_donor_policy(_checkpoint("portfolio_autonomous", saved), no_windows) is None
    assert (
        portfolio_donor_policy(_checkpoint("ppo", TransformerPolicy(SPEC, 3)), no_windows) is None
    )

    mixture = PortfolioMoE(SPEC, 3, num_experts=3)
    with torch.no_grad():
        mixture.gate[2].bias.copy_(torch.tensor([0.0, 0.0, 3.0]))
    windows = torch.randn(8, 4, 10, 5, generator=torch.Generator().manual_seed(0))
    donated = portfolio_donor_policy(_checkpoint("portfolio_moe", mixture), lambda: windows)
    assert donated is not None
    policy, expert = donated
    assert expert == 2 and type(policy) is PortfolioTransformer
    assert _same(policy.cross, mixture.experts[2]) and not _same(policy.cross, mixture.experts[0])
    assert _same(policy.encoder, mixture.encoder) and _same(policy.pi, mixture.pi)
