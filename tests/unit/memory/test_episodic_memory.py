"""ExternalMemory: planted neighbours are found, batches agree, files round-trip, eviction works."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from evotrader.memory import EpisodicMemoryError, ExternalMemory, MemoryConfig, rarity

DIM = 16
INDEXES = ("flat", "hnsw", "ivf")
SMALL_IVF = {"ivf_nlist": 8, "nprobe": 4}  # trains at 39 * 8 = 312 events


def _config(index: str, **overrides: Any) -> MemoryConfig:
    return MemoryConfig(index=index, **((SMALL_IVF if index == "ivf" else {}) | overrides))


def _clusters(
    n_clusters: int = 10, per: int = 60, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Well separated Gaussian clusters: (centres, vectors, cluster label per vector)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, DIM)) * 4.0
    labels = np.repeat(np.arange(n_clusters), per)
    vectors = centres[labels] + rng.standard_normal((len(labels), DIM)) * 0.3
    return centres, vectors, labels


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row's true neighbours that were found."""
    shares = [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(shares))


def _filled(index: str, metric: str = "cosine", **overrides: Any) -> ExternalMemory:
    _, vectors, labels = _clusters()
    memory = ExternalMemory(DIM, _config(index, metric=metric, **overrides), seed=3)
    for start in range(0, len(labels), 100):
        part = np.arange(start, min(start + 100, len(labels)))
        meta = [{"cluster": int(labels[i]), "i": int(i)} for i in part]
        memory.store(vectors[part], labels[part] * 0.01, meta, kind=[f"k{c % 3}" for c in part])
    return memory


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("index", INDEXES)
def test_retrieve_returns_the_planted_neighbours(index: str, metric: str) -> None:
    centres, vectors, _ = _clusters()
    memory = _filled(index, metric)
    rng = np.random.default_rng(1)
    result = memory.retrieve(centres + rng.standard_normal(centres.shape) * 0.1, k=10)
    assert result.ids.shape == result.scores.shape == result.outcomes.shape == (10, 10)
    for cluster, row in enumerate(result.metadata):
        assert [m["cluster"] for m in row] == [cluster] * 10
    np.testing.assert_allclose(result.outcomes, np.repeat(np.arange(10)[:, None] * 0.01, 10, 1))
    assert np.all(np.diff(result.scores, axis=1) <= 1e-6)  # nearest first
    # a stored vector finds itself first
    own = memory.retrieve(vectors[123], k=1)
    assert own.ids.tolist() == [[123]] and own.metadata[0][0]["i"] == 123
    assert own.scores[0, 0] == pytest.approx(1.0 if metric == "cosine" else 0.0, abs=1e-5)


@pytest.mark.parametrize("index", INDEXES)
def test_batched_retrieve_equals_per_query_retrieve(index: str) -> None:
    memory = _filled(index)
    queries = np.random.default_rng(2).standard_normal((25, DIM)) * 4.0
    batch = memory.retrieve(queries, k=7)
    for i, query in enumerate(queries):
        one = memory.retrieve(query, k=7)
        np.testing.assert_array_equal(one.ids[0], batch.ids[i])
        np.testing.assert_array_equal(one.scores[0], batch.scores[i])
        np.testing.assert_array_equal(one.outcomes[0], batch.outcomes[i])
        assert one.metadata[0] == batch.metadata[i] and one.kinds[0] == batch.kinds[i]


def test_cosine_ignores_scale_while_l2_does_not() -> None:
    query = np.eye(DIM)[0]
    same_direction_far = 5.0 * query  # cosine 1, squared L2 distance 16
    near_other_direction = query + 0.3 * np.eye(DIM)[1]  # cosine 0.958, squared distance 0.09
    stored = np.stack([same_direction_far, near_other_direction])
    scores = {}
    for metric in ("cosine", "l2"):
        memory = ExternalMemory(DIM, MemoryConfig(metric=metric))
        memory.store(stored, [1.0, 2.0])
        result = memory.retrieve(query, k=2)
        scores[metric] = result.scores[0]
        first = result.ids[0, 0]
        assert first == (0 if metric == "cosine" else 1)
    np.testing.assert_allclose(scores["cosine"], [1.0, 1 / np.sqrt(1.09)], rtol=1e-5)
    np.testing.assert_allclose(scores["l2"], [-0.09, -16.0], rtol=1e-5)


@pytest.mark.parametrize("index", INDEXES)
def test_fewer_than_k_events_are_padded_not_garbage(index: str) -> None:
    memory = ExternalMemory(DIM, _config(index))
    empty = memory.retrieve(np.ones((2, DIM)), k=3)
    assert (empty.ids == -1).all() and np.isnan(empty.outcomes).all()
    assert np.isneginf(empty.scores).all() and not empty.found.any()
    memory.store(np.eye(DIM)[:2], [0.5, -0.5], [{"a": 1}, {"a": 2}], kind=["x", "y"])
    result = memory.retrieve(np.eye(DIM)[0], k=4)
    assert result.ids.tolist() == [[0, 1, -1, -1]]
    assert result.found.tolist() == [[True, True, False, False]]
    np.testing.assert_array_equal(result.outcomes[0, :2], [0.5, -0.5])
    assert np.isnan(result.outcomes[0, 2:]).all() and np.isneginf(result.scores[0, 2:]).all()
    assert result.kinds == (("x", "y", "", ""),)
    assert result.metadata == (({"a": 1}, {"a": 2}, None, None),)


def test_fifo_drops_the_oldest_and_removes_them_from_faiss() -> None:
    for index in ("flat", "ivf"):
        rng = np.random.default_rng(4)
        vectors = rng.standard_normal((800, DIM))
        memory = ExternalMemory(DIM, _config(index, capacity=500, eviction="fifo"))
        for start in range(0, 800, 100):
            memory.store(vectors[start : start + 100], np.zeros(100))
        assert len(memory) == memory.index_size == 500
        np.testing.assert_array_equal(memory.ids, np.arange(300, 800))
        gone = memory.retrieve(vectors[:300], k=1)
        assert (gone.ids >= 300).all()
        kept = memory.retrieve(vectors[300:], k=1)
        np.testing.assert_array_equal(kept.ids[:, 0], np.arange(300, 800))


def test_hnsw_evictions_are_never_returned_and_the_graph_is_compacted() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((300, DIM))
    config = MemoryConfig(index="hnsw", capacity=200, eviction="fifo", hnsw_compact_at=0.25)
    memory = ExternalMemory(DIM, config)
    memory.store(vectors[:200], np.zeros(200))
    memory.store(vectors[200:250], np.zeros(50))  # 50 tombstones of 250 nodes: not compacted yet
    assert len(memory) == 200 and memory.index_size == 250
    result = memory.retrieve(vectors[:50], k=5)
    assert (result.ids >= 50).all() and result.found.all()
    memory.store(vectors[250:300], np.zeros(50))  # 100 of 300 > 25%: rebuilt from live nodes
    assert len(memory) == memory.index_size == 200
    np.testing.assert_array_equal(memory.retrieve(vectors[100:], k=1).ids[:, 0], range(100, 300))


def test_keep_rare_keeps_rare_kinds_and_extreme_outcomes_where_fifo_does_not() -> None:
    rng = np.random.default_rng(6)
    vectors = rng.standard_normal((200, DIM))
    outcomes = rng.normal(0.0, 0.01, 200)
    kinds = ["calm"] * 200
    crashes = [3, 17, 29, 41, 52]
    for i in crashes:
        kinds[i], outcomes[i] = "flash_crash", -0.2
    outcomes[8] = 0.5  # a calm event with an extreme outcome
    survivors = {}
    for eviction in ("keep_rare", "fifo"):
        memory = ExternalMemory(DIM, MemoryConfig(capacity=60, eviction=eviction))
        for start in range(0, 200, 10):
            part = slice(start, start + 10)
            memory.store(vectors[part], outcomes[part], kind=kinds[part])
        assert len(memory) == 60
        survivors[eviction] = set(memory.ids.tolist())
    assert set(crashes) | {8} <= survivors["keep_rare"]
    assert survivors["fifo"] == set(range(140, 200))
    assert set(range(190, 200)) <= survivors["keep_rare"]  # new events always enter
    calm = np.array([kind == "calm" for kind in kinds])
    kept = np.isin(np.arange(200), list(survivors["keep_rare"]))
    # among calm events, the extreme outcomes are the ones kept
    assert np.median(abs(outcomes[calm & kept])) > 2 * np.median(abs(outcomes[calm & ~kept]))


def test_rarity_is_surprise_of_kind_and_outcome() -> None:
    codes = np.array([0] * 98 + [1, 0])
    outcomes = np.concatenate([np.linspace(-0.01, 0.01, 98), [0.0, 1.0]])
    surprise = rarity(codes, outcomes)
    assert surprise[49] < 0.05  # common kind, outcome near the median
    assert surprise[98] == pytest.approx(np.log(100))  # 1 in 100 kind, median outcome
    # the largest and smallest outcomes: a two-sided rank tail of 2/100, common kind
    assert surprise[99] == surprise[0] == pytest.approx(-np.log(0.99) - np.log(0.02))
    flat = rarity(np.zeros(5, np.int64), np.zeros(5))
    np.testing.assert_allclose(flat, 0.0, atol=1e-12)  # equal outcomes are equally (un)surprising


@pytest.mark.parametrize("index", INDEXES)
def test_save_load_gives_the_same_retrievals_and_the_same_future(
    index: str, tmp_path: Path
) -> None:
    memory = _filled(index, capacity=500, eviction="keep_rare")  # 600 stored: 100 evicted
    path = memory.save(tmp_path / "sub" / "memory.evm")
    assert [p.name for p in path.parent.iterdir()] == ["memory.evm"]  # no temporary left
    loaded = ExternalMemory.load(path)
    assert (loaded.dim, loaded.config, loaded.seed, len(loaded)) == (DIM, memory.config, 3, 500)
    np.testing.assert_array_equal(loaded.ids, memory.ids)
    queries = np.random.default_rng(7).standard_normal((20, DIM)) * 4.0
    for pair in (memory, loaded):  # both go on identically after the load
        pair.store(queries[:10] + 0.01, np.full(10, 0.3), kind="late")
    a, b = memory.retrieve(queries, 8), loaded.retrieve(queries, 8)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    assert a.kinds == b.kinds and a.metadata == b.metadata


@pytest.mark.parametrize("index", ["hnsw", "ivf"])
def test_same_seed_same_index_different_seed_differs(index: str, tmp_path: Path) -> None:
    _, vectors, _ = _clusters()

    def index_bytes(seed: int, name: str) -> bytes:
        memory = ExternalMemory(DIM, _config(index), seed=seed)
        memory.store(vectors, np.zeros(len(vectors)))
        with zipfile.ZipFile(memory.save(tmp_path / name)) as archive:
            return archive.read("index.faiss")

    first = index_bytes(1, "a")
    assert index_bytes(1, "b") == first
    assert index_bytes(2, "c") != first


@pytest.mark.parametrize("index", INDEXES)
def test_saves_of_one_content_are_byte_identical_on_any_clock(
    index: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same-seed checkpoints carry the memory as bytes: no save time may leak into them."""
    first = _filled(index).save(tmp_path / "a.evm").read_bytes()
    two_days_later = time.time() + 2 * 86_400
    monkeypatch.setattr(time, "time", lambda: two_days_later)
    assert _filled(index).save(tmp_path / "b.evm").read_bytes() == first
    assert _filled(index).to_bytes() == first
    with zipfile.ZipFile(tmp_path / "b.evm") as archive:
        names = [info.filename for info in archive.infolist()]
    assert names == sorted(names)


def test_ivf_searches_exactly_until_trained_then_approximately() -> None:
    rng = np.random.default_rng(8)
    vectors, queries = rng.standard_normal((600, DIM)), rng.standard_normal((50, DIM))
    ivf = ExternalMemory(DIM, MemoryConfig(index="ivf", ivf_nlist=8, nprobe=1, capacity=600))
    flat = ExternalMemory(DIM, MemoryConfig(index="flat", capacity=600))
    for memory in (ivf, flat):
        memory.store(vectors[:300], np.zeros(300))  # below 39 * 8 = 312: not trained
    np.testing.assert_array_equal(ivf.retrieve(queries, 10).ids, flat.retrieve(queries, 10).ids)
    for memory in (ivf, flat):
        memory.store(vectors[300:], np.zeros(300))  # trained on 600 now; nprobe=1 of 8 lists
    assert ivf.index_size == 600
    exact, approximate = flat.retrieve(queries, 10).ids, ivf.retrieve(queries, 10).ids
    overlap = _recall(approximate, exact)
    assert 0.2 < overlap < 1.0  # one probed list of eight on unclustered data: partial recall


@pytest.mark.parametrize("index", ["hnsw", "ivf"])
def test_approximate_recall_against_exact_search(index: str) -> None:
    rng = np.random.default_rng(9)
    centres = rng.standard_normal((40, 32)) * 3.0
    vectors = centres[rng.integers(40, size=5000)] + rng.standard_normal((5000, 32))
    queries = centres[rng.integers(40, size=200)] + rng.standard_normal((200, 32))
    config = {
        "hnsw": MemoryConfig(index="hnsw", hnsw_m=16),
        "ivf": MemoryConfig(index="ivf", ivf_nlist=64, nprobe=8),  # trains at 2496 events
    }
    exact = ExternalMemory(32, MemoryConfig(index="flat"))
    approximate = ExternalMemory(32, config[index])
    for memory in (exact, approximate):
        memory.store(vectors, np.zeros(5000))
    truth, found = exact.retrieve(queries, 16).ids, approximate.retrieve(queries, 16).ids
    assert _recall(found, truth) >= 0.9


def test_torch_inputs_and_read_only_metadata() -> None:
    memory = ExternalMemory(DIM)
    memory.store(torch.ones(2, DIM), torch.tensor([1.0, 2.0]), [{"a": [1]}, {"b": {"c": 2}}])
    result = memory.retrieve(torch.ones(DIM), k=2)
    assert sorted(result.outcomes[0].tolist()) == [1.0, 2.0]
    with pytest.raises(TypeError):
        result.metadata[0][0]["new"] = 1  # type: ignore[index]


def _corrupt(path: Path, member: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[member] = data
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def test_load_refuses_missing_truncated_foreign_and_newer_files(tmp_path: Path) -> None:
    path = _filled("flat").save(tmp_path / "memory.evm")
    raw = path.read_bytes()

    def refused(target: Path, *fragments: str) -> None:
        with pytest.raises(EpisodicMemoryError) as caught:
            ExternalMemory.load(target)
        assert str(target) in str(caught.value)
        for fragment in fragments:
            assert fragment in str(caught.value)

    refused(tmp_path / "nope.evm", "no such file")
    refused(tmp_path, "not a regular file")
    truncated = tmp_path / "truncated.evm"
    truncated.write_bytes(raw[: len(raw) // 2])
    refused(truncated, "truncated")
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": torch.ones(2)}, foreign)  # a zip too, but not a memory
    refused(foreign, "not an evotrader memory")
    text = tmp_path / "notes.json"
    text.write_text(json.dumps({"format": "evotrader-memory"}))
    refused(text, "not a memory archive")

    def with_header(name: str, **changes: Any) -> Path:
        target = tmp_path / name
        target.write_bytes(raw)
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            header = json.loads(archive.read("memory.json"))
        _corrupt(target, "memory.json", json.dumps(header | changes).encode())
        return target

    refused(with_header("newer.evm", format_version=2), "newer than this code supports")
    refused(with_header("other.evm", format="something-else"), "not an evotrader memory")
    refused(with_header("dim.evm", dim=DIM + 1), "does not match")
    refused(with_header("config.evm", config={"index": "annoy"}), "bad settings")
    flipped = tmp_path / "index.evm"
    flipped.write_bytes(raw)
    _corrupt(flipped, "index.faiss", b"garbage" * 10)
    refused(flipped, "unreadable Faiss index")


def test_save_overwrites_atomically_and_keeps_the_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "memory.evm"
    for outcome in (1.0, 2.0):  # the second save replaces the first
        memory = ExternalMemory(DIM)
        memory.store(np.ones(DIM), outcome)
        memory.save(path)
    assert ExternalMemory.load(path).retrieve(np.ones(DIM), 1).outcomes[0, 0] == 2.0

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", disk_full)  # fails mid-archive
    memory.store(np.ones(DIM), 3.0)
    with pytest.raises(EpisodicMemoryError, match="could not write: No space left"):
        memory.save(path)
    monkeypatch.undo()
    assert ExternalMemory.load(path).retrieve(np.ones(DIM), 1).outcomes[0, 0] == 2.0
    assert [p.name for p in tmp_path.iterdir()] == ["memory.evm"]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"index": "annoy"}, "index must be one of"),
        ({"metric": "manhattan"}, "metric must be one of"),
        ({"eviction": "lru"}, "eviction must be one of"),
        ({"capacity": 0}, "capacity must be an int >= 1"),
        ({"ef_search": 2.5}, "ef_search must be an int"),
        ({"hnsw_m": 1}, "hnsw_m must be >= 2"),
        ({"nprobe": 9, "ivf_nlist": 8}, "nprobe (9) cannot exceed ivf_nlist (8)"),
        ({"index": "ivf", "capacity": 100, "ivf_nlist": 8, "nprobe": 8}, "below the 312 events"),
        ({"hnsw_compact_at": 1.0}, "hnsw_compact_at must be in (0, 1)"),
    ],
)
def test_config_is_validated(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EpisodicMemoryError, match=None) as caught:
        MemoryConfig(**overrides)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda m: m.store(np.ones(DIM + 1), 0.0), "expected shape (16,) or (N, 16)"),
        (lambda m: m.store(np.full((2, DIM), np.nan), [0, 0]), "row 0 is not finite"),
        (lambda m: m.store(np.zeros((1, DIM)), 0.0), "row 0 is all zeros"),
        (lambda m: m.store(np.ones(DIM), float("nan")), "outcome: value 0 is nan"),
        (lambda m: m.store(np.ones((2, DIM)), [1.0]), "expected 2 values"),
        (lambda m: m.store(np.ones((2, DIM)), [0, 0], {"a": 1}), "one dict per event (2)"),
        (lambda m: m.store(np.ones(DIM), 0.0, {"a": {1, 2}}), "metadata[0]: not JSON-able"),
        (lambda m: m.store(np.ones(DIM), 0.0, kind=""), "non-empty strings"),
        (lambda m: m.store(np.ones((11, DIM)), np.zeros(11)), "exceeds the capacity 10"),
        (lambda m: m.retrieve(np.ones(DIM), 0), "k must be an int >= 1"),
        (lambda m: m.retrieve("state", 1), "not a numeric array"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(call: Any, fragment: str) -> None:
    memory = ExternalMemory(DIM, MemoryConfig(capacity=10))
    with pytest.raises(EpisodicMemoryError) as caught:
        call(memory)
    assert fragment in str(caught.value)
    assert len(memory) == 0  # nothing half-stored
