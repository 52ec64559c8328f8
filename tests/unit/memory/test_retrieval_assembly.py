"""Retrieval's vectorised assembly: every neighbour's id, score, outcome, kind and metadata are
those of the event stored under that id, the exact index agrees with raw Faiss, and results
stay a snapshot when the memory changes after the search."""

from __future__ import annotations

from typing import Any, Literal

import faiss
import numpy as np
import pytest

from evotrader.memory import ExternalMemory, MemoryConfig

DIM = 12
K = 16
SMALL = {"flat": {}, "hnsw": {}, "ivf": {"ivf_nlist": 4, "nprobe": 4}}  # IVF trains at 156


Index = Literal["flat", "hnsw", "ivf"]
Metric = Literal["cosine", "l2"]


def _stream(
    index: Index, metric: Metric, seed: int = 0
) -> tuple[ExternalMemory, dict[int, tuple[np.ndarray, float, str, dict[str, Any]]]]:
    """A FIFO memory of 300 fed 700 seeded events in batches, so evictions reuse slots in
    another order than ids; and what the test stored under each id still held."""
    rng = np.random.default_rng(seed)
    config = MemoryConfig(index=index, metric=metric, capacity=300, eviction="fifo", **SMALL[index])
    memory = ExternalMemory(DIM, config, seed=seed)
    held: dict[int, tuple[np.ndarray, float, str, dict[str, Any]]] = {}
    for batch in range(7):
        vectors = rng.standard_normal((100, DIM)).astype(np.float32)
        outcomes = rng.standard_normal(100)
        kinds = [f"kind{int(c)}" for c in rng.integers(0, 5, 100)]
        metas = [{"batch": batch, "row": row} for row in range(100)]
        ids = memory.store(vectors, outcomes, metas, kind=kinds)
        for i, new_id in enumerate(ids.tolist()):
            held[new_id] = (vectors[i], float(outcomes[i]), kinds[i], metas[i])
    return memory, {i: held[i] for i in memory.ids.tolist()}


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
def test_each_neighbour_carries_its_own_events_values(index: Index, metric: Metric) -> None:
    memory, held = _stream(index, metric)
    queries = np.random.default_rng(9).standard_normal((5, DIM)).astype(np.float32)
    result = memory.retrieve(queries, K)
    assert result.found.all() and result.ids.shape == (5, K)
    for row in range(5):
        for col, event_id in enumerate(result.ids[row].tolist()):
            _, outcome, kind, meta = held[event_id]
            assert result.outcomes[row, col] == outcome
            assert result.kinds[row][col] == kind == result.kind_array[row, col]
            assert result.metadata[row][col] == meta
    assert len(set(result.ids[0].tolist())) == K


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_exact_memory_returns_raw_faiss_neighbours_and_scores(metric: Metric) -> None:
    memory, held = _stream("flat", metric, seed=1)
    ids = np.array(sorted(held), np.int64)
    vectors = np.stack([held[i][0] for i in ids.tolist()])
    queries = np.random.default_rng(2).standard_normal((7, DIM)).astype(np.float32)
    if metric == "cosine":
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    raw: faiss.Index = faiss.IndexFlatIP(DIM) if metric == "cosine" else faiss.IndexFlatL2(DIM)
    raw.add(vectors)
    distances, rows = raw.search(queries, K)
    result = memory.retrieve(queries, K)
    np.testing.assert_array_equal(result.ids, ids[rows])
    expected = distances if metric == "cosine" else -distances
    np.testing.assert_allclose(result.scores, expected, rtol=1e-5, atol=1e-5)


def test_padding_rows_and_a_snapshot_that_outlives_evictions() -> None:
    memory = ExternalMemory(DIM, MemoryConfig(capacity=4, eviction="fifo"))
    eye = np.eye(DIM, dtype=np.float32)
    memory.store(eye[:3], [1.0, 2.0, 3.0], [{"n": 0}, {"n": 1}, {"n": 2}], kind=["a", "b", "a"])
    result = memory.retrieve(eye[:2], 5)
    memory.store(eye[3:7], [4.0, 5.0, 6.0, 7.0], kind="c")  # evicts all three
    assert result.ids[:, 3:].tolist() == [[-1, -1], [-1, -1]]
    assert result.ids[:, 0].tolist() == [0, 1]
    assert sorted(result.kinds[0][:3]) == ["a", "a", "b"] and result.kinds[0][3:] == ("", "")
    assert result.metadata[1][0] == {"n": 1} and result.metadata[1][3:] == (None, None)
    assert result.outcomes[0, 0] == 1.0 and np.isnan(result.outcomes[:, 3:]).all()
    fresh = memory.retrieve(eye[:1], 5)
    assert set(fresh.kinds[0][:4]) == {"c"} and fresh.metadata[0][0] == {}
