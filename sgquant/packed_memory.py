r"""The memory packed inference takes, measured: what storing features bit-packed and
rematching them (dequantizing before each multiply) cost.

The paper counts bits (:func:`sgquant.memory.feature_memory`) but never stores
features in fewer bytes, and leaves open how much memory rematching costs at run
time. Each function returns a tidy :class:`pandas.DataFrame`:

* :func:`packed_vs_analytic`: bytes held by the packed features of
  :class:`~sgquant.packed.PackedRunner` (sum of ``nbytes``) against the analytic
  figure, and the agreement of packed with fake-quant predictions;
* :func:`peak_memory_table`: measured peak memory (and time) of one inference pass,
  FP32 against fake-quant against packed at several chunk sizes (one pass:
  :func:`peak_job`, for :func:`sgquant.memory.run_isolated`).

Real datasets go through :func:`sgquant.measure.prepare` (FP32 weights trained once
and cached); the ``*-synthetic`` names of :data:`SYNTHETIC` are size-alike random
graphs (:func:`synthetic_graph`) with untrained, seeded weights, for memory only.
Chapter 6 (:mod:`sgquant.chapters.rematching`) and ``benchmarks/`` report them.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import Data

from .assignment import BitAssignment, as_assignment
from .checks import check_choice
from .degree import DegreeBuckets, degree_buckets
from .measure import build_for, prepare, single_thread
from .device import resolve_device
from .memory import (average_bits, cuda_peak, feature_layout, feature_memory, measure_pass,
                      run_isolated)
from .models import QuantGNN, QuantOptions
from .packed import DEFAULT_CHUNK_SIZE, PackedRunner, check_chunk_size
from .profiles import Profile, get_profile
from .synthetic import SYNTHETIC, synthetic_graph

__all__ = ["MODES", "packed_vs_analytic",
           "peak_memory_table", "peak_job"]

#: Inference modes compared by :func:`peak_memory_table`.
MODES = ("fp32", "fake_quant", "chunked_fp32", "packed")


# ----------------------------------------------------------------- synthetic graphs
def _synthetic_spec(dataset: Any) -> Optional[dict]:
    if isinstance(dataset, Mapping):
        return dict(dataset)
    if isinstance(dataset, str):
        for key, spec in SYNTHETIC.items():
            if dataset.lower() == key.lower():
                return dict(spec)
    return None


def _dataset_label(dataset: Any) -> str:
    if isinstance(dataset, Mapping):
        return f"synthetic(n={dataset['num_nodes']}, e={dataset['num_edges']})"
    spec = _synthetic_spec(dataset)
    if spec is not None:
        return next(k for k in SYNTHETIC if k.lower() == str(dataset).lower())
    return str(dataset)


# ------------------------------------------------------------------------ cases
@dataclass
class _Case:
    """A graph, its degree buckets and a fresh model with the FP32 weights."""

    dataset: str
    data: Data
    buckets: DegreeBuckets
    model: QuantGNN
    trained: bool


def _profile_of(profile: Union[str, Profile, Mapping]) -> Profile:
    if isinstance(profile, Mapping):
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in profile.items()}
        return Profile(**fields)
    return get_profile(profile)


def _case(dataset: Any, model: str, seed: int, profile: Union[str, Profile, Mapping],
          results: Optional[str] = None, data_root: Optional[str] = None) -> _Case:
    prof = _profile_of(profile)
    spec = _synthetic_spec(dataset)
    if spec is not None:
        device = resolve_device(None)
        data = synthetic_graph(**spec, seed=seed).to(device)
        buckets = degree_buckets(data.edge_index, data.num_nodes, prof.num_buckets)
        torch.manual_seed(seed)
        net = build_for(data, str(model).lower(), prof).to(device)
        trained = False
    else:
        setup = prepare(dataset, model, seed, prof, results, data_root)
        data, buckets = setup.data, setup.buckets
        net = setup.fp32_model()  # set_bits below quantizes this copy only
        trained = True
    net.eval()
    return _Case(_dataset_label(dataset), data, buckets, net, trained)


def _named_assignments(assignments: Any, num_layers: int) -> list[tuple[str, BitAssignment]]:
    if assignments is None:
        return [(f"uniform {b}-bit", BitAssignment.uniform(b, num_layers)) for b in (1, 2, 4, 8)]
    if isinstance(assignments, (BitAssignment, str)) or (
            isinstance(assignments, Mapping) and set(assignments) == {"att_bits", "emb_bits"}):
        a = as_assignment(assignments)
        return [(str(a), a)]
    items = assignments.items() if isinstance(assignments, Mapping) else enumerate(assignments)
    out = []
    for name, value in items:
        if isinstance(value, int) and not isinstance(value, bool):
            out.append((f"uniform {value}-bit", BitAssignment.uniform(value, num_layers)))
        else:
            a = as_assignment(value)
            out.append((str(name) if isinstance(name, str) else str(a), a))
    return out


def _buckets_for(case: _Case, assignment: BitAssignment) -> Optional[DegreeBuckets]:
    return case.buckets if assignment.num_buckets > 1 else None


# --------------------------------------------------------------- packed vs analytic
def packed_vs_analytic(dataset: Any = "Cora", model: str = "gcn", assignments: Any = None, *,
                       seed: int = 0, profile: Union[str, Profile] = "quick",
                       chunk_size: int = DEFAULT_CHUNK_SIZE,
                       options: Optional[QuantOptions] = None,
                       results: Optional[str] = None,
                       data_root: Optional[str] = None) -> pd.DataFrame:
    """Measured packed bytes against :func:`sgquant.memory.feature_memory`.

    For each assignment (default uniform 1/2/4/8 bits; a dict ``name -> assignment``,
    a list of assignments or of bit widths also work) runs packed inference on the
    FP32 weights and reports ``measured_bytes`` (sum of the packed groups' ``nbytes``),
    ``analytic_bytes``, their relative difference ``rel_diff``, ``fp32_bytes`` and the
    measured ``saving``, plus ``pred_agreement`` (share of nodes whose packed argmax
    equals the fake-quant model's) and ``max_logit_diff``.
    """
    chunk_size = check_chunk_size(chunk_size)
    case = _case(dataset, model, seed, profile, results, data_root)
    data, net = case.data, case.model
    opts = options or QuantOptions()
    rows = []
    for name, assignment in _named_assignments(assignments, net.num_layers):
        assignment.check_shape(net.num_layers, case.buckets.num_buckets)
        buckets = _buckets_for(case, assignment)
        layout = feature_layout(net, data.edge_index, data.num_nodes, buckets)
        report = feature_memory(layout, assignment)
        runner = PackedRunner(net, assignment, buckets=buckets, options=opts,
                              chunk_size=chunk_size)
        result = runner.run(data.x, data.edge_index)
        net.set_bits(assignment, buckets, opts)
        with torch.no_grad():
            ref = net(data.x, data.edge_index)
        net.set_bits(None)
        measured = result.measured_bytes
        rows.append({
            "dataset": case.dataset, "model": str(model).lower(), "assignment": name,
            "average_bits": report.average_bits, "elements": report.elements,
            "measured_elements": result.elements, "groups": report.groups,
            "analytic_bytes": report.bytes, "measured_bytes": measured,
            "rel_diff": (measured - report.bytes) / report.bytes,
            "fp32_bytes": report.fp32_bytes, "saving": report.fp32_bytes / measured,
            "paper_saving": report.paper_saving,
            "pred_agreement": float((result.logits.argmax(1) == ref.argmax(1)).float().mean()),
            "max_logit_diff": float((result.logits - ref).abs().max()),
            "trained": case.trained, "config_key": assignment.key(),
        })
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ peak memory
def _tiny_graph(num_features: int, seed: int = 0) -> Data:
    g = torch.Generator().manual_seed(seed)
    n = 64
    ei = torch.randint(0, n, (2, 256), generator=g)
    ei = torch.cat([ei, ei.flip(0)], 1)
    return Data(x=torch.rand(n, num_features, generator=g), edge_index=ei)


def _pred_hash(logits: Tensor) -> str:
    pred = logits.argmax(1).to(device="cpu", dtype=torch.int32).contiguous().numpy()
    return hashlib.sha1(pred.tobytes()).hexdigest()[:16]


def _prepare_mode(net: QuantGNN, data: Data, buckets: Optional[DegreeBuckets], mode: str,
                  assignment: BitAssignment, options: QuantOptions, chunk_size: int,
                  edge_chunk_size: Optional[int], drop_float_input: bool,
                  sampled: Optional[dict] = None) -> dict:
    """What a pass of ``mode`` holds before it starts, and the pass itself.
    ``sampled`` (``num_neighbors``, ``batch_size``): neighbour-sampled mini-batches
    (packed modes only)."""
    if sampled is not None and mode in ("fp32", "fake_quant"):
        raise ValueError(f"sampled inference runs the packed path: use mode 'chunked_fp32' "
                         f"as its FP32 baseline, got mode {mode!r}")
    if mode in ("fp32", "fake_quant"):
        if mode == "fp32":
            net.set_bits(None)
        else:
            net.set_bits(assignment, buckets, options)
        x, ei = data.x, data.edge_index

        def run() -> Tensor:
            # the model's caches (GCN's normalised edges, the quantized input) are made
            # by the pass and dropped after it, so that no pass inherits another's
            net.reset_cache()
            with torch.no_grad():
                out = net(x, ei)
            net.reset_cache()
            return out
        return {"run": run, "input_bytes": int(x.numel()) * 4}
    asg = BitAssignment.fp32(net.num_layers) if mode == "chunked_fp32" else assignment
    bk = buckets if asg.num_buckets > 1 else None
    runner = PackedRunner(net, asg, buckets=bk, options=options, chunk_size=chunk_size,
                          edge_chunk_size=edge_chunk_size)
    xp = runner.pack_input(data.x, data.edge_index)
    if drop_float_input:
        data.num_nodes = int(data.x.size(0))
        data.x = None  # the features are held packed only
    ei = data.edge_index
    if sampled is not None:
        from .packed import sampled_packed_forward

        def run() -> Tensor:
            return sampled_packed_forward(
                net, data, asg, num_neighbors=sampled["num_neighbors"],
                batch_size=sampled.get("batch_size", 1024), buckets=bk, options=options,
                chunk_size=chunk_size, edge_chunk_size=edge_chunk_size, packed_input=xp,
                seed=sampled.get("seed", 0))
        return {"run": run, "input_bytes": int(xp.nbytes)}

    def run() -> Tensor:
        return runner.run(xp, ei).logits
    return {"run": run, "input_bytes": int(xp.nbytes)}


def _drop_caches() -> None:
    """Forget the in-process caches of datasets and FP32 setups (their float32 copies
    of the features would otherwise stay resident)."""
    from . import measure
    from .data import clear_dataset_cache

    clear_dataset_cache()
    # measure.clear_setup_cache is the public way (search and measurement layer);
    # until it is there, the lru_cache behind measure.prepare
    clear = measure.clear_setup_cache
    clear()


def peak_job(dataset: Any, model: str, mode: str, assignment: dict, *, chunk_size: int,
             edge_chunk_size: Optional[int] = None, seed: int = 0,
             profile: Union[str, Mapping] = "quick", options: Optional[dict] = None,
             results: Optional[str] = None, data_root: Optional[str] = None,
             sampled: Optional[dict] = None) -> dict:
    """Job for :func:`sgquant.memory.run_isolated`: one inference pass of ``mode``
    (one of :data:`MODES`) in a fresh process (JSON-able arguments only).
    ``sampled={"num_neighbors": [...], "batch_size": b}`` runs neighbour-sampled
    mini-batches (:func:`sgquant.packed.sampled_packed_forward`)."""
    check_choice(mode, "mode", MODES)
    asg = as_assignment(assignment)
    opts = QuantOptions(**(options or {}))
    prof = _profile_of(profile)
    state: dict = {}

    def warmup() -> None:
        spec = _synthetic_spec(dataset)
        if spec is None:
            from .data import load_dataset
            nf = load_dataset(dataset, data_root).num_features
            classes = 2
            _drop_caches()
        else:
            nf, classes = spec["num_features"], spec["num_classes"]
        tiny = _tiny_graph(nf, seed)
        tiny.y = torch.arange(tiny.num_nodes) % classes
        net = build_for(tiny, str(model).lower(), prof).eval()
        bk = degree_buckets(tiny.edge_index, tiny.num_nodes, max(asg.num_buckets, 1))
        go = _prepare_mode(net, tiny, bk if asg.num_buckets > 1 else None, mode, asg, opts,
                           chunk_size, edge_chunk_size, drop_float_input=True,
                           sampled=sampled)
        go["run"]()

    def load() -> dict:
        case = _case(dataset, model, seed, prof, results, data_root)
        go = _prepare_mode(case.model, case.data, _buckets_for(case, asg), mode, asg, opts,
                           chunk_size, edge_chunk_size, drop_float_input=True,
                           sampled=sampled)
        state.update(num_nodes=case.data.num_nodes, num_edges=int(case.data.edge_index.size(1)))
        del case
        _drop_caches()  # only the pass's own references to the graph remain
        return go

    def run(go: dict) -> dict:
        with cuda_peak(resolve_device(None)) as gpu:  # on a GPU: the CUDA allocator's peak
            logits = go["run"]()
        return {"input_bytes": go["input_bytes"], "pred_hash": _pred_hash(logits),
                "cuda_peak_bytes": gpu.bytes, **state}

    return {"warmup": warmup, "load": load, "run": run,
            "info": {"mode": mode, "chunk_size": chunk_size,
                     "edge_chunk_size": edge_chunk_size or chunk_size,
                     "sampled": sampled is not None}}


def _in_process(dataset, model, mode, asg, opts, chunk_size, edge_chunk_size, case,
                allocators: bool) -> dict:
    go = _prepare_mode(case.model, case.data, _buckets_for(case, asg), mode, asg, opts,
                       chunk_size, edge_chunk_size, drop_float_input=False)
    logits, mem = measure_pass(go["run"], warmup=True, allocators=allocators,
                               device=case.data.x.device if case.data.x is not None else None)
    return {"mode": mode, "chunk_size": chunk_size,
            "edge_chunk_size": edge_chunk_size or chunk_size,
            "input_bytes": go["input_bytes"], "pass_peak_bytes": mem.pass_peak_bytes,
            "reset_ok": mem.reset_ok, "seconds": mem.seconds,
            "torch_peak_bytes": mem.torch_peak_bytes, "numpy_peak_bytes": mem.numpy_peak_bytes,
            "pred_hash": _pred_hash(logits), "num_nodes": case.data.num_nodes,
            "num_edges": int(case.data.edge_index.size(1))}


def peak_memory_table(dataset: Any = "Cora", model: str = "gcn",
                      assignment: Union[BitAssignment, dict, str, int, None] = None,
                      chunk_sizes: Sequence[int] = (1, 64, 1024, 16384), *,
                      modes: Sequence[str] = MODES, edge_chunk_size: Optional[int] = None,
                      seed: int = 0, profile: Union[str, Profile] = "quick",
                      options: Optional[QuantOptions] = None, isolate: Optional[bool] = None,
                      allocators: bool = False, threads: int = 1, timeout: float = 600.0,
                      results: Optional[str] = None,
                      data_root: Optional[str] = None) -> pd.DataFrame:
    r"""Measured peak memory and time of one inference pass per mode and chunk size.

    Modes (:data:`MODES`): ``fp32`` (the PyG model, no quantization), ``fake_quant``
    (the PyG model with ``assignment``: float32 copies of quantized tensors),
    ``chunked_fp32`` (the chunked path of :class:`~sgquant.packed.PackedRunner` with
    every field at 32 bits: separates chunking from packing) and ``packed`` (at each
    of ``chunk_sizes``; ``chunked_fp32`` uses the largest). ``assignment`` defaults to
    uniform 4 bits; an ``int`` means uniform at that width.

    Columns: ``input_bytes`` (the input features as held: float32, or packed),
    ``pass_peak_bytes`` (RSS high-water mark during the pass above the RSS before it:
    every temporary, hidden features and coefficients included; on a GPU, set with
    ``--device``/``$SGQUANT_DEVICE``, the CUDA allocator's peak instead),
    ``inference_bytes = input_bytes + pass_peak_bytes``, ``ratio_vs_fp32`` and
    ``ratio_vs_chunked_fp32`` (of ``inference_bytes``; graph structure and weights are
    excluded, as they are the same in every mode; the PyG model's FP32 pass also pays
    for PyG's ``E x d`` message tensors, which the chunked path never builds, so
    ``chunked_fp32`` isolates what packing alone saves), ``rematch_chunk_bytes`` (one
    chunk of float32 rows of the widest layer input, the analytic size of the
    rematching buffer), ``seconds``,
    ``pred_hash`` (identical for ``fake_quant`` and ``packed`` when predictions agree).
    With ``isolate`` (default: every profile but ``quick``) each row runs in a fresh
    process (:func:`sgquant.memory.run_isolated`), which adds ``total_bytes`` (peak
    RSS above the interpreter: graph, weights, features and temporaries) and
    ``ru_maxrss_bytes``. ``allocators`` (in-process only) adds the torch-allocation
    and tracemalloc peaks.
    """
    prof = get_profile(profile)
    chunks = _check_peak_options(modes, chunk_sizes, edge_chunk_size)
    isolate = prof.name != "quick" if isolate is None else bool(isolate)
    case = _case(dataset, model, seed, prof, results, data_root)  # trains/caches FP32 once
    L = case.model.num_layers
    asg = _peak_assignment(assignment, L)
    asg.check_shape(L, case.buckets.num_buckets)
    opts = options or QuantOptions()
    widest = max(spec.in_dim for spec in case.model.layer_specs)
    rows = []
    for mode, chunk in _peak_plan(modes, chunks):
        cs = max(chunk, 1)
        if isolate:
            kwargs = {"dataset": dataset, "model": model, "mode": mode,
                      "assignment": asg.to_dict(), "chunk_size": cs,
                      "edge_chunk_size": edge_chunk_size, "seed": seed,
                      "profile": prof.to_dict(),
                      "options": opts.base().to_dict(),
                      "results": results, "data_root": data_root}
            rec = run_isolated(f"{__name__}:peak_job", kwargs, timeout=timeout,
                               threads=threads)
        else:
            with single_thread() if threads == 1 else contextlib.nullcontext():
                rec = _in_process(dataset, model, mode, asg, opts, cs, edge_chunk_size, case,
                                  allocators)
        rows.append(_peak_row(rec, chunk, case.data.num_nodes, widest))
    df = _with_ratios(pd.DataFrame(rows))
    df.insert(0, "dataset", case.dataset)
    df.insert(1, "model", str(model).lower())
    df.insert(2, "assignment", str(asg))
    df["average_bits"] = average_bits(
        feature_layout(case.model, case.data.edge_index, case.data.num_nodes,
                       _buckets_for(case, asg)), asg)
    df["isolated"] = isolate
    df["threads"] = threads
    df["trained"] = case.trained
    return df


def _check_peak_options(modes: Sequence[str], chunk_sizes: Sequence[int],
                        edge_chunk_size: Optional[int]) -> list[int]:
    """Check the modes and chunk sizes of :func:`peak_memory_table` before any work;
    the distinct chunk sizes, ascending."""
    for m in modes:
        check_choice(m, "mode", MODES)
    chunks = sorted({check_chunk_size(c) for c in chunk_sizes})
    if not chunks:
        raise ValueError("chunk_sizes needs at least one chunk size, got []")
    if edge_chunk_size is not None:
        check_chunk_size(edge_chunk_size, "edge_chunk_size")
    return chunks


def _peak_assignment(assignment: Union[BitAssignment, dict, str, int, None],
                     num_layers: int) -> BitAssignment:
    """``assignment`` of :func:`peak_memory_table`: uniform 4 bits by default, an ``int``
    uniform at that width."""
    if assignment is None:
        return BitAssignment.uniform(4, num_layers)
    if isinstance(assignment, int) and not isinstance(assignment, bool):
        return BitAssignment.uniform(assignment, num_layers)
    return as_assignment(assignment)


def _peak_plan(modes: Sequence[str], chunks: list[int]) -> list[tuple[str, int]]:
    """``(mode, chunk size)`` of every pass: ``packed`` at each chunk size,
    ``chunked_fp32`` at the largest, the PyG modes unchunked (0)."""
    plan: list[tuple[str, int]] = []
    for mode in modes:
        if mode == "packed":
            plan += [(mode, c) for c in chunks]
        elif mode == "chunked_fp32":
            plan.append((mode, chunks[-1]))
        else:
            plan.append((mode, 0))
    return plan


def _peak_row(rec: dict, chunk: int, num_nodes: int, widest: int) -> dict:
    """One pass's record as a row of :func:`peak_memory_table` (``chunk`` 0: unchunked;
    ``widest``: the widest layer input, whose float32 rows make the rematch buffer)."""
    rec = {k: v for k, v in rec.items() if k not in ("rss_base", "rss_ready", "rss_peak")}
    if rec.get("cuda_peak_bytes") is not None:  # a pass on a GPU: the allocator's peak
        rec["pass_peak_bytes"] = rec["cuda_peak_bytes"]
    rec["chunk_size"] = chunk if chunk else None
    if chunk == 0:
        rec["edge_chunk_size"] = None
    rec["rematch_chunk_bytes"] = min(chunk, num_nodes) * widest * 4 if chunk else None
    return rec


def _with_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """``inference_bytes = input_bytes + pass_peak_bytes`` and its ratios to the
    ``fp32`` and ``chunked_fp32`` passes (NaN without that pass)."""
    df["inference_bytes"] = df["input_bytes"] + df["pass_peak_bytes"]
    for mode, column in (("fp32", "ratio_vs_fp32"), ("chunked_fp32", "ratio_vs_chunked_fp32")):
        base = df.loc[df["mode"] == mode, "inference_bytes"]
        df[column] = (float(base.iloc[0]) / df["inference_bytes"]) if len(base) else math.nan
    return df
