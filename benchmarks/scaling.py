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
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sgquant.assignment import BitAssignment  # noqa: E402
from sgquant.bitwidth import ALLOWED_BITS  # noqa: E402
from sgquant.cache import atomic_write_json, check_output_file  # noqa: E402
from sgquant.checks import check_choice, check_int, check_number  # noqa: E402
from sgquant.memory import MB, run_isolated  # noqa: E402
from sgquant.models import MODELS, build_model  # noqa: E402
from sgquant.packed_memory import MODES  # noqa: E402
from sgquant.profiles import PROFILES, Profile, get_profile  # noqa: E402
from sgquant.synthetic import SYNTHETIC  # noqa: E402

from _args import ScriptParser, check_dataset, run_script  # noqa: E402  (benchmarks/_args.py)

REDDIT = SYNTHETIC["Reddit-synthetic"]
DEFAULT_NODES = (10_000, 30_000, 100_000, REDDIT["num_nodes"])


def whole_numbers(text: str, option: str, allowed: str, ok: Callable[[int], bool]) -> list[int]:
    """Comma-separated whole numbers (``1e4`` allowed), each satisfying ``ok``; else
    :class:`ValueError` naming ``option`` and what is ``allowed``."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v.is_integer() and ok(int(v))
                             for v in values):
        raise ValueError(f"{option} must be comma-separated whole numbers, each {allowed}, "
                         f"got {text!r}")
    return [int(v) for v in values]


def is_scaling_output(payload: object) -> bool:
    """Whether ``payload`` (parsed JSON) is a file this script wrote (``--out``)."""
    return isinstance(payload, dict) and {"args", "records"} <= set(payload)


def _parser() -> ScriptParser:
    p = ScriptParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default=",".join(str(n) for n in DEFAULT_NODES),
                   help="comma-separated node counts")
    p.add_argument("--max-nodes", type=float, default=None)
    p.add_argument("--mean-degree", type=float, default=REDDIT["num_edges"] / REDDIT["num_nodes"])
    p.add_argument("--max-edges", type=float, default=1e7,
                   help="cap on directed edges (default 1e7; Reddit has 1.146e8)")
    p.add_argument("--features", type=int, default=REDDIT["num_features"])
    p.add_argument("--classes", type=int, default=REDDIT["num_classes"])
    p.add_argument("--model", default="gcn", choices=MODELS)
    p.add_argument("--profile", default="default", choices=list(PROFILES),
                   help="architecture (GAT width) source")
    p.add_argument("--bits", type=int, default=4, help="uniform bits of the packed run")
    p.add_argument("--chunk-size", type=int, default=4096)
    p.add_argument("--edge-chunk-size", type=int, default=1 << 16)
    p.add_argument("--modes", default="fp32,chunked_fp32,packed",
                   help=f"comma-separated from {', '.join(MODES)}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    p.add_argument("--memory-limit-gb", type=float, default=10.0,
                   help="skip runs whose estimated FP32 peak exceeds this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default=None, help="a real dataset (e.g. Reddit) instead")
    p.add_argument("--sampled", action="store_true",
                   help="neighbour-sampled mini-batches (automatic for --dataset when a "
                        "full batch does not fit)")
    p.add_argument("--num-neighbors", default="25,10",
                   help="neighbours sampled per hop, comma-separated (-1: all)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--out", default=None, help="write the records as JSON here")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The options, each checked before any graph is built (``_args``); ``nodes``,
    ``modes`` and ``num_neighbors`` become lists."""
    args = _parser().parse_args(argv)
    args.nodes = whole_numbers(args.nodes, "--nodes", ">= 1", lambda n: n >= 1)
    if args.max_nodes is not None:
        args.max_nodes = check_number(args.max_nodes, "--max-nodes", above=0)
        args.nodes = [n for n in args.nodes if n <= args.max_nodes]
        if not args.nodes and args.dataset is None:
            raise ValueError(f"--max-nodes {args.max_nodes:g} leaves no graph: every --nodes "
                             "count is larger")
    args.mean_degree = check_number(args.mean_degree, "--mean-degree", above=0)
    args.max_edges = check_number(args.max_edges, "--max-edges", minimum=1)
    for name in ("features", "classes", "chunk_size", "edge_chunk_size", "threads",
                 "batch_size"):
        check_int(getattr(args, name), f"--{name.replace('_', '-')}", minimum=1)
    check_int(args.seed, "--seed", minimum=0)
    check_choice(args.bits, "--bits", ALLOWED_BITS)
    args.timeout = check_number(args.timeout, "--timeout", above=0)
    args.memory_limit_gb = check_number(args.memory_limit_gb, "--memory-limit-gb", above=0)
    args.modes = [check_choice(m.strip(), "--modes entry", MODES)
                  for m in args.modes.split(",") if m.strip()]
    if not args.modes:
        raise ValueError(f"--modes must name at least one of {', '.join(MODES)}")
    args.num_neighbors = whole_numbers(args.num_neighbors, "--num-neighbors",
                                       "-1 (all) or >= 1", lambda k: k == -1 or k >= 1)
    if args.sampled and args.dataset is None:
        raise ValueError("--sampled applies to --dataset only (synthetic graphs run full "
                         "batch)")
    if args.out is not None:
        check_output_file(args.out, is_scaling_output, "--out")
    if args.dataset is not None:
        args.dataset = check_dataset(args.dataset, "--dataset")
    return args


def fp32_estimate_bytes(nodes: int, edges: int, features: int, widths: list[int],
                        heads: int = 1) -> float:
    """Rough peak of a PyG FP32 pass: features, edge index (+ self-looped copy and
    weights), and per layer the gathered and weighted messages (2 x E x width)."""
    e = edges + nodes
    return (4 * nodes * features + 16 * edges + 20 * e
            + max(2 * 4 * e * w * heads for w in widths) + 8 * nodes * max(widths))


def model_shape(args: argparse.Namespace, prof: Profile) -> tuple[dict, list[int], int, int]:
    """(architecture, output width of each layer, largest head count, layers) of
    ``--model`` under ``prof`` on ``--features`` inputs and ``--classes`` outputs."""
    arch = prof.architecture(args.model)
    probe = build_model(args.model, args.features, args.classes, **arch)
    widths = [spec.in_dim for spec in probe.layer_specs[1:]] + [args.classes]
    heads = max(spec.heads for spec in probe.layer_specs)
    return arch, widths, heads, probe.num_layers


def dataset_config(args: argparse.Namespace, widths: list[int], heads: int) -> tuple:
    """The run of ``--dataset``: full batch, or neighbour-sampled when asked or when the
    FP32 full batch's estimate exceeds ``--memory-limit-gb``."""
    from sgquant.data import dataset_statistics, load_dataset
    st = dataset_statistics(load_dataset(args.dataset))
    need = fp32_estimate_bytes(st["nodes"], st["edges"], st["features"], widths, heads)
    sampled = args.sampled or need > args.memory_limit_gb * 2**30
    hops = ",".join(map(str, args.num_neighbors))
    print(f"# {args.dataset}: {st['nodes']} nodes, {st['edges']} edges; FP32 full-batch "
          f"estimate {need / 2**30:.1f} GiB -> "
          f"{'neighbour sampling ' + hops if sampled else 'full batch'}")
    run_modes = ["chunked_fp32", "packed"] if sampled else args.modes
    return (args.dataset, st["nodes"], st["edges"], run_modes,
            {"num_neighbors": args.num_neighbors, "batch_size": args.batch_size,
             "seed": args.seed} if sampled else None)


def synthetic_configs(args: argparse.Namespace, widths: list[int], heads: int) -> list[tuple]:
    """The synthetic graphs of ``--nodes`` that fit ``--memory-limit-gb``."""
    configs = []
    for n in args.nodes:
        want = int(round(args.mean_degree * n))
        e = int(min(want, args.max_edges))
        spec = {"num_nodes": n, "num_edges": e, "num_features": args.features,
                "num_classes": args.classes}
        note = "" if e == want else (f" (scaled down from {want:,} = mean degree "
                                     f"{args.mean_degree:.0f}: mean degree {e / n:.0f})")
        print(f"# graph: {n:,} nodes, {e:,} edges{note}")
        if {"fp32", "fake_quant"} & set(args.modes):
            need, what = fp32_estimate_bytes(n, e, args.features, widths, heads), "FP32"
        else:  # chunked paths: features, the edge index, generation temporaries
            need, what = 4 * n * args.features + 48 * e, "chunked"
        if need > args.memory_limit_gb * 2**30:
            print(f"#   skipped: {what} estimate {need / 2**30:.1f} GiB > "
                  f"--memory-limit-gb {args.memory_limit_gb}")
            continue
        configs.append((spec, n, e, args.modes, None))
    return configs


def measure(args: argparse.Namespace, configs: list[tuple], asg: BitAssignment,
            prof: Profile) -> list[dict]:
    """One fresh process per (graph, mode); prints each row and the ratios."""
    records = []
    print(f"{'nodes':>9} {'edges':>12} {'mode':>13} {'seconds':>9} {'total MB':>10} "
          f"{'pass MB':>9} {'input MB':>9}")
    for dataset, n, e, run_modes, sampled in configs:
        row = {}
        for mode in run_modes:
            kwargs = {"dataset": dataset, "model": args.model, "mode": mode,
                      "assignment": asg.to_dict(), "chunk_size": args.chunk_size,
                      "edge_chunk_size": args.edge_chunk_size, "seed": args.seed,
                      "profile": prof.to_dict(), "sampled": sampled}
            start = time.perf_counter()
            try:
                rec = run_isolated("sgquant.packed_memory:peak_job", kwargs,
                                   timeout=args.timeout, threads=args.threads)
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
        print_ratios(row)
    return records


def print_ratios(row: dict[str, dict]) -> None:
    """Peak memory and time of each baseline mode over the quantized one, where both ran."""
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    prof = get_profile(args.profile)
    arch, widths, heads, layers = model_shape(args, prof)
    asg = BitAssignment.uniform(args.bits, layers)
    print(f"# sgquant scaling benchmark: model {args.model} {arch}, packed = uniform "
          f"{args.bits}-bit, chunk {args.chunk_size} rows / {args.edge_chunk_size} edges, "
          f"{args.threads} thread(s), torch {torch.__version__}, {os.cpu_count()} CPUs")
    configs = ([dataset_config(args, widths, heads)] if args.dataset
               else synthetic_configs(args, widths, heads))
    records = measure(args, configs, asg, prof)
    if args.out:
        atomic_write_json(Path(args.out), {"args": vars(args), "records": records})
        print(f"# records written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
