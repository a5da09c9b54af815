"""Latency of one cost-model iteration, next to the paper's claim (< 0.1 s).

One iteration (steps 2-4 of the search, :func:`sgquant.search.cost_model_step`):
fit the XGBoost regressor on the measured set, generate ``N_sample`` fresh
candidates (uniform draws, mutations and recombinations of the best measured
ones), compute their features (bits per field plus average bits / memory /
saving from :mod:`sgquant.memory`), predict, pick the top ``N_mea``.

The candidates' features are computed for the whole batch at once by
:func:`sgquant.memory.batch_memory`; a second table times it against the
previous way, one :func:`sgquant.memory.feature_memory` call per candidate,
on the same candidates (and checks the two agree exactly).

Rows are given for one regressor (the paper's single model) and for
sgquant's default bagged ensemble of 5 (``search.STRATEGY``).

The measured sets are synthetic (uniform random configurations with an
accuracy shaped like GCN's: lossless binary inputs, a drop when another field
has fewer than 4 bits, noise), on the real feature layouts of Cora and
CiteSeer GCN (no training needed). Each phase is timed separately, median of
``--repeats`` runs, on one thread, and printed with its ratio to the paper's
0.1 s.

    .venv/bin/python benchmarks/search_latency.py [--n-sample 10000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from sgquant.data import degree_buckets, load_dataset
from sgquant.measure import build_for
from sgquant.memory import feature_layout, feature_memory
from sgquant.profiles import get_profile
from sgquant.search import SearchSpace, FeatureCache, cost_model_step

PAPER_CLAIM_S = 0.1
PHASES = ("fit", "generate", "features", "predict", "select")


def layout_of(dataset: str, model: str, profile: str = "default"):
    prof = get_profile(profile)
    data = load_dataset(dataset)
    buckets = degree_buckets(data.edge_index, data.num_nodes, prof.num_buckets)
    net = build_for(data, model, prof)
    return feature_layout(net, data.edge_index, data.num_nodes, buckets)


def synthetic_measured(space: SearchSpace, n: int, rng: np.random.Generator):
    vecs = space.random_vectors(rng, n)
    other = [i for i, f in enumerate(space.fields) if not f.startswith("emb_L1")]
    acc = 0.80 - 0.25 * (vecs[:, other].min(axis=1) < 4) + rng.normal(0, 0.01, n)
    return vecs, acc


def time_iteration(space, layout, measured, acc, n_sample, n_mea, seed, ensemble) -> dict:
    timings: dict = {}
    features = FeatureCache(space, layout)  # fresh: no memoised candidates
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    cost_model_step(space, features, measured, acc, threshold=0.795, n_sample=n_sample,
                    n_mea=n_mea, rng=rng, seed=seed, ensemble=ensemble, fp32_accuracy=0.80,
                    timings=timings)
    timings["total"] = time.perf_counter() - start
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["Cora", "CiteSeer"])
    parser.add_argument("--model", default="gcn")
    parser.add_argument("--n-sample", type=int, default=10_000)
    parser.add_argument("--n-mea", type=int, default=10)
    parser.add_argument("--measured", type=int, nargs="+", default=[10, 40, 200],
                        help="sizes of the measured set the model is fitted on")
    parser.add_argument("--ensemble", type=int, nargs="+", default=[1, 5],
                        help="regressors in the cost model (1: the paper's single model; "
                             "5: sgquant's default bagged ensemble)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"cost-model iteration latency: N_sample={args.n_sample}, N_mea={args.n_mea}, "
          f"median of {args.repeats}, 1 thread, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print(f"paper's claim: < {PAPER_CLAIM_S} s per iteration\n")
    header = (f"{'dataset':10s} {'fields':>6s} {'models':>6s} {'measured':>8s} " +
              " ".join(f"{p:>9s}" for p in PHASES) +
              f" {'total s':>8s} {'x claim':>8s} {'model-only s':>12s} {'x claim':>8s}")
    print(header)
    print("-" * len(header))
    for dataset in args.datasets:
        layout = layout_of(dataset, args.model)
        space = SearchSpace.from_layout(layout)
        for ens, m in [(e, m) for e in args.ensemble for m in args.measured]:
            runs = []
            for r in range(args.repeats + 1):
                rng = np.random.default_rng(100 + r)
                measured, acc = synthetic_measured(space, m, rng)
                t = time_iteration(space, layout, measured, acc, args.n_sample, args.n_mea, r,
                                   ens)
                if r:  # the first run warms up xgboost
                    runs.append(t)
            med = {k: statistics.median(t[k] for t in runs) for k in (*PHASES, "total")}
            model_only = med["fit"] + med["predict"] + med["select"]
            print(f"{dataset:10s} {len(space.free_fields):6d} {ens:6d} {m:8d} " +
                  " ".join(f"{med[p]:9.4f}" for p in PHASES) +
                  f" {med['total']:8.3f} {med['total'] / PAPER_CLAIM_S:7.2f}x"
                  f" {model_only:12.4f} {model_only / PAPER_CLAIM_S:7.2f}x")
    print("\nphases in seconds; 'x claim' = measured / 0.1 s (below 1 meets the claim);"
          "\n'model-only' = fit + predict + select, without generating and featurising"
          " the candidates;\n'features' = sgquant.memory.batch_memory on all candidates at once.")
    print(f"\ncandidate features, {args.n_sample} candidates, median of {args.repeats}:")
    print(f"{'dataset':10s} {'per-candidate feature_memory s':>31s} {'batch_memory s':>15s} "
          f"{'speed-up':>9s} {'identical':>9s}")
    for dataset in args.datasets:
        layout = layout_of(dataset, args.model)
        space = SearchSpace.from_layout(layout)
        loop_t, batch_t, same = [], [], True
        for r in range(args.repeats):
            vecs = space.random_vectors(np.random.default_rng(200 + r), args.n_sample)
            start = time.perf_counter()
            rows = []
            for v in vecs:  # the previous FeatureCache.rows
                rep = feature_memory(layout, space.assignment(v))
                rows.append(np.concatenate([v.astype(np.float64),
                                            [rep.average_bits, rep.mb, rep.saving]]))
            loop = np.array(rows)
            loop_t.append(time.perf_counter() - start)
            start = time.perf_counter()
            batch = FeatureCache(space, layout).rows(vecs)
            batch_t.append(time.perf_counter() - start)
            same &= bool(np.array_equal(loop, batch))
        lt, bt = statistics.median(loop_t), statistics.median(batch_t)
        print(f"{dataset:10s} {lt:31.4f} {bt:15.4f} {lt / bt:8.0f}x {str(same):>9s}")


if __name__ == "__main__":
    main()
