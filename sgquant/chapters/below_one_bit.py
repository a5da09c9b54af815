r"""Chapter 7 (beyond the paper): below one bit.

The paper's savings stop at 32x (one bit per value against dense float32). On
citation graphs most of the features are a binary bag-of-words input, ~99% zeros:
a plain sparse float32 matrix already stores it in a few percent of the dense bytes,
and its 1-bit codes carry ~0.1 bit of information per value. This chapter measures,
for one model and graph, the bytes of every quantized group (a layer input per degree
bucket, the edge coefficients per layer) held as

* **dense FP32**: :math:`4n` bytes;
* **sparse FP32**: the smaller of dense and CSR (float32 values, int32 column indices
  and row pointers, as scipy holds them; int64 beyond :math:`2^{31}`), on the FP32
  model's own features;
* **packed**: SGQuant's fixed-width codes, :math:`\lceil n b/8 \rceil + 8` bytes;
* **coded**: the same codes coded losslessly (:mod:`sgquant.coding`, codec ``auto``):
  everything stored is counted (headers, models, block index, checksums, min/scale);
* **entropy**: the codes' empirical order-0 entropy :math:`nH/8`, the bound of any
  symbol-by-symbol code (model excluded);

at uniform bit widths and at a chosen configuration, with the coded pass's logits
compared to the packed pass's (:func:`storage_baselines`, :func:`storage_totals`), and
the inference time of coded against packed against FP32, measured side by side
(:func:`inference_times`). :func:`reading` writes the chapter's conclusion from the
data.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Optional, Sequence, Union

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from torch import Tensor
from torch_geometric.data import Data

from ..bits import BitAssignment, as_assignment
from ..bitwidth import FP32_BITS
from ..checks import check_int, check_int_list
from ..coding import code_entropy_bits
from ..data import canonical_name
from ..degree import DegreeBuckets
from ..measure import prepare, single_thread
from ..memory import MB
from ..models import QuantGNN
from ..packed import PackedRunner
from ..profiles import Profile, get_profile
from ..quantize import QuantOptions
from .common import SingleDatasetChapter

__all__ = ["METHODS", "CHOSEN", "CHUNK_SIZE", "EDGE_CHUNK_SIZE", "TIMED_CODECS", "input_first",
           "csr_nbytes", "fp32_features", "storage_baselines", "storage_totals",
           "inference_times", "below_one_bit_tables", "plot_bytes", "reading", "Chapter"]

#: Storage methods compared, in the order of the tables.
METHODS: tuple[str, ...] = ("dense FP32", "sparse FP32", "packed", "coded", "entropy")
_COLUMN = {"dense FP32": "fp32_bytes", "sparse FP32": "sparse_fp32_bytes",
           "packed": "packed_bytes", "coded": "coded_bytes", "entropy": "entropy_bytes"}
#: Node rows rematched at a time and edge rows per chunk in the passes of this chapter.
CHUNK_SIZE: int = 128
EDGE_CHUNK_SIZE: int = 2048
#: Codecs timed by :func:`inference_times` besides FP32.
TIMED_CODECS: tuple[str, ...] = ("packed", "sparse", "entropy", "auto")
_COMPONENT_LABELS = {"input": "input features", "hidden": "hidden features",
                     "attention": "edge coefficients"}
#: Label of the chosen configuration in the chapter's tables.
CHOSEN = "chosen"


def input_first(num_layers: int, input_bits: int = 1, other_bits: int = 8) -> BitAssignment:
    """``input_bits`` for the first layer's input, ``other_bits`` for every other
    feature (hidden inputs and edge coefficients): the chapter's default configuration."""
    emb = [[input_bits]] + [[other_bits]] * (num_layers - 1)
    return BitAssignment.full([other_bits] * num_layers, emb)


# ------------------------------------------------------------------ FP32 baselines
def csr_nbytes(x: Tensor) -> int:
    r"""Bytes of ``x`` (2-D; 1-D is one column) as a CSR matrix the way scipy holds
    it: float32 values, column indices and :math:`N + 1` row pointers of int32 (int64
    when the entries or a dimension reach :math:`2^{31}`)."""
    x2 = x.reshape(x.shape[0], -1) if x.dim() != 2 else x
    nnz = int(torch.count_nonzero(x2))
    index = 4 if max(nnz, *x2.shape) < 2**31 else 8
    return 4 * nnz + index * nnz + index * (x2.shape[0] + 1)


def fp32_features(net: QuantGNN, data: Data) -> dict[str, Tensor]:
    """What the FP32 model passes through each quantization point (``emb_L1``,
    ``att_L1`` ...), captured with forward hooks."""
    captured: dict[str, Tensor] = {}
    net.set_bits(None)
    handles = [point.register_forward_hook(
        lambda mod, inp, out, name=name: captured.__setitem__(name, inp[0].detach()))
        for name, point in net.quant_points.items()]
    try:
        with torch.no_grad():
            net.reset_cache()
            net(data.x, data.edge_index)
    finally:
        for h in handles:
            h.remove()
        net.reset_cache()
    return captured


def _component(name: str) -> str:
    kind, layer = name.split("_L")
    return "attention" if kind == "att" else ("input" if layer == "1" else "hidden")


def storage_baselines(net: QuantGNN, data: Data, assignment: Union[BitAssignment, dict, str],
                      buckets: Optional[DegreeBuckets] = None, *, label: Optional[str] = None,
                      chunk_size: int = CHUNK_SIZE,
                      edge_chunk_size: int = EDGE_CHUNK_SIZE,
                      options: Optional[QuantOptions] = None) -> pd.DataFrame:
    """Bytes of every feature group of ``net`` on ``data`` under ``assignment``, one
    row per group: ``elements`` and the bytes of each of :data:`METHODS`
    (``fp32_bytes``, ``csr_bytes``, ``sparse_fp32_bytes``, ``packed_bytes``,
    ``coded_bytes`` with the ``codec`` chosen and its ``coder``: ``sparse``,
    ``ans/codes``, ``ans/runs``, ``zstd/codes``, ``zstd/runs`` or ``packed``;
    ``entropy_bytes``), ``same_logits``
    (coded pass == packed pass, bit for bit) and ``same_predictions`` (share of nodes
    whose coded argmax equals the fake-quant model's). Groups kept in float32 count
    :math:`4n` bytes in every method. ``options``: the quantizer (rounding and range,
    :class:`~sgquant.quantize.QuantOptions`) of both passes; default the paper's."""
    asg = as_assignment(assignment)
    asg.check_shape(net.num_layers)
    bk = buckets if asg.num_buckets > 1 else None
    net.eval()
    features = fp32_features(net, data)
    passes = {}
    for codec in ("packed", "auto"):
        runner = PackedRunner(net, asg, buckets=bk, chunk_size=chunk_size,
                              edge_chunk_size=edge_chunk_size, keep_features=True, codec=codec,
                              options=options)
        passes[codec] = runner.run(data.x, data.edge_index)
    packed, coded = passes["packed"], passes["auto"]
    net.set_bits(asg, bk, options)
    with torch.no_grad():
        reference = net(data.x, data.edge_index)
    net.set_bits(None)
    same = bool(torch.equal(packed.logits, coded.logits))
    agree = float((coded.logits.argmax(1) == reference.argmax(1)).float().mean())
    rows = []
    for name, feature in packed.features.items():
        fp = features[name]
        for j, (g, cg) in enumerate(zip(feature.groups, coded.features[name].groups)):
            per_row = math.prod(feature.shape[1:])
            elements = g.num_rows * per_row
            if elements == 0:
                continue
            x = fp if g.index is None else fp.index_select(0, g.index)
            dense = 4 * elements
            csr = csr_nbytes(x)
            entropy = (dense if g.bits == FP32_BITS
                       else math.ceil(code_entropy_bits(g.packed) / 8))
            rows.append({
                "configuration": label or str(asg), "assignment": str(asg), "feature": name,
                "component": _component(name), "layer": int(name.split("_L")[1]),
                "bucket": j if len(feature.groups) > 1 else None, "bits": g.bits,
                "elements": elements, "fp32_bytes": dense, "csr_bytes": csr,
                "sparse_fp32_bytes": min(dense, csr), "packed_bytes": g.nbytes,
                "coded_bytes": cg.nbytes, "codec": cg.codec,
                "coder": cg.coded.plan.label if cg.coded is not None else cg.codec,
                "entropy_bytes": entropy,
                "same_logits": same, "same_predictions": agree,
                "average_bits": _average_bits(packed.records),
            })
    return pd.DataFrame(rows)


def _average_bits(records) -> float:
    """Element-weighted average bits of a pass's quantized groups (32 for float32)."""
    n = sum(r.elements for r in records)
    return sum(r.elements * r.bits for r in records) / n if n else math.nan


def storage_totals(groups: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: total bytes of each method, bits per element, savings
    against dense and sparse FP32, coded against the entropy bound, and whether the
    coded pass gave the packed pass's logits."""
    rows = []
    for conf, g in groups.groupby("configuration", sort=False):
        n = int(g["elements"].sum())
        row: dict[str, Any] = {"configuration": conf, "assignment": g["assignment"].iloc[0],
                               "elements": n,
                               "average_bits": float(g["average_bits"].iloc[0])}
        for method in METHODS:
            total = int(g[_COLUMN[method]].sum())
            row[_COLUMN[method]] = total
            row[f"{_COLUMN[method][:-6]}_bits_per_element"] = 8 * total / n
        for method in METHODS[2:]:
            key = _COLUMN[method][:-6]
            row[f"{key}_saving_vs_fp32"] = row["fp32_bytes"] / row[_COLUMN[method]]
            row[f"{key}_saving_vs_sparse_fp32"] = row["sparse_fp32_bytes"] / row[_COLUMN[method]]
        row["sparse_fp32_saving_vs_fp32"] = row["fp32_bytes"] / row["sparse_fp32_bytes"]
        row["coded_vs_entropy"] = row["coded_bytes"] / max(row["entropy_bytes"], 1)
        row["coded_vs_packed"] = row["coded_bytes"] / row["packed_bytes"]
        row["codecs"] = ", ".join(f"{c} x{k}" for c, k in g["coder"].value_counts().items())
        row["same_logits"] = bool(g["same_logits"].all())
        row["same_predictions"] = float(g["same_predictions"].min())
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------- decode cost
def inference_times(net: QuantGNN, data: Data, assignment: Union[BitAssignment, dict, str],
                    buckets: Optional[DegreeBuckets] = None, *,
                    codecs: Sequence[str] = TIMED_CODECS, repeats: int = 9,
                    chunk_size: int = CHUNK_SIZE,
                    edge_chunk_size: int = EDGE_CHUNK_SIZE) -> pd.DataFrame:
    """Seconds of one inference pass, FP32 (the PyG model) and packed with each of
    ``codecs``, measured side by side in this process on one thread: every repeat runs
    each pass once, in turn; the median over ``repeats`` is reported (``seconds``, wall
    clock), with ``ratio_vs_fp32`` and ``ratio_vs_packed``, and the same from the
    thread's CPU time (``cpu_seconds``, ``cpu_ratio_*``: what the pass computed, less
    sensitive to other processes on a shared machine). The input is packed (or coded)
    before timing, as it is stored; hidden features and coefficients are quantized and
    coded inside the pass."""
    repeats = check_int(repeats, "repeats", minimum=1)
    asg = as_assignment(assignment)
    bk = buckets if asg.num_buckets > 1 else None
    net.eval()
    x, ei = data.x, data.edge_index
    passes, stored = {}, {}

    def fp32() -> Tensor:
        net.reset_cache()
        with torch.no_grad():
            return net(x, ei)

    passes["fp32"], stored["fp32"] = fp32, 4 * x.numel()
    for codec in codecs:
        runner = PackedRunner(net, asg, buckets=bk, chunk_size=chunk_size,
                              edge_chunk_size=edge_chunk_size, codec=codec)
        xp = runner.pack_input(x, ei)
        passes[codec] = (lambda runner=runner, xp=xp: runner.run(xp, ei).logits)
        stored[codec] = xp.nbytes
    wall: dict[str, list[float]] = {k: [] for k in passes}
    cpu: dict[str, list[float]] = {k: [] for k in passes}
    net.set_bits(None)
    with single_thread():
        for fn in passes.values():
            fn()  # warm-up
        for _ in range(repeats):
            for key, fn in passes.items():
                start, start_cpu = time.perf_counter(), time.thread_time()
                fn()
                wall[key].append(time.perf_counter() - start)
                cpu[key].append(time.thread_time() - start_cpu)
    net.reset_cache()
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return pd.DataFrame([{"mode": k, "seconds": med[k], "min_seconds": min(wall[k]),
                          "cpu_seconds": med_cpu[k],
                          "ratio_vs_fp32": med[k] / med["fp32"],
                          "ratio_vs_packed": med[k] / med.get("packed", math.nan),
                          "cpu_ratio_vs_fp32": med_cpu[k] / med_cpu["fp32"],
                          "cpu_ratio_vs_packed": med_cpu[k] / med_cpu.get("packed", math.nan),
                          "input_bytes": stored[k], "repeats": repeats} for k in passes])


# -------------------------------------------------------------------- the chapter
def below_one_bit_tables(dataset: str = "Cora", model: str = "gcn",
                         profile: Union[str, Profile] = "default", seed: int = 0, *,
                         bits: Sequence[int] = (1, 2, 4, 8),
                         assignment: Union[BitAssignment, dict, str, None] = None,
                         repeats: Optional[int] = None) -> dict[str, pd.DataFrame]:
    """The chapter's measurements on the FP32 model of ``(dataset, model, seed)``
    (trained once, cached): ``groups`` and ``totals`` (:func:`storage_baselines`,
    :func:`storage_totals`) at uniform ``bits`` and at ``assignment`` (default: the
    configuration chapter 3's SGQuant+ search chooses,
    :func:`sgquant.chapters.overall.search_choice`), and ``timing``
    (:func:`inference_times` at ``assignment``; ``repeats`` default 5 in the quick
    profile, 15 otherwise)."""
    prof = get_profile(profile)
    setup = prepare(canonical_name(dataset), model, seed, prof)
    net = setup.fp32_model()
    L = net.num_layers
    if assignment is None:
        from .choice import search_choice
        chosen = search_choice(setup.dataset, setup.model_name, prof)
    else:
        chosen = as_assignment(assignment)
    chosen.check_shape(L, setup.buckets.num_buckets)
    configs = [(f"uniform {b}-bit", BitAssignment.uniform(b, L)) for b in bits]
    configs.append((CHOSEN, chosen))
    groups = pd.concat([storage_baselines(net, setup.data, a, setup.buckets, label=name)
                        for name, a in configs], ignore_index=True)
    groups.insert(0, "dataset", setup.dataset)
    groups.insert(1, "model", setup.model_name)
    totals = storage_totals(groups)
    totals.insert(0, "dataset", setup.dataset)
    totals.insert(1, "model", setup.model_name)
    reps = repeats if repeats is not None else (5 if prof.name == "quick" else 15)
    timing = inference_times(net, setup.data, chosen, setup.buckets, repeats=reps)
    timing.insert(0, "configuration", CHOSEN)
    timing.insert(1, "assignment", str(chosen))
    return {"groups": groups, "totals": totals, "timing": timing}


def plot_bytes(groups: pd.DataFrame, configurations: Optional[Sequence[str]] = None
               ) -> plt.Figure:
    """Bytes per component (input, hidden features, edge coefficients) for each
    storage method, one panel per configuration (log scale)."""
    confs = list(configurations or dict.fromkeys(groups["configuration"]))
    rows = []
    for (conf, comp), g in groups[groups["configuration"].isin(confs)].groupby(
            ["configuration", "component"], sort=False):
        for method in METHODS:
            rows.append({"configuration": conf, "component": _COMPONENT_LABELS[comp],
                         "method": method, "MB": g[_COLUMN[method]].sum() / MB})
    df = pd.DataFrame(rows)
    grid = sns.catplot(df, kind="bar", x="component", y="MB", hue="method", col="configuration",
                       col_order=confs, col_wrap=min(3, len(confs)), height=3.2, aspect=1.25,
                       hue_order=list(METHODS), order=list(_COMPONENT_LABELS.values()),
                       sharey=True)
    grid.set(yscale="log")
    grid.set_axis_labels("", "MB (1e6 bytes), log scale")
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", labelsize=8)
    plt.close(grid.figure)  # a notebook shows it once, as the cell's value
    return grid.figure


def reading(tables: dict[str, pd.DataFrame]) -> str:
    """The chapter's conclusion, written from the tables (no number typed by hand)."""
    t = tables["totals"]
    text = []
    one = t[t["configuration"] == "uniform 1-bit"]
    if len(one):
        r = one.iloc[0]
        share = math.log(r["sparse_fp32_saving_vs_fp32"]) / math.log(r["packed_saving_vs_fp32"])
        text.append(
            f"At uniform 1 bit, SGQuant's fixed-width packing stores the features in "
            f"{r['packed_bytes'] / MB:.3f} MB, **{r['packed_saving_vs_fp32']:.1f}x** less than "
            f"dense FP32 ({r['fp32_bytes'] / MB:.2f} MB). A plain sparse FP32 matrix (CSR where "
            f"it pays) already takes {r['sparse_fp32_bytes'] / MB:.3f} MB, "
            f"**{r['sparse_fp32_saving_vs_fp32']:.1f}x** less than dense: on a log scale "
            f"{100 * share:.0f}% of the 1-bit saving is just not storing zeros, and against "
            f"the sparse baseline packing saves {r['packed_saving_vs_sparse_fp32']:.1f}x. ")
    below = t[t["coded_bits_per_element"] < 1.0]
    best = t.loc[t["coded_saving_vs_fp32"].idxmax()]
    text.append(
        f"Coded storage (lossless codes of the same codes) goes below one bit per element in "
        f"{len(below)} of {len(t)} configurations; the smallest is {best['configuration']}: "
        f"**{best['coded_bits_per_element']:.3f} bits per element**, "
        f"{best['coded_bytes'] / MB:.4f} MB, **{best['coded_saving_vs_fp32']:.0f}x** less than "
        f"dense FP32 and {best['coded_saving_vs_sparse_fp32']:.1f}x less than sparse FP32, "
        f"{best['coded_vs_entropy']:.3f}x the codes' order-0 entropy "
        f"({best['entropy_bits_per_element']:.3f} bits per element; codecs {best['codecs']}). ")
    if (t["coded_vs_entropy"] < 1).any():
        text.append("Coded storage goes below the order-0 entropy where the run form (gaps "
                    "between non-zero codes) or zstd's matches capture structure that a "
                    "code-by-code model cannot. ")
    chosen = t[t["configuration"] == CHOSEN]
    if len(chosen):
        c = chosen.iloc[0]
        text.append(
            f"At the chosen configuration ({c['assignment']}, "
            f"{c['average_bits']:.2f} average bits) the coded features take "
            f"{c['coded_bits_per_element']:.3f} bits per element: "
            f"{c['coded_saving_vs_fp32']:.0f}x less than dense FP32, "
            f"{c['coded_saving_vs_sparse_fp32']:.1f}x less than sparse FP32 (whose own saving is "
            f"{c['sparse_fp32_saving_vs_fp32']:.1f}x) and {1 / c['coded_vs_packed']:.1f}x less "
            f"than fixed-width packing ({c['packed_saving_vs_fp32']:.1f}x). ")
    same = bool(t["same_logits"].all())
    text.append("In every configuration the coded pass gives the packed pass's logits bit for "
                "bit" if same else "Some coded pass did NOT give the packed pass's logits")
    text.append(f", and predicts the fake-quant model's class for "
                f"{100 * t['same_predictions'].min():.2f}% of nodes in the worst one. ")
    tm = tables.get("timing")
    if tm is not None and len(tm):
        s = tm.set_index("mode")
        parts = [f"{m} {1e3 * s.loc[m, 'seconds']:.1f} ms ({s.loc[m, 'ratio_vs_fp32']:.2f}x FP32)"
                 for m in s.index if m != "fp32"]
        text.append(f"One inference pass at the chosen configuration (median of "
                    f"{int(s['repeats'].iloc[0])} alternating repeats, one thread): FP32 "
                    f"{1e3 * s.loc['fp32', 'seconds']:.1f} ms; " + "; ".join(parts) + ". ")
        if "auto" in s.index:
            text.append(f"With its decoding (and the coding of the hidden features and "
                        f"coefficients it produces), the coded pass takes "
                        f"{s.loc['auto', 'ratio_vs_packed']:.2f}x the fixed-width pass's "
                        f"time. ")
    text.append("Sizes count every stored byte (codes, models, block index, checksums, "
                "min/scale); the graph structure and the weights are the same in every method "
                "and are not counted.")
    return "".join(text)


# ------------------------------------------------------------------- notebook glue
@dataclass
class Chapter(SingleDatasetChapter):
    """Chapter 7 (``notebooks/07_below_one_bit.ipynb``); each method shows one table,
    figure or the reading (measurements run once, on first use)."""

    bits: Sequence[int] = (1, 2, 4, 8)
    assignment: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.bits = check_int_list(self.bits, "bits", minimum=1, maximum=16)

    @cached_property
    def tables(self) -> dict[str, pd.DataFrame]:
        return below_one_bit_tables(self.dataset_name, self.model_name, self.profile,
                                    self.seed_list[0], bits=self.bits,
                                    assignment=self.assignment)

    def totals_table(self) -> Any:
        from .. import plots
        totals = self.tables["totals"]
        chosen = totals.loc[totals["configuration"] == CHOSEN, "assignment"]
        return plots.table(
            totals, caption="Feature storage by method (all groups)" + (
                f"; chosen = {chosen.iloc[0]}" if len(chosen) else ""),
            columns={"configuration": "configuration", "average_bits": "avg bits",
                     "fp32_bytes": "dense FP32 (B)",
                     "sparse_fp32_bytes": "sparse FP32 (B)", "packed_bytes": "packed (B)",
                     "coded_bytes": "coded (B)", "entropy_bytes": "entropy bound (B)",
                     "coded_bits_per_element": "coded bits/element",
                     "packed_bits_per_element": "packed bits/element",
                     "coded_saving_vs_fp32": "coded saving vs FP32 (x)",
                     "coded_saving_vs_sparse_fp32": "coded saving vs sparse FP32 (x)",
                     "coded_vs_entropy": "coded / entropy", "same_logits": "same logits"},
            formats={k: "{:,.0f}" for k in ("dense FP32 (B)", "sparse FP32 (B)", "packed (B)",
                                             "coded (B)", "entropy bound (B)")}
            | {"coded bits/element": "{:.3f}", "packed bits/element": "{:.3f}",
               "coded / entropy": "{:.3f}", "coded saving vs FP32 (x)": "{:,.1f}",
               "coded saving vs sparse FP32 (x)": "{:,.1f}"})

    def groups_table(self) -> Any:
        from .. import plots
        return plots.table(
            self.tables["groups"], caption="Every group: bytes by storage method",
            columns={"configuration": "configuration", "feature": "feature",
                     "bucket": "bucket", "bits": "bits", "elements": "elements",
                     "fp32_bytes": "dense FP32", "sparse_fp32_bytes": "sparse FP32",
                     "packed_bytes": "packed", "coded_bytes": "coded", "coder": "coder",
                     "entropy_bytes": "entropy bound"},
            formats={"bucket": "{:.0f}"} | {k: "{:,.0f}" for k in (
                "elements", "dense FP32", "sparse FP32", "packed", "coded", "entropy bound")})

    def bytes_figure(self) -> plt.Figure:
        return plot_bytes(self.tables["groups"])

    def timing_table(self) -> Any:
        from .. import plots
        return plots.table(
            self.tables["timing"], caption="One inference pass: FP32 against packed and coded",
            columns={"mode": "storage", "seconds": "seconds (median)",
                     "ratio_vs_fp32": "x FP32", "ratio_vs_packed": "x packed",
                     "input_bytes": "input as held (B)"},
            formats={"seconds (median)": "{:.4f}", "input as held (B)": "{:,.0f}"})

    def reading(self) -> Any:
        from IPython.display import Markdown
        return Markdown(reading(self.tables))
