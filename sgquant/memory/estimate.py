r"""Estimated memory of a training run, checked before it starts.

A graph too large for the machine would otherwise be killed mid-training with no
message, so :func:`check_training_fits` compares an estimate with the memory there is
and refuses, naming both, before any work. For a model of :math:`L` layers (the
:class:`~sgquant.memory.counted.FeatureLayout`: layer :math:`k` takes inputs of width
:math:`d_{k-1}` and aggregates over :math:`E_k` edges with :math:`h_k` coefficients
each, :math:`h_k = 0` for a layer without edges; :math:`d_L` is the number of classes)
with :math:`P` parameters, on a graph of :math:`N` nodes, :math:`F = d_0` features and
:math:`E` stored edges, in bytes:

.. math::

    \text{graph} &= 4NF + 16E + 11N \quad (x,\ \text{edge\_index},\ y,\ \text{masks})\\
    \text{features} &= 4 \cdot 4NF \quad (\text{dropout mask and output, the quantized
        input, the quantizer's temporaries})\\
    \text{nodes} &= 8 \cdot 4N \textstyle\sum_{k=1}^{L} d_k \quad (\text{outputs,
        activations, dropout, quantized copies, gradients})\\
    \text{edges} &= \textstyle\sum_{k:\,h_k>0} E_k\,\big(4\,(m\, d_k + 12\, h_k) + 48\big)
        \quad (\text{per-edge messages and gradients; coefficients; edge lists})\\
    \text{parameters} &= 6 \cdot 4P \quad (\text{weights, gradients, Adam's two
        moments, the best epoch's and the FP32 state})

with :math:`m` the model's :data:`MESSAGE_COPIES` (2 for GCN, 5 for AGNN and GAT). A
run on the CPU holds ``2 graph + features + nodes + edges + parameters + runtime`` (the
loader keeps one copy of the graph, the run works on another; ``runtime`` is the
interpreter with torch and PyG, :data:`RUNTIME_BYTES`). On CUDA the device holds
``graph + features + nodes + edges + parameters`` plus :data:`CUDA_CONTEXT_BYTES`, the
host ``2 graph + runtime``.

Against measured peaks (RSS above the interpreter; FP32 training then an 8-bit
fine-tune, ``quick`` profile, 7 classes) the estimate without ``runtime`` is 1.13 to
1.16 times the peak for 2,708 nodes with 10,000 or 20,000 features (GCN dense and
sparse, GAT, AGNN; the features dominate: about 5.3 copies measured, 6 counted), and
1.08 (GCN), 1.12 (AGNN), 1.45 (GAT, 2 heads x 8) and 1.18 (GAT, 8 heads x 16) times
it for 10,000 nodes with 100 or 200 edges per node (the edges dominate).

The machine's memory (:func:`machine_memory`) is the least of its physical memory, its
cgroup limit and the address-space limit (``ulimit -v``), or, on CUDA, the device's.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .counted import FeatureLayout, LayerLayout

__all__ = ["GB", "RUNTIME_BYTES", "CUDA_CONTEXT_BYTES", "TrainingMemory",
           "InsufficientMemoryError", "layout_bound", "training_memory", "machine_memory",
           "check_training_fits"]

#: Gigabytes are 10^9 bytes (as MB are 10^6 throughout the book).
GB = 1e9
#: The interpreter with torch and PyG imported (measured: about 0.4 GB of RSS).
RUNTIME_BYTES = 500_000_000
#: What a CUDA context and the caching allocator's slack take on the device.
CUDA_CONTEXT_BYTES = 1_000_000_000
FEATURE_COPIES = 4       # of the N x F features, beyond the graph's own
NODE_COPIES = 8          # of each layer's N x d_k output
#: Copies of each aggregating layer's ``E_k x d_k`` per-edge messages, per model: GCN
#: trains with one sparse product and gathers messages only to evaluate, without
#: gradients; AGNN and GAT keep them (and the normalised inputs) for the backward pass.
MESSAGE_COPIES = {"gcn": 2, "agnn": 5, "gat": 5}
COEFFICIENT_COPIES = 12  # of each aggregating layer's E_k x h_k coefficients
EDGE_LIST_BYTES = 48     # per aggregated edge: self-loop edge list, weights, sparse adjacency
PARAMETER_COPIES = 6
_NO_LIMIT = 1 << 60      # cgroup "no limit" values are near 2**63
_PROC_CGROUP = Path("/proc/self/cgroup")
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_MEMINFO = Path("/proc/meminfo")


class InsufficientMemoryError(ValueError):
    """A run that would not fit in the machine's memory (refused before it starts)."""


@dataclass(frozen=True)
class TrainingMemory:
    """The estimate's terms in bytes (see the module docstring)."""

    graph: int
    features: int
    nodes: int
    edges: int
    parameters: int

    @property
    def device(self) -> int:
        """What the device running the model holds (the CPU's share before the runtime)."""
        return self.graph + self.features + self.nodes + self.edges + self.parameters

    def host(self, cuda: bool) -> int:
        """What the host holds: everything (CPU run) or the graph's two copies (CUDA)."""
        return (2 * self.graph if cuda else self.graph + self.device) + RUNTIME_BYTES

    def describe(self) -> str:
        parts = {"graph": self.graph, "feature copies": self.features,
                 "node activations": self.nodes, "edge activations": self.edges,
                 "parameters and optimizer": self.parameters}
        return ", ".join(f"{k} {v / GB:.2f}" for k, v in parts.items())


def layout_bound(model: torch.nn.Module, num_nodes: int, num_edges: int) -> FeatureLayout:
    """A :class:`FeatureLayout` of ``model`` without looking at the edges: each layer that
    adds self-loops counts ``num_edges + num_nodes`` edges (an upper bound: existing
    self-loops are not subtracted, as :func:`~sgquant.memory.counted.feature_layout` does)."""
    layers = tuple(LayerLayout(s.in_dim, (num_edges + (num_nodes if s.self_loops else 0))
                               if s.heads else 0, s.heads) for s in model.layer_specs)
    return FeatureLayout((num_nodes,), layers, sum(p.numel() for p in model.parameters()))


def training_memory(layout: FeatureLayout, num_classes: int, num_edges: int,
                    model: str = "gat") -> TrainingMemory:
    """The estimated memory of training ``model`` (a key of :data:`MESSAGE_COPIES`; any
    other counts as the most) of ``layout`` on a graph with ``num_edges`` stored edges
    and ``num_classes`` classes (the module docstring)."""
    n, f = layout.num_nodes, layout.layers[0].in_dim
    widths = [spec.in_dim for spec in layout.layers[1:]] + [num_classes]
    m = MESSAGE_COPIES.get(model, max(MESSAGE_COPIES.values()))
    edges = sum(spec.num_edges * (4 * (m * d + COEFFICIENT_COPIES * spec.heads)
                                  + EDGE_LIST_BYTES)
                for spec, d in zip(layout.layers, widths) if spec.heads)
    return TrainingMemory(graph=4 * n * f + 16 * num_edges + 11 * n,
                          features=FEATURE_COPIES * 4 * n * f,
                          nodes=NODE_COPIES * 4 * n * sum(widths), edges=edges,
                          parameters=PARAMETER_COPIES * 4 * layout.weight_params)


def _read_int(path: Path) -> Optional[int]:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (cgroup v2): no limit


def _cgroup_limit() -> Optional[int]:
    """The tightest memory limit of this process's cgroup and its ancestors (v2
    ``memory.max``, v1 ``memory.limit_in_bytes``), or None."""
    limits = []
    try:
        lines = _PROC_CGROUP.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":
            base, name = _CGROUP_ROOT, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = _CGROUP_ROOT / "memory", "memory.limit_in_bytes"
        else:
            continue
        folder = base / rel.lstrip("/")
        for d in (folder, *folder.parents):
            limits.append(_read_int(d / name))
            if d == base:
                break
    found = [v for v in limits if v is not None and v < _NO_LIMIT]
    return min(found) if found else None


def _physical_memory() -> Optional[int]:
    try:
        import psutil
        return int(psutil.virtual_memory().total)
    except ImportError:
        pass
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return 1024 * int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine_memory(device: "torch.device | str" = "cpu") -> tuple[Optional[int], str]:
    """The memory a run on ``device`` may use, in bytes, and where that figure comes from:
    the least of physical memory (``psutil``, else ``/proc/meminfo`` or ``os.sysconf``),
    the cgroup limit and ``ulimit -v`` for the CPU; the device's memory for CUDA.
    ``(None, ...)`` when nothing can be read."""
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return int(props.total_memory), f"the memory of {device} ({props.name})"
    address = resource.getrlimit(resource.RLIMIT_AS)[0]
    found = {"physical memory": _physical_memory(), "cgroup memory limit": _cgroup_limit(),
             "address-space limit (ulimit -v)":
                 None if address == resource.RLIM_INFINITY else address}
    known = {k: v for k, v in found.items() if v is not None}
    if not known:
        return None, "unknown"
    source = min(known, key=known.get)
    return known[source], f"this machine's {source}"


def check_training_fits(layout: FeatureLayout, num_classes: int, num_edges: int,
                        model: str, device: "torch.device | str", what: str
                        ) -> TrainingMemory:
    """The :func:`training_memory` estimate, or :class:`InsufficientMemoryError` naming
    ``what`` (the dataset and model), the estimate and the memory available when it
    exceeds :func:`machine_memory` (on CUDA: the device's and the host's)."""
    est = training_memory(layout, num_classes, num_edges, model)
    device = torch.device(device)
    cuda = device.type == "cuda"
    needs = [(est.host(cuda), torch.device("cpu"))]
    if cuda:
        needs.append((est.device + CUDA_CONTEXT_BYTES, device))
    for need, where in needs:
        have, source = machine_memory(where)
        if have is not None and need > have:
            raise InsufficientMemoryError(
                f"{what}: training needs about {need / GB:.1f} GB on {where} (estimate, in "
                f"GB: {est.describe()}) but {source} is {have / GB:.1f} GB; refused before "
                f"starting: use a machine with more memory, or a graph with fewer features, "
                f"nodes or edges")
    return est
