"""Below one bit: bytes of every feature group under five storage methods, the time of
an inference pass decoding them, the entropy coders compared, and packed rematching
against FP32 (time and peak memory, chapter 6's measurement).

For each dataset and configuration (a 2-layer GCN with its FP32 weights trained once
and cached, ``sgquant.measure.prepare``):

1. **Storage**, per group and in total: bytes and bits per element held as dense FP32,
   sparse FP32 (CSR where it pays, on the FP32 model's own features), SGQuant's
   fixed-width packing, coded (``sgquant.coding``, codec ``auto``, everything stored
   counted) and the codes' order-0 entropy, with the coded pass's logits checked
   against the packed pass's (``sgquant.packed.baselines.storage_baselines``).
2. **Inference time**, FP32 / packed / coded passes side by side in this process
   (one thread, alternating repeats, median wall clock; the thread's CPU time too).
3. **Entropy coders** (full mode): per group, ANS (``constriction``) against zstd
   (``zstandard``): bytes and decode time of every block.
4. **Packed rematching** (chapter 6's question): FP32 against packed at uniform 4 bits,
   time side by side, and peak memory of one pass in a fresh process each
   (``sgquant.packed_memory.peak_memory_table(..., isolate=True)``) at several (node
   rows, edge rows) chunk sizes.

By default the configuration is the one chapter 3's SGQuant+ search chooses in the
profile (``sgquant.search.choice.search_choice``; read from the results cache after
``make book``, searched otherwise). ``--quick`` (CI, under 2 minutes): Cora only, the
configuration 1-bit inputs with 8-bit hidden features and attention, fewer repeats, two
chunk sizes for the packed pass. The last line reads
``Cora gcn: coded X bits/element (packed Y, entropy Z)`` for that configuration.

    .venv/bin/python benchmarks/coding.py [--quick] [--datasets Cora CiteSeer ...]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from typing import Optional, Sequence

import pandas as pd
import torch

from sgquant.assignment import BitAssignment
from sgquant.checks import check_int
from sgquant.coding import GroupCodes, block_rows_for, code_entropy_bits
from sgquant.coding.blocks import decode_block, encode_block
from sgquant.coding.codecs import ans_plan, zstd_plans
from sgquant.inference_time import TIMED_CODECS, inference_times, side_by_side
from sgquant.measure import build_for, prepare
from sgquant.packed import PackedRunner
from sgquant.packed.baselines import METHOD_COLUMNS, input_first, storage_baselines, storage_totals
from sgquant.profiles import PROFILES, get_profile

from _args import ScriptParser, check_dataset, run_script  # benchmarks/_args.py

DATASETS = ("Cora", "CiteSeer", "Amazon-Computers", "Coauthor-Physics")


# ------------------------------------------------------------------------ graphs
def load_case(dataset: str, profile: str, seed: int = 0):
    """(data, degree buckets, model with trained FP32 weights) of a 2-layer GCN
    (``prepare``: trained once, cached)."""
    prof = get_profile(profile)
    setup = prepare(dataset, "gcn", seed, prof)
    net = build_for(setup.data, "gcn", prof)
    net.load_state_dict(setup.fp32_state)
    return setup.data, setup.buckets, net.eval()


# ---------------------------------------------------------------------- sections
def storage(data, buckets, net, configs: dict[str, BitAssignment]) -> pd.DataFrame:
    return pd.concat([storage_baselines(net, data, a, buckets, label=name)
                      for name, a in configs.items()], ignore_index=True)


def print_storage(dataset: str, groups: pd.DataFrame) -> pd.DataFrame:
    totals = storage_totals(groups)
    for conf, g in groups.groupby("configuration", sort=False):
        t = totals[totals["configuration"] == conf].iloc[0]
        print(f"\n{dataset} gcn, {conf}: coded logits == packed logits: {t['same_logits']}; "
              f"coded predictions == fake-quant: {100 * t['same_predictions']:.2f}%")
        head = f"  {'group':18s} {'bits':>4s} {'elements':>10s}"
        head += "".join(f" {m:>22s}" for m in METHOD_COLUMNS) + "  codec"
        print(head)
        rows = [(f"{r.feature}" + (f" b{int(r.bucket)}" if pd.notna(r.bucket) else ""),
                 str(r.bits), r.elements, [getattr(r, c) for c in METHOD_COLUMNS.values()],
                 r.coder) for r in g.itertuples()]
        rows.append(("total", "", int(t["elements"]),
                     [t[c] for c in METHOD_COLUMNS.values()], t["codecs"]))
        for label, bits, n, values, codec in rows:
            cells = "".join(f" {v:>12,.0f} B {8 * v / n:6.3f}b" for v in values)
            print(f"  {label:18s} {bits:>4s} {n:>10,d}{cells}  {codec}")
        print(f"  saving vs dense FP32: sparse FP32 {t['sparse_fp32_saving_vs_fp32']:.1f}x, "
              f"packed {t['packed_saving_vs_fp32']:.1f}x, coded {t['coded_saving_vs_fp32']:.1f}x"
              f" | vs sparse FP32: packed {t['packed_saving_vs_sparse_fp32']:.2f}x, coded "
              f"{t['coded_saving_vs_sparse_fp32']:.2f}x | coded / entropy "
              f"{t['coded_vs_entropy']:.3f}")
    return totals


def print_times(dataset: str, conf: str, times: pd.DataFrame) -> None:
    print(f"\n{dataset} gcn, {conf}: one inference pass, one thread, median of "
          f"{int(times['repeats'].iloc[0])} alternating repeats")
    print(f"  {'storage':8s} {'wall ms':>8s} {'x FP32':>7s} {'x packed':>8s} {'cpu ms':>8s} "
          f"{'x FP32':>7s} {'x packed':>8s} {'input held':>12s}")
    for r in times.itertuples():
        print(f"  {r.mode:8s} {1e3 * r.seconds:8.2f} {r.ratio_vs_fp32:7.2f} "
              f"{r.ratio_vs_packed:8.2f} {1e3 * r.cpu_seconds:8.2f} {r.cpu_ratio_vs_fp32:7.2f} "
              f"{r.cpu_ratio_vs_packed:8.2f} {r.input_bytes:>10,d} B")


def _median_ms(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - start)
    return 1e3 * statistics.median(ts)


def print_coders(dataset: str, data, net, assignment: BitAssignment, repeats: int) -> None:
    """ANS against zstd on every group of the packed pass: bytes and decode time."""
    runner = PackedRunner(net, assignment, keep_features=True)
    result = runner.run(data.x, data.edge_index)
    print(f"\n{dataset} gcn, {assignment}: entropy coders per group "
          f"(payload bytes x entropy bound, decode ms of all blocks)")
    for name, feature in result.features.items():
        for g in feature.groups:
            if g.packed is None or g.packed.numel == 0:
                continue
            scan = GroupCodes(g.packed, block_rows_for(g.packed.row_numel))
            bound = code_entropy_bits(g.packed) / 8
            cells = []
            for plan in [ans_plan(scan)[0], *zstd_plans(scan)]:
                payloads = [encode_block(plan, scan, i) for i in range(scan.num_blocks)]
                sizes = [scan.block_numel(i) for i in range(scan.num_blocks)]
                size = sum(len(p) for p in payloads)
                arrays = [torch.frombuffer(bytearray(p), dtype=torch.uint8).numpy()
                          for p in payloads]

                def decode(plan=plan, arrays=arrays, sizes=sizes):
                    for a, n in zip(arrays, sizes):
                        decode_block(plan, a, n, g.bits)
                cells.append(f"{plan.label:10s} {size:>9,d} B ({size / max(bound, 1):.3f}x) "
                             f"{_median_ms(decode, repeats):6.2f} ms")
            print(f"  {name:8s} b{g.bits:<2d} H {bound:>9,.0f} B | " + " | ".join(cells))


#: (rows, edge rows) per chunk of the packed pass: chapter 6's default (edges chunked
#: like rows) and larger edge chunks, which cut the per-chunk work of the edge loops.
REMATCH_CHUNKS = ((64, 64), (1024, 1024), (64, 1024), (128, 2048), (256, 16384))
REMATCH_CHUNKS_QUICK = ((64, 1024), (128, 2048))


def print_rematching(quick: bool, repeats: int) -> None:
    """Chapter 6's packed pass (Cora GCN, uniform 4 bits) against FP32: time side by
    side in this process, peak memory of one pass per fresh process."""
    from sgquant.packed_memory import peak_memory_table
    data, buckets, net = load_case("Cora", "quick")
    asg = BitAssignment.uniform(4, net.num_layers)
    pairs = REMATCH_CHUNKS_QUICK if quick else REMATCH_CHUNKS
    print(f"\nCora gcn, uniform 4-bit, packed rematching against FP32 (one thread, median of "
          f"{repeats} alternating repeats; peak memory: one pass per fresh process)")
    print(f"  {'rows':>5s} {'edges':>6s} {'packed ms':>9s} {'FP32 ms':>8s} {'x FP32':>7s} "
          f"{'cpu x FP32':>10s} {'peak MB':>8s} {'FP32 MB':>8s} {'x less':>7s}")
    for chunk, edge in pairs:
        peak = peak_memory_table("Cora", "gcn", asg, (chunk,), modes=("fp32", "packed"),
                                 edge_chunk_size=edge, profile="quick", isolate=True)
        base = float(peak.loc[peak["mode"] == "fp32", "inference_bytes"].iloc[0])
        held = float(peak.loc[peak["mode"] == "packed", "inference_bytes"].iloc[0])
        runner = PackedRunner(net, asg, chunk_size=chunk, edge_chunk_size=edge)
        xp = runner.pack_input(data.x, data.edge_index)

        def fp32():
            net.reset_cache()
            with torch.no_grad():
                net(data.x, data.edge_index)
        wall, cpu = _side_by_side({"fp32": fp32,
                                   "packed": lambda: runner.run(xp, data.edge_index)}, repeats)
        print(f"  {chunk:5d} {edge:6d} {wall['packed']:9.2f} {wall['fp32']:8.2f} "
              f"{wall['packed'] / wall['fp32']:7.2f} {cpu['packed'] / cpu['fp32']:10.2f} "
              f"{held / 1e6:8.2f} {base / 1e6:8.2f} {base / held:7.2f}")


def _side_by_side(passes: dict, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU milliseconds of each pass, run in turn ``repeats`` times."""
    wall, cpu = side_by_side(passes, repeats)
    return ({k: 1e3 * statistics.median(v) for k, v in wall.items()},
            {k: 1e3 * statistics.median(v) for k, v in cpu.items()})


# -------------------------------------------------------------------------- main
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The options, each checked before any work (``_args``): profile, datasets
    registered and present (Cora too, for the packed rematching), repeats >= 1."""
    parser = ScriptParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Cora, one configuration")
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--profile", default=None, choices=list(PROFILES),
                        help="training profile of the FP32 models (default: quick with "
                             "--quick, else default)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats (default: 7 with --quick, else 15)")
    args = parser.parse_args(argv)
    args.profile = args.profile or ("quick" if args.quick else "default")
    args.repeats = (7 if args.quick else 15) if args.repeats is None \
        else check_int(args.repeats, "--repeats", minimum=1)
    args.datasets = [check_dataset(d, "--datasets")
                     for d in args.datasets or (["Cora"] if args.quick else DATASETS)]
    check_dataset("Cora", "Cora (the packed rematching section)")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    profile, repeats = args.profile, args.repeats
    print(f"sgquant coding benchmark | {platform.processor() or platform.machine()} | "
          f"torch {torch.__version__} | profile {profile} | repeats {repeats}")
    last = None
    for dataset in args.datasets:
        data, buckets, net = load_case(dataset, profile)
        if args.quick:
            chosen_label = "1-bit input, 8-bit hidden and attention"
            chosen = input_first(net.num_layers)
        else:  # the configuration chapter 3's SGQuant+ search chooses (cached after the book)
            from sgquant.search.choice import search_choice
            chosen = search_choice(dataset, "gcn", profile)
            chosen_label = f"{profile} profile's chosen configuration"
        configs = {chosen_label: chosen}
        if not args.quick:
            configs.update({f"uniform {b}-bit": BitAssignment.uniform(b, net.num_layers)
                            for b in (1, 2, 4, 8)})
        totals = print_storage(dataset, storage(data, buckets, net, configs))
        times = inference_times(net, data, chosen, buckets, repeats=repeats,
                                codecs=("packed", "auto") if args.quick else TIMED_CODECS)
        print_times(dataset, chosen_label, times)
        if not args.quick:
            print_coders(dataset, data, net, chosen, repeats)
        if dataset == "Cora":
            last = totals[totals["configuration"] == chosen_label].iloc[0]
        del data, net
    print_rematching(args.quick, repeats)
    if last is not None:
        print(f"Cora gcn: coded {last['coded_bits_per_element']:.3f} bits/element (packed "
              f"{last['packed_bits_per_element']:.3f}, entropy "
              f"{last['entropy_bits_per_element']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
