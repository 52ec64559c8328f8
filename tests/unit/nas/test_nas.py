"""Search space, controllers and weight inheritance: only valid genomes, parents that matter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evotrader.models.core_transformer import TransformerSpec
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.nas import (
    Evolution,
    Gene,
    GenomeError,
    Individual,
    RandomSearch,
    SearchSpace,
    inherit_weights,
    make_controller,
)

GENES = {
    "model_dim": {"kind": "choice", "group": "architecture", "values": [8, 12, 16, 24]},
    "num_heads": {"kind": "choice", "group": "architecture", "values": [1, 2, 3, 4]},
    "num_layers": {"kind": "int", "group": "architecture", "low": 1, "high": 3},
    "dropout": {"kind": "float", "group": "architecture", "low": 0.0, "high": 0.3},
    "lr": {"kind": "log_float", "group": "hyperparameter", "low": 1e-4, "high": 1e-2},
    "batch_size": {"kind": "choice", "group": "hyperparameter", "values": [32, 64, 128]},
}


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace.from_config(GENES)


def _valid_for_torch(genome: dict) -> None:
    TransformerSpec(
        input_dim=4,
        model_dim=genome["model_dim"],
        num_heads=genome["num_heads"],
        num_layers=genome["num_layers"],
        dropout=genome["dropout"],
    )


def test_every_genome_any_controller_produces_is_valid(space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    for controller in (
        Evolution(space, crossover_rate=0.5, architecture_rate=0.8),
        RandomSearch(space),
    ):
        offspring = controller.initial(8, rng)
        for generation in range(15):
            population = [
                Individual(i, child.genome, float(rng.normal()))
                for i, child in enumerate(offspring)
            ]
            offspring = controller.next_generation(population, 8, rng)
            for child in offspring:
                assert space.validate(child.genome) == child.genome
                _valid_for_torch(child.genome)  # never a model_dim % num_heads mismatch
            assert len(offspring) == 8, generation


def test_validation_names_the_gene_and_the_constraint(space: SearchSpace) -> None:
    good = space.sample(np.random.default_rng(1))
    with pytest.raises(GenomeError, match="lr"):
        space.validate({**good, "lr": 1.0})
    with pytest.raises(GenomeError, match="batch_size"):
        space.validate({**good, "batch_size": 100})
    with pytest.raises(GenomeError, match="divisible"):
        space.validate({**good, "model_dim": 16, "num_heads": 3})
    with pytest.raises(GenomeError, match="missing"):
        space.validate({k: v for k, v in good.items() if k != "lr"})
    with pytest.raises(GenomeError, match="kind"):
        Gene("x", "gaussian")
    with pytest.raises(GenomeError, match="unknown keys"):
        SearchSpace.from_config({**GENES, "x": {"kind": "int", "lo": 1}})


def test_elites_survive_and_better_agents_parent_more_children(space: SearchSpace) -> None:
    rng = np.random.default_rng(2)
    genomes = [space.sample(rng) for _ in range(8)]
    population = [Individual(i, g, float(i)) for i, g in enumerate(genomes)]  # 7 is best
    controller = Evolution(space, elitism=2, tournament_size=3)
    counts = np.zeros(8)
    for _ in range(50):
        children = controller.next_generation(population, 8, rng)
        assert [c.origin for c in children[:2]] == ["elite", "elite"]
        assert [c.genome for c in children[:2]] == [genomes[7], genomes[6]]
        for child in children[2:]:
            counts[child.parents[0]] += 1
    assert counts[7] > counts[4] > counts[0]  # tournament selection favours fitness


def test_children_mutate_hyperparameters_around_the_parent(space: SearchSpace) -> None:
    rng = np.random.default_rng(3)
    parent = space.sample(rng)
    controller = Evolution(space, elitism=0, crossover_rate=0.0, architecture_rate=0.0)
    children = controller.next_generation([Individual(0, parent, 1.0)], 20, rng)
    for child in children:
        architecture = {k: child.genome[k] for k in space.names("architecture")}
        assert architecture == {k: parent[k] for k in space.names("architecture")}
        assert 0.5 * parent["lr"] <= child.genome["lr"] <= 2.0 * parent["lr"]
    assert any(child.genome != parent for child in children)


def test_redesign_changes_architecture_only(space: SearchSpace) -> None:
    rng = np.random.default_rng(4)
    genome = space.sample(rng)
    new = make_controller("evolution", space).redesign(genome, rng)
    assert any(new[k] != genome[k] for k in space.names("architecture"))
    assert all(new[k] == genome[k] for k in space.names("hyperparameter"))


def test_unknown_controller_is_named(space: SearchSpace) -> None:
    with pytest.raises(ValueError, match="darts"):
        make_controller("darts", space)


def test_inheritance_copies_every_tensor_whose_shape_matches() -> None:
    torch.manual_seed(0)
    parent = TransformerPolicy(TransformerSpec(input_dim=4, model_dim=8, num_heads=2, ff_dim=16), 3)
    wider_ff = TransformerPolicy(
        TransformerSpec(input_dim=4, model_dim=8, num_heads=2, ff_dim=32), 3
    )
    before = {k: v.clone() for k, v in wider_ff.state_dict().items()}
    copied = inherit_weights(wider_ff, parent.state_dict())
    state = wider_ff.state_dict()
    assert "encoder.input_proj.weight" in copied and "pi.weight" in copied
    assert "encoder.blocks.0.mlp.0.weight" not in copied  # another width: keeps its own init
    for name in copied:
        assert torch.equal(state[name], parent.state_dict()[name])
    assert torch.equal(
        state["encoder.blocks.0.mlp.0.weight"], before["encoder.blocks.0.mlp.0.weight"]
    )
