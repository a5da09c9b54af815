"""Packed inference (sgquant.packed), measured memory (sgquant.memory) and the
the memory of packed inference measured (sgquant.packed_memory) and chapter 6's rounding
table (sgquant.chapters.rematching)."""
from __future__ import annotations

import math

import pytest
import torch

from sgquant.assignment import BitAssignment
from sgquant.data import degree_buckets
from sgquant.memory import (feature_layout, feature_memory, measure_pass,
                            python_allocation_peak, torch_allocation_peak)
from sgquant.models import MODELS, QuantOptions, build_model
from sgquant.packed import (PackedRunner, dequantize_packed_rows, gather_packed_rows,
                            neighbor_batches, packed_forward, sampled_packed_forward)
from sgquant.quantize import FP32_BITS, fake_quantize, linear_quantize


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def buckets(cora):
    return degree_buckets(cora.edge_index, cora.num_nodes, 3)


def _model(name: str, cora, seed: int = 0):
    torch.manual_seed(seed)
    kwargs = {"hidden": 8, "heads": 2} if name == "gat" else {}
    return build_model(name, cora.num_features, int(cora.y.max()) + 1, **kwargs).eval()


def _mixed(num_layers: int) -> BitAssignment:
    """Per-layer, per-bucket bits including 1 and 32."""
    att = [(1, 4, 32, 8)[k % 4] for k in range(num_layers)]
    emb = [((1, 2, 32), (8, 3, 4), (32, 1, 16), (5, 6, 7))[k % 4] for k in range(num_layers)]
    return BitAssignment.full(att, emb)


def _fake_quant(model, data, assignment, buckets=None, options=None):
    model.set_bits(assignment, buckets if assignment.num_buckets > 1 else None, options)
    with torch.no_grad():
        out = model(data.x, data.edge_index)
    model.set_bits(None)
    return out


# ------------------------------------------------------------ packed == fake-quant
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("kind", ["uniform4", "mixed"])
@pytest.mark.parametrize("chunk", ["one", "odd", "unaligned", "beyond"])
def test_packed_predictions_equal_fake_quant(cora, buckets, name, kind, chunk):
    """The contract: packed logits equal the fake-quant model's bit for bit, at any
    chunk size, on any CPU kernel set (products run on the same row blocks in both
    paths; ``test_packed_equals_fake_quant_under_other_kernels`` reruns the check
    under ATEN_CPU_CAPABILITY=default and avx2 and under MKL_CBWR=COMPATIBLE, beside
    this CPU's own kernels)."""
    model = _model(name, cora)
    L = model.num_layers
    assignment = BitAssignment.uniform(4, L) if kind == "uniform4" else _mixed(L)
    bk = buckets if assignment.num_buckets > 1 else None
    ref = _fake_quant(model, cora, assignment, bk)
    n = cora.num_nodes
    # chunk of 1 row: node rows one by one (edges in chunks of 1 for GCN, 257 otherwise,
    # to keep the test fast); odd: 37 rows and edges; unaligned: 100 rows (not a multiple
    # of the row block); beyond: larger than N and E
    sizes = {"one": (1, 1 if name == "gcn" else 257), "odd": (37, 37), "unaligned": (100, 1000),
             "beyond": (n + 5, 10 * cora.num_edges)}[chunk]
    out = packed_forward(model, cora, assignment, bk, chunk_size=sizes[0],
                         edge_chunk_size=sizes[1])
    assert torch.equal(out, ref)


def test_packed_options_nearest_and_clip(cora, buckets):
    model = _model("gcn", cora)
    assignment = BitAssignment.uniform(2, model.num_layers, 3)
    opts = QuantOptions("nearest", 99.0)
    ref = _fake_quant(model, cora, assignment, buckets, opts)
    out = packed_forward(model, cora, assignment, buckets, chunk_size=100, options=opts)
    assert torch.equal(out.argmax(1), ref.argmax(1))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # the option matters: the paper's floor/min-max gives other logits
    plain = packed_forward(model, cora, assignment, buckets, chunk_size=100)
    assert not torch.allclose(plain, out)


def test_packed_clip_rule_mse_equals_fake_quant(cora, buckets):
    """With ``clip_rule="mse"`` each group's range is chosen on the whole group, by the same
    arithmetic in both paths: low-bit groups clipped, high-bit ones not, same logits."""
    model = _model("gcn", cora)
    assignment = BitAssignment.full([2, 16], [[1, 2, 8], [2, 8, 16]])
    opts = QuantOptions("nearest", hidden=QuantOptions("nearest", 99.0, clip_rule="mse"),
                        att=QuantOptions("nearest", 99.0, clip_rule="mse"))
    ref = _fake_quant(model, cora, assignment, buckets, opts)
    out = packed_forward(model, cora, assignment, buckets, chunk_size=100, options=opts)
    assert torch.equal(out.argmax(1), ref.argmax(1))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    always = QuantOptions("nearest", hidden=QuantOptions("nearest", 99.0),
                          att=QuantOptions("nearest", 99.0))
    assert not torch.allclose(_fake_quant(model, cora, assignment, buckets, always), ref)


def test_rematching_errors_use_each_points_whole_options():
    """Chapter 6's reconstruction error quantizes each field with its point's options:
    the clip rule and the per-kind options apply (they were dropped: every field got the
    base rounding and clip percentile)."""
    from sgquant.chapters.rematching import reconstruction_error

    g = torch.Generator().manual_seed(3)
    features = [("emb", 0, torch.randn(300, 6, generator=g)),
                ("emb", 1, torch.randn(300, 4, generator=g) ** 3),
                ("att", 1, torch.rand(900, 1, generator=g) ** 4)]
    assignment = BitAssignment.full([32, 2], [[4], [2]])
    opts = QuantOptions("floor", hidden=QuantOptions("nearest", 99.0, clip_rule="mse"),
                        att=QuantOptions("nearest", 99.5))
    sq_err = sq_ref = 0.0
    for x, bits, o in ((features[0][2], 4, ("floor", None, "always")),
                       (features[1][2], 2, ("nearest", 99.0, "mse")),
                       (features[2][2], 2, ("nearest", 99.5, "always"))):
        xq = fake_quantize(x, bits, *o)
        sq_err += float((x - xq).double().square().sum())
        sq_ref += float(x.double().square().sum())
    got = reconstruction_error(features, assignment, opts)
    assert got["rel_error"] == pytest.approx(math.sqrt(sq_err / sq_ref), rel=1e-12)
    assert got["mse"] == pytest.approx(sq_err / (1800 + 1200 + 900), rel=1e-12)
    base = reconstruction_error(features, assignment, opts.base())
    assert base["rel_error"] != pytest.approx(got["rel_error"], rel=1e-3)


def test_input_codes_identical_to_fake_quant(cora, buckets):
    model = _model("gcn", cora)
    assignment = _mixed(model.num_layers)
    runner = PackedRunner(model, assignment, buckets=buckets, chunk_size=64,
                          keep_features=True)
    result = runner.run(cora.x, cora.edge_index)
    model.set_bits(assignment, buckets)
    expected = model.quant_emb(cora.x, 0)
    model.set_bits(None)
    assert torch.equal(result.features["emb_L1"].dequantize(), expected)
    # stored as packed bytes (uint8, ceil(n b / 8)), float32 only for 32-bit groups
    for feature in result.features.values():
        for group in feature.groups:
            if group.bits == FP32_BITS:
                assert group.packed is None and group.values.dtype == torch.float32
            else:
                assert group.values is None and group.packed.data.dtype == torch.uint8
                n = group.packed.numel
                assert group.packed.data.numel() == (n * group.bits + 7) // 8


# ---------------------------------------------------------------- bytes vs analytic
@pytest.mark.parametrize("name", MODELS)
def test_packed_nbytes_match_analytic(cora, buckets, name):
    model = _model(name, cora)
    L = model.num_layers
    for assignment in [*(BitAssignment.uniform(b, L) for b in (1, 2, 4, 8)), _mixed(L)]:
        bk = buckets if assignment.num_buckets > 1 else None
        runner = PackedRunner(model, assignment, buckets=bk, chunk_size=2048,
                              edge_chunk_size=1 << 15, keep_features=True)
        result = runner.run(cora.x, cora.edge_index)
        analytic = feature_memory(feature_layout(model, cora.edge_index, cora.num_nodes, bk),
                                  assignment)
        assert abs(result.measured_bytes - analytic.bytes) / analytic.bytes < 0.01
        assert result.elements == analytic.elements
        # the records are the objects' own sizes
        assert result.measured_bytes == sum(f.nbytes for f in result.features.values())


# -------------------------------------------------------------------- measured peak
def test_packed_peak_below_fp32_when_features_dominate(cora):
    """Cora's input (2708 x 1433 float32, 15.5 MB) dominates a GCN's features."""
    model = _model("gcn", cora)
    assignment = BitAssignment.uniform(2, model.num_layers)
    x, ei = cora.x, cora.edge_index

    def fp32():
        model.reset_cache()
        with torch.no_grad():
            return model(x, ei)

    _, fp32_mem = measure_pass(fp32)
    runner = PackedRunner(model, assignment, chunk_size=64)
    xp = runner.pack_input(x, ei)
    _, packed_mem = measure_pass(lambda: runner.run(xp, ei).logits)
    fp32_total = 4 * x.numel() + fp32_mem.pass_peak_bytes
    packed_total = xp.nbytes + packed_mem.pass_peak_bytes
    assert fp32_mem.reset_ok and packed_mem.reset_ok
    assert packed_total < fp32_total
    assert packed_total < 0.5 * fp32_total


def test_tracemalloc_does_not_see_torch_but_profiler_does():
    nbytes = 16_000_000
    _, traced = python_allocation_peak(lambda: torch.ones(nbytes // 4).sum())
    assert traced < nbytes // 10
    _, seen = torch_allocation_peak(lambda: torch.ones(nbytes // 4).sum())
    if seen is None:
        pytest.skip("torch profiler memory events unavailable")
    assert seen >= nbytes


def test_measure_pass_sees_a_temporary():
    x = torch.rand(1000, 1000)  # 4 MB
    _, mem = measure_pass(lambda: (x * 2 + 1).sum())
    if not mem.reset_ok:
        pytest.skip("peak RSS cannot be reset here")
    assert mem.pass_peak_bytes >= 3_500_000


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("chunk", [0, -3, 1.5, True, "8"])
def test_bad_chunk_size(cora, chunk):
    model = _model("gcn", cora)
    with pytest.raises(ValueError, match="chunk_size"):
        PackedRunner(model, BitAssignment.uniform(4, 2), chunk_size=chunk)
    with pytest.raises(ValueError, match="edge_chunk_size"):
        PackedRunner(model, BitAssignment.uniform(4, 2), edge_chunk_size=chunk)


def test_assignment_that_does_not_fit(cora, buckets):
    model = _model("agnn", cora)  # 4 layers
    with pytest.raises(ValueError, match="layers"):
        PackedRunner(model, BitAssignment.uniform(4, 2))
    with pytest.raises(ValueError, match="DegreeBuckets"):
        PackedRunner(model, BitAssignment.uniform(4, 4, 3))  # buckets missing
    two = degree_buckets(cora.edge_index, cora.num_nodes, 2)
    with pytest.raises(ValueError, match="2"):
        PackedRunner(model, BitAssignment.uniform(4, 4, 3), buckets=two)


def test_buckets_of_another_graph(cora, buckets):
    model = _model("gcn", cora)
    assignment = BitAssignment.uniform(4, 2, 3)
    ei = cora.edge_index
    other = torch.cat([ei[:, 1:], ei[:, :1]], 1)  # same sizes, another edge order
    with pytest.raises(ValueError, match="another graph"):
        packed_forward(model, cora.clone().update({"edge_index": other}), assignment, buckets)
    small = degree_buckets(ei[:, :100], cora.num_nodes, 3)
    with pytest.raises(ValueError, match="edges"):
        packed_forward(model, cora, assignment, small)


# ------------------------------------------------------------------ storage helpers
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 7, 8, 12, 16])
def test_row_decoding_matches_packed_tensor(bits):
    g = torch.Generator().manual_seed(bits)
    for shape in [(41,), (23, 3), (17, 5, 2)]:
        packed = linear_quantize(torch.randn(*shape, generator=g), bits).pack()
        full = packed.dequantize()
        for start, stop in [(0, shape[0]), (3, 11), (shape[0] - 1, shape[0]), (4, 4)]:
            assert torch.equal(dequantize_packed_rows(packed, start, stop),
                               packed.dequantize_rows(start, stop))
        rows = torch.randint(0, shape[0], (60,), generator=g)
        assert torch.equal(gather_packed_rows(packed, rows), full[rows])
    with pytest.raises(ValueError):
        dequantize_packed_rows(packed, 0, shape[0] + 1)


# ---------------------------------------------------------------- neighbour sampling
@pytest.mark.parametrize("name", MODELS)
def test_sampled_inference_with_all_neighbours_is_exact(cora, name):
    model = _model(name, cora)
    L = model.num_layers
    hops = [-1] * (L if name != "agnn" else L - 2)
    fp32 = BitAssignment.fp32(L)
    with torch.no_grad():
        ref = model(cora.x, cora.edge_index)
    out = sampled_packed_forward(model, cora, fp32, num_neighbors=hops, batch_size=900,
                                 chunk_size=512, backend="torch")
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    # quantized input, float hidden features: the input's codes are the full graph's
    emb = [[4]] + [[FP32_BITS]] * (L - 1)
    asg = BitAssignment.full([FP32_BITS] * L, emb)
    full = packed_forward(model, cora, asg, chunk_size=512)
    out = sampled_packed_forward(model, cora, asg, num_neighbors=hops, batch_size=1000,
                                 chunk_size=512, backend="torch")
    torch.testing.assert_close(out, full, rtol=1e-4, atol=1e-5)


def test_sampled_inference_with_fanout(cora, buckets):
    model = _model("gcn", cora)
    assignment = BitAssignment.uniform(4, 2, 3)
    seeds = torch.arange(0, cora.num_nodes, 7)
    out = sampled_packed_forward(model, cora, assignment, num_neighbors=[5, 3],
                                 batch_size=128, buckets=buckets, input_nodes=seeds,
                                 backend="torch")
    assert out.shape == (seeds.numel(), int(cora.y.max()) + 1)
    assert torch.isfinite(out).all()
    # fan-out bounds the sampled in-degree of every seed
    for n_id, sub, size in neighbor_batches(cora.edge_index, cora.num_nodes, [5, 3], 200,
                                            backend="torch"):
        seed_in = torch.bincount(sub[1], minlength=n_id.numel())[:size]
        assert int(seed_in.max()) <= 5
        break
    with pytest.raises(ValueError, match="num_neighbors"):
        next(neighbor_batches(cora.edge_index, cora.num_nodes, [0], 10))


def test_sampled_with_pyg_neighbor_loader(cora):
    from sgquant.packed import pyg_sampler_available
    if not pyg_sampler_available():
        pytest.skip("PyG's NeighborLoader needs pyg-lib or torch-sparse (not installed)")
    model = _model("gcn", cora)
    fp32 = BitAssignment.fp32(2)
    with torch.no_grad():
        ref = model(cora.x, cora.edge_index)
    out = sampled_packed_forward(model, cora, fp32, num_neighbors=[-1, -1], batch_size=900,
                                 backend="pyg")
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------- tables
def test_packed_vs_analytic_table(tmp_path):
    from sgquant import packed_memory
    df = packed_memory.packed_vs_analytic("Cora", "gcn", [1, 4], profile="quick",
                                          results=str(tmp_path))
    assert list(df["assignment"]) == ["uniform 1-bit", "uniform 4-bit"]
    assert (df["rel_diff"].abs() < 0.01).all()
    assert (df["pred_agreement"] == 1.0).all()
    assert df.loc[0, "measured_bytes"] < df.loc[1, "measured_bytes"]


def test_peak_memory_table_quick(tmp_path):
    from sgquant import packed_memory
    df = packed_memory.peak_memory_table("Cora", "gcn", 2, chunk_sizes=(64,),
                                         modes=("fp32", "fake_quant", "packed"),
                                         profile="quick", results=str(tmp_path))
    assert list(df["mode"]) == ["fp32", "fake_quant", "packed"]
    fp32, fake, packed = (df.loc[i, "inference_bytes"] for i in range(3))
    assert packed < fp32 < fake  # fake-quant holds a float32 copy of the quantized input
    assert df.loc[1, "pred_hash"] == df.loc[2, "pred_hash"]
    with pytest.raises(ValueError, match="mode"):
        packed_memory.peak_memory_table("Cora", "gcn", modes=("int8",), profile="quick",
                                        results=str(tmp_path))


def test_rounding_table_one_bit_hidden(tmp_path):
    from sgquant.chapters import rematching
    df = rematching.rounding_table("Cora", "gcn", (1,), targets=("hidden",), profile="quick",
                                   results=str(tmp_path))
    assert len(df) == 4
    assert set(df["range"]) == {"min/max", "clip p99"}
    err = df.set_index(["rounding", "range"])["rel_error"]
    # ReLU features (min 0): nearest never rounds a value further than floor does
    assert err[("nearest", "min/max")] <= err[("floor", "min/max")]
    assert ((df["val_acc"] >= 0) & (df["val_acc"] <= 1)).all()
    with pytest.raises(ValueError, match="target"):
        rematching.rounding_table("Cora", "gcn", (1,), targets=("weights",),
                                  profile="quick", results=str(tmp_path))


def test_synthetic_graph_is_deterministic():
    from sgquant.synthetic import synthetic_graph
    a = synthetic_graph(500, 6000, 12, 4, seed=3)
    b = synthetic_graph(500, 6000, 12, 4, seed=3)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert abs(a.edge_index.size(1) - 6000) <= 0.05 * 6000  # self-loops dropped
    assert int(a.edge_index.max()) < 500
    deg = torch.bincount(a.edge_index[1], minlength=500).float()
    assert deg.max() > 3 * deg.mean()  # heavy-tailed degrees
    with pytest.raises(ValueError, match="num_nodes"):
        synthetic_graph(0, 10, 2, 2)


@pytest.mark.slow
def test_isolated_peak_measurement(tmp_path):
    from sgquant import packed_memory
    spec = {"num_nodes": 3000, "num_edges": 30000, "num_features": 1000, "num_classes": 5}
    df = packed_memory.peak_memory_table(spec, "gcn", 2, chunk_sizes=(128,),
                                         modes=("fp32", "packed"), profile="quick",
                                         isolate=True, results=str(tmp_path))
    assert df["total_bytes"].notna().all()
    assert df.loc[1, "total_bytes"] < df.loc[0, "total_bytes"]
    assert math.isclose(df.loc[0, "input_bytes"], 4 * 3000 * 1000)


@pytest.mark.parametrize("name", MODELS)
def test_graph_with_self_loops(cora, name):
    """Existing self-loops are replaced by one per node, as PyG does (GraphSAGE and GIN,
    which add none, aggregate over the edges as given, as PyG does)."""
    model = _model(name, cora)
    loops = torch.arange(0, cora.num_nodes, 5).repeat(2, 1)
    data = cora.clone()
    data.edge_index = torch.cat([cora.edge_index[:, :4000], loops, cora.edge_index[:, 4000:]], 1)
    assignment = BitAssignment.uniform(3, model.num_layers)
    ref = _fake_quant(model, data, assignment)
    out = packed_forward(model, data, assignment, chunk_size=300)
    assert torch.equal(out.argmax(1), ref.argmax(1))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    runner = PackedRunner(model, assignment, chunk_size=300)
    layout = feature_layout(model, data.edge_index, data.num_nodes)
    measured = runner.run(data.x, data.edge_index).measured_bytes
    assert abs(measured - feature_memory(layout, assignment).bytes) < 16


# ------------------------------------------------------ other CPUs' float kernels
_EQUIVALENCE_SCRIPT = r"""
import torch
from sgquant.assignment import BitAssignment
from sgquant.data import degree_buckets, load_dataset
from sgquant.models import MODELS, build_model
from sgquant.packed import packed_forward
torch.set_num_threads(1)
cora = load_dataset("Cora")
buckets = degree_buckets(cora.edge_index, cora.num_nodes, 3)
bad = []
for name in MODELS:
    torch.manual_seed(0)
    kw = {"hidden": 8, "heads": 2} if name == "gat" else {}
    model = build_model(name, cora.num_features, 7, **kw).eval()
    L = model.num_layers
    for a in (BitAssignment.uniform(4, L),
              BitAssignment.full([1] * L, [[1, 3, 32]] + [[8, 2, 5]] * (L - 1))):
        bk = buckets if a.num_buckets > 1 else None
        model.set_bits(a, bk)
        with torch.no_grad():
            ref = model(cora.x, cora.edge_index)
        model.set_bits(None)
        for chunk, edge_chunk in ((1, 4096), (37, 37), (100, 1000)):
            out = packed_forward(model, cora, a, bk, chunk_size=chunk, edge_chunk_size=edge_chunk)
            if not torch.equal(out, ref):
                bad.append(f"{name} {a} chunk {chunk}: {int((out != ref).sum())} logits differ")
print("\n".join(bad) or "identical")
"""


@pytest.mark.parametrize("setting", ["ATEN_CPU_CAPABILITY=default", "ATEN_CPU_CAPABILITY=avx2",
                                     "MKL_CBWR=COMPATIBLE"])
def test_packed_equals_fake_quant_under_other_kernels(cora, setting):
    """Float kernels differ by CPU (a test that passed on one machine failed on a
    newcomer's): rerun the bit-identity check in a fresh process under another kernel
    set (torch's dispatch level; an unsupported level falls back to a lower one) and
    under MKL's compatibility path, which emulates another BLAS code path."""
    import os
    import subprocess
    import sys
    key, value = setting.split("=")
    env = {**os.environ, key: value, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _EQUIVALENCE_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "identical", proc.stdout


def test_edges_as_given_and_sums_without_coefficients(cora):
    """The blocks of a model that adds no self-loops and sums without coefficients
    (GIN): the graph's edges in their order, existing self-loops kept, and
    :meth:`PackedRunner.aggregate` with ``att=None`` equal to one scatter-add."""
    from sgquant.packed import Edges
    ei = torch.tensor([[0, 2, 1, 3], [1, 2, 0, 1]])
    as_given, pyg = Edges(ei, 4, self_loops=False), Edges(ei, 4)
    assert as_given.num_edges == 4 and torch.equal(torch.stack(as_given.pair(0, 4)), ei)
    assert torch.equal(as_given.in_degree(), torch.tensor([1.0, 2.0, 1.0, 0.0]))
    assert pyg.num_edges == 3 + 4
    assert torch.equal(pyg.in_degree(), torch.tensor([2.0, 3.0, 1.0, 1.0]))
    runner = PackedRunner(_model("gcn", cora), BitAssignment.uniform(4, 2), edge_chunk_size=3)
    edges = runner.edges(cora.edge_index, cora.num_nodes, self_loops=False)
    h = torch.rand(cora.num_nodes, 5)
    out = runner.aggregate(None, lambda src, a: h.index_select(0, src), edges,
                           runner.zeros(cora.num_nodes, 5))
    src, dst = cora.edge_index
    want = torch.zeros(cora.num_nodes, 5).scatter_add_(0, dst.view(-1, 1).expand(-1, 5), h[src])
    assert torch.equal(out, want)
