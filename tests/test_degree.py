"""Tests for sgquant.degree: in-degree buckets (also importable from sgquant.data)."""
from __future__ import annotations

import pytest
import torch

from sgquant.degree import DegreeBuckets, degree_buckets


def test_reexported_from_data() -> None:
    import sgquant.data as D
    import sgquant.degree as G

    assert D.DegreeBuckets is G.DegreeBuckets and D.degree_buckets is G.degree_buckets


def _graph_with_in_degrees(degs: list[int]) -> tuple[torch.Tensor, int]:
    n = len(degs)
    dst = [v for v, d in enumerate(degs) for _ in range(d)]
    src = [(v + 1) % n for v in dst]
    return torch.tensor([src, dst], dtype=torch.long), n


def test_degree_buckets_known_graph() -> None:
    ei, n = _graph_with_in_degrees([0, 1, 1, 2, 3, 5])
    b = degree_buckets(ei, n, 3)
    assert isinstance(b, DegreeBuckets)
    assert b.bucket.tolist() == [0, 0, 0, 1, 2, 2]
    assert b.edges == (1.0, 2.0)
    assert b.counts == [3, 1, 2]
    assert (b.num_buckets, b.num_nodes, b.num_edges) == (3, 6, 12)


def test_degree_buckets_use_in_degree() -> None:
    ei = torch.tensor([[0, 0, 0], [1, 2, 3]])  # node 0: out-degree 3, in-degree 0
    assert degree_buckets(ei, 4, 2).bucket.tolist() == [0, 1, 1, 1]


def test_degree_buckets_ties() -> None:
    # plain quantiles give edges (1, 1) and an empty middle bucket
    ei, n = _graph_with_in_degrees([1, 1, 1, 1, 1, 1, 2, 3])
    b = degree_buckets(ei, n, 3)
    assert b.bucket.tolist() == [0] * 6 + [1, 2]
    assert b.edges == (1.0, 2.0)
    # fewer distinct degrees than buckets: degrees fill the low buckets in order
    ei, n = _graph_with_in_degrees([2, 2, 2, 2])
    b = degree_buckets(ei, n, 3)
    assert b.bucket.tolist() == [0, 0, 0, 0] and b.counts == [4, 0, 0]
    ei, n = _graph_with_in_degrees([0, 0, 5, 0, 5])
    assert degree_buckets(ei, n, 4).counts == [3, 2, 0, 0]


@pytest.mark.parametrize("J", [2, 3, 4, 7])
def test_degree_buckets_monotone_and_complete(J: int) -> None:
    gen = torch.Generator().manual_seed(J)
    n = 300
    dst = (torch.rand(2000, generator=gen) ** 3 * n).long()  # skewed, heavily tied
    ei = torch.stack([torch.randint(0, n, (2000,), generator=gen), dst])
    b = degree_buckets(ei, n, J)
    deg = torch.bincount(ei[1], minlength=n)
    order = torch.argsort(deg, stable=True)
    ids, degs = b.bucket[order], deg[order]
    assert bool((ids[1:] >= ids[:-1]).all())  # monotone in degree
    for d in degs.unique():  # equal degrees share a bucket
        assert ids[degs == d].unique().numel() == 1
    assert sum(b.counts) == n and all(c > 0 for c in b.counts)
    edges = torch.tensor(b.edges)
    expected = (deg.unsqueeze(1) > edges.unsqueeze(0)).sum(1)
    assert torch.equal(b.bucket, expected)  # documented edge rule


def test_degree_buckets_cora(cora) -> None:
    data = cora
    b = degree_buckets(data.edge_index, data.num_nodes)
    assert sum(b.counts) == 2708 and all(c > 0 for c in b.counts)
    assert b == degree_buckets(data.edge_index.clone(), data.num_nodes)


def test_degree_buckets_num_buckets() -> None:
    ei, n = _graph_with_in_degrees([0, 1, 1, 2, 3, 5])
    b = degree_buckets(ei, n, 1)
    assert b.bucket.tolist() == [0] * n and b.edges == () and b.counts == [n]
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="num_buckets"):
            degree_buckets(ei, n, bad)
    with pytest.raises(ValueError, match="outside"):
        degree_buckets(ei, 3, 3)


def test_check_graph() -> None:
    ei, n = _graph_with_in_degrees([0, 1, 1, 2, 3, 5])
    b = degree_buckets(ei, n, 3)
    b.check_graph(ei.clone(), n)  # same graph: fine
    assert b.fingerprint == degree_buckets(ei.clone(), n, 2).fingerprint
    with pytest.raises(ValueError, match="6 nodes"):
        b.check_graph(ei, 7)
    with pytest.raises(ValueError, match="12 edges"):
        b.check_graph(ei[:, :-1], n)
    other = ei.clone()
    other[1, 0] = 0  # same sizes, different graph
    with pytest.raises(ValueError, match="another graph"):
        b.check_graph(other, n)
    with pytest.raises(Exception):
        b.num_buckets = 4  # frozen
