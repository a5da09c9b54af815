from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sgquant.bitpack as Q
from sgquant.quantize import (
    ALLOWED_BITS,
    FP32_BITS,
    ROUNDINGS,
    PackedTensor,
    QuantizedTensor,
    check_bits,
    check_clip_percentile,
    check_rounding,
    fake_quantize,
    linear_quantize,
    pack_bits,
    quant_range,
    quantization_error,
    unpack_bits,
)

QBITS = list(range(1, 17))
LENGTHS = [0, 1, 7, 8, 9, 13, 64, 1001]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rand(*shape: int, seed: int = 0, lo: float = -3.0, hi: float = 5.0) -> torch.Tensor:
    return torch.rand(*shape, generator=_gen(seed)) * (hi - lo) + lo


def _codes(n: int, bits: int, seed: int = 0) -> torch.Tensor:
    top = 2**bits - 1
    c = torch.randint(0, top + 1, (n,), generator=_gen(seed + bits))
    if n >= 2:  # always exercise both extremes
        c[0], c[-1] = 0, top
    return c


# ----------------------------------------------------------------------- constants
def test_constants():
    assert ALLOWED_BITS == tuple(range(1, 17)) + (32,)
    assert FP32_BITS == 32
    assert ROUNDINGS == ("floor", "nearest")


# --------------------------------------------------------------------- pack/unpack
@pytest.mark.parametrize("bits", QBITS)
def test_pack_unpack_round_trip(bits):
    for n in LENGTHS:
        c = _codes(n, bits)
        packed = pack_bits(c, bits)
        assert packed.dtype == torch.uint8 and packed.dim() == 1
        assert packed.numel() == math.ceil(n * bits / 8)
        out = unpack_bits(packed, bits, n)
        assert out.dtype in (torch.int32, torch.int64)
        assert torch.equal(out.long(), c), (bits, n)


def test_pack_bit_layout_little_endian():
    # 1 = 100, 2 = 010, 3 = 110 (LSB first) -> stream 10001011|0 -> bytes 209, 0
    assert pack_bits(torch.tensor([1, 2, 3]), 3).tolist() == [209, 0]
    assert pack_bits(torch.tensor([1, 0, 0, 0, 0, 0, 0, 1]), 1).tolist() == [129]
    assert pack_bits(torch.tensor([0x1234]), 16).tolist() == [0x34, 0x12]
    assert pack_bits(torch.tensor([5, 0xA]), 4).tolist() == [0xA5]


@pytest.mark.parametrize("bits", [3, 5, 8, 11, 16])
def test_pack_unpack_across_internal_chunks(monkeypatch, bits):
    monkeypatch.setattr(Q, "_CHUNK", 16)
    for n in [15, 16, 17, 50, 83]:
        c = _codes(n, bits, seed=n)
        packed = pack_bits(c, bits)
        assert packed.numel() == math.ceil(n * bits / 8)
        assert torch.equal(unpack_bits(packed, bits, n).long(), c)


@pytest.mark.parametrize("bits", [1, 3, 7, 12])
def test_pack_row_chunks_concatenate(bits):
    c = _codes(8 * 9 + 5, bits).reshape(-1)
    whole = pack_bits(c, bits)
    pieces = [pack_bits(c[i:i + 24], bits) for i in range(0, c.numel(), 24)]
    assert torch.equal(torch.cat(pieces), whole)


@pytest.mark.parametrize("bits", [1, 3, 8, 13, 16])
def test_unpack_with_bit_offset(bits):
    c = _codes(101, bits)
    packed = pack_bits(c, bits)
    for s, e in [(0, 5), (3, 40), (37, 101), (100, 101), (50, 50)]:
        out = unpack_bits(packed, bits, e - s, bit_offset=s * bits)
        assert torch.equal(out.long(), c[s:e])


def test_pack_accepts_numpy_and_any_int_dtype():
    c = np.array([[0, 5], [7, 3]], dtype=np.int16)
    assert torch.equal(unpack_bits(pack_bits(c, 3), 3, 4).long(), torch.tensor([0, 5, 7, 3]))
    for dt in (torch.uint8, torch.int32, torch.int64):
        t = torch.tensor([1, 2, 3], dtype=dt)
        assert pack_bits(t, 3).tolist() == [209, 0]


@pytest.mark.parametrize(
    "codes,bits,bad",
    [
        (torch.tensor([0, 8]), 3, "[0, 8]"),
        (torch.tensor([-1, 2]), 3, "[-1, 2]"),
        (torch.tensor([2]), 1, "[2, 2]"),
        (torch.tensor([65536]), 16, "[65536, 65536]"),
    ],
)
def test_pack_rejects_out_of_range_codes(codes, bits, bad):
    with pytest.raises(ValueError) as e:
        pack_bits(codes, bits)
    assert bad in str(e.value) and f"[0, {2**bits - 1}]" in str(e.value)


def test_pack_unpack_reject_bad_inputs():
    with pytest.raises(ValueError, match="dtype torch.float32"):
        pack_bits(torch.tensor([1.0]), 3)
    with pytest.raises(ValueError, match="bool"):
        pack_bits(torch.tensor([True]), 1)
    with pytest.raises(ValueError, match="32"):
        pack_bits(torch.tensor([1]), 32)
    with pytest.raises(ValueError, match="0"):
        pack_bits(torch.tensor([1]), 0)
    with pytest.raises(ValueError, match="need 4"):
        unpack_bits(torch.zeros(3, dtype=torch.uint8), 3, 10)
    with pytest.raises(ValueError, match="int64"):
        unpack_bits(torch.zeros(3, dtype=torch.int64), 3, 1)
    with pytest.raises(ValueError, match="-1"):
        unpack_bits(torch.zeros(3, dtype=torch.uint8), 3, -1)


# ------------------------------------------------------------------ quantizer math
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 12, 16])
def test_floor_error_bounded_by_scale(bits):
    x = _rand(5000, seed=bits)
    q = linear_quantize(x, bits)
    xd = x.double() - q.dequantize().double()
    tol = 1e-5
    assert q.scale > 0
    assert xd.min() >= -tol, "floor must never round up"
    assert xd.max() < q.scale + tol


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 12, 16])
def test_nearest_error_bounded_by_half_scale(bits):
    x = _rand(5000, seed=bits)
    q = linear_quantize(x, bits, rounding="nearest")
    err = (x.double() - q.dequantize().double()).abs()
    assert err.max() <= q.scale / 2 + 1e-5
    # floor's error is visibly one-sided, nearest's is not
    if bits <= 8:
        signed = x.double() - q.dequantize().double()
        assert signed.min() < -q.scale / 10


def test_floor_codes_match_formula():
    x = _rand(2000, seed=3)
    bits = 5
    q = linear_quantize(x, bits)
    mn, mx = x.min().double(), x.max().double()
    ref = torch.floor((x.double() - mn) / (mx - mn) * (2**bits - 1)).clamp(0, 2**bits - 1)
    # float32 vs float64 may disagree only on values sitting on a code boundary
    assert (q.codes.double() != ref).float().mean() < 1e-3
    assert q.codes.dtype == torch.int32 and tuple(q.codes.shape) == tuple(x.shape)
    assert q.minimum == pytest.approx(float(mn))
    assert q.scale == pytest.approx(float((mx - mn) / (2**bits - 1)), rel=1e-6)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("bits", QBITS)
def test_extremes_map_to_end_codes(bits, rounding):
    x = _rand(300, seed=bits)
    x[7], x[100] = -3.25, 5.5
    q = linear_quantize(x, bits, rounding=rounding)
    assert int(q.codes[7]) == 0
    assert int(q.codes[100]) == 2**bits - 1
    assert int(q.codes.min()) >= 0 and int(q.codes.max()) <= 2**bits - 1
    assert q.dequantize()[7].item() == -3.25  # min is reproduced exactly


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("bits", [1, 3, 8, 16])
def test_fake_quantize_equals_dequantize(bits, rounding):
    x = _rand(64, 33, seed=bits)
    ref = linear_quantize(x, bits, rounding=rounding).dequantize()
    assert ref.dtype == torch.float32
    assert torch.equal(fake_quantize(x, bits, rounding=rounding), ref)
    xr = x.clone().requires_grad_()
    assert torch.equal(fake_quantize(xr, bits, rounding=rounding).detach(), ref)


def test_fake_quantize_keeps_dtype():
    x = _rand(100, seed=1).double()
    y = fake_quantize(x, 4)
    assert y.dtype == torch.float64
    assert torch.equal(y.float(), linear_quantize(x, 4).dequantize())


@pytest.mark.parametrize("bits", [1, 4, 16])
def test_constant_tensor(bits):
    x = torch.full((5, 3), 2.7)
    for rounding in ROUNDINGS:
        q = linear_quantize(x, bits, rounding=rounding)
        assert torch.equal(q.codes, torch.zeros(5, 3, dtype=torch.int32))
        assert torch.equal(q.dequantize(), x)
        assert torch.equal(fake_quantize(x, bits, rounding=rounding), x)
        assert torch.equal(q.pack().dequantize(), x)
        assert quantization_error(x, bits, rounding) == {"mse": 0.0, "max_abs": 0.0}


@pytest.mark.parametrize("bits", [3, 32])
def test_empty_tensor(bits):
    x = torch.empty(0, 4)
    q = linear_quantize(x, bits)
    assert q.nbytes == 0
    assert q.dequantize().shape == (0, 4)
    assert fake_quantize(x, bits).shape == (0, 4)
    p = q.pack()
    assert p.nbytes == 0 and p.data.numel() == 0
    assert p.dequantize().shape == (0, 4)
    assert p.dequantize_rows(0, 0).shape == (0, 4)
    assert quant_range(x) == (0.0, 0.0)
    assert quantization_error(x, bits) == {"mse": 0.0, "max_abs": 0.0}


def test_bits32_is_identity():
    x = _rand(10, 4, seed=5).requires_grad_()
    assert fake_quantize(x, 32) is x
    assert fake_quantize(x, 32.0) is x
    q = linear_quantize(x, 32)
    assert q.codes is None and q.bits == 32
    assert q.dequantize() is x
    assert q.nbytes == 4 * 40
    p = q.pack()
    assert p.nbytes == 4 * 40
    assert torch.equal(p.dequantize(), x.detach())
    assert torch.equal(p.dequantize_rows(2, 7), x.detach()[2:7])
    assert quantization_error(x, 32) == {"mse": 0.0, "max_abs": 0.0}


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_straight_through_gradient(rounding):
    x = _rand(20, 6, seed=2).requires_grad_()
    upstream = torch.randn(20, 6, generator=_gen(9))
    y = fake_quantize(x, 2, rounding=rounding)
    assert y.requires_grad
    (y * upstream).sum().backward()
    assert torch.equal(x.grad, upstream)
    # and the forward really is quantized (at most 4 distinct values)
    assert torch.unique(y.detach()).numel() <= 4


def test_determinism():
    x = torch.randn(3000, generator=_gen(4))
    for kw in ({}, {"rounding": "nearest"}, {"clip_percentile": 99.0}):
        a, b = linear_quantize(x, 5, **kw), linear_quantize(x.clone(), 5, **kw)
        assert torch.equal(a.codes, b.codes)
        assert (a.minimum, a.scale) == (b.minimum, b.scale)
        assert torch.equal(fake_quantize(x, 5, **kw), fake_quantize(x, 5, **kw))
        assert torch.equal(a.pack().data, b.pack().data)


# -------------------------------------------------------------------- clipping
def test_clip_percentile_clamps_outliers():
    x = torch.randn(20000, generator=_gen(6))
    x[0], x[1] = 1000.0, -800.0
    lo, hi = quant_range(x, clip_percentile=99.0)
    ref = np.percentile(x.numpy(), [1.0, 99.0])
    assert lo == pytest.approx(ref[0], rel=1e-5) and hi == pytest.approx(ref[1], rel=1e-5)
    assert quant_range(x) == (-800.0, 1000.0)
    assert quant_range(x, clip_percentile=100) == (-800.0, 1000.0)

    q = linear_quantize(x, 4, clip_percentile=99.0)
    assert q.minimum == pytest.approx(lo)
    assert int(q.codes[0]) == 15 and int(q.codes[1]) == 0
    xd = q.dequantize()
    assert xd.max() <= hi + 1e-5 and xd.min() >= lo - 1e-5
    # the bulk of the values is far better resolved once the outliers are clipped
    bulk_err = ((x - xd)[2:] ** 2).mean()
    plain = linear_quantize(x, 4).dequantize()
    assert bulk_err < ((x - plain)[2:] ** 2).mean() / 100
    # in-range values keep the floor bound
    inside = (x >= lo) & (x <= hi)
    d = (x - xd)[inside].double()
    assert d.min() >= -1e-5 and d.max() < q.scale + 1e-5


def test_clip_to_zero_range_gives_zero_codes():
    # p = 60 collapses this range to the median: scale 0, codes 0, no division by zero
    x = torch.tensor([0.0, 1.0, 1.0, 1.0, 2.0])
    assert quant_range(x, clip_percentile=60) == (1.0, 1.0)
    for rounding in ROUNDINGS:
        q = linear_quantize(x, 3, rounding=rounding, clip_percentile=60)
        assert q.scale == 0.0
        assert torch.equal(q.codes, torch.zeros(5, dtype=torch.int32))
        assert torch.equal(q.dequantize(), torch.ones(5))
        assert torch.equal(fake_quantize(x, 3, rounding, 60), torch.ones(5))


# ------------------------------------------------------------- nbytes & packing
def test_nbytes_hand_counted():
    x = _rand(10, seed=1)
    q = linear_quantize(x, 3)
    assert q.nbytes == 4 + 8  # 30 bits -> 4 bytes, + float32 min and scale
    p = q.pack()
    assert p.data.numel() == 4 and p.nbytes == 12
    assert linear_quantize(_rand(16, seed=1), 1).nbytes == 2 + 8
    assert linear_quantize(_rand(3, 5, seed=1), 16).nbytes == 30 + 8
    assert linear_quantize(x, 32).nbytes == 40


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8, 13, 16])
def test_pack_unpack_quantized_tensor(bits):
    x = _rand(37, 5, seed=bits)
    q = linear_quantize(x, bits, rounding="nearest")
    p = q.pack()
    assert isinstance(p, PackedTensor) and p.data.dtype == torch.uint8 and p.data.dim() == 1
    assert p.nbytes == q.nbytes
    u = p.unpack()
    assert isinstance(u, QuantizedTensor)
    assert torch.equal(u.codes.long(), q.codes.long())
    assert (u.minimum, u.scale, u.bits, u.shape, u.rounding) == (
        q.minimum, q.scale, bits, (37, 5), "nearest")
    assert torch.equal(p.dequantize(), q.dequantize())


BOUNDS = [(0, 0), (0, 1), (3, 10), (10, 37), (36, 37), (0, 37), (5, 5), (1, 36)]


@pytest.mark.parametrize("bits", [1, 3, 5, 7, 8, 13, 16, 32])
def test_dequantize_rows_matches_slice(bits):
    x = _rand(37, 5, seed=bits)
    p = linear_quantize(x, bits).pack()
    full = p.dequantize()
    for s, e in BOUNDS:
        assert torch.equal(p.dequantize_rows(s, e), full[s:e]), (s, e)
    x1 = _rand(29, seed=bits)
    p1 = linear_quantize(x1, bits).pack()
    full1 = p1.dequantize()
    for s, e in [(0, 29), (3, 11), (28, 29), (4, 4)]:
        assert torch.equal(p1.dequantize_rows(s, e), full1[s:e])
    x3 = _rand(6, 3, 2, seed=bits)
    p3 = linear_quantize(x3, bits).pack()
    assert torch.equal(p3.dequantize_rows(1, 4), p3.dequantize()[1:4])


@pytest.mark.parametrize("bits", [3, 7, 13])
def test_dequantize_rows_reads_only_its_bytes(bits):
    x = _rand(40, 3, seed=bits)
    p = linear_quantize(x, bits).pack()
    full = p.dequantize()
    s, e = 11, 23
    b0 = s * 3 * bits // 8
    b1 = math.ceil(e * 3 * bits / 8)
    data = p.data.clone()
    data[:b0] = 0xFF  # garbage outside the covering byte range
    data[b1:] = 0xFF
    corrupted = PackedTensor(data, p.minimum, p.scale, p.bits, p.shape, p.rounding)
    assert torch.equal(corrupted.dequantize_rows(s, e), full[s:e])
    assert not torch.equal(corrupted.dequantize(), full)


def test_dequantize_rows_rejects_bad_bounds():
    p = linear_quantize(_rand(10, 2), 4).pack()
    for s, e in [(-1, 3), (4, 3), (0, 11), (1.5, 3)]:
        with pytest.raises(ValueError, match="start|stop"):
            p.dequantize_rows(s, e)
    scalar = linear_quantize(torch.tensor(1.5), 4).pack()
    assert torch.equal(scalar.dequantize(), torch.tensor(1.5))
    with pytest.raises(ValueError, match="dimension"):
        scalar.dequantize_rows(0, 1)


def test_quantization_error_values():
    x = _rand(4000, seed=11)
    e4 = quantization_error(x, 4)
    e8 = quantization_error(x, 8)
    xd = linear_quantize(x, 4).dequantize()
    assert e4["mse"] == pytest.approx(float(((x - xd) ** 2).mean()), rel=1e-5)
    assert e4["max_abs"] == pytest.approx(float((x - xd).abs().max()), rel=1e-6)
    assert e8["mse"] < e4["mse"] / 100
    assert quantization_error(x, 4, "nearest")["max_abs"] < e4["max_abs"]


# ------------------------------------------------------------------------ errors
@pytest.mark.parametrize("good,expected", [(1, 1), (16, 16), (32, 32), (8.0, 8), (np.int64(4), 4)])
def test_check_bits_accepts(good, expected):
    out = check_bits(good)
    assert out == expected and type(out) is int


BAD_BITS = [0, 17, 31, 33, -1, 2.5, "8", True, False, None, float("nan")]


@pytest.mark.parametrize("bad", BAD_BITS)
def test_bad_bits_raise_everywhere(bad):
    x = _rand(8)
    for fn in (check_bits, lambda b: linear_quantize(x, b), lambda b: fake_quantize(x, b),
               lambda b: quantization_error(x, b)):
        with pytest.raises(ValueError) as e:
            fn(bad)
        msg = str(e.value)
        assert repr(bad) in msg and "1..16" in msg and "32" in msg


@pytest.mark.parametrize("bad", ["ceil", "Floor", "round", None, 1])
def test_bad_rounding_raises(bad):
    x = _rand(8)
    assert check_rounding("nearest") == "nearest"
    for fn in (check_rounding, lambda r: linear_quantize(x, 4, rounding=r),
               lambda r: fake_quantize(x, 4, rounding=r)):
        with pytest.raises(ValueError) as e:
            fn(bad)
        msg = str(e.value)
        assert repr(bad) in msg and "'floor'" in msg and "'nearest'" in msg


@pytest.mark.parametrize("bad", [0, 101, -5, 30, 50, 100.5, float("nan"), "99", True])
def test_bad_clip_percentile_raises(bad):
    x = _rand(8)
    assert check_clip_percentile(None) is None and check_clip_percentile(99) == 99.0
    for fn in (check_clip_percentile, lambda c: quant_range(x, c),
               lambda c: linear_quantize(x, 4, clip_percentile=c),
               lambda c: fake_quantize(x, 4, clip_percentile=c)):
        with pytest.raises(ValueError) as e:
            fn(bad)
        msg = str(e.value)
        assert repr(bad) in msg and "(50, 100]" in msg


@pytest.mark.parametrize("bad", [torch.arange(5), torch.ones(3, dtype=torch.int32),
                                 torch.ones(2, dtype=torch.bool), [1.0, 2.0], np.ones(3)])
def test_non_float_input_raises(bad):
    for fn in (lambda v: linear_quantize(v, 4), lambda v: fake_quantize(v, 4),
               lambda v: fake_quantize(v, 32), quant_range, lambda v: quantization_error(v, 4)):
        with pytest.raises(ValueError) as e:
            fn(bad)
        name = str(bad.dtype) if isinstance(bad, torch.Tensor) else type(bad).__name__
        assert name in str(e.value)


def test_non_finite_input_raises():
    for v in (float("nan"), float("inf")):
        x = torch.tensor([0.0, v, 1.0])
        with pytest.raises(ValueError, match="non-finite"):
            linear_quantize(x, 4)
        with pytest.raises(ValueError, match="non-finite"):
            fake_quantize(x, 4)


def test_quant_options_per_kind():
    from sgquant.quantize import QuantOptions
    plus = QuantOptions("nearest", None, hidden=QuantOptions("nearest", 99.0),
                        att=QuantOptions("floor", 99.5))
    assert plus.for_point("emb_L1") == QuantOptions("nearest")
    assert plus.for_point("emb_L3") == QuantOptions("nearest", 99.0)
    assert plus.for_point("att_L2") == QuantOptions("floor", 99.5)
    assert QuantOptions.from_dict(plus.to_dict()) == plus
    assert QuantOptions().to_dict() == {"rounding": "floor", "clip_percentile": None}
    assert plus.label == "nearest, min/max; hidden: nearest, clip p99; att: floor, clip p99.5"
    with pytest.raises(ValueError, match="unknown quantization point"):
        plus.for_point("weight_L1")
    with pytest.raises(ValueError, match="cannot itself hold"):
        QuantOptions(att=plus)
    with pytest.raises(ValueError, match="unknown QuantOptions key"):
        QuantOptions.from_dict({"rounding": "floor", "lsq": True})
    with pytest.raises(ValueError, match=r"\(50, 100\]"):
        QuantOptions.from_dict({"hidden": {"clip_percentile": 40}})


def test_clip_rule_mse_clips_only_where_it_quantizes_better():
    """``clip_rule="mse"``: the clipped range where its squared error is smaller (few
    bits, heavy tails), the full range where the step is already fine (many bits), and
    the full range on a tie; the codes are those of the range chosen, on every path."""
    from sgquant.quantize import select_range

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, generator=g) ** 3  # heavy tails
    full = quant_range(x)
    clipped = quant_range(x, 99.0)
    for bits in (1, 2, 8, 16):
        errors = {name: quantization_error(x, bits, "nearest", clip)["mse"]
                  for name, clip in (("full", None), ("clip", 99.0))}
        pick = "clip" if errors["clip"] < errors["full"] else "full"
        assert pick == ("clip" if bits <= 2 else "full"), (bits, errors)
        lo, hi = select_range(x, bits, "nearest", 99.0, "mse")
        assert (float(lo), float(hi)) == (full if pick == "full" else clipped)
        assert quantization_error(x, bits, "nearest", 99.0, "mse")["mse"] == errors[pick]
        q = linear_quantize(x, bits, "nearest", 99.0, "mse")
        assert torch.equal(fake_quantize(x, bits, "nearest", 99.0, "mse"), q.dequantize())
        assert torch.equal(fake_quantize(x, bits, "nearest", 99.0, "always"),
                           fake_quantize(x, bits, "nearest", 99.0))
    # the clipped range equals the full one: a tie, the full range
    flat = torch.tensor([0.0, 1.0] * 50)
    assert tuple(map(float, select_range(flat, 1, "nearest", 99.0, "mse"))) == (0.0, 1.0)


def test_clip_rule_options_keep_earlier_keys_and_refuse_bad_values():
    from sgquant.quantize import QuantOptions

    plain = QuantOptions("nearest", 99.0)
    assert "clip_rule" not in plain.to_dict()  # earlier records keep their cache keys
    mse = QuantOptions("nearest", hidden=QuantOptions("nearest", 99.0, clip_rule="mse"))
    assert QuantOptions.from_dict(mse.to_dict()) == mse
    assert mse.for_point("emb_L2").clip_rule == "mse" and mse.for_point("emb_L1").clip_rule \
        == "always"
    assert "where smaller MSE" in mse.label
    with pytest.raises(ValueError, match="clip_rule must be one of 'always', 'mse'.*, got 'l2'"):
        QuantOptions("nearest", 99.0, clip_rule="l2")
    with pytest.raises(ValueError, match="clip_rule 'mse' .* needs a clip_percentile"):
        QuantOptions("nearest", clip_rule="mse")
    with pytest.raises(ValueError, match="clip_rule must be one of"):
        fake_quantize(torch.ones(3), 2, "nearest", 99.0, "sometimes")


def test_a_clip_rule_is_part_of_the_measurement_key():
    """Measurements under another clip rule are other records; every option is in the
    key."""
    from types import SimpleNamespace

    from sgquant.assignment import BitAssignment
    from sgquant.measure import measurement_key
    from sgquant.quantize import QuantOptions

    setup = SimpleNamespace(fp32_key=lambda: {"kind": "fp32"}, seed=0, model_name="gcn",
                            profile=SimpleNamespace(finetune_epochs=10),
                            buckets=SimpleNamespace(num_buckets=3))
    a = BitAssignment.uniform(2, 2)
    always = measurement_key(setup, a, QuantOptions("nearest", 99.0))
    assert always["options"] == {"rounding": "nearest", "clip_percentile": 99.0}
    mse = measurement_key(setup, a, QuantOptions("nearest", 99.0, clip_rule="mse"))
    assert mse["options"]["clip_rule"] == "mse" and mse != always
