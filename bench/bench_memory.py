"""ExternalMemory at 1M events of 64 dims: store time, k=16 latency and its overhead over raw
Faiss, batched throughput, recall; then recall on real market states.

Events are seeded clustered Gaussians (cosine metric, as the agent uses; 64 dims, the agent's
embedding size), queries fresh draws from the same clusters. For each index type it prints the
time to store all events (IVF training and HNSW graph building included), single-query
retrieve latency p50 / p99, the p50 of the same queries on the memory's own Faiss index searched
directly (raw Faiss: the same search without the wrapper, queries normalised beforehand) and
the overhead between them, batched throughput both ways, and recall@k against the exact flat
search of the same memory. Memory and raw passes alternate, so a busy machine slows both alike.
HNSW is opt-in (``--indexes hnsw ivf``): building its graph over 1M events takes minutes.

Real market states: the feature windows (window x channels, flattened) of the embedded GOOG
bars, the pipeline fitted on the first 60%; the earlier windows are stored and the later ones
query them, recall@k of each approximate index against the flat one. (Raw feature windows, not a
trained trunk's embeddings: no trained checkpoint ships with the repository.)
On a shared, loaded machine use ``--threads 1``: OpenMP threads that wait for a busy core
make single-query Faiss searches many times slower.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from evotrader.data import FeaturePipeline, load_bars
from evotrader.memory import ExternalMemory, MemoryConfig


def clustered(n: int, dim: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` points around randomly chosen ``centres``, float32."""
    labels = rng.integers(len(centres), size=n)
    return (centres[labels] + rng.standard_normal((n, dim), dtype=np.float32)).astype(np.float32)


def fill(
    config: MemoryConfig, events: np.ndarray, chunk: int, seed: int
) -> tuple[ExternalMemory, float]:
    """A memory holding ``events``, stored ``chunk`` at a time, and the seconds that took."""
    memory = ExternalMemory(events.shape[1], config, seed=seed)
    outcomes = np.zeros(chunk)
    start = time.perf_counter()
    for first in range(0, len(events), chunk):
        part = events[first : first + chunk]
        memory.store(part, outcomes[: len(part)])
    return memory, time.perf_counter() - start


def raw_search(memory: ExternalMemory) -> Callable[[np.ndarray, int], object]:
    """The memory's own Faiss index searched directly, with the memory's search parameters: the
    peer, doing the same search work without the wrapper (the bench may look inside)."""
    index, config = memory._index, memory.config
    if config.index != "hnsw":
        return index.search
    params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]

    def search(queries: np.ndarray, k: int) -> object:
        params.efSearch = max(config.ef_search, k)
        return index.search(queries, k, params=params)

    return search


def latencies_ms(
    search: Callable[[np.ndarray, int], object], queries: np.ndarray, k: int
) -> list[float]:
    times = []
    for i in range(len(queries)):
        query = queries[i : i + 1]
        start = time.perf_counter()
        search(query, k)
        times.append(time.perf_counter() - start)
    return [t * 1e3 for t in times]


def unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as the cosine memory stores them (raw Faiss gets these)."""
    return np.ascontiguousarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), np.float32)


def versus_raw(
    memory: ExternalMemory, queries: np.ndarray, batch: np.ndarray, k: int, passes: int
) -> dict[str, Any]:
    """Single-query p50/p99 and batched seconds, memory and raw Faiss, passes alternated;
    "ids" holds the memory's batched result (the recall figures use it)."""
    raw = raw_search(memory)
    normed, normed_batch = unit(queries), unit(batch)
    mem_ms: list[float] = []
    raw_ms: list[float] = []
    mem_s: list[float] = []
    raw_s: list[float] = []
    found: list[np.ndarray] = []
    for turn in range(2 * passes):
        if turn % 2 == 0:
            mem_ms += latencies_ms(memory.retrieve, queries, k)
            mem_s.append(seconds(lambda: found.append(memory.retrieve(batch, k).ids)))
        else:
            raw_ms += latencies_ms(raw, normed, k)
            raw_s.append(seconds(lambda: raw(normed_batch, k)))
    p50, p99 = np.percentile(mem_ms, [50, 99])
    return {
        "p50": float(p50),
        "p99": float(p99),
        "raw p50": float(np.median(raw_ms)),
        "batched": float(np.median(mem_s)),
        "raw batched": float(np.median(raw_s)),
        "ids": found[-1],
    }


def seconds(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def market_states(symbol: str, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Flattened feature windows of the embedded bars: (before the 60% split, after it)."""
    bars = load_bars("embedded", symbol)
    cut = int(len(bars) * 0.6)
    features = FeaturePipeline().fit(bars.iloc[:cut]).transform(bars)
    windows = np.lib.stride_tricks.sliding_window_view(features, window, axis=0)
    flat = windows.reshape(len(windows), -1).astype(np.float32)
    usable = np.isfinite(flat).all(axis=1) & (np.abs(flat).sum(axis=1) > 0)  # warm-up rows
    before = np.arange(len(flat)) < cut - window + 1  # the window's last bar is before the cut
    return flat[usable & before], flat[usable & ~before]


def market_recall(args: argparse.Namespace) -> None:
    """Recall@k of each approximate index on real market states, against the flat index."""
    events, queries = market_states(args.symbol, args.window)
    small_nlist = max(1, len(events) // (4 * 39))  # trained once a quarter of the events is in
    configs = {
        "flat": MemoryConfig(index="flat", capacity=len(events)),
        "hnsw": MemoryConfig(index="hnsw", capacity=len(events), hnsw_m=args.hnsw_m),
        "ivf": MemoryConfig(
            index="ivf",
            capacity=len(events),
            ivf_nlist=small_nlist,
            nprobe=max(1, small_nlist // 4),
        ),
    }
    print(
        f"market states: embedded {args.symbol}, {events.shape[1]}-dim feature windows "
        f"({args.window} bars), {len(events)} stored (first 60%), {len(queries)} queries (after)"
    )
    truth = None
    for name in ("flat", "hnsw", "ivf"):
        memory, _ = fill(configs[name], events, len(events), args.seed)
        found = memory.retrieve(queries, args.k).ids
        truth = found if truth is None else truth
        detail = f" nlist={small_nlist} nprobe={configs['ivf'].nprobe}" if name == "ivf" else ""
        print(f"  {name:<6}recall@{args.k} {recall(found, truth):.3f}{detail}")


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true k nearest events that were found."""
    hits = [len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=1.0, help="centre scale; noise std is 1")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--queries", type=int, default=1000, help="batched and recall queries")
    parser.add_argument("--latency-queries", type=int, default=200, help="per pass")
    parser.add_argument("--passes", type=int, default=2, help="alternated memory/raw passes")
    parser.add_argument("--chunk", type=int, default=100_000, help="events per store call")
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--ef-search", type=int, default=256)
    parser.add_argument("--ivf-nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument(
        "--indexes",
        nargs="+",
        default=["ivf"],
        choices=["hnsw", "ivf"],
        help="approximate indexes to measure; flat always runs, as the exact reference",
    )
    parser.add_argument("--threads", type=int, default=0, help="Faiss OpenMP threads, 0: default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--symbol", default="GOOG", help="embedded bars for the market states")
    parser.add_argument("--window", type=int, default=32, help="bars per market state")
    args = parser.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.clusters, args.dim), dtype=np.float32) * args.spread
    events = clustered(args.events, args.dim, centres, rng)
    queries = clustered(args.queries, args.dim, centres, rng)
    shared = {"capacity": args.events, "metric": "cosine"}
    configs = {
        "flat": MemoryConfig(index="flat", **shared),
        "hnsw": MemoryConfig(index="hnsw", hnsw_m=args.hnsw_m, ef_search=args.ef_search, **shared),
        "ivf": MemoryConfig(index="ivf", ivf_nlist=args.ivf_nlist, nprobe=args.nprobe, **shared),
    }
    print(
        f"events={args.events:,} dim={args.dim} clusters={args.clusters} spread={args.spread} "
        f"k={args.k} metric=cosine faiss={faiss.__version__} "
        f"omp_threads={faiss.omp_get_max_threads()} (HNSW graphs are built on 1, for determinism)"
    )
    print(
        f"hnsw M={args.hnsw_m} efConstruction={configs['hnsw'].ef_construction} "
        f"efSearch={args.ef_search}; ivf nlist={args.ivf_nlist} nprobe={args.nprobe} "
        f"(trains at {configs['ivf'].ivf_train_size:,} events)"
    )
    print(
        f"{'index':<6}{'store s':>9}{'p50 ms':>9}{'p99 ms':>9}{'raw p50':>9}{'overhead':>10}"
        f"{'batch q/s':>11}{'raw q/s':>10}{'overhead':>10}{'recall@' + str(args.k):>11}"
    )
    truth = None
    for name in ["flat", *args.indexes]:
        config = configs[name]
        memory, store_s = fill(config, events, args.chunk, args.seed)
        got = versus_raw(memory, queries[: args.latency_queries], queries, args.k, args.passes)
        found = got["ids"]
        truth = found if truth is None else truth
        print(
            f"{name:<6}{store_s:>9.1f}{got['p50']:>9.3f}{got['p99']:>9.3f}{got['raw p50']:>9.3f}"
            f"{got['p50'] / got['raw p50'] - 1:>10.1%}{len(queries) / got['batched']:>11,.0f}"
            f"{len(queries) / got['raw batched']:>10,.0f}"
            f"{got['batched'] / got['raw batched'] - 1:>10.1%}{recall(found, truth):>11.3f}"
        )
        del memory
        gc.collect()
    print(
        f"latency: {args.passes} x {args.latency_queries} single-query retrieves, p50 / p99; raw: "
        f"the memory's own Faiss index searched directly; batched: one retrieve of "
        f"{args.queries} queries (median of {args.passes}); recall against the flat memory"
    )
    market_recall(args)


if __name__ == "__main__":
    main()
