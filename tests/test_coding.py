"""Coded storage (sgquant.coding): lossless round trips, honest byte counts, integrity,
coded inference equal to packed inference, the targets of chapter 7 on Cora, and the
chapter's functions in the quick profile."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sgquant.assignment import BitAssignment
from sgquant.coding import (CODECS, CodedTensor, GroupCodes, block_rows_for, check_codec,
                            code_entropy_bits, encode_codes, encode_group)
from sgquant.coding.codecs import plan_sparse, sparse_payload_sizes
from sgquant.coding.tensor import coded_nbytes
from sgquant.data import degree_buckets
from sgquant.models import MODELS, build_model
from sgquant.packed import PackedRunner
from sgquant.bitpack import PackedTensor
from sgquant.quantize import linear_quantize

WIDTHS = [1, 2, 3, 4, 7, 8, 12, 16]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sparse_tensor(shape, bits: int, zero_share: float, seed: int = 0) -> PackedTensor:
    """Quantized codes of a tensor with ``zero_share`` exact zeros (one dominant code)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    x = torch.where(torch.rand(*shape, generator=g) < zero_share, torch.zeros_like(x), x)
    return linear_quantize(x, bits).pack()


# --------------------------------------------------------------------- round trips
@pytest.mark.parametrize("bits", WIDTHS)
@pytest.mark.parametrize("codec", ["sparse", "entropy", "auto"])
def test_round_trip_rows_and_gather(bits, codec):
    g = torch.Generator().manual_seed(bits)
    for shape, share in [((41,), 0.0), ((300, 37), 0.9), ((1000, 5), 0.5), ((64, 3, 2), 0.99)]:
        packed = _sparse_tensor(shape, bits, share, seed=bits)
        full = packed.dequantize()
        for block_elements in (16, 1000, 1 << 16):  # one to hundreds of blocks
            coded = encode_group(packed, codec, name="g", block_elements=block_elements)
            assert torch.equal(coded.dequantize(), full)
            assert torch.equal(coded.rows(3, 11), full[3:11])
            assert coded.rows(5, 5).shape == (0, *shape[1:])
            rows = torch.randint(0, shape[0], (60,), generator=g)
            assert torch.equal(coded.gather(rows), full[rows])
            if isinstance(coded, CodedTensor):
                assert np.array_equal(coded.codes(), packed.unpack().codes.numpy())


def test_fixed_width_rows_equal_full_decode():
    """The byte-table rows of PackedTensor (numpy gather on the CPU) equal a full
    unpack + dequantize at every width and row offset."""
    for bits in (1, 2, 3, 4, 8, 16):
        packed = _sparse_tensor((57, 13), bits, 0.3, seed=bits)
        full = packed.unpack().dequantize()
        for start, stop in [(0, 57), (1, 9), (7, 8), (56, 57)]:
            assert torch.equal(packed.rows(start, stop), full[start:stop])
        rows = torch.tensor([5, 0, 56, 5, 31])
        assert torch.equal(packed.gather(rows), full[rows])


def test_sparse_codec_stores_only_positions_of_a_binary_input():
    packed = _sparse_tensor((512, 300), 1, 0.99)
    coded = encode_group(packed, "sparse", name="input")
    assert coded.plan.value_width == 0  # one non-dominant code: no values stored
    assert coded.nbytes < packed.nbytes / 4


# ------------------------------------------------------------------- byte counts
def test_nbytes_counts_everything_stored():
    packed = _sparse_tensor((400, 50), 4, 0.8)
    for codec in ("sparse", "entropy"):
        c = encode_group(packed, codec, block_elements=2000)
        assert c.num_blocks == -(-400 // block_rows_for(50, 2000)) > 1
        assert c.nbytes == (len(c.meta) + 4 + c.data.size + c.offsets.nbytes
                            + c.checksums.nbytes + 8)


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_sparse_size_is_known_before_coding(bits):
    packed = _sparse_tensor((500, 7), bits, 0.7, seed=bits)
    for block_elements in (16, 1000):
        scan = GroupCodes(packed, block_rows_for(7, block_elements))
        plan = plan_sparse(scan)
        built = encode_group(packed, "sparse", block_elements=block_elements)
        assert coded_nbytes(plan.to_meta(), sparse_payload_sizes(plan, scan)) == built.nbytes


@pytest.mark.parametrize("share", [0.0, 0.6, 0.99])
def test_auto_keeps_the_smallest(share):
    packed = _sparse_tensor((300, 20), 4, share)
    sizes = {"packed": packed.nbytes,
             "sparse": encode_group(packed, "sparse").nbytes,
             "entropy": encode_group(packed, "entropy").nbytes}
    auto = encode_group(packed, "auto")
    assert auto.nbytes == min(sizes.values())
    chosen = "packed" if isinstance(auto, PackedTensor) else auto.codec
    assert sizes[chosen] == min(sizes.values())


def test_entropy_codec_reaches_the_entropy_on_large_groups():
    g = torch.Generator().manual_seed(0)
    codes = torch.multinomial(torch.tensor([0.6, 0.2, 0.1, 0.05, 0.05]), 200_000, True,
                              generator=g).view(2000, 100)
    coded = encode_codes(codes, 3, "entropy", name="skewed")
    bound = code_entropy_bits(_packed(codes, 3)) / 8
    assert bound < coded.nbytes < 1.03 * bound
    assert np.array_equal(coded.codes(), codes.numpy())


def _packed(codes: torch.Tensor, bits: int) -> PackedTensor:
    from sgquant.bitpack import pack_bits
    return PackedTensor(pack_bits(codes, bits), 0.0, 1.0, bits, tuple(codes.shape))


# --------------------------------------------------------------------- bad input
def test_codes_beyond_their_width_are_refused():
    with pytest.raises(ValueError, match=r"bits=2 must lie in \[0, 3\]"):
        encode_codes(np.array([[0, 1], [4, 2]]), 2, "entropy")
    with pytest.raises(ValueError, match="bits=1"):
        encode_codes(torch.tensor([0, 2]), 1, "sparse")


@pytest.mark.parametrize("bad", ["zip", "", None, 3, "Packed"])
def test_unknown_codec_lists_the_codecs(cora, bad):
    with pytest.raises(ValueError, match="packed, sparse, entropy, auto"):
        check_codec(bad)
    model = build_model("gcn", cora.num_features, 7)
    with pytest.raises(ValueError, match="codec"):
        PackedRunner(model, BitAssignment.uniform(4, 2), codec=bad)
    assert CODECS == ("packed", "sparse", "entropy", "auto")


# --------------------------------------------------------------------- integrity
def _coded(codec: str = "entropy") -> tuple[CodedTensor, torch.Tensor]:
    packed = _sparse_tensor((600, 40), 4, 0.7)
    coded = encode_group(packed, codec, name="emb_L3 bucket 1", block_elements=4000)
    assert isinstance(coded, CodedTensor) and coded.num_blocks > 2
    return coded, packed.dequantize()


@pytest.mark.parametrize("codec", ["sparse", "entropy"])
def test_flipped_bytes_are_detected(codec):
    coded, _ = _coded(codec)
    for pos in (0, coded.data.size // 2, coded.data.size - 1):
        c, full = _coded(codec)
        c.data[pos] ^= 0x5A
        with pytest.raises(ValueError, match=r"'emb_L3 bucket 1'.*checksum"):
            c.dequantize()


def test_truncated_or_corrupted_index_and_header_are_detected():
    c, _ = _coded()
    c.data = c.data[:-3]
    with pytest.raises(ValueError, match=r"'emb_L3 bucket 1'.*truncated"):
        c.rows(0, 1)
    c, _ = _coded()
    c.offsets[1] += 1
    with pytest.raises(ValueError, match="emb_L3 bucket 1"):
        c.dequantize()
    c, _ = _coded()
    c.checksums[-1] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        c.dequantize()
    c, _ = _coded()
    meta = bytearray(c.meta)
    meta[len(meta) // 2] ^= 0xFF
    c.meta = bytes(meta)
    with pytest.raises(ValueError, match=r"'emb_L3 bucket 1'.*header"):
        c.rows(0, 1)


def test_corrupted_input_never_gives_logits(cora):
    torch.manual_seed(0)
    model = build_model("gcn", cora.num_features, 7).eval()
    runner = PackedRunner(model, BitAssignment.uniform(1, 2), codec="entropy")
    xp = runner.pack_input(cora.x, cora.edge_index)
    runner.run(xp, cora.edge_index)  # fine before
    coded = xp.groups[0].coded
    coded.release()
    coded.data[coded.data.size // 3] ^= 0x10
    with pytest.raises(ValueError, match="emb_L1"):
        runner.run(xp, cora.edge_index)
    coded.data[coded.data.size // 3] ^= 0x10  # repaired
    coded.data = coded.data[: coded.data.size - 7]
    with pytest.raises(ValueError, match="emb_L1.*truncated"):
        runner.run(xp, cora.edge_index)


# ------------------------------------------------------------------ coded inference
def _mixed(num_layers: int) -> BitAssignment:
    att = [(1, 4, 32, 8)[k % 4] for k in range(num_layers)]
    emb = [((1, 2, 32), (8, 3, 4), (32, 1, 16), (5, 6, 7))[k % 4] for k in range(num_layers)]
    return BitAssignment.full(att, emb)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("codec", ["sparse", "entropy", "auto"])
def test_coded_logits_equal_packed_logits(cora, name, codec):
    torch.manual_seed(0)
    kwargs = {"hidden": 8, "heads": 2} if name == "gat" else {}
    model = build_model(name, cora.num_features, 7, **kwargs).eval()
    buckets = degree_buckets(cora.edge_index, cora.num_nodes, 3)
    for assignment, chunk in [(_mixed(model.num_layers), (37, 1000)),
                              (BitAssignment.uniform(1, model.num_layers), (256, 2048))]:
        bk = buckets if assignment.num_buckets > 1 else None
        outs = {}
        for c in ("packed", codec):
            runner = PackedRunner(model, assignment, buckets=bk, chunk_size=chunk[0],
                                  edge_chunk_size=chunk[1], codec=c, keep_features=True)
            outs[c] = runner.run(cora.x, cora.edge_index)
        assert torch.equal(outs[codec].logits, outs["packed"].logits)
        coded = outs[codec]
        assert coded.measured_bytes == sum(f.nbytes for f in coded.features.values())
        assert {r.codec for r in coded.records} <= {"fp32", "packed", "sparse", "entropy"}
        if codec != "auto":
            assert codec in {r.codec for r in coded.records}
        else:
            assert coded.measured_bytes <= outs["packed"].measured_bytes


# ------------------------------------------------------------------ chapter 7 targets
@pytest.fixture(scope="module")
def cora_gcn_storage(cora):
    from sgquant.packed.baselines import input_first, storage_baselines, storage_totals
    from sgquant.measure import build_for, prepare
    setup = prepare("Cora", "gcn", 0, "quick")
    net = build_for(setup.data, "gcn", setup.profile)
    net.load_state_dict(setup.fp32_state)
    groups = storage_baselines(net, setup.data, input_first(2), label="chosen")
    return groups, storage_totals(groups).iloc[0]


def test_cora_below_one_bit_near_entropy(cora_gcn_storage):
    """1-bit input, 8-bit hidden features and coefficients: coded storage below one bit
    per element, within 10% of the codes' order-0 entropy, same logits."""
    _, t = cora_gcn_storage
    assert t["same_logits"] and t["same_predictions"] == 1.0
    assert t["coded_bits_per_element"] < 1.0
    assert t["entropy_bytes"] <= t["coded_bytes"] <= 1.10 * t["entropy_bytes"]


def test_cora_saving_beats_dense_and_sparse_fp32(cora_gcn_storage):
    groups, t = cora_gcn_storage
    assert t["coded_saving_vs_fp32"] >= 100
    assert t["coded_saving_vs_fp32"] > t["sparse_fp32_saving_vs_fp32"]
    assert t["packed_saving_vs_fp32"] < 32  # fixed width stops at one bit per element
    # the input holds ~97% of the elements; the dense FP32 bytes are 4 per element
    assert t["fp32_bytes"] == 4 * t["elements"]
    assert (groups["sparse_fp32_bytes"] <= groups["fp32_bytes"]).all()


def test_csr_bytes_match_scipy(cora):
    import scipy.sparse as sp

    from sgquant.packed.baselines import csr_nbytes
    m = sp.csr_matrix(cora.x.numpy())
    assert csr_nbytes(cora.x) == m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    dense = torch.ones(5, 3)
    assert csr_nbytes(dense) == 15 * 8 + 6 * 4


def test_chapter_functions_quick(tmp_path):
    from sgquant.chapters import below_one_bit as B
    from sgquant.inference_time import TIMED_CODECS
    tables = B.below_one_bit_tables("Cora", "gcn", "quick", bits=(1, 8), repeats=1)
    totals, timing = tables["totals"], tables["timing"]
    assert list(totals["configuration"])[:2] == ["uniform 1-bit", "uniform 8-bit"]
    assert len(totals) == 3 and totals["same_logits"].all()
    assert (totals["coded_bytes"] < totals["packed_bytes"]).all()
    assert (totals["entropy_bytes"] <= totals["coded_bytes"]).all()
    assert set(timing["mode"]) == {"fp32", *TIMED_CODECS}
    assert (timing["seconds"] > 0).all()
    text = B.reading(tables)
    assert "bits per element" in text and "nan" not in text.lower()
    fig = B.plot_bytes(tables["groups"])
    fig.savefig(tmp_path / "bytes.png")
    assert (tmp_path / "bytes.png").stat().st_size > 0
    with pytest.raises(ValueError, match="one dataset"):
        B.Chapter(dataset="Cora,CiteSeer", profile="quick")
