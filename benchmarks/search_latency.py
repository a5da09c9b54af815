"""Latency of one cost-model iteration, before and after, measured side by side.

One iteration (steps 2-4 of the search, :func:`sgquant.search.cost_model_step`):
fit the cost model on the measured set, generate ``N_sample`` fresh candidates
(uniform draws, mutations and recombinations of the best ones, over a few
generations), compute their features, predict, pick the top ``N_mea``.

Three implementations run on the same inputs, their repeats interleaved (so a busy
machine slows them alike):

* ``before``: ``sgquant/search.py`` as it was at ``--baseline`` (default
  ``9de157f``, the last commit before the search package), read from git and timed
  with its own default strategy (per-row candidate loops, 5 x 100-tree
  ``XGBRegressor``);
* ``after, old fit``: this code with the old regressor settings (100 trees,
  learning rate 0.2, 256 bins): what vectorised candidates alone gain;
* ``after``: this code with its default :data:`sgquant.search.STRATEGY`.

The measured sets are synthetic (uniform random configurations with an accuracy
shaped like GCN's: lossless binary inputs, a drop when another field has fewer than
4 bits, noise), on the real feature layouts of Cora and CiteSeer GCN (no training).
Each phase is timed separately on one thread; the table gives medians over
``--repeats`` and each row's speed-up over ``before``. The last line is the
headline: the median time of one default iteration on Cora (40 measured, 10,000
candidates).

    .venv/bin/python benchmarks/search_latency.py [--n-sample 10000] [--repeats 7]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread, before numpy is imported

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Callable, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sgquant import search  # noqa: E402
from sgquant.checks import check_int, check_int_list  # noqa: E402
from sgquant.data import degree_buckets, load_dataset  # noqa: E402
from sgquant.measure import build_for  # noqa: E402
from sgquant.memory import feature_layout, feature_memory  # noqa: E402
from sgquant.models import MODELS  # noqa: E402
from sgquant.profiles import get_profile  # noqa: E402

from _args import ScriptParser, check_dataset, run_script  # noqa: E402  (benchmarks/_args.py)

PAPER_CLAIM_S = 0.1
PHASES = ("fit", "generate", "features", "predict", "select")
REPO = Path(__file__).resolve().parents[1]
OLD_FIT = {"trees": 100, "learning_rate": 0.2, "max_bin": 256}


def layout_of(dataset: str, model: str, profile: str = "default"):
    prof = get_profile(profile)
    data = load_dataset(dataset)
    buckets = degree_buckets(data.edge_index, data.num_nodes, prof.num_buckets)
    net = build_for(data, model, prof)
    return feature_layout(net, data.edge_index, data.num_nodes, buckets)


def synthetic_measured(space, n: int, rng: np.random.Generator):
    vecs = space.random_vectors(rng, n)
    other = [i for i, f in enumerate(space.fields) if not f.startswith("emb_L1")]
    acc = 0.80 - 0.25 * (vecs[:, other].min(axis=1) < 4) + rng.normal(0, 0.01, n)
    return vecs, acc


def load_baseline(rev: str) -> Optional[ModuleType]:
    """``sgquant/search.py`` at git revision ``rev`` as a module of this package (its
    relative imports resolve against the current sgquant), or ``None``."""
    try:
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:sgquant/search.py"],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    name = "sgquant._search_baseline"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, None))
    module.__package__ = "sgquant"
    sys.modules[name] = module
    exec(compile(text, f"{rev}:sgquant/search.py", "exec"), module.__dict__)
    return module


def stepper(module: ModuleType, layout, ensemble: int, **strategy) -> Callable:
    """A function timing one iteration of ``module``'s ``cost_model_step``."""
    space = module.SearchSpace.from_layout(layout)

    def run(measured: np.ndarray, acc: np.ndarray, n_sample: int, n_mea: int, seed: int
            ) -> dict:
        timings: dict = {}
        features = module.FeatureCache(space, layout)  # fresh: no memoised candidates
        start = time.perf_counter()
        module.cost_model_step(space, features, measured, acc, threshold=0.795,
                               n_sample=n_sample, n_mea=n_mea,
                               rng=np.random.default_rng(seed), seed=seed,
                               ensemble=ensemble, fp32_accuracy=0.80, timings=timings,
                               **strategy)
        timings["total"] = time.perf_counter() - start
        return timings
    return run


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The options, each checked before any timing (``_args``): counts >= 1, the model,
    the datasets registered and present."""
    parser = ScriptParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["Cora", "CiteSeer"])
    parser.add_argument("--model", default="gcn", choices=MODELS)
    parser.add_argument("--n-sample", type=int, default=10_000)
    parser.add_argument("--n-mea", type=int, default=10)
    parser.add_argument("--measured", type=int, nargs="+", default=[40, 200],
                        help="sizes of the measured set the model is fitted on")
    parser.add_argument("--ensemble", type=int, nargs="+", default=[5, 1],
                        help="regressors in the cost model (5: sgquant's default bagged "
                             "ensemble; 1: the paper's single model)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline", default="9de157f",
                        help="git revision of the 'before' implementation (sgquant/search.py)")
    args = parser.parse_args(argv)
    for name in ("n_sample", "n_mea", "repeats"):
        check_int(getattr(args, name), f"--{name.replace('_', '-')}", minimum=1)
    check_int_list(args.measured, "--measured", minimum=1)
    check_int_list(args.ensemble, "--ensemble", minimum=1)
    args.datasets = [check_dataset(d, "--datasets") for d in args.datasets]
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    baseline = load_baseline(args.baseline)
    print(f"cost-model iteration latency: N_sample={args.n_sample}, N_mea={args.n_mea}, "
          f"median of {args.repeats}, 1 thread, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; paper's claim: < {PAPER_CLAIM_S} s per iteration")
    if baseline is None:
        print(f"before: not measured (git revision {args.baseline} of sgquant/search.py "
              "is not available here)")
    header = (f"{'dataset':9s} {'models':>6s} {'measured':>8s} {'implementation':20s} " +
              " ".join(f"{p:>8s}" for p in PHASES) +
              f" {'total s':>8s} {'x claim':>7s} {'speed-up':>8s}")
    print("\n" + header + "\n" + "-" * len(header))
    headline = None
    for dataset in args.datasets:
        layout = layout_of(dataset, args.model)
        for ens in args.ensemble:
            impls = {}
            if baseline is not None:
                impls[f"before ({args.baseline})"] = stepper(baseline, layout, ens)
            impls["after, old fit"] = stepper(search, layout, ens, **OLD_FIT)
            impls["after"] = stepper(search, layout, ens)
            for m in args.measured:
                runs: dict[str, list] = {name: [] for name in impls}
                space = search.SearchSpace.from_layout(layout)
                for r in range(args.repeats + 1):
                    measured, acc = synthetic_measured(space, m, np.random.default_rng(100 + r))
                    for name, run in impls.items():  # interleaved: the same load for all
                        t = run(measured, acc, args.n_sample, args.n_mea, r)
                        if r:  # the first run warms up xgboost
                            runs[name].append(t)
                first = None
                for name, ts in runs.items():
                    med = {k: statistics.median(t[k] for t in ts) for k in (*PHASES, "total")}
                    first = first or med["total"]
                    print(f"{dataset:9s} {ens:6d} {m:8d} {name:20s} " +
                          " ".join(f"{med[p]:8.4f}" for p in PHASES) +
                          f" {med['total']:8.4f} {med['total'] / PAPER_CLAIM_S:6.2f}x"
                          f" {first / med['total']:7.1f}x")
                    if (name, dataset, ens, m) == ("after", args.datasets[0], 5, 40):
                        headline = med["total"]
    print("\nphases in seconds (medians); 'x claim' = total / 0.1 s (below 1 meets the "
          "paper's claim); 'speed-up' = the first row's total / this row's")
    features_table(args)
    if headline is not None:
        print(f"\ncost-model iteration: {headline:.4f} s ({args.n_sample:,} candidates, "
              "default settings, 1 thread)")
    return 0


def features_table(args: argparse.Namespace) -> None:
    """The candidates' features computed for the whole batch (``FeatureCache``) against
    one :func:`sgquant.memory.feature_memory` call per candidate (and that they agree)."""
    print(f"\ncandidate features, {args.n_sample} candidates, median of {args.repeats}:")
    print(f"{'dataset':10s} {'per-candidate feature_memory s':>31s} {'batch_memory s':>15s} "
          f"{'speed-up':>9s} {'identical':>9s}")
    for dataset in args.datasets:
        layout = layout_of(dataset, args.model)
        space = search.SearchSpace.from_layout(layout)
        loop_t, batch_t, same = [], [], True
        for r in range(args.repeats):
            vecs = space.random_vectors(np.random.default_rng(200 + r), args.n_sample)
            start = time.perf_counter()
            rows = []
            for v in vecs:
                rep = feature_memory(layout, space.assignment(v))
                rows.append(np.concatenate([v.astype(np.float64),
                                            [rep.average_bits, rep.mb, rep.saving]]))
            loop = np.array(rows)
            loop_t.append(time.perf_counter() - start)
            start = time.perf_counter()
            batch = search.FeatureCache(space, layout).rows(vecs)
            batch_t.append(time.perf_counter() - start)
            same &= bool(np.array_equal(loop, batch))
        lt, bt = statistics.median(loop_t), statistics.median(batch_t)
        print(f"{dataset:10s} {lt:31.4f} {bt:15.4f} {lt / bt:8.0f}x {str(same):>9s}")


if __name__ == "__main__":
    sys.exit(run_script(main))
