"""ExternalMemory at 1M events of 64 dims: store time, k=16 latency, batched throughput, recall.

Events are seeded clustered Gaussians (cosine metric, as the agent uses), queries fresh draws
from the same clusters. For each index type it prints the time to store all events (IVF
training and HNSW graph building included), single-query retrieve latency p50 / p99, batched
retrieve throughput, and recall@k against the exact flat search of the same memory.
On a shared, loaded machine use ``--threads 1``: OpenMP threads that wait for a busy core
make single-query Faiss searches many times slower.
"""

from __future__ import annotations

import argparse
import gc
import time

import faiss
import numpy as np

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


def latencies_ms(memory: ExternalMemory, queries: np.ndarray, k: int) -> np.ndarray:
    times = np.empty(len(queries))
    for i, query in enumerate(queries):
        start = time.perf_counter()
        memory.retrieve(query, k)
        times[i] = time.perf_counter() - start
    return times * 1e3


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
    parser.add_argument("--latency-queries", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=100_000, help="events per store call")
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--ef-search", type=int, default=256)
    parser.add_argument("--ivf-nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument(
        "--indexes",
        nargs="+",
        default=["hnsw", "ivf"],
        choices=["hnsw", "ivf"],
        help="approximate indexes to measure; flat always runs, as the exact reference",
    )
    parser.add_argument("--threads", type=int, default=0, help="Faiss OpenMP threads, 0: default")
    parser.add_argument("--seed", type=int, default=0)
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
        f"{'index':<6}{'store s':>10}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'batched q/s':>14}{'recall@' + str(args.k):>12}"
    )
    truth = None
    for name in ["flat", *args.indexes]:
        config = configs[name]
        memory, store_s = fill(config, events, args.chunk, args.seed)
        lat = latencies_ms(memory, queries[: args.latency_queries], args.k)
        start = time.perf_counter()
        found = memory.retrieve(queries, args.k).ids
        rate = len(queries) / (time.perf_counter() - start)
        truth = found if truth is None else truth
        p50, p99 = np.percentile(lat, [50, 99])
        print(
            f"{name:<6}{store_s:>10.1f}{p50:>10.3f}{p99:>10.3f}"
            f"{rate:>14,.0f}{recall(found, truth):>12.3f}"
        )
        del memory
        gc.collect()
    print(
        f"latency: {args.latency_queries} single-query retrieves; batched: one retrieve of "
        f"{args.queries} queries; recall against the flat memory's exact results"
    )


if __name__ == "__main__":
    main()
