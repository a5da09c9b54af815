r"""Memory accounting: the one definition of a model's feature memory.

For a model of :math:`L` layers on a graph, under a :class:`~sgquant.bits.BitAssignment`
(DESIGN.md section 5):

.. math::

    \text{bits} = \sum_k \Big[\sum_j n_j\, d_{k-1}\, b^{emb}_{k,j}
                  + E_k\, \text{heads}_k\, b^{att}_k\Big],\qquad
    \text{bytes} = \text{bits} / 8 + 8 \cdot \#\text{quantized groups}

with :math:`n_j` nodes in degree bucket :math:`j`, :math:`E_k` the edges layer
:math:`k` aggregates over (self-loops included when it adds them) and 8 bytes
(float32 ``min`` and ``scale``) per quantized group. FP32 stores 32 bits per
element and no group overhead. ``saving = fp32 bytes / bytes``; the paper's
figure is ``32 / average bits`` (reported beside ours as ``paper_saving``).
Weights are counted separately. MB are :math:`10^6` bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor
from torch_geometric.utils import remove_self_loops

from .bits import BitAssignment
from .data import DegreeBuckets
from .quantize import FP32_BITS

GROUP_OVERHEAD_BYTES = 8  # float32 min + float32 scale
MB = 1e6


@dataclass(frozen=True)
class LayerLayout:
    """Feature sizes of one layer: input width ``in_dim``, ``num_edges`` it
    aggregates over and ``heads`` coefficients per edge (0: no ``att``)."""

    in_dim: int
    num_edges: int
    heads: int


@dataclass(frozen=True)
class FeatureLayout:
    """Everything memory accounting needs to know about a model on a graph."""

    bucket_sizes: tuple[int, ...]
    layers: tuple[LayerLayout, ...]
    weight_params: int = 0

    @property
    def num_nodes(self) -> int:
        return sum(self.bucket_sizes)

    @property
    def num_layers(self) -> int:
        return len(self.layers)


@dataclass
class MemoryReport:
    """Feature memory of one configuration; ``rows`` breaks it down by
    (layer, component, bucket)."""

    bits_total: float
    elements: int
    bytes: float
    fp32_bytes: float
    weight_bytes: float
    groups: int
    rows: list[dict] = field(default_factory=list)

    @property
    def average_bits(self) -> float:
        return self.bits_total / self.elements if self.elements else 0.0

    @property
    def saving(self) -> float:
        return self.fp32_bytes / self.bytes if self.bytes else float("inf")

    @property
    def paper_saving(self) -> float:
        """The paper's figure, ``32 / average bits`` (no min/scale overhead)."""
        return FP32_BITS / self.average_bits if self.average_bits else float("inf")

    @property
    def mb(self) -> float:
        return self.bytes / MB

    @property
    def fp32_mb(self) -> float:
        return self.fp32_bytes / MB

    @property
    def feature_share(self) -> float:
        """Share of FP32 feature memory in FP32 features + weights (Fig. 1)."""
        total = self.fp32_bytes + self.weight_bytes
        return self.fp32_bytes / total if total else 0.0

    def summary(self) -> dict:
        return {"average_bits": self.average_bits, "memory_mb": self.mb,
                "fp32_memory_mb": self.fp32_mb, "saving": self.saving,
                "paper_saving": self.paper_saving, "weight_mb": self.weight_bytes / MB}


def edges_aggregated(edge_index: Tensor, num_nodes: int, self_loops: bool) -> int:
    """Edges a layer aggregates over: existing self-loops are replaced by one per node."""
    if not self_loops:
        return int(edge_index.size(1))
    without, _ = remove_self_loops(edge_index)
    return int(without.size(1)) + num_nodes


def feature_layout(model: torch.nn.Module, edge_index: Tensor, num_nodes: int,
                   buckets: Optional[DegreeBuckets] = None) -> FeatureLayout:
    """The :class:`FeatureLayout` of a :class:`~sgquant.models.QuantGNN` on a graph."""
    if buckets is not None:
        buckets.check_graph(edge_index, num_nodes)
        sizes = tuple(int(c) for c in buckets.counts)
    else:
        sizes = (num_nodes,)
    layers = []
    cache: dict[bool, int] = {}
    for spec in model.layer_specs:
        if spec.heads:
            if spec.self_loops not in cache:
                cache[spec.self_loops] = edges_aggregated(edge_index, num_nodes, spec.self_loops)
            layers.append(LayerLayout(spec.in_dim, cache[spec.self_loops], spec.heads))
        else:
            layers.append(LayerLayout(spec.in_dim, 0, 0))
    weights = sum(p.numel() for p in model.parameters())
    return FeatureLayout(sizes, tuple(layers), weights)


def feature_memory(layout: FeatureLayout, assignment: BitAssignment) -> MemoryReport:
    """Feature memory of ``assignment`` on ``layout`` (the formula above).

    A one-bucket assignment quantizes each layer's embedding as one group; a
    ``J``-bucket one needs a layout with ``J`` buckets.
    """
    if not isinstance(assignment, BitAssignment):
        raise ValueError(f"feature_memory needs a BitAssignment, got {type(assignment).__name__}")
    assignment.check_shape(layout.num_layers)
    if assignment.num_buckets == 1:
        sizes: tuple[int, ...] = (layout.num_nodes,)
    elif assignment.num_buckets == len(layout.bucket_sizes):
        sizes = layout.bucket_sizes
    else:
        raise ValueError(
            f"the assignment has {assignment.num_buckets} degree buckets but the layout was "
            f"computed with {len(layout.bucket_sizes)}")
    rows, bits_total, elements, groups = [], 0.0, 0, 0
    for k, (spec, att, emb_row) in enumerate(
            zip(layout.layers, assignment.att_bits, assignment.emb_bits), start=1):
        parts = [("emb", j, n * spec.in_dim, b) for j, (n, b) in enumerate(zip(sizes, emb_row))]
        parts.append(("att", None, spec.num_edges * spec.heads, att))
        for component, bucket, count, bits in parts:
            if count == 0:
                continue
            quantized = bits != FP32_BITS
            overhead = GROUP_OVERHEAD_BYTES if quantized else 0
            rows.append({"layer": k, "component": component, "bucket": bucket,
                         "elements": count, "bits": bits,
                         "bytes": count * bits / 8 + overhead,
                         "fp32_bytes": count * 4})
            bits_total += count * bits
            elements += count
            groups += int(quantized)
    nbytes = bits_total / 8 + GROUP_OVERHEAD_BYTES * groups
    return MemoryReport(bits_total=bits_total, elements=elements, bytes=nbytes,
                        fp32_bytes=4.0 * elements, weight_bytes=4.0 * layout.weight_params,
                        groups=groups, rows=rows)


def batch_memory(layout: FeatureLayout, att_bits: "np.ndarray",
                 emb_bits: "np.ndarray") -> dict:
    """:func:`feature_memory` of ``n`` assignments at once (the same formula, vectorised).

    ``att_bits`` is ``[n, L]`` (bits of each layer's ``att``), ``emb_bits`` ``[n, L, J]``
    with ``J = 1`` (one group per layer) or the layout's number of buckets. Returns
    arrays of length ``n``: ``bits_total, elements, bytes, fp32_bytes, groups,
    average_bits, saving, paper_saving, memory_mb, fp32_memory_mb`` (equal to the
    corresponding :class:`MemoryReport` fields).
    """
    import numpy as np

    from .quantize import ALLOWED_BITS

    att = np.asarray(att_bits)
    emb = np.asarray(emb_bits)
    L = layout.num_layers
    if att.ndim != 2 or att.shape[1] != L:
        raise ValueError(f"att_bits must have shape [n, {L}] (n assignments x layers), "
                         f"got {att.shape}")
    if emb.ndim != 3 or emb.shape[0] != att.shape[0] or emb.shape[1] != L:
        raise ValueError(f"emb_bits must have shape [{att.shape[0]}, {L}, J] (assignments x "
                         f"layers x degree buckets), got {emb.shape}")
    J = emb.shape[2]
    if J == 1:
        sizes = np.array([layout.num_nodes], dtype=np.int64)
    elif J == len(layout.bucket_sizes):
        sizes = np.asarray(layout.bucket_sizes, dtype=np.int64)
    else:
        raise ValueError(f"emb_bits has {J} degree buckets but the layout was computed "
                         f"with {len(layout.bucket_sizes)} (allowed: 1 or "
                         f"{len(layout.bucket_sizes)})")
    for name, bits in (("att_bits", att), ("emb_bits", emb)):
        bad = ~np.isin(bits, ALLOWED_BITS)
        if bad.any():
            raise ValueError(f"{name} holds {int(bits[bad].flat[0])} bits; allowed: "
                             f"{', '.join(map(str, ALLOWED_BITS))}")
    att, emb = att.astype(np.int64), emb.astype(np.int64)
    emb_count = sizes[None, :] * np.array([spec.in_dim for spec in layout.layers],
                                          dtype=np.int64)[:, None]          # [L, J]
    att_count = np.array([spec.num_edges * spec.heads for spec in layout.layers],
                         dtype=np.int64)                                    # [L]
    bits_total = (emb * emb_count).sum(axis=(1, 2)) + (att * att_count).sum(axis=1)
    groups = (((emb != FP32_BITS) & (emb_count > 0)).sum(axis=(1, 2))
              + ((att != FP32_BITS) & (att_count > 0)).sum(axis=1))
    elements = int(emb_count.sum() + att_count.sum())
    bits_total = bits_total.astype(np.float64)  # exact: integer sums below 2**53
    nbytes = bits_total / 8 + GROUP_OVERHEAD_BYTES * groups
    fp32_bytes = np.full(len(att), 4.0 * elements)
    with np.errstate(divide="ignore", invalid="ignore"):
        average = bits_total / elements if elements else np.zeros(len(att))
        saving = np.where(nbytes > 0, fp32_bytes / np.where(nbytes > 0, nbytes, 1), np.inf)
        paper = np.where(average > 0, FP32_BITS / np.where(average > 0, average, 1), np.inf)
    return {"bits_total": bits_total, "elements": np.full(len(att), elements, dtype=np.int64),
            "bytes": nbytes, "fp32_bytes": fp32_bytes, "groups": groups.astype(np.int64),
            "average_bits": average, "saving": saving, "paper_saving": paper,
            "memory_mb": nbytes / MB, "fp32_memory_mb": fp32_bytes / MB}


def model_memory(model: torch.nn.Module, edge_index: Tensor, num_nodes: int,
                 assignment: BitAssignment,
                 buckets: Optional[DegreeBuckets] = None) -> MemoryReport:
    """Shortcut: :func:`feature_memory` of ``model`` on a graph."""
    return feature_memory(feature_layout(model, edge_index, num_nodes, buckets), assignment)


# ---- measurement ---------------------------------------------------------------------
# Measured (not counted) memory of an inference pass. Three instruments, each with its
# blind spot, reported side by side:
#
# * RSS high-water mark of this process (``/proc/self/status`` VmHWM, reset through
#   ``/proc/self/clear_refs``): sees every allocation (torch, NumPy, Python) at page
#   granularity; the heap is trimmed first so that freed-but-resident memory is not
#   silently reused. Linux only; elsewhere ``ru_maxrss`` (never reset) is used.
# * torch's allocation events (profiler with ``profile_memory=True``; torch 2.x has no
#   CPU allocator statistics API): torch tensors only, not NumPy buffers.
# * ``tracemalloc``: Python objects and NumPy buffers only; it does *not* see torch
#   tensors (checked in tests/test_packed.py).
# * :func:`run_isolated`: a fresh interpreter, so the peak is not blurred by what the
#   parent process did before; ``MALLOC_MMAP_THRESHOLD_`` makes freed blocks go back
#   to the system at once.
import ctypes
import ctypes.util
import gc
import importlib
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any, Callable

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"
_RESULT_TAG = "SGQUANT_ISOLATED_RESULT "


def _status_kb(field_name: str) -> Optional[int]:
    try:
        with open(_STATUS) as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """Resident set size of this process now (bytes; 0 if unknown)."""
    kb = _status_kb("VmRSS")
    return 1024 * kb if kb is not None else 0


def peak_rss_bytes() -> int:
    """High-water mark of the resident set size (VmHWM, else ``ru_maxrss``), bytes."""
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return 1024 * kb


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux >= 4.0); ``False`` if
    the kernel does not allow it (then peaks include everything before)."""
    try:
        with open(_CLEAR_REFS, "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def trim_heap() -> None:
    """Collect garbage and return free heap pages to the system (glibc ``malloc_trim``)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
_MMAP_THRESHOLD_BYTES = 65536


def fix_mmap_threshold() -> bool:
    """Make glibc serve blocks >= 64 KiB with ``mmap`` from now on (``mallopt``), so
    that a freed tensor leaves the RSS at once and a new one is counted again instead
    of silently reusing resident heap pages. Process-wide and lasting; large
    allocations get a little slower. ``False`` where glibc is not available."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is None or not hasattr(libc, "mallopt"):
            return False
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES))
    except OSError:
        return False


@dataclass
class PassMemory:
    """Memory of one call: ``pass_peak_bytes`` = RSS high-water mark during the call
    minus the RSS just before it (``reset_ok``: the mark could be reset, else it is
    the lifetime peak); ``torch_peak_bytes`` / ``numpy_peak_bytes`` (optional) are the
    allocator-level peaks of torch tensors and of NumPy/Python buffers."""

    seconds: float
    rss_before: int
    rss_peak: int
    reset_ok: bool
    torch_peak_bytes: Optional[int] = None
    numpy_peak_bytes: Optional[int] = None

    @property
    def pass_peak_bytes(self) -> int:
        return max(self.rss_peak - self.rss_before, 0)


def torch_allocation_peak(fn: Callable[[], Any]) -> tuple[Any, Optional[int]]:
    """Run ``fn`` under torch's profiler and return its result and the peak of torch
    CPU allocations made during the call (bytes above the start), ``None`` if the
    profiler's memory events are not available."""
    try:
        from torch.profiler import ProfilerActivity, profile
    except ImportError:  # pragma: no cover
        return fn(), None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    try:
        events = prof.profiler.kineto_results.events()
        mem = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    except Exception:  # private API moved: report nothing rather than a wrong number
        return result, None
    live = peak = 0
    for _, nbytes in mem:
        live += nbytes
        peak = max(peak, live)
    return result, peak


def python_allocation_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` under :mod:`tracemalloc`: peak bytes of Python and NumPy allocations
    above the start (torch tensors are not traced)."""
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start, _ = tracemalloc.get_traced_memory()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was:
            tracemalloc.stop()
    return result, max(peak - start, 0)


def measure_pass(fn: Callable[[], Any], *, warmup: bool = True,
                 allocators: bool = False) -> tuple[Any, PassMemory]:
    """Run ``fn`` and measure its peak memory (see :class:`PassMemory`).

    ``warmup`` runs ``fn`` once first (BLAS buffers, lazy imports); ``allocators``
    adds two more runs, under torch's profiler and under tracemalloc. Calls
    :func:`fix_mmap_threshold` (process-wide) so that the RSS follows live memory;
    :func:`run_isolated` gives cleaner figures still.
    """
    fix_mmap_threshold()
    if warmup:
        fn()
    trim_heap()
    before = rss_bytes()
    ok = reset_peak_rss()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    record = PassMemory(seconds, before, peak, ok)
    if allocators:
        trim_heap()
        _, record.torch_peak_bytes = torch_allocation_peak(fn)
        trim_heap()
        _, record.numpy_peak_bytes = python_allocation_peak(fn)
    return result, record


def run_isolated(target: str, kwargs: dict, *, timeout: float = 600.0, threads: int = 1,
                 env: Optional[dict] = None) -> dict:
    """Measure a job in a fresh Python process and return its JSON record.

    ``target`` is ``"module:function"``; ``function(**kwargs)`` returns a dict with
    ``load`` (callable returning what the pass needs), ``run`` (callable taking it) and
    optionally ``warmup`` (callable) and ``info`` (dict). The child imports, warms up,
    records ``rss_base``, loads, trims the heap, resets the high-water mark, runs and
    reports ``rss_base``, ``rss_ready`` (after loading), ``rss_peak``,
    ``pass_peak_bytes = rss_peak - rss_ready``, ``total_bytes = rss_peak - rss_base``
    (everything the inference holds: graph, weights, features, temporaries),
    ``ru_maxrss_bytes`` (lifetime, from :func:`resource.getrusage`) and ``seconds``.
    Raises :class:`RuntimeError` with the child's stderr if it fails or times out.
    """
    if ":" not in target:
        raise ValueError(f"target must be 'module:function', got {target!r}")
    payload = json.dumps({"target": target, "kwargs": kwargs, "threads": int(threads)})
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("MALLOC_MMAP_THRESHOLD_", str(_MMAP_THRESHOLD_BYTES))
    child_env.setdefault("OMP_NUM_THREADS", str(threads))
    code = "import sys; from sgquant.memory import _isolated_main; _isolated_main(sys.stdin.read())"
    try:
        proc = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                              text=True, timeout=timeout, env=child_env)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"isolated job {target} timed out after {timeout} s") from exc
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_TAG):
            return json.loads(line[len(_RESULT_TAG):])
    tail = (proc.stderr or "")[-2000:]
    raise RuntimeError(f"isolated job {target} failed (exit {proc.returncode}): {tail}")


def _isolated_main(payload: str) -> None:
    """Child side of :func:`run_isolated` (reads the job as JSON from ``payload``)."""
    spec = json.loads(payload)
    torch.set_num_threads(int(spec.get("threads", 1)))
    module_name, func_name = spec["target"].split(":", 1)
    job = getattr(importlib.import_module(module_name), func_name)(**spec["kwargs"])
    if job.get("warmup") is not None:
        job["warmup"]()
    trim_heap()
    rss_base = rss_bytes()
    loaded = job["load"]()
    trim_heap()
    rss_ready = rss_bytes()
    ok = reset_peak_rss()
    start = time.perf_counter()
    out = job["run"](loaded)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    record = {**job.get("info", {}), **(out if isinstance(out, dict) else {}),
              "rss_base": rss_base, "rss_ready": rss_ready, "rss_peak": peak,
              "reset_ok": ok, "pass_peak_bytes": max(peak - rss_ready, 0),
              "total_bytes": max(peak - rss_base, 0),
              "ru_maxrss_bytes": 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              "seconds": seconds}
    print(_RESULT_TAG + json.dumps(record, default=float), flush=True)
