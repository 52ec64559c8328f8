"""ExternalMemory: the autonomous agent's episodic memory of significant events, over Faiss.

Each stored event is an embedding (the world model's state embedding when it happened), an
outcome (what followed, e.g. the P&L), a kind (e.g. ``"flash_crash"``, from the
``EventDetector``) and JSON-able metadata. ``retrieve`` finds the k stored events nearest to a
batch of current states, so the agent can recall what happened the last times it was here.

Index types (``MemoryConfig.index``):

- ``flat``: exact search; right for small memories, the reference for the others.
- ``hnsw``: a Faiss HNSW graph; fast approximate search at any size. A graph cannot delete
  nodes, so evicted events become tombstones that searches filter out (an ``IDSelectorBitmap``:
  they are never returned) and the graph is rebuilt from its live nodes once tombstones exceed
  ``hnsw_compact_at`` of it.
- ``ivf``: a Faiss inverted file. Until the memory holds ``39 * ivf_nlist`` events (the
  fewest Faiss trains ``ivf_nlist`` centroids on) it searches exactly, in a flat index; at that
  size it trains its coarse quantiser once, seeded, on the events it holds and moves them into
  the IVF. Later events go into the lists of that quantiser; it is not retrained.

Flat and IVF evictions really leave the index (``remove_ids``). Everything is deterministic
for a seed: IVF k-means is seeded, and HNSW levels are seeded and the graph is built on one
OpenMP thread, because Faiss inserts into an HNSW graph in a thread-dependent order.

``cosine`` normalises every vector and scores by inner product; ``l2`` scores by negative
squared distance. In both, a higher score is a nearer event.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, BinaryIO, Literal, cast

import faiss
import numpy as np
from scipy.stats import rankdata

from evotrader import __version__
from evotrader.core.atomic import write_atomic
from evotrader.core.checks import require_int

FORMAT_VERSION = 1
FORMAT_MARKER = "evotrader-memory"
INDEX_TYPES = ("flat", "hnsw", "ivf")
METRICS = ("cosine", "l2")
EVICTIONS = ("keep_rare", "fifo")
DEFAULT_KIND = "event"
IVF_POINTS_PER_CENTROID = 39  # Faiss warns below this many training points per centroid
_HEADER = "memory.json"
_ARRAYS = {"ids": np.int64, "outcomes": np.float64, "kinds": np.int32, "graph_slots": np.int64}
_MEMBERS = frozenset((_HEADER, "index.faiss", *(f"{name}.npy" for name in _ARRAYS)))
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest zip date: no wall clock in the bytes
_ZIP_MODE = 0o644 << 16  # rw-r--r--, not the writer's umask
_NO_METADATA = np.array(None, object)  # a padding entry's metadata


class EpisodicMemoryError(ValueError):
    """Bad memory configuration, input or file; the message names what and where."""


@dataclass(frozen=True)
class MemoryConfig:
    """How the memory indexes, scores and forgets.

    ``capacity`` is the most events held; past it ``eviction`` decides who goes: ``"fifo"``
    drops the oldest, ``"keep_rare"`` drops the least rare (oldest first among equals), where
    rarity is an event's surprise in nats, ``-log P(its kind) - log P(an outcome this
    extreme)``, both frequencies taken over the memory and the incoming batch. New events
    always enter. ``hnsw_m``, ``ef_construction`` and ``ef_search`` shape the HNSW graph
    (``ef_search`` is raised to k when smaller); ``ivf_nlist`` and ``nprobe`` the IVF.
    """

    index: Literal["flat", "hnsw", "ivf"] = "flat"
    metric: Literal["cosine", "l2"] = "cosine"
    capacity: int = 100_000
    eviction: Literal["keep_rare", "fifo"] = "keep_rare"
    hnsw_m: int = 32
    ef_construction: int = 40
    ef_search: int = 64
    hnsw_compact_at: float = 0.25
    ivf_nlist: int = 256
    nprobe: int = 16

    def __post_init__(self) -> None:
        for name, allowed in (("index", INDEX_TYPES), ("metric", METRICS), ("eviction", EVICTIONS)):
            if getattr(self, name) not in allowed:
                raise EpisodicMemoryError(
                    f"memory {name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        counts = ("capacity", "hnsw_m", "ef_construction", "ef_search", "ivf_nlist", "nprobe")
        require_int("memory ", self, 1, *counts, error=EpisodicMemoryError)
        if self.hnsw_m < 2:
            raise EpisodicMemoryError(f"memory hnsw_m must be >= 2, got {self.hnsw_m}")
        if self.nprobe > self.ivf_nlist:
            raise EpisodicMemoryError(
                f"memory nprobe ({self.nprobe}) cannot exceed ivf_nlist ({self.ivf_nlist})"
            )
        if self.index == "ivf" and self.capacity < self.ivf_train_size:
            raise EpisodicMemoryError(
                f"memory capacity ({self.capacity}) is below the {self.ivf_train_size} events an "
                f"IVF with ivf_nlist={self.ivf_nlist} trains on; lower ivf_nlist or use flat"
            )
        fraction = self.hnsw_compact_at
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise EpisodicMemoryError(f"memory hnsw_compact_at must be a number, got {fraction!r}")
        if not 0.0 < fraction < 1.0:
            raise EpisodicMemoryError(f"memory hnsw_compact_at must be in (0, 1), got {fraction}")

    @property
    def ivf_train_size(self) -> int:
        """Events needed before an IVF memory trains its quantiser and stops searching exactly."""
        return IVF_POINTS_PER_CENTROID * self.ivf_nlist


@dataclass(frozen=True, eq=False)
class Retrieval:
    """The k nearest stored events for each of B queries, nearest first.

    ``ids`` (B, k) int64, ``scores`` (B, k) float32 (higher is nearer: cosine similarity, or
    minus the squared L2 distance), ``outcomes`` (B, k) float64, ``kind_array`` and
    ``metadata_array`` (B, k) object arrays of the kind names and metadata. When fewer than k
    events are found a row is padded at its end with id -1, score -inf, outcome NaN, kind ``""``
    and metadata ``None``. Metadata mappings are the memory's own, read-only.

    ``kinds`` and ``metadata`` are the same as B tuples of k, built on first access: a search
    that reads only ids, scores and outcomes (the agent's) pays for no per-result objects.
    """

    ids: np.ndarray
    scores: np.ndarray
    outcomes: np.ndarray
    kind_array: np.ndarray
    metadata_array: np.ndarray

    @property
    def found(self) -> np.ndarray:
        """(B, k) bool: which entries are real events rather than padding."""
        return self.ids >= 0

    @cached_property
    def kinds(self) -> tuple[tuple[str, ...], ...]:
        """B tuples of k kind names (``""`` for padding)."""
        return tuple(map(tuple, self.kind_array.tolist()))

    @cached_property
    def metadata(self) -> tuple[tuple[Mapping[str, Any] | None, ...], ...]:
        """B tuples of k metadata mappings (``None`` for padding)."""
        return tuple(map(tuple, self.metadata_array.tolist()))


class ExternalMemory:
    """A bounded, persistent store of event embeddings searched by nearest neighbour.

    Events live in fixed slots (``capacity`` of them); a slot number is the event's id inside
    Faiss, while the id handed to callers counts up forever, so an id never names two events.
    """

    def __init__(self, dim: int, config: MemoryConfig | None = None, *, seed: int = 0) -> None:
        _check_int("memory dim", dim, 1)
        _check_int("memory seed", seed, 0)
        self.dim, self.config, self.seed = int(dim), config or MemoryConfig(), int(seed)
        capacity = self.config.capacity
        self._ids = np.full(capacity, -1, np.int64)  # public id per slot, -1 = free
        self._outcomes = np.full(capacity, np.nan)
        self._kinds = np.full(capacity, -1, np.int32)  # code into _kind_names
        self._metadata = np.full(capacity, None, object)  # Mapping per slot, None = free
        self._kind_names: list[str] = []
        self._kind_table = np.array([""], object)  # kind names by code, then "" for code -1
        self._next_id = 0
        self._size = 0  # events held; counted, as retrieve must not scan all slots
        self._graph_slots = np.empty(0, np.int64)  # HNSW node -> slot, -1 = tombstone
        self._node_of_slot = np.full(capacity, -1, np.int64)  # slot -> HNSW node
        # The HNSW search's filter of tombstoned nodes: () when there are none, None when the
        # graph changed since it was last made (a scan of every node, so not on every retrieve).
        self._selector: tuple[np.ndarray, faiss.IDSelector] | tuple[()] | None = None
        self._index = self._new_index(trained_ivf=False)

    def __len__(self) -> int:
        return self._size

    @property
    def index_size(self) -> int:
        """Vectors in the Faiss index: ``len(self)``, plus HNSW tombstones not yet compacted."""
        return int(self._index.ntotal)

    @property
    def ids(self) -> np.ndarray:
        """The ids of the events held, ascending (oldest first)."""
        return np.sort(self._ids[self._ids >= 0])

    def store(
        self,
        event_embedding: Any,
        outcome: Any,
        metadata: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        kind: str | Sequence[str] = DEFAULT_KIND,
    ) -> np.ndarray:
        """Store one event (D,) or a batch (N, D); returns their new ids (N,).

        ``outcome`` is a number or (N,) finite numbers; ``metadata`` one JSON-able dict or a
        list of N (None: empty); ``kind`` one name for all or N names. When the memory is full
        the eviction policy makes room first; a batch larger than the capacity is refused.
        """
        vectors = self._matrix(event_embedding, "event_embedding")
        n = len(vectors)
        outcomes = _outcomes(outcome, n)
        metas = _metadata(metadata, n)
        kinds = _kind_list(kind, n)
        if n > self.config.capacity:
            raise EpisodicMemoryError(
                f"memory store: a batch of {n} events exceeds the capacity {self.config.capacity}"
            )
        codes = np.array([self._kind_code(name) for name in kinds], np.int32)
        excess = len(self) + n - self.config.capacity
        if excess > 0:
            self._evict(self._victims(excess, codes, outcomes))
        slots = np.flatnonzero(self._ids < 0)[:n]
        self._add(vectors, slots)
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        self._size += n
        self._ids[slots], self._outcomes[slots], self._kinds[slots] = ids, outcomes, codes
        for slot, meta in zip(slots.tolist(), metas, strict=True):
            self._metadata[slot] = meta
        if self._untrained_ivf and len(self) >= self.config.ivf_train_size:
            self._train_ivf()
        return ids

    def retrieve(self, current_state_embedding: Any, k: int) -> Retrieval:
        """The ``k`` stored events nearest to each query, one (D,) or a batch (B, D).

        Results always have a batch axis (B = 1 for one query); see ``Retrieval`` for padding.
        """
        _check_int("memory retrieve k", k, 1)
        queries = self._matrix(current_state_embedding, "current_state_embedding")
        if len(self) == 0:
            raw = np.full((len(queries), k), -np.inf, np.float32)
            slots = np.full((len(queries), k), -1, np.int64)
        else:
            raw, slots = self._search(queries, k)
        scores = raw if self._inner_product else -raw
        # Whole-array gathers, no per-result Python: retrieve sits in the agent's every step.
        found = slots >= 0
        if found.all():
            return Retrieval(
                ids=self._ids[slots],
                scores=scores.astype(np.float32, copy=False),
                outcomes=self._outcomes[slots],
                kind_array=self._kind_table[self._kinds[slots]],
                metadata_array=self._metadata[slots],
            )
        # Padding: a missing slot (-1) reads the last slot, then is masked.
        return Retrieval(
            ids=np.where(found, self._ids[slots], -1),
            scores=np.where(found, scores, -np.inf).astype(np.float32),
            outcomes=np.where(found, self._outcomes[slots], np.nan),
            kind_array=self._kind_table[np.where(found, self._kinds[slots], -1)],
            metadata_array=np.where(found, self._metadata[slots], _NO_METADATA),
        )

    def save(self, path: str | Path) -> Path:
        """Write the memory atomically to one file (a zip of JSON, .npy arrays and the Faiss
        index, nothing pickled); returns the path."""
        path = Path(path)
        _atomic_write(path, self._write_archive)
        return path

    def to_bytes(self) -> bytes:
        """The archive ``save`` writes, as bytes: a memory that travels inside another file
        (the autonomous agent's checkpoint holds it as a uint8 tensor)."""
        buffer = io.BytesIO()
        self._write_archive(buffer)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | Path) -> ExternalMemory:
        """Read a memory written by ``save``; a truncated, foreign or newer file is refused."""
        path = Path(path)
        if not path.is_file():
            problem = "no such file" if not path.exists() else "not a regular file"
            raise EpisodicMemoryError(f"memory file {path}: {problem}")
        return cls._from_archive(path, f"memory file {path}")

    @classmethod
    def from_bytes(cls, data: bytes) -> ExternalMemory:
        """Inverse of ``to_bytes``, with every check ``load`` makes."""
        return cls._from_archive(io.BytesIO(data), "memory archive (bytes)")

    @classmethod
    def _from_archive(cls, source: Path | BinaryIO, where: str) -> ExternalMemory:
        header, arrays, index_bytes = _read_archive(source, where)
        try:
            config = MemoryConfig(**header["config"])
            memory = cls(header["dim"], config, seed=header["seed"])
        except (TypeError, EpisodicMemoryError) as exc:
            raise EpisodicMemoryError(f"{where}: bad settings: {exc}") from exc
        memory._restore(where, header, arrays, index_bytes)
        return memory

    def _write_archive(self, file: BinaryIO) -> None:
        """The zip archive of ``save``: header JSON, .npy arrays and the Faiss index."""
        live = np.flatnonzero(self._ids >= 0).tolist()
        header = {
            "format": FORMAT_MARKER,
            "format_version": FORMAT_VERSION,
            "code_version": __version__,
            "dim": self.dim,
            "seed": self.seed,
            "config": asdict(self.config),
            "next_id": self._next_id,
            "ivf_trained": self.config.index == "ivf" and not self._untrained_ivf,
            "kind_names": self._kind_names,
            # Every live slot holds the metadata stored with its event (None only when free).
            "metadata": [
                [slot, dict(cast(Mapping[str, Any], self._metadata[slot]))] for slot in live
            ],
        }
        arrays = {
            "ids": self._ids,
            "outcomes": self._outcomes,
            "kinds": self._kinds,
            "graph_slots": self._graph_slots,
        }
        members = {
            _HEADER: json.dumps(header).encode(),
            "index.faiss": faiss.serialize_index(self._index).tobytes(),
        }
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            members[f"{name}.npy"] = buffer.getvalue()
        _write_zip(file, members)

    @property
    def _inner_product(self) -> bool:
        return self.config.metric == "cosine"

    @property
    def _untrained_ivf(self) -> bool:
        return self.config.index == "ivf" and not isinstance(self._index, faiss.IndexIVF)

    def _new_index(self, *, trained_ivf: bool) -> faiss.Index:
        """An empty index of the configured kind; an IVF starts as an exact flat index."""
        metric = faiss.METRIC_INNER_PRODUCT if self._inner_product else faiss.METRIC_L2
        if self.config.index == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, metric)
            index.hnsw.efConstruction = self.config.ef_construction
            return index
        if self.config.index == "ivf" and trained_ivf:
            quantizer = faiss.IndexFlat(self.dim, metric)
            ivf = faiss.IndexIVFFlat(quantizer, self.dim, self.config.ivf_nlist, metric)
            ivf.own_fields = True
            # .this and DirectMap exist at runtime (SWIG) but are missing from faiss's stubs.
            quantizer.this.disown()  # type: ignore[attr-defined]
            ivf.cp.seed = self.seed
            ivf.cp.spherical = self._inner_product
            ivf.nprobe = self.config.nprobe
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
            return ivf
        return faiss.IndexIDMap2(faiss.IndexFlat(self.dim, metric))

    def _matrix(self, value: Any, name: str) -> np.ndarray:
        """(N, D) contiguous float32, finite, unit-norm under cosine."""
        if (torch := torch_of(value)) is not None:
            value = value.detach().to("cpu", torch.float32).numpy()
        try:
            array = np.array(value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise EpisodicMemoryError(f"memory {name}: not a numeric array: {exc}") from exc
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.dim or len(array) == 0:
            raise EpisodicMemoryError(
                f"memory {name}: expected shape ({self.dim},) or (N, {self.dim}) with N >= 1, "
                f"got {np.shape(value)}"
            )
        # Whole-array checks first; the failing row is looked for only on a failure.
        if not np.isfinite(array).all():
            bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
            raise EpisodicMemoryError(f"memory {name}: row {bad[0]} is not finite")
        if self._inner_product:
            # np.linalg.norm(axis=1)'s own arithmetic, bit for bit, without its Python checks.
            norms = np.sqrt(np.add.reduce(array * array, axis=1, keepdims=True))
            if not norms.all():
                zero = np.flatnonzero(norms[:, 0] == 0)
                raise EpisodicMemoryError(
                    f"memory {name}: row {zero[0]} is all zeros, which has no cosine direction"
                )
            array /= norms
        return np.ascontiguousarray(array)

    def _kind_code(self, name: str) -> int:
        if name not in self._kind_names:
            self._kind_names.append(name)
            self._kind_table = np.array([*self._kind_names, ""], object)
        return self._kind_names.index(name)

    def _victims(self, count: int, codes: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
        """The ``count`` slots the eviction policy gives up, chosen among the stored events."""
        slots = np.flatnonzero(self._ids >= 0)
        ids = self._ids[slots]
        if self.config.eviction == "fifo":
            return slots[np.argsort(ids, kind="stable")[:count]]
        surprise = rarity(
            np.concatenate([self._kinds[slots], codes]),
            np.concatenate([self._outcomes[slots], outcomes]),
        )[: len(slots)]
        return slots[np.lexsort((ids, surprise))[:count]]

    def _add(self, vectors: np.ndarray, slots: np.ndarray) -> None:
        if self.config.index != "hnsw":
            self._index.add_with_ids(vectors, slots)
            return
        first = self._index.ntotal
        # Levels drawn from (seed, graph size), not from an RNG state a saved file cannot keep,
        # so a loaded memory grows exactly as the original would have.
        level_seed = np.random.SeedSequence([self.seed, first]).generate_state(1)[0]
        hnsw = cast(faiss.IndexHNSW, self._index)  # config.index == "hnsw": an IndexHNSWFlat
        hnsw.hnsw.rng = faiss.RandomGenerator(int(level_seed))  # type: ignore[attr-defined]
        with _single_thread():
            self._index.add(vectors)
        self._graph_slots = np.concatenate([self._graph_slots, slots])
        self._node_of_slot[slots] = np.arange(first, first + len(slots))
        self._selector = None

    def _evict(self, slots: np.ndarray) -> None:
        self._ids[slots], self._outcomes[slots], self._kinds[slots] = -1, np.nan, -1
        self._size -= len(slots)
        self._metadata[slots] = None
        if self.config.index != "hnsw":
            # faiss's Python wrapper takes an id array; its stubs only list an IDSelector.
            removed = self._index.remove_ids(slots.astype(np.int64))  # type: ignore[arg-type]
            if removed != len(slots):
                raise RuntimeError(f"memory: Faiss removed {removed} of {len(slots)} events")
            return
        self._graph_slots[self._node_of_slot[slots]] = -1
        self._node_of_slot[slots] = -1
        self._selector = None
        tombstones = np.count_nonzero(self._graph_slots < 0)
        if tombstones > self.config.hnsw_compact_at * len(self._graph_slots):
            self._compact()

    def _compact(self) -> None:
        """Rebuild the HNSW graph from its live nodes, in their insertion order."""
        live = np.flatnonzero(self._graph_slots >= 0)
        hnsw = cast(faiss.IndexHNSW, self._index)  # only HNSW memories compact
        vectors = hnsw.storage.reconstruct_n(0, hnsw.ntotal)[live]
        slots = self._graph_slots[live]
        self._index, self._graph_slots = self._new_index(trained_ivf=False), self._graph_slots[:0]
        self._node_of_slot[:] = -1
        if len(slots):
            self._add(np.ascontiguousarray(vectors), slots)

    def _train_ivf(self) -> None:
        """Train the IVF quantiser on the events held and move them out of the flat index."""
        flat = cast(faiss.IndexIDMap2, self._index)  # an untrained IVF is an IDMap2 flat index
        slots = faiss.vector_to_array(flat.id_map)
        vectors = flat.index.reconstruct_n(0, flat.ntotal)
        index = self._new_index(trained_ivf=True)
        index.train(vectors)
        index.add_with_ids(vectors, slots)
        self._index = index

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw Faiss scores and the slots found (-1: none), for a non-empty memory."""
        if self.config.index != "hnsw":
            return self._index.search(queries, k)
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing from stubs
        params.efSearch = max(self.config.ef_search, k)
        if self._selector is None:
            live = self._graph_slots >= 0
            self._selector = ()
            if not live.all():
                bits = np.packbits(live, bitorder="little")
                self._selector = bits, faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
        if self._selector:
            params.sel = self._selector[1]
        raw, nodes = self._index.search(queries, k, params=params)
        return raw, np.where(nodes >= 0, self._graph_slots[nodes], -1)

    def _restore(
        self, where: str, header: dict[str, Any], arrays: dict[str, np.ndarray], raw: bytes
    ) -> None:
        """Install a saved state after checking that its parts agree with each other."""

        def fail(problem: str) -> EpisodicMemoryError:
            return EpisodicMemoryError(f"{where}: {problem}")

        capacity = self.config.capacity
        for name in ("ids", "outcomes", "kinds"):
            if arrays[name].shape != (capacity,):
                raise fail(f"{name} has shape {arrays[name].shape}, expected ({capacity},)")
        ids, graph_slots = arrays["ids"], arrays["graph_slots"]
        live = ids >= 0
        names = header["kind_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise fail("kind_names must be a list of non-empty strings")
        codes = arrays["kinds"][live]
        if (
            np.any((codes < 0) | (codes >= len(names)))
            or not np.isfinite(arrays["outcomes"][live]).all()
        ):
            raise fail("event kinds or outcomes are out of range")
        next_id = header["next_id"]
        if not isinstance(next_id, int) or (live.any() and ids.max() >= next_id):
            raise fail(f"next_id {next_id!r} does not exceed the stored ids")
        entries = header["metadata"]
        if not isinstance(entries, list) or len(entries) != np.count_nonzero(live):
            raise fail("metadata does not list one entry per stored event")
        try:
            index = faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
            raise fail(f"unreadable Faiss index: {first}") from None
        want = self._new_index(trained_ivf=bool(header["ivf_trained"]))
        graph_ok = bool(graph_slots.ndim == 1 and np.all(graph_slots < capacity))
        if self.config.index == "hnsw":
            graph_ok = graph_ok and np.array_equal(
                np.sort(graph_slots[graph_slots >= 0]), np.flatnonzero(live)
            )
        elif len(graph_slots):
            graph_ok = False
        expected_total = len(graph_slots) if self.config.index == "hnsw" else live.sum()
        if (
            type(index) is not type(want)
            or index.d != self.dim
            or index.metric_type != want.metric_type
            or index.ntotal != expected_total
            or not graph_ok
        ):
            raise fail(
                f"the Faiss index ({type(index).__name__}, d={index.d}, {index.ntotal} vectors) "
                f"does not match the saved settings and events"
            )
        self._index, self._ids, self._next_id = index, ids.copy(), next_id
        self._size = int(live.sum())
        self._outcomes, self._kinds = arrays["outcomes"].copy(), arrays["kinds"].copy()
        self._kind_names = list(names)
        self._kind_table = np.array([*names, ""], object)
        self._graph_slots, self._selector = graph_slots.copy(), None
        if self.config.index == "hnsw":
            nodes = np.flatnonzero(graph_slots >= 0)
            self._node_of_slot[graph_slots[nodes]] = nodes
        elif not self._untrained_ivf and self.config.index == "ivf":
            cast(faiss.IndexIVF, index).nprobe = self.config.nprobe  # a trained IVF index
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
                raise fail(f"bad metadata entry {entry!r:.80}")
            slot = entry[0]
            if not isinstance(slot, int) or not 0 <= slot < capacity or not live[slot]:
                raise fail(f"metadata names slot {slot!r}, which holds no event")
            self._metadata[slot] = MappingProxyType(entry[1])


def rarity(kind_codes: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """Each event's surprise in nats: ``-log P(kind) - log P(an outcome at least this extreme)``.

    Both probabilities are empirical over the events given: the kind's share, and the
    two-sided rank tail of the outcome (ties share their average rank, so equal outcomes are
    equally rare). A common kind with a median outcome scores near 0.
    """
    n = len(kind_codes)
    share = np.bincount(kind_codes)[kind_codes] / n
    ranks = rankdata(outcomes)  # 1..n, average for ties
    tail = np.minimum(1.0, 2.0 * np.minimum(ranks, n + 1 - ranks) / n)
    return -np.log(share) - np.log(tail)


def _write_zip(file: BinaryIO, members: Mapping[str, bytes]) -> None:
    """An uncompressed zip whose bytes depend on ``members`` alone: sorted names, a fixed
    date and mode, so two saves of one memory (and same-seed checkpoints) are identical."""
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = _ZIP_MODE
            archive.writestr(info, members[name])


def _read_archive(
    source: Path | BinaryIO, where: str
) -> tuple[dict[str, Any], dict[str, np.ndarray], bytes]:
    """The header, arrays and index bytes of a memory archive (a file or a buffer), with
    format and version checked; errors start with ``where``."""

    def fail(problem: str) -> EpisodicMemoryError:
        return EpisodicMemoryError(f"{where}: {problem}")

    if not zipfile.is_zipfile(source):
        raise fail("not a memory archive - truncated, corrupted, or not an evotrader memory")
    try:
        with zipfile.ZipFile(source) as archive:
            names = set(archive.namelist())
            if _HEADER not in names:
                raise fail(f"not an evotrader memory - no {_HEADER} (members: {sorted(names)})")
            header = json.loads(archive.read(_HEADER))
            if not isinstance(header, dict) or header.get("format") != FORMAT_MARKER:
                raise fail(f'not an evotrader memory - no "format": "{FORMAT_MARKER}" in it')
            version = header.get("format_version")
            if type(version) is not int or version < 1:
                raise fail(f"format_version must be a positive int, found {version!r}")
            if version > FORMAT_VERSION:
                raise fail(
                    f"format_version {version} is newer than this code supports "
                    f"({FORMAT_VERSION}); it was written by evotrader "
                    f"{header.get('code_version')!r}, upgrade evotrader to read it"
                )
            if names != _MEMBERS:
                raise fail(f"members {sorted(names)} differ from {sorted(_MEMBERS)}")
            missing = {"dim", "seed", "config", "next_id", "ivf_trained", "kind_names", "metadata"}
            missing -= set(header)
            if missing or not isinstance(header["config"], dict):
                raise fail(f"header lacks {sorted(missing) or 'a config dict'}")
            arrays = {}
            for name, dtype in _ARRAYS.items():
                array = np.lib.format.read_array(
                    io.BytesIO(archive.read(f"{name}.npy")), allow_pickle=False
                )
                if array.dtype != dtype or array.ndim != 1:
                    expected = np.dtype(dtype).name
                    raise fail(f"{name} is {array.ndim}-D {array.dtype}, expected 1-D {expected}")
                arrays[name] = array
            index_bytes = archive.read("index.faiss")
    except EpisodicMemoryError:
        raise
    except (zipfile.BadZipFile, json.JSONDecodeError, ValueError, OSError, EOFError) as exc:
        raise fail(f"unreadable ({type(exc).__name__}: {exc})") from exc
    return header, arrays, index_bytes


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write_atomic`` into a folder it creates, its failures as ``EpisodicMemoryError``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EpisodicMemoryError(f"memory file {path}: cannot create its folder: {exc}") from exc
    try:
        write_atomic(path, write)
    except Exception as exc:
        raise EpisodicMemoryError(f"memory file {path}: could not write: {exc}") from exc


@contextmanager
def _single_thread() -> Iterator[None]:
    """Run Faiss on one OpenMP thread (HNSW inserts are order-dependent), then restore."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def torch_of(value: Any) -> ModuleType | None:
    """torch, when ``value`` is a torch tensor; else None. Never imports torch: without it
    loaded nothing is a tensor, so a numpy-only caller does not pay its start-up."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(value, torch.Tensor) else None


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise EpisodicMemoryError(f"{name} must be an int >= {minimum}, got {value!r}")


def _outcomes(outcome: Any, n: int) -> np.ndarray:
    if torch_of(outcome) is not None:
        outcome = outcome.detach().cpu().numpy()
    try:
        values = np.array(outcome, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise EpisodicMemoryError(f"memory outcome: not numeric: {exc}") from exc
    if values.shape != (n,):
        raise EpisodicMemoryError(f"memory outcome: expected {n} values, got {values.size}")
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise EpisodicMemoryError(f"memory outcome: value {bad[0]} is {values[bad[0]]}")
    return values


def _metadata(metadata: Any, n: int) -> list[Mapping[str, Any]]:
    """Read-only JSON copies (keys become strings), so what is stored is what a load returns."""
    if metadata is None:
        items: list[Any] = [{}] * n
    elif isinstance(metadata, Mapping):
        items = [metadata] * n if n == 1 else []
    else:
        items = list(metadata)
    if len(items) != n:
        raise EpisodicMemoryError(
            f"memory metadata: expected one dict per event ({n}), got "
            f"{'one dict' if isinstance(metadata, Mapping) else len(items)}"
        )
    copies: list[Mapping[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise EpisodicMemoryError(f"memory metadata[{i}]: expected a dict, got {item!r:.80}")
        try:
            copies.append(MappingProxyType(json.loads(json.dumps(dict(item)))))
        except (TypeError, ValueError) as exc:
            raise EpisodicMemoryError(f"memory metadata[{i}]: not JSON-able: {exc}") from exc
    return copies


def _kind_list(kind: str | Sequence[str], n: int) -> list[str]:
    names = [kind] * n if isinstance(kind, str) else list(kind)
    if len(names) != n:
        raise EpisodicMemoryError(f"memory kind: expected 1 or {n} names, got {len(names)}")
    bad = [name for name in names if not isinstance(name, str) or not name]
    if bad:
        raise EpisodicMemoryError(f"memory kind: names must be non-empty strings, got {bad[0]!r}")
    return names
