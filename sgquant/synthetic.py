r"""Size-alike synthetic graphs: stand-ins for memory and speed scaling where the real data
is not available offline (PubMed is incomplete, Reddit absent).

:func:`synthetic_graph` draws a degree-corrected stochastic block model with a
heavy-tailed degree profile; :data:`SYNTHETIC` names the sizes of the paper's graphs it
stands in for. Deterministic for a seed.
"""
from __future__ import annotations

import torch
from torch_geometric.data import Data

from .checks import check_int

__all__ = ["SYNTHETIC", "synthetic_graph"]

#: Size-alike synthetic stand-ins (PubMed is incomplete offline, Reddit absent).
#: Reddit in PyG: 232,965 nodes, 114.6M directed edges (mean in-degree ~492), 602
#: features, 41 classes.
SYNTHETIC: dict[str, dict[str, int]] = {
    "PubMed-synthetic": {"num_nodes": 19717, "num_edges": 88648, "num_features": 500,
                         "num_classes": 3},
    "Reddit-synthetic": {"num_nodes": 232965, "num_edges": 114615892, "num_features": 602,
                         "num_classes": 41},
}


def synthetic_graph(num_nodes: int, num_edges: int, num_features: int, num_classes: int, *,
                    seed: int = 0, degree_sigma: float = 1.0, homophily: float = 0.8,
                    chunk: int = 1 << 22) -> Data:
    r"""A degree-corrected stochastic block model with a heavy-tailed degree profile.

    Node :math:`v` gets a class :math:`c_v` (uniform) and a weight
    :math:`\theta_v \sim \mathrm{LogNormal}(0, \sigma)`. ``num_edges / 2`` pairs
    :math:`(u, w)` are drawn with :math:`u \propto \theta`; with probability
    ``homophily`` :math:`w \propto \theta` within :math:`c_u`, else among all nodes.
    Both directions are stored (``num_edges`` directed edges, self-loops dropped,
    duplicates kept: a multigraph). Features: class centroid + standard normal noise
    (float32, dense like Reddit's). Masks: 60/20/20 random split. Deterministic for
    a seed.
    """
    for name, value in (("num_nodes", num_nodes), ("num_edges", num_edges),
                        ("num_features", num_features), ("num_classes", num_classes)):
        check_int(value, name, minimum=1)
    gen = torch.Generator().manual_seed(seed)
    n = num_nodes
    y = torch.randint(0, num_classes, (n,), generator=gen)
    theta = torch.randn(n, generator=gen).mul_(degree_sigma).exp_().double()
    order = torch.argsort(y, stable=True)  # nodes grouped by class
    cum = torch.cumsum(theta[order], 0)
    counts = torch.bincount(y, minlength=num_classes)
    ends = torch.cumsum(counts, 0)
    starts = ends - counts
    class_lo = torch.where(starts > 0, cum[(starts - 1).clamp(min=0)], torch.zeros(1).double())
    class_mass = cum[(ends - 1).clamp(min=0)] - class_lo
    total = cum[-1]
    pairs = max(num_edges // 2, 1)
    src_parts, dst_parts = [], []
    for s in range(0, pairs, chunk):
        m = min(chunk, pairs - s)
        u = order[torch.searchsorted(cum, torch.rand(m, generator=gen, dtype=torch.float64)
                                     * total).clamp(max=n - 1)]
        cu = y[u]
        within = torch.rand(m, generator=gen) < homophily
        r = torch.rand(m, generator=gen, dtype=torch.float64)
        target = torch.where(within, class_lo[cu] + r * class_mass[cu], r * total)
        w = order[torch.searchsorted(cum, target).clamp(max=n - 1)]
        keep = u != w
        src_parts.append(u[keep])
        dst_parts.append(w[keep])
    src, dst = torch.cat(src_parts), torch.cat(dst_parts)
    del src_parts, dst_parts
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    del src, dst
    centroids = torch.randn(num_classes, num_features, generator=gen)
    x = torch.empty(n, num_features)
    for s in range(0, n, 1 << 14):
        e = min(n, s + (1 << 14))
        x[s:e] = centroids[y[s:e]] + torch.randn(e - s, num_features, generator=gen)
    perm = torch.randperm(n, generator=gen)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    cut = [0, int(0.6 * n), int(0.8 * n), n]
    for mask, a, b in zip(masks, cut[:-1], cut[1:]):
        mask[perm[a:b]] = True
    data = Data(x=x, edge_index=edge_index, y=y, train_mask=masks[0], val_mask=masks[1],
                test_mask=masks[2])
    data.name = f"synthetic-n{n}-e{edge_index.size(1)}"
    return data
