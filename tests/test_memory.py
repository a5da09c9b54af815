"""The memory formula of the architecture page ("memory accounting"), checked against hand counts."""
import pytest

from sgquant.assignment import BitAssignment
from sgquant.data import degree_buckets
from sgquant.memory import feature_layout, feature_memory, model_memory
from sgquant.models import build_model


def test_gcn_uniform_4bit_hand_count(tiny_graph):
    # 6 nodes, 12 directed edges, no self-loops; GCN 5 -> 4 -> 2 adds 6 self-loops: E = 18.
    model = build_model("gcn", 5, 2, hidden=4)
    rep = model_memory(model, tiny_graph.edge_index, 6, BitAssignment.uniform(4, 2))
    # layer 1: emb 6*5 = 30, att 18; layer 2: emb 6*4 = 24, att 18 -> 90 elements
    assert rep.elements == 90
    assert rep.bits_total == 90 * 4
    assert rep.groups == 4
    assert rep.bytes == pytest.approx(90 * 4 / 8 + 4 * 8)  # 45 + 32 = 77
    assert rep.fp32_bytes == 360
    assert rep.saving == pytest.approx(360 / 77)
    assert rep.average_bits == 4
    assert rep.paper_saving == pytest.approx(8)
    # weights: 5*4 + 4 + 4*2 + 2 = 34 parameters
    assert rep.weight_bytes == 34 * 4


def test_fp32_has_no_overhead(tiny_graph):
    model = build_model("gcn", 5, 2, hidden=4)
    rep = model_memory(model, tiny_graph.edge_index, 6, BitAssignment.fp32(2))
    assert rep.groups == 0 and rep.bytes == rep.fp32_bytes == 360 and rep.saving == 1


def test_topology_aware_counts_bucket_rows(tiny_graph):
    buckets = degree_buckets(tiny_graph.edge_index, 6, 3)
    n = buckets.counts
    model = build_model("gcn", 5, 2, hidden=4)
    a = BitAssignment.full([2, 32], [[8, 4, 1], [16, 3, 32]])
    rep = model_memory(model, tiny_graph.edge_index, 6, a, buckets)
    expected_bits = (n[0] * 5 * 8 + n[1] * 5 * 4 + n[2] * 5 * 1 + 18 * 2
                     + n[0] * 4 * 16 + n[1] * 4 * 3 + n[2] * 4 * 32 + 18 * 32)
    quantized_groups = sum(1 for c in n if c) + 1 + sum(1 for c, b in zip(n, (16, 3)) if c)
    assert rep.bits_total == expected_bits
    assert rep.groups == quantized_groups
    assert rep.bytes == pytest.approx(expected_bits / 8 + 8 * quantized_groups)


def test_gat_heads_and_agnn_linear_layers(tiny_graph):
    gat = build_model("gat", 5, 2, hidden=3, heads=2)
    layout = feature_layout(gat, tiny_graph.edge_index, 6)
    assert [(l.in_dim, l.num_edges, l.heads) for l in layout.layers] == [(5, 18, 2), (6, 18, 1)]
    agnn = build_model("agnn", 5, 2, hidden=4)
    layout = feature_layout(agnn, tiny_graph.edge_index, 6)
    assert [(l.in_dim, l.num_edges, l.heads) for l in layout.layers] == [
        (5, 0, 0), (4, 18, 1), (4, 18, 1), (4, 0, 0)]
    rep = feature_memory(layout, BitAssignment.uniform(8, 4))
    assert rep.elements == 30 + (24 + 18) * 2 + 24


def test_existing_self_loops_are_not_double_counted(tiny_graph):
    import torch
    ei = torch.cat([tiny_graph.edge_index, torch.tensor([[0, 1], [0, 1]])], dim=1)
    model = build_model("gcn", 5, 2, hidden=4)
    assert feature_layout(model, ei, 6).layers[0].num_edges == 18


def test_errors(tiny_graph):
    model = build_model("gcn", 5, 2, hidden=4)
    layout = feature_layout(model, tiny_graph.edge_index, 6)
    with pytest.raises(ValueError, match="3 layers but the model has 2"):
        feature_memory(layout, BitAssignment.uniform(4, 3))
    with pytest.raises(ValueError, match="degree buckets"):
        feature_memory(layout, BitAssignment.uniform(4, 2, num_buckets=3))
    with pytest.raises(ValueError, match="BitAssignment"):
        feature_memory(layout, {"att_bits": [4, 4]})


def test_cora_gcn_matches_paper_style_average_bits(cora):
    """1-bit inputs and 8-bit rest gives ~1.2 average bits, the paper's regime."""
    model = build_model("gcn", cora.num_features, 7)
    a = BitAssignment.full([8, 8], [[1], [8]])
    rep = model_memory(model, cora.edge_index, cora.num_nodes, a)
    n, e = cora.num_nodes, cora.edge_index.size(1) + cora.num_nodes
    assert rep.elements == n * 1433 + n * 32 + 2 * e
    assert rep.average_bits == pytest.approx((n * 1433 + 8 * (n * 32 + 2 * e)) / rep.elements)
    assert 1.1 < rep.average_bits < 1.3
