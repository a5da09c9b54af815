"""Scaling of FP32 against packed inference: time and peak memory, side by side.

Synthetic graphs with Reddit's profile (degree-corrected stochastic block model,
heavy-tailed degrees, mean in-degree ~492, 602 dense features, 41 classes; see
:func:`sgquant.synthetic.synthetic_graph`) from 10^4 nodes up to Reddit's 232,965.
Edges are ``min(mean_degree * nodes, --max-edges)``: Reddit's 114.6M edges do not fit
an FP32 PyG pass on a 24 GiB machine (its messages alone are E x 41 float32, twice),
so the default caps them and the output says by how much. Every (graph, mode) runs in
a fresh process (:func:`sgquant.memory.run_isolated`) for a clean peak RSS. Modes:
``fp32`` (the PyG model), ``chunked_fp32`` (the packed runner with every field at 32
bits: no E x d message tensors, so it separates chunking from packing) and ``packed``.

``--dataset Reddit`` measures the real graph where its files are present (they load
through :func:`sgquant.data.load_dataset`); when a full batch would not fit in memory,
both modes run by neighbour-sampled mini-batches (``--num-neighbors``,
``--batch-size``), with the chunked FP32 path as the baseline. ``--dataset Cora
--sampled`` exercises that path on a small graph.

Usage::

    .venv/bin/python benchmarks/scaling.py                      # default, ~5-10 min
    .venv/bin/python benchmarks/scaling.py --max-nodes 30000    # a quick look
    .venv/bin/python benchmarks/scaling.py --max-edges 3e7 --memory-limit-gb 14
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sgquant.bits import BitAssignment  # noqa: E402
from sgquant.cache import atomic_write_json  # noqa: E402
from sgquant.memory import MB, run_isolated  # noqa: E402
from sgquant.models import build_model  # noqa: E402
from sgquant.profiles import get_profile  # noqa: E402
from sgquant.synthetic import SYNTHETIC  # noqa: E402

REDDIT = SYNTHETIC["Reddit-synthetic"]
DEFAULT_NODES = (10_000, 30_000, 100_000, REDDIT["num_nodes"])


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def fp32_estimate_bytes(nodes: int, edges: int, features: int, widths: list[int],
                        heads: int = 1) -> float:
    """Rough peak of a PyG FP32 pass: features, edge index (+ self-looped copy and
    weights), and per layer the gathered and weighted messages (2 x E x width)."""
    e = edges + nodes
    return (4 * nodes * features + 16 * edges + 20 * e
            + max(2 * 4 * e * w * heads for w in widths) + 8 * nodes * max(widths))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default=",".join(str(n) for n in DEFAULT_NODES),
                   help="comma-separated node counts")
    p.add_argument("--max-nodes", type=float, default=None)
    p.add_argument("--mean-degree", type=float, default=REDDIT["num_edges"] / REDDIT["num_nodes"])
    p.add_argument("--max-edges", type=float, default=1e7,
                   help="cap on directed edges (default 1e7; Reddit has 1.146e8)")
    p.add_argument("--features", type=int, default=REDDIT["num_features"])
    p.add_argument("--classes", type=int, default=REDDIT["num_classes"])
    p.add_argument("--model", default="gcn", choices=("gcn", "agnn", "gat"))
    p.add_argument("--profile", default="default", help="architecture (GAT width) source")
    p.add_argument("--bits", type=int, default=4, help="uniform bits of the packed run")
    p.add_argument("--chunk-size", type=int, default=4096)
    p.add_argument("--edge-chunk-size", type=int, default=1 << 16)
    p.add_argument("--modes", default="fp32,chunked_fp32,packed",
                   help="comma-separated from fp32, fake_quant, chunked_fp32, packed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    p.add_argument("--memory-limit-gb", type=float, default=10.0,
                   help="skip runs whose estimated FP32 peak exceeds this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default=None, help="a real dataset (e.g. Reddit) instead")
    p.add_argument("--sampled", action="store_true",
                   help="neighbour-sampled mini-batches (automatic for --dataset when a "
                        "full batch does not fit)")
    p.add_argument("--num-neighbors", default="25,10")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--out", default=None, help="write the records as JSON here")
    args = p.parse_args(argv)

    prof = get_profile(args.profile)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    limit = args.memory_limit_gb * 2**30
    arch = prof.architecture(args.model)
    probe = build_model(args.model, args.features, args.classes, **arch)
    widths = [spec.in_dim for spec in probe.layer_specs[1:]] + [args.classes]
    heads = max(spec.heads for spec in probe.layer_specs)
    layers = probe.num_layers
    asg = BitAssignment.uniform(args.bits, layers)
    print(f"# sgquant scaling benchmark: model {args.model} {arch}, packed = uniform "
          f"{args.bits}-bit, chunk {args.chunk_size} rows / {args.edge_chunk_size} edges, "
          f"{args.threads} thread(s), torch {torch.__version__}, {os.cpu_count()} CPUs")

    configs = []
    if args.dataset:
        from sgquant.data import DatasetUnavailableError, dataset_statistics, load_dataset
        try:
            data = load_dataset(args.dataset)
        except DatasetUnavailableError as exc:
            print(f"{args.dataset} is not available here: {exc}")
            return 2
        st = dataset_statistics(data)
        need = fp32_estimate_bytes(st["nodes"], st["edges"], st["features"], widths, heads)
        sampled = args.sampled or need > limit
        print(f"# {args.dataset}: {st['nodes']} nodes, {st['edges']} edges; FP32 full-batch "
              f"estimate {need / 2**30:.1f} GiB -> "
              f"{'neighbour sampling ' + args.num_neighbors if sampled else 'full batch'}")
        del data
        run_modes = ["chunked_fp32", "packed"] if sampled else modes
        configs.append((args.dataset, st["nodes"], st["edges"], run_modes,
                        {"num_neighbors": [int(v) for v in _floats(args.num_neighbors)],
                         "batch_size": args.batch_size, "seed": args.seed} if sampled else None))
    else:
        nodes = [int(v) for v in _floats(args.nodes)]
        if args.max_nodes:
            nodes = [n for n in nodes if n <= args.max_nodes]
        for n in nodes:
            want = int(round(args.mean_degree * n))
            e = int(min(want, args.max_edges))
            spec = {"num_nodes": n, "num_edges": e, "num_features": args.features,
                    "num_classes": args.classes}
            note = "" if e == want else (f" (scaled down from {want:,} = mean degree "
                                         f"{args.mean_degree:.0f}: mean degree {e / n:.0f})")
            print(f"# graph: {n:,} nodes, {e:,} edges{note}")
            if {"fp32", "fake_quant"} & set(modes):
                need, what = fp32_estimate_bytes(n, e, args.features, widths, heads), "FP32"
            else:  # chunked paths: features, the edge index, generation temporaries
                need, what = 4 * n * args.features + 48 * e, "chunked"
            if need > limit:
                print(f"#   skipped: {what} estimate {need / 2**30:.1f} GiB > "
                      f"--memory-limit-gb {args.memory_limit_gb}")
                continue
            configs.append((spec, n, e, modes, None))

    records = []
    header = (f"{'nodes':>9} {'edges':>12} {'mode':>13} {'seconds':>9} {'total MB':>10} "
              f"{'pass MB':>9} {'input MB':>9}")
    print(header)
    for dataset, n, e, run_modes, sampled in configs:
        row = {}
        for mode in run_modes:
            kwargs = {"dataset": dataset, "model": args.model, "mode": mode,
                      "assignment": asg.to_dict(), "chunk_size": args.chunk_size,
                      "edge_chunk_size": args.edge_chunk_size, "seed": args.seed,
                      "profile": prof.to_dict(), "sampled": sampled}
            start = time.perf_counter()
            try:
                rec = run_isolated("sgquant.chapters.packed_inference:peak_job", kwargs, timeout=args.timeout,
                                   threads=args.threads)
            except RuntimeError as exc:
                print(f"{n:>9,} {e:>12,} {mode:>13}   failed: {str(exc)[-300:]}")
                continue
            rec.update(nodes=n, edges=e, wall_with_setup=time.perf_counter() - start,
                       model=args.model, bits=args.bits)
            records.append(rec)
            row[mode] = rec
            print(f"{n:>9,} {e:>12,} {mode:>13} {rec['seconds']:>9.2f} "
                  f"{rec['total_bytes'] / MB:>10.1f} {rec['pass_peak_bytes'] / MB:>9.1f} "
                  f"{rec['input_bytes'] / MB:>9.1f}", flush=True)
        for base_mode, mode in (("fp32", "packed"), ("chunked_fp32", "packed"),
                                ("fp32", "fake_quant")):
            base, rec = row.get(base_mode), row.get(mode)
            if base is not None and rec is not None:
                feat = ((base["input_bytes"] + base["pass_peak_bytes"])
                        / (rec["input_bytes"] + rec["pass_peak_bytes"]))
                print(f"{'':>9} {'':>12} {base['mode'] + '/' + mode:>13}  peak memory "
                      f"{base['total_bytes'] / rec['total_bytes']:.2f}x (total), "
                      f"{feat:.2f}x (input + pass); time "
                      f"{base['seconds'] / rec['seconds']:.2f}x")
    if args.out:
        atomic_write_json(Path(args.out), {"args": vars(args), "records": records})
        print(f"# records written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
