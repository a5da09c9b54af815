import pytest
import torch
from torch_geometric.nn import AGNNConv, GATConv, GCNConv

from sgquant.assignment import BitAssignment
from sgquant.data import degree_buckets
from sgquant.models import MODELS, QuantOptions, build_model
from sgquant.models.base import dropout


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
    """Only the att component at 1 bit: GAT's attention takes <= 2 values per head,
    seen through forward hooks on the quantization points (no method patching)."""
    model = _small("gat")
    seen = []
    handles = [model.quant_points[name].register_forward_hook(
        lambda mod, inp, out: seen.append((mod.name, out.detach())))
        for name in ("att_L1", "att_L2")]
    model.set_bits(BitAssignment.full([1, 1], [[32], [32]]))
    model(tiny_graph.x, tiny_graph.edge_index)
    assert [name for name, _ in seen] == ["att_L1", "att_L2"]
    for _, alpha in seen:
        for head in alpha.T:
            assert head.unique().numel() <= 2
    for h in handles:
        h.remove()
    assert "bits=1" in repr(model.quant_points["att_L1"])


def test_sage_and_gin_equal_pyg(tiny_graph):
    """FP32 GraphSAGE and GIN compute PyG's SAGEConv (mean) and GINConv (GIN-0, MLP):
    the first products moved inside the sums change only the float rounding."""
    from torch_geometric.nn import GINConv, SAGEConv
    from torch_geometric.nn.models import MLP
    x, ei = tiny_graph.x, tiny_graph.edge_index
    ei = torch.cat([ei, torch.tensor([[3], [3]])], 1)  # a self-loop: kept, as PyG does
    sage, gin = _small("sage"), _small("gin")
    out_s, out_g = sage(x, ei), gin(x, ei)
    h_s, h_g = x, x
    for k, (cs, cg) in enumerate(zip(sage.convs, gin.convs)):
        ref = SAGEConv(cs.in_channels, cs.out_channels)
        ref.lin_l.weight.data, ref.lin_l.bias.data = cs.lin_l.weight, cs.bias
        ref.lin_r.weight.data = cs.lin_r.weight
        h_s = ref(h_s, ei)
        ref = GINConv(MLP([cg.lin.in_channels, cg.lin.out_channels, cg.nn[1].out_channels],
                          norm=None)).eval()  # (initialises its MLP: set the weights after)
        ref.nn.lins[0].weight.data, ref.nn.lins[0].bias.data = cg.lin.weight, cg.bias
        ref.nn.lins[1].weight.data, ref.nn.lins[1].bias.data = cg.nn[1].weight, cg.nn[1].bias
        h_g = ref(h_g, ei)
        if k == 0:
            h_s, h_g = torch.relu(h_s), torch.relu(h_g)
    torch.testing.assert_close(out_s, h_s)
    torch.testing.assert_close(out_g, h_g)
    assert set(sage.quant_points) == {"emb_L1", "att_L1", "emb_L2", "att_L2"}
    assert set(gin.quant_points) == {"emb_L1", "emb_L2"}  # a sum stores no coefficients


def test_quant_points_are_modules_without_state(tiny_graph):
    """Points are registered modules (hookable, listed by named_modules) that add
    nothing to the state dict, so FP32 checkpoints keep their keys."""
    for name in MODELS:
        model = _small(name)
        names = {n for n, _ in model.named_modules()}
        assert any(n.startswith("quant_points.emb_L1") for n in names)
        assert not any("quant_points" in k or "quantizer" in k for k in model.state_dict())
    assert set(_small("agnn").quant_points) == {"emb_L1", "emb_L2", "att_L2", "emb_L3",
                                               "att_L3", "emb_L4"}


def test_reset_cache_is_public(tiny_graph):
    model = _small("gcn")
    model.set_bits(BitAssignment.uniform(2, 2))
    x, ei = tiny_graph.x, tiny_graph.edge_index
    model(x, ei)
    assert model._input_cache and model._norm_cache
    model.reset_cache()
    assert not model._input_cache and not model._norm_cache
    # the normalisation cache is keyed by the edge tensor itself, not its address
    first = model.normalized_edges(ei, 6)
    assert model.normalized_edges(ei, 6)[0] is first[0]
    assert model.normalized_edges(ei.clone(), 6)[0] is not first[0]


@pytest.mark.parametrize("name", MODELS)
def test_eval_products_use_row_blocks(name):
    """In eval, every row's output comes from a ROW_BLOCK-row product at a fixed
    position, so evaluating any row range aligned at a multiple of ROW_BLOCK gives
    the same floats as the whole (the contract packed inference relies on)."""
    from sgquant.models import ROW_BLOCK, row_blocks
    torch.manual_seed(0)
    lin = torch.nn.Linear(37, 5)
    x = torch.randn(3 * ROW_BLOCK + 7, 37)
    whole = row_blocks(lin, x)
    assert torch.equal(torch.cat([row_blocks(lin, x[:ROW_BLOCK]), row_blocks(lin, x[ROW_BLOCK:])]),
                       whole)
    torch.testing.assert_close(whole, lin(x))
    from sgquant.models import RowBlockedLinear, RowBlockedPygLinear
    model = _small(name, in_dim=37)
    lin_module = next(m for m in model.modules()  # a product of the input
                      if isinstance(m, (RowBlockedLinear, RowBlockedPygLinear))
                      and getattr(m, "in_features", getattr(m, "in_channels", 0)) == 37)
    model.eval()
    assert torch.equal(lin_module(x), row_blocks(lambda b: torch.nn.functional.linear(
        b, lin_module.weight, getattr(lin_module, "bias", None)), x))


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
    for bad in (2.0, -0.1, 1.0, float("nan"), True):
        with pytest.raises(ValueError, match="dropout must be a finite number >= 0.0 and < 1.0"):
            build_model("gcn", 5, 2, dropout=bad)
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


def test_sparse_input_dropout_writes_one_buffer_per_input():
    """Each training step overwrites the non-zero entries of one buffer (a fresh dense
    tensor per step cost more than the layer's product on Coauthor-CS): same storage,
    the values a fresh tensor would hold, a step's backward unharmed, and a new buffer
    for another input."""
    torch.manual_seed(0)
    model = _small("gcn", in_dim=200).train()
    x = (torch.rand(500, 200) < 0.05).float()
    xq = model.quant_input(x)
    first = model.input_dropout(xq, 0.5)
    pointer = first.data_ptr()
    torch.manual_seed(1)
    second = model.input_dropout(xq, 0.5)
    assert second.data_ptr() == pointer
    torch.manual_seed(1)
    nz = x.reshape(-1).nonzero().view(-1)
    expected = torch.zeros(x.numel()).index_copy(0, nz, dropout(x.reshape(-1)[nz], 0.5))
    assert torch.equal(second.reshape(-1), expected)
    model.convs[0].lin(second).sum().backward()  # the step's backward reads the buffer
    stale = model.convs[0].lin(model.input_dropout(xq, 0.5))
    model.input_dropout(xq, 0.5)  # a second step before the first one's backward: refused
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        stale.sum().backward()
    other = model.quant_input(x.clone())
    assert model.input_dropout(other, 0.5).data_ptr() != pointer


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


def test_points_take_their_kinds_options(tiny_graph):
    from sgquant.quantize import QuantOptions
    model = _small("gat")
    opts = QuantOptions("floor", hidden=QuantOptions("nearest", 99.0), att=QuantOptions("nearest"))
    model.set_bits(BitAssignment.uniform(2, 2), options=opts)
    p = model.quant_points
    assert p["emb_L1"].options == QuantOptions("floor")
    assert p["emb_L2"].options == QuantOptions("nearest", 99.0)
    assert p["att_L1"].options == p["att_L2"].options == QuantOptions("nearest")
    out = model(tiny_graph.x, tiny_graph.edge_index)
    model.set_bits(BitAssignment.uniform(2, 2))
    assert not torch.equal(out, model(tiny_graph.x, tiny_graph.edge_index))


def test_gcn_training_step_reuses_its_transposed_adjacency(tiny_graph):
    """A GCN training step's backward multiplies by the transpose cached with the
    adjacency (torch transposed and sorted the CSR matrix on every step), and its
    gradients are those of PyG's GCNConv on the same sparse adjacency, bit for bit."""
    from torch.profiler import profile

    x, ei = tiny_graph.x, tiny_graph.edge_index
    torch.manual_seed(0)
    net = build_model("gcn", x.size(1), 3, dropout=0.0).train()
    net(x, ei).sum().backward()  # builds the cached matrices
    net.zero_grad()
    with profile() as prof:
        out = net(x, ei)
        out.square().sum().backward()
    ops = {e.key for e in prof.key_averages()}
    assert not ops & {"aten::_to_sparse_csr", "aten::sort"}, sorted(ops)
    ours = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    n = x.size(0)
    e, w = net.normalized_edges(ei, n)
    h = x
    for k, conv in enumerate(net.convs):  # PyG's own sparse path, torch's own backward
        h = conv(h, net.adjacency(k, e, w, n)[0])
        h = h.relu() if k < len(net.convs) - 1 else h
    assert torch.equal(h, out)
    h.square().sum().backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(ours, net.parameters()))


def test_grouped_point_writes_one_output_and_copies_no_input():
    """A point quantized by row groups that partition the rows writes each group into one
    output (it copied the whole input once per group): same values as quantizing each
    group alone, rows of a 32-bit group unchanged, gradients straight through."""
    from torch.profiler import profile

    from sgquant.models.base import QuantPoint
    torch.manual_seed(0)
    x = torch.randn(90, 7, requires_grad=True)
    groups = [torch.arange(0, 90, 3), torch.arange(1, 90, 3), torch.arange(2, 90, 3)]
    point = QuantPoint("emb_L2")
    point.configure((2, 4, 8), groups)
    with profile() as prof:
        out = point(x)
    ops = {e.key for e in prof.key_averages()}
    assert not ops & {"aten::clone", "aten::index_copy"}, sorted(ops)
    for idx, bits in zip(groups, (2, 4, 8)):
        assert torch.equal(out[idx], point._fq(x[idx], bits))
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    point.configure((2, 32, 8), groups)
    assert torch.equal(point(x)[groups[1]], x[groups[1]])
    point.configure((2, 4), groups[:2])  # not every row: the others keep their floats
    assert torch.equal(point(x)[groups[2]], x[groups[2]])
