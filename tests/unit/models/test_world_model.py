import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tests.support.checkpoints import model_checkpoint

from evotrader.core.checkpoint import load_checkpoint, save_checkpoint
from evotrader.data import FeaturePipeline, generate_synthetic
from evotrader.env.execution import ExecutionModel
from evotrader.env.market_data import MarketData
from evotrader.models import TransformerSpec
from evotrader.models.world_model import (
    TransformerWorldModel,
    WorldModelConfig,
    sample_quantiles,
)
from evotrader.models.world_model_training import (
    WorldModelTrainingConfig,
    evaluate_world_model,
    horizon_samples,
    information_coefficient,
    pinball_loss,
    predict,
    train_world_model,
)

WINDOW = 8
POSITIONS = (-1.0, 0.0, 1.0)
FAST = WorldModelTrainingConfig(epochs=3, batch_size=64, lr=3e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models train fastest so


def make_model(seed: int = 0, **config: Any) -> TransformerWorldModel:
    torch.manual_seed(seed)
    spec = TransformerSpec(
        input_dim=6, model_dim=16, num_heads=2, num_layers=1, ff_dim=32, output_dim=12, max_len=16
    )
    return TransformerWorldModel(spec, num_actions=3, config=WorldModelConfig(**config)).eval()


def perturb(model: TransformerWorldModel, size: float = 0.5) -> None:
    """Move every weight far from its init so outputs depend on all of them."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(size * torch.randn_like(parameter))


def drifting(drift_per_bar: float, scale: float = 0.01, **config: Any) -> TransformerWorldModel:
    """A model whose forecast ignores the window: each step ~ its unit-Gaussian init + drift."""
    model = make_model(**config)
    with torch.no_grad():
        model.return_scale.fill_(scale)
        model.quantile_head.weight.zero_()
        model.quantile_head.bias.view(model.config.horizon, -1)[:, 0] += drift_per_bar / scale
    return model


# --- heads and shapes ---------------------------------------------------------------------


@pytest.mark.parametrize(("batch", "horizon", "context_dim"), [(1, 1, 0), (5, 3, 0), (4, 5, 7)])
def test_every_head_has_its_shape(batch: int, horizon: int, context_dim: int) -> None:
    model = make_model(horizon=horizon, context_dim=context_dim, num_regimes=4)
    context = torch.randn(batch, context_dim) if context_dim else None
    out = model(torch.randn(batch, WINDOW, 6), context)
    assert out.quantiles.shape == (batch, horizon, 5)
    assert out.volatility.shape == (batch, horizon)
    assert out.regime_logits.shape == (batch, 4)
    assert out.policy_logits.shape == (batch, 3)
    assert out.value.shape == (batch,)
    assert out.embedding.shape == (batch, 12)
    for tensor in vars(out).values():
        assert torch.isfinite(tensor).all()


def test_quantiles_are_monotone_and_volatility_positive_for_any_weights() -> None:
    model = make_model(seed=3)
    perturb(model, size=2.0)
    out = model(torch.randn(64, WINDOW, 6))
    assert (out.quantiles.diff(dim=-1) >= 0).all()
    assert (out.volatility > 0).all()


def test_untrained_forecast_is_a_unit_gaussian_in_return_scale_units() -> None:
    model = make_model()
    model.return_scale.fill_(0.02)
    out = model(torch.randn(3, WINDOW, 6))
    normal = torch.distributions.Normal(0.0, 0.02).icdf(torch.tensor(model.config.quantiles))
    torch.testing.assert_close(out.quantiles, normal.expand(3, 5, -1), atol=2e-3, rtol=0)
    torch.testing.assert_close(out.volatility, torch.full((3, 5), 0.02), atol=1e-3, rtol=0)


def test_context_changes_the_forecast_but_not_the_embedding() -> None:
    model = make_model(context_dim=4)
    obs = torch.randn(6, WINDOW, 6)
    first, second = model(obs, torch.randn(6, 4)), model(obs, torch.randn(6, 4))
    assert not torch.allclose(first.quantiles, second.quantiles)
    assert not torch.allclose(first.policy_logits, second.policy_logits)
    torch.testing.assert_close(first.embedding, second.embedding)
    torch.testing.assert_close(model.embed(obs), first.embedding)


def test_context_errors_name_the_expected_shape() -> None:
    with_context, without = make_model(context_dim=4), make_model()
    obs = torch.randn(2, WINDOW, 6)
    with pytest.raises(ValueError, match=r"needs a context of shape \(B, 4\)"):
        with_context(obs)
    with pytest.raises(ValueError, match=r"context must have shape \(2, 4\), got \(2, 3\)"):
        with_context(obs, torch.randn(2, 3))
    with pytest.raises(ValueError, match="context_dim=0 but a context was given"):
        without(obs, torch.randn(2, 4))
    with pytest.raises(ValueError, match="expected 6 channels"):
        without(torch.randn(2, WINDOW, 5))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"horizon": 0}, "horizon must be >= 1"),
        ({"num_regimes": 2.5}, "num_regimes must be an int"),
        ({"context_dim": -1}, "context_dim must be >= 0"),
        ({"quantiles": (0.5,)}, "at least two numbers"),
        ({"quantiles": 0.5}, "at least two numbers"),
        ({"quantiles": (0.1, 0.5, 0.5)}, "strictly increasing"),
        ({"quantiles": (0.0, 0.5)}, r"strictly increasing in \(0, 1\)"),
        ({"quantiles": (0.25, 0.75)}, "must include the median"),
    ],
)
def test_bad_configs_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorldModelConfig(**overrides)


# --- architecture and checkpoints ---------------------------------------------------------


def test_architecture_round_trips_through_json_and_a_checkpoint(tmp_path: Path) -> None:
    model = make_model(seed=1, horizon=3, context_dim=2, quantiles=(0.05, 0.5, 0.95))
    perturb(model)
    model.return_scale.fill_(0.013)
    architecture = json.loads(json.dumps(model.architecture()))
    assert WorldModelConfig.from_dict(architecture["world_model"]) == model.config
    path = save_checkpoint(model_checkpoint("world_model", model), tmp_path / "wm.pth")
    loaded = load_checkpoint(path)
    rebuilt = TransformerWorldModel.from_architecture(loaded.architecture)
    rebuilt.load_state_dict(loaded.state_dict)
    rebuilt.eval()
    obs, context = torch.randn(4, WINDOW, 6), torch.randn(4, 2)
    for name, tensor in vars(model(obs, context)).items():
        torch.testing.assert_close(getattr(rebuilt(obs, context), name), tensor, msg=name)


def test_unknown_config_keys_are_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown WorldModelConfig key\(s\): \['horizn'\]"):
        WorldModelConfig.from_dict({"horizn": 3})


# --- sampling and what-if -----------------------------------------------------------------


def test_samples_reproduce_the_quantiles_they_are_drawn_from() -> None:
    levels = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    quantiles = torch.tensor([-2.0, -0.5, 0.1, 0.4, 3.0])
    uniform = torch.rand(200_000, generator=torch.Generator().manual_seed(0))
    draws = sample_quantiles(quantiles, levels, uniform)
    torch.testing.assert_close(torch.quantile(draws, levels), quantiles, atol=0.03, rtol=0)
    ordered = sample_quantiles(quantiles, levels, torch.linspace(0.0, 1.0, 1001))
    assert (ordered.diff() > 0).all() and torch.isfinite(ordered).all()
    assert ordered[0] < -2.0 and ordered[-1] > 3.0  # exponential tails beyond the outer levels


def test_what_if_shapes_and_shared_actions() -> None:
    model, obs = drifting(0.002), torch.randn(3, WINDOW, 6)
    shared = model.what_if(obs, [2, 2, 0], POSITIONS, n_paths=50, generator=_gen())
    per_row = model.what_if(
        obs, torch.tensor([[2, 2, 0]] * 3), POSITIONS, n_paths=50, generator=_gen()
    )
    assert shared.samples.shape == (3, 50)
    assert shared.mean.shape == (3,)
    assert shared.quantiles.shape == (3, 5) and shared.levels == model.config.quantiles
    assert (shared.quantiles.diff(dim=1) >= 0).all()
    torch.testing.assert_close(shared.samples, per_row.samples)


def test_what_if_is_deterministic_for_a_generator() -> None:
    model, obs = drifting(0.0), torch.randn(2, WINDOW, 6)
    first = model.what_if(obs, [2, 0], POSITIONS, n_paths=64, generator=_gen(5))
    again = model.what_if(obs, [2, 0], POSITIONS, n_paths=64, generator=_gen(5))
    other = model.what_if(obs, [2, 0], POSITIONS, n_paths=64, generator=_gen(6))
    torch.testing.assert_close(first.samples, again.samples, rtol=0, atol=0)
    assert not torch.equal(first.samples, other.samples)


def test_what_if_responds_to_the_action_under_a_predicted_drift() -> None:
    model, obs = drifting(0.003), torch.randn(4, WINDOW, 6)
    long, flat, short = (
        model.what_if(obs, [a] * 5, POSITIONS, n_paths=4000, generator=_gen()) for a in (2, 1, 0)
    )
    assert (long.mean > 1.01).all() and (short.mean < 0.99).all()
    assert (long.quantiles[:, 2] > flat.quantiles[:, 2]).all()
    assert torch.equal(flat.samples, torch.ones_like(flat.samples))  # flat: no risk, no cost
    assert (long.samples.std(dim=1) > 0.01).all()


def test_what_if_charges_costs_on_position_changes_only() -> None:
    model, obs = drifting(0.001), torch.randn(2, WINDOW, 6)
    free = model.what_if(obs, [2, 2], POSITIONS, n_paths=32, generator=_gen(), cost_bps=0.0)
    paid = model.what_if(obs, [2, 2], POSITIONS, n_paths=32, generator=_gen(), cost_bps=100.0)
    torch.testing.assert_close(paid.samples, free.samples * 0.99)
    held = model.what_if(
        obs, [2, 2], POSITIONS, n_paths=32, generator=_gen(), cost_bps=100.0, held=1.0
    )
    torch.testing.assert_close(held.samples, free.samples)
    flip = model.what_if(obs, [0], POSITIONS, n_paths=32, generator=_gen(), held=torch.ones(2))
    one_way = model.what_if(obs, [0], POSITIONS, n_paths=32, generator=_gen())
    torch.testing.assert_close(flip.samples, one_way.samples * (1 - 2 * 3e-4) / (1 - 3e-4))


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        ([2] * 6, r"length must be in 1..5"),
        (torch.zeros(0, dtype=torch.long), r"length must be in 1..5"),
        ([3], r"must index the 3 positions \(0..2\), got values in \[3, 3\]"),
        ([0.5], "integer indices"),
        ([[0, 1]] * 4, r"shape \(T,\) or \(3, T\)"),
    ],
)
def test_what_if_refuses_bad_actions(actions: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_model().what_if(torch.randn(3, WINDOW, 6), actions, POSITIONS, n_paths=4)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- samples, training and evaluation -----------------------------------------------------


def test_samples_end_at_bar_t_and_target_the_returns_after_it(
    bars: pd.DataFrame, pipeline: FeaturePipeline
) -> None:
    horizon = 3
    samples = horizon_samples(bars, pipeline, WINDOW, horizon, start=bars.index[400])
    windows = MarketData.build(bars, pipeline, WINDOW, ExecutionModel(), agent_state=False)
    positions = bars.index.get_indexer(samples.decisions)
    assert positions[0] == 400 and positions[-1] == len(bars) - 1 - horizon
    assert np.array_equal(positions, np.arange(400, len(bars) - horizon))
    log_close = np.log(bars["close"].to_numpy())
    for i, t in [(0, 400), (57, 457), (-1, positions[-1])]:
        np.testing.assert_array_equal(samples.obs[i], windows.windows()[t - WINDOW + 1])
        np.testing.assert_allclose(samples.targets[i], np.diff(log_close[t : t + horizon + 1]))


def test_samples_map_regime_names_and_refuse_missing_labels(
    bars: pd.DataFrame, pipeline: FeaturePipeline
) -> None:
    labels = generate_synthetic(600, seed=7, kind="regimes").regimes
    samples = horizon_samples(bars, pipeline, WINDOW, 2, regimes=labels)
    expected = labels.loc[samples.decisions].map(["bull", "bear", "sideways", "high_vol"].index)
    np.testing.assert_array_equal(samples.regimes, expected.to_numpy())
    with pytest.raises(ValueError, match="regime labels missing for 100 bars"):
        horizon_samples(bars, pipeline, WINDOW, 2, regimes=labels.iloc[:500])
    with pytest.raises(ValueError, match=r"unknown regime labels \['crash'\]"):
        horizon_samples(bars, pipeline, WINDOW, 2, regimes=labels.replace("bull", "crash"))


def test_too_few_bars_for_a_sample_is_a_clear_error(
    bars: pd.DataFrame, pipeline: FeaturePipeline
) -> None:
    with pytest.raises(ValueError, match="no world-model samples"):
        horizon_samples(bars.iloc[:30], pipeline, WINDOW, 5)


def test_training_reduces_the_pinball_loss_on_a_planted_signal() -> None:
    series = generate_synthetic(500, seed=2, kind="ar1", ar_coef=0.6).bars
    pipeline = FeaturePipeline().fit(series)
    model = make_model(horizon=2)
    samples = horizon_samples(series, pipeline, WINDOW, 2)
    targets = torch.as_tensor(samples.targets)
    model.return_scale.fill_(float(samples.targets.std()))
    before = pinball_loss(predict(model, samples).quantiles, targets, model.levels).item()
    history = train_world_model(
        model, series, pipeline, WINDOW, config=replace(FAST, epochs=6), seed=0
    )
    after = pinball_loss(predict(model, samples).quantiles, targets, model.levels).item()
    assert after < 0.95 * before
    assert history[-1]["pinball"] < history[0]["pinball"]
    assert not model.training


def test_training_is_deterministic_for_a_seed_and_leaves_the_global_rng_alone(
    bars: pd.DataFrame, pipeline: FeaturePipeline
) -> None:
    train = bars.iloc[:300]
    states = []
    for seed in (0, 0, 1):
        model = make_model(seed=4)
        rng_before = torch.get_rng_state()
        train_world_model(model, train, pipeline, WINDOW, config=FAST, seed=seed)
        assert torch.equal(torch.get_rng_state(), rng_before)
        states.append(model.state_dict())
    for key, tensor in states[0].items():
        assert torch.equal(tensor, states[1][key]), key
    assert any(not torch.equal(t, states[2][k]) for k, t in states[0].items())


def test_regime_head_learns_synthetic_regimes() -> None:
    synthetic = generate_synthetic(800, seed=3, kind="regimes", regime_persistence=0.99)
    pipeline = FeaturePipeline().fit(synthetic.bars)
    model = make_model(num_regimes=4)
    history = train_world_model(
        model,
        synthetic.bars,
        pipeline,
        WINDOW,
        regimes=synthetic.regimes,
        config=replace(FAST, epochs=6),
    )
    assert history[-1]["regime_ce"] < 0.8 * history[0]["regime_ce"]
    samples = horizon_samples(synthetic.bars, pipeline, WINDOW, 5, regimes=synthetic.regimes)
    predicted = predict(model, samples).regime_logits.argmax(dim=-1).numpy()
    majority = np.bincount(samples.regimes).max() / len(samples)
    assert (predicted == samples.regimes).mean() > majority + 0.1


def test_training_and_evaluation_with_context(
    bars: pd.DataFrame, pipeline: FeaturePipeline
) -> None:
    model = make_model(context_dim=3)
    context = np.random.default_rng(0).standard_normal((len(bars), 3))
    train_world_model(model, bars.iloc[:300], pipeline, WINDOW, context=context, config=FAST)
    metrics = evaluate_world_model(
        model, bars, bars.iloc[400:], pipeline, WINDOW, train=bars.iloc[:300], context=context
    )
    assert metrics["n"] == 600 - 400 - 5
    with pytest.raises(ValueError, match="needs a context array"):
        train_world_model(model, bars.iloc[:300], pipeline, WINDOW, config=FAST)
    with pytest.raises(ValueError, match="context has 2 columns, the model expects 3"):
        train_world_model(
            model, bars.iloc[:300], pipeline, WINDOW, context=context[:, :2], config=FAST
        )


def test_out_of_range_regime_ids_are_refused(bars: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    labels = pd.Series(7, index=bars.index)
    with pytest.raises(ValueError, match=r"regime labels must be in 0\.\.3, got 7"):
        train_world_model(make_model(), bars, pipeline, WINDOW, regimes=labels, config=FAST)


def test_evaluation_reports_baselines_and_ic(bars: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    model = make_model()
    train, validation = bars.iloc[:300], bars.iloc[320:450]
    train_world_model(model, train, pipeline, WINDOW, config=FAST)
    labels = generate_synthetic(600, seed=7, kind="regimes").regimes
    metrics = evaluate_world_model(
        model, bars, validation, pipeline, WINDOW, train=train, regimes=labels
    )
    assert metrics["n"] == 130 - 5  # the last 5 bars' targets would leave the split
    assert 0 <= metrics["regime_accuracy"] <= 1
    train_targets = horizon_samples(train, pipeline, WINDOW, 5).targets
    samples = horizon_samples(bars.iloc[:450], pipeline, WINDOW, 5, start=bars.index[320])
    historical = torch.as_tensor(np.quantile(train_targets, model.config.quantiles, axis=0).T)
    expected = pinball_loss(
        historical.expand(125, -1, -1), torch.as_tensor(samples.targets), model.levels
    )
    assert metrics["pinball_historical"] == pytest.approx(expected.item())
    assert metrics["pinball_zero"] != metrics["pinball_historical"]
    for key in ("pinball_model", "pinball_model_next", "ic", "ic_t", "volatility_ic"):
        assert np.isfinite(metrics[key]), key


def test_pinball_loss_by_hand() -> None:
    levels = torch.tensor([0.1, 0.9])
    quantiles = torch.zeros(1, 1, 2)
    assert pinball_loss(quantiles, torch.tensor([[1.0]]), levels).item() == pytest.approx(0.5)
    assert pinball_loss(quantiles, torch.tensor([[-2.0]]), levels).item() == pytest.approx(1.0)


def test_information_coefficient_and_t_statistic() -> None:
    x = torch.arange(50.0)
    ic, t = information_coefficient(x, x**3)
    assert ic == pytest.approx(1.0) and t > 1e6
    noise = torch.as_tensor(np.random.default_rng(0).standard_normal(50))
    ic, t = information_coefficient(x, x + 40 * noise)
    assert t == pytest.approx(ic * np.sqrt(48 / (1 - ic**2)))
    assert np.isnan(information_coefficient(x, torch.ones(50))).all()
