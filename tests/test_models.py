import pytest
import torch
from torch_geometric.nn import AGNNConv, GATConv, GCNConv

from sgquant.bits import BitAssignment
from sgquant.data import degree_buckets
from sgquant.models import MODELS, QuantOptions, build_model


def _small(name, in_dim=5, classes=2):
    torch.manual_seed(0)
    kw = {"hidden": 4, "heads": 2} if name == "gat" else {}
    return build_model(name, in_dim, classes, **kw).eval()


@pytest.mark.parametrize("name", MODELS)
def test_all_32_is_exactly_fp32(name, tiny_graph):
    model = _small(name)
    plain = model(tiny_graph.x, tiny_graph.edge_index)
    model.set_bits(BitAssignment.fp32(model.num_layers))
    assert torch.equal(model(tiny_graph.x, tiny_graph.edge_index), plain)
    buckets = degree_buckets(tiny_graph.edge_index, 6, 3)
    model.set_bits(BitAssignment.fp32(model.num_layers, 3), buckets)
    assert torch.equal(model(tiny_graph.x, tiny_graph.edge_index), plain)


def test_gcn_equals_pyg_gcnconv(tiny_graph):
    model = _small("gcn")
    ref1, ref2 = GCNConv(5, 32), GCNConv(32, 2)
    ref1.load_state_dict(model.convs[0].state_dict())
    ref2.load_state_dict(model.convs[1].state_dict())
    x, ei = tiny_graph.x, tiny_graph.edge_index
    expected = ref2(torch.relu(ref1(x, ei)), ei)
    torch.testing.assert_close(model(x, ei), expected)


def test_gat_and_agnn_layers_equal_pyg(tiny_graph):
    torch.manual_seed(0)
    from sgquant.models import QuantAGNNConv, QuantGATConv
    x, ei = tiny_graph.x, tiny_graph.edge_index
    ours, ref = QuantGATConv(5, 3, heads=2).eval(), GATConv(5, 3, heads=2).eval()
    ref.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x, ei), ref(x, ei))
    ours, ref = QuantAGNNConv(requires_grad=True), AGNNConv(requires_grad=True)
    ref.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x, ei), ref(x, ei))


@pytest.mark.parametrize("name", MODELS)
def test_quantization_points_are_applied(name, tiny_graph):
    """At 1 bit the attention and embeddings take two values: outputs change;
    at 16 bits they barely move."""
    model = _small(name)
    x, ei = tiny_graph.x, tiny_graph.edge_index
    plain = model(x, ei)
    model.set_bits(BitAssignment.uniform(16, model.num_layers))
    torch.testing.assert_close(model(x, ei), plain, atol=1e-3, rtol=1e-3)
    model.set_bits(BitAssignment.uniform(1, model.num_layers))
    assert not torch.allclose(model(x, ei), plain, atol=1e-3)


def test_attention_is_quantized(tiny_graph):
    """Only the att component at 1 bit: GAT's attention takes <= 2 values per head."""
    model = _small("gat")
    seen = []
    original = model.quant_att

    def spy(alpha, layer):
        out = original(alpha, layer)
        seen.append(out.detach())
        return out

    model.quant_att = spy
    model.set_bits(BitAssignment.full([1, 1], [[32], [32]]))
    model(tiny_graph.x, tiny_graph.edge_index)
    assert len(seen) == 2
    for alpha in seen:
        assert alpha.unique().numel() <= 2


def test_topology_aware_uses_bucket_ranges(tiny_graph):
    model = _small("gcn")
    buckets = degree_buckets(tiny_graph.edge_index, 6, 3)
    model.set_bits(BitAssignment.full([32, 32], [[1, 2, 32], [32, 32, 32]]), buckets)
    h = model.quant_emb(tiny_graph.x, 0)
    for j, bits in enumerate((1, 2)):
        rows = h[buckets.bucket == j]
        if rows.numel():
            assert rows.unique().numel() <= 2 ** bits
    keep = buckets.bucket == 2
    assert torch.equal(h[keep], tiny_graph.x[keep])


def test_straight_through_gradients_reach_weights(tiny_graph):
    model = _small("gcn").train()
    model.set_bits(BitAssignment.uniform(2, 2))
    out = model(tiny_graph.x, tiny_graph.edge_index)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.convs[0].lin.weight.grad.abs().sum() > 0


def test_errors(tiny_graph):
    with pytest.raises(ValueError, match="unknown model 'mlp'"):
        build_model("mlp", 5, 2)
    with pytest.raises(ValueError, match="in_dim"):
        build_model("gcn", 0, 2)
    with pytest.raises(ValueError, match="heads"):
        build_model("gat", 5, 2, heads=0)
    model = _small("gcn")
    with pytest.raises(ValueError, match="3 layers but the model has 2"):
        model.set_bits(BitAssignment.uniform(4, 3))
    with pytest.raises(ValueError, match="pass the graph's DegreeBuckets"):
        model.set_bits(BitAssignment.uniform(4, 2, 3))
    buckets = degree_buckets(tiny_graph.edge_index, 6, 2)
    with pytest.raises(ValueError, match="DegreeBuckets have 2"):
        model.set_bits(BitAssignment.uniform(4, 2, 3), buckets)
    with pytest.raises(ValueError, match="BitAssignment"):
        model.set_bits({"att_bits": [4, 4]})
    with pytest.raises(ValueError, match="rounding"):
        QuantOptions(rounding="ceil")
    # buckets of another graph are refused at forward time
    model.set_bits(BitAssignment.uniform(4, 2, 2), buckets)
    other = torch.tensor([[0, 1, 2], [1, 2, 3]])
    with pytest.raises(ValueError):
        model(tiny_graph.x, other)


def test_paper_architectures():
    gcn = build_model("gcn", 1433, 7)
    assert [s.in_dim for s in gcn.layer_specs] == [1433, 32]
    agnn = build_model("agnn", 1433, 7)
    assert [s.in_dim for s in agnn.layer_specs] == [1433, 16, 16, 16]
    assert [s.heads for s in agnn.layer_specs] == [0, 1, 1, 0]
    gat = build_model("gat", 1433, 7)
    assert [(s.in_dim, s.heads) for s in gat.layer_specs] == [(1433, 8), (2048, 1)]


def test_sparse_input_dropout_matches_dropout_semantics():
    torch.manual_seed(0)
    model = _small("gcn", in_dim=200).train()
    x = (torch.rand(500, 200) < 0.05).float()
    xq = model.quant_input(x)
    out = model.input_dropout(xq, 0.5)
    assert model._input_cache[3].numel() == int(x.count_nonzero())
    assert torch.all(out[x == 0] == 0)
    kept = out[x != 0]
    assert set(kept.unique().tolist()) <= {0.0, 2.0}
    assert 0.4 < (kept > 0).float().mean() < 0.6
    model.eval()
    assert model.input_dropout(xq, 0.5) is xq


def test_input_cache_follows_in_place_changes():
    model = _small("gcn")
    model.set_bits(BitAssignment.uniform(2, 2))
    x = torch.rand(6, 5)
    first = model.quant_input(x)
    assert model.quant_input(x) is first
    x.mul_(3.0)
    again = model.quant_input(x)
    assert again is not first and again.max() > first.max()
    model.set_bits(BitAssignment.uniform(4, 2))
    assert model.quant_input(x) is not again
