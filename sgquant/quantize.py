r"""Linear quantization of GNN features (SGQuant, Feng et al., ICTAI 2020).

A tensor :math:`\mathbf{x}` quantized at :math:`b` bits (:math:`1 \le b \le 16`) is

.. math::
    s = \frac{\max(\mathbf{x}) - \min(\mathbf{x})}{2^b - 1}, \qquad
    q = \mathrm{clamp}\left(\left\lfloor \frac{\mathbf{x} - \min(\mathbf{x})}{s}
        \right\rfloor, 0, 2^b - 1\right), \qquad
    \mathbf{x}' = s \cdot q + \min(\mathbf{x})

("rematching" is the last step). :math:`b = 32` means "kept in float32": nothing is
quantized. Codes are stored as a little-endian bit stream of
:math:`\lceil n b / 8 \rceil` bytes plus the float32 ``min`` and ``scale`` (8 bytes).

All arithmetic is float32. The normalised code is computed as
:math:`(\mathbf{x} - \min) / (\max - \min) \cdot (2^b - 1)` (mathematically equal to
:math:`(\mathbf{x} - \min) / s`), so that :math:`\max` maps to exactly :math:`2^b - 1`
and :math:`\min` to exactly :math:`0` in floating point.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ALLOWED_BITS",
    "FP32_BITS",
    "ROUNDINGS",
    "check_bits",
    "check_rounding",
    "check_clip_percentile",
    "QuantizedTensor",
    "PackedTensor",
    "quant_range",
    "linear_quantize",
    "fake_quantize",
    "pack_bits",
    "unpack_bits",
    "quantization_error",
]

FP32_BITS: int = 32
ALLOWED_BITS: tuple[int, ...] = (*range(1, 17), FP32_BITS)
ROUNDINGS: tuple[str, ...] = ("floor", "nearest")

#: Bytes of per-group overhead of a quantized tensor: float32 ``min`` and ``scale``.
GROUP_OVERHEAD_BYTES: int = 8

# Codes handled per step by pack_bits / unpack_bits. A multiple of 8, so that every
# chunk but the last one ends on a byte boundary. Temporary memory is ~(18 + bits)
# bytes per code of a chunk (~2 MB), whatever the size of the input.
_CHUNK: int = 1 << 16

# torch.quantile refuses inputs above 2**24 elements.
_TORCH_QUANTILE_MAX: int = 1 << 24

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


# --------------------------------------------------------------------------- checks
def check_bits(bits: object) -> int:
    r"""Return ``bits`` as an ``int`` if it is one of :data:`ALLOWED_BITS` (1..16 or 32).

    Integral floats (``8.0``) are accepted; bools, strings and non-integral numbers
    raise :class:`ValueError`.
    """
    value: Optional[int] = None
    if isinstance(bits, (bool, np.bool_)):
        value = None
    elif isinstance(bits, numbers.Integral):
        value = int(bits)
    elif isinstance(bits, numbers.Real):
        f = float(bits)
        if math.isfinite(f) and f.is_integer():
            value = int(f)
    elif isinstance(bits, Tensor) and bits.numel() == 1 and not bits.dtype.is_floating_point \
            and bits.dtype != torch.bool and not bits.dtype.is_complex:
        value = int(bits.item())
    if value is None or value not in ALLOWED_BITS:
        raise ValueError(
            f"bits must be an integer in 1..16 or 32 (32 = kept in float32), got {bits!r}"
        )
    return value


def check_rounding(rounding: object) -> str:
    r"""Return ``rounding`` if it is one of :data:`ROUNDINGS` (``"floor"``, ``"nearest"``)."""
    if not isinstance(rounding, str) or rounding not in ROUNDINGS:
        allowed = ", ".join(repr(r) for r in ROUNDINGS)
        raise ValueError(f"rounding must be one of {allowed}, got {rounding!r}")
    return rounding


def check_clip_percentile(clip_percentile: object) -> Optional[float]:
    r"""Return ``clip_percentile`` as a float in :math:`[50, 100]`, or ``None``.

    ``p`` keeps the range between the :math:`(100-p)`-th and :math:`p`-th percentiles;
    ``p < 50`` would invert it and is rejected, as are 0 and values above 100.
    """
    if clip_percentile is None:
        return None
    ok = isinstance(clip_percentile, numbers.Real) and not isinstance(
        clip_percentile, (bool, np.bool_)
    )
    p = float(clip_percentile) if ok else float("nan")
    if not (ok and 50.0 <= p <= 100.0):
        raise ValueError(
            "clip_percentile must be None (min/max) or a number in [50, 100] "
            f"(the upper percentile kept), got {clip_percentile!r}"
        )
    return p


def _check_tensor(x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor, got dtype {x.dtype}")
    return x


def _check_int(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _packed_nbytes(numel: int, bits: int) -> int:
    r"""Size of a stored tensor: :math:`\lceil n b / 8 \rceil + 8`, :math:`4n` at 32 bits, 0 if empty."""
    if numel == 0:
        return 0
    if bits == FP32_BITS:
        return 4 * numel
    return (numel * bits + 7) // 8 + GROUP_OVERHEAD_BYTES


# ---------------------------------------------------------------------- core math
def _range_tensors(xf: Tensor, clip_percentile: Optional[float]) -> tuple[Tensor, Tensor]:
    """0-d float32 (min, max) of the non-empty float32 tensor ``xf``."""
    mn, mx = torch.aminmax(xf)
    if not bool(torch.isfinite(mn) & torch.isfinite(mx)):
        raise ValueError("x contains non-finite values (nan or inf); cannot quantize it")
    if clip_percentile is None or clip_percentile == 100.0:
        return mn, mx
    q_hi = clip_percentile / 100.0
    q_lo = 1.0 - q_hi
    flat = xf.reshape(-1)
    if flat.device.type != "cpu" and flat.numel() <= _TORCH_QUANTILE_MAX:
        qs = torch.tensor([q_lo, q_hi], dtype=torch.float32, device=flat.device)
        lo, hi = torch.quantile(flat, qs)
    else:
        # Exact, deterministic, O(n) (introselect), no size limit.
        arr = flat.detach().cpu().numpy()
        lo_hi = np.quantile(arr, [q_lo, q_hi])
        lo = torch.tensor(lo_hi[0], dtype=torch.float32, device=xf.device)
        hi = torch.tensor(lo_hi[1], dtype=torch.float32, device=xf.device)
    lo = lo.to(torch.float32)
    hi = torch.maximum(hi.to(torch.float32), lo)
    return lo, hi


def _codes_float(xf: Tensor, mn: Tensor, mx: Tensor, bits: int, rounding: str) -> tuple[Tensor, Tensor]:
    r"""Integral-valued float32 codes of ``xf`` and the float32 scale.

    .. math::
        q = \mathrm{clamp}(\mathrm{round}((x - \min) / (\max - \min) \cdot (2^b - 1)),
            0, 2^b - 1), \qquad s = (\max - \min) / (2^b - 1)

    A zero range gives codes 0 and scale 0 (no division by zero).
    """
    levels = float(2**bits - 1)
    rng = mx - mn
    scale = rng / levels
    positive = rng > 0
    denom = torch.where(positive, rng, torch.ones_like(rng))
    mult = torch.where(positive, torch.full_like(rng, levels), torch.zeros_like(rng))
    t = xf - mn  # the one full-size temporary; everything below is in place
    t.div_(denom).mul_(mult)
    if rounding == "floor":
        t.floor_()
    else:
        t.round_()  # half to even
    t.clamp_(0.0, levels)
    return t, scale


def _fake_quantize_values(x: Tensor, bits: int, rounding: str, clip: Optional[float]) -> Tensor:
    """Dequantized float32 values of ``x`` (no autograd)."""
    xf = x.detach().to(torch.float32)
    if xf.numel() == 0:
        return torch.empty(xf.shape, dtype=torch.float32, device=xf.device)
    mn, mx = _range_tensors(xf, clip)
    t, scale = _codes_float(xf, mn, mx, bits, rounding)
    return t.mul_(scale).add_(mn)


class _StraightThroughQuantize(torch.autograd.Function):
    r"""Forward :math:`\mathbf{x}'`, backward :math:`\partial \mathbf{x}' / \partial \mathbf{x} = 1`."""

    @staticmethod
    def forward(ctx, x: Tensor, bits: int, rounding: str, clip: Optional[float]) -> Tensor:  # type: ignore[override]
        return _fake_quantize_values(x, bits, rounding, clip).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        return grad_output, None, None, None


# ------------------------------------------------------------------ public quantizer
def quant_range(x: Tensor, clip_percentile: Optional[float] = None) -> tuple[float, float]:
    r"""Quantization range :math:`(\min(\mathbf{x}), \max(\mathbf{x}))` (the paper).

    With ``clip_percentile=p`` the range is the :math:`(100-p)`-th and :math:`p`-th
    percentiles of :math:`\mathbf{x}` (linear interpolation, exact and deterministic at
    any size), so outliers are clamped to the end codes. Returns float32 values as
    Python floats; ``(0.0, 0.0)`` for an empty tensor.
    """
    x = _check_tensor(x)
    clip = check_clip_percentile(clip_percentile)
    if x.numel() == 0:
        return 0.0, 0.0
    mn, mx = _range_tensors(x.detach().to(torch.float32), clip)
    return float(mn), float(mx)


def linear_quantize(
    x: Tensor,
    bits: int,
    rounding: str = "floor",
    clip_percentile: Optional[float] = None,
) -> "QuantizedTensor":
    r"""Quantize ``x`` to ``bits``-bit codes with one (min, scale) for the whole tensor.

    .. math::
        s = \frac{\max - \min}{2^b - 1}, \quad
        q = \mathrm{clamp}(\lfloor (\mathbf{x} - \min) / s \rfloor, 0, 2^b - 1)

    (``rounding="nearest"`` rounds half to even instead of flooring). ``bits=32``
    returns a :class:`QuantizedTensor` that keeps ``x`` itself in ``values``.
    """
    x = _check_tensor(x)
    bits = check_bits(bits)
    rounding = check_rounding(rounding)
    clip = check_clip_percentile(clip_percentile)
    shape = tuple(x.shape)
    if bits == FP32_BITS:
        return QuantizedTensor(None, 0.0, 1.0, bits, shape, rounding, values=x)
    xf = x.detach().to(torch.float32)
    if xf.numel() == 0:
        codes = torch.zeros(shape, dtype=torch.int32, device=x.device)
        return QuantizedTensor(codes, 0.0, 0.0, bits, shape, rounding)
    mn, mx = _range_tensors(xf, clip)
    t, scale = _codes_float(xf, mn, mx, bits, rounding)
    return QuantizedTensor(t.to(torch.int32), float(mn), float(scale), bits, shape, rounding)


def fake_quantize(
    x: Tensor,
    bits: int,
    rounding: str = "floor",
    clip_percentile: Optional[float] = None,
) -> Tensor:
    r"""Quantize-dequantize ``x`` with a straight-through gradient.

    Forward: :math:`\mathbf{x}' = s \cdot q + \min`, bit-identical to
    ``linear_quantize(x, ...).dequantize()`` (cast back to ``x.dtype``). Backward:
    :math:`\partial L / \partial \mathbf{x} = \partial L / \partial \mathbf{x}'`.
    ``bits=32`` returns ``x`` itself (the same object).
    """
    x = _check_tensor(x)
    bits = check_bits(bits)
    rounding = check_rounding(rounding)
    clip = check_clip_percentile(clip_percentile)
    if bits == FP32_BITS:
        return x
    if x.requires_grad and torch.is_grad_enabled():
        return _StraightThroughQuantize.apply(x, bits, rounding, clip)
    return _fake_quantize_values(x, bits, rounding, clip).to(x.dtype)


def quantization_error(
    x: Tensor,
    bits: int,
    rounding: str = "floor",
    clip_percentile: Optional[float] = None,
) -> dict[str, float]:
    r"""Error of :math:`\mathbf{x}' = ` ``fake_quantize(x, ...)``.

    Returns ``{"mse": mean((x - x')^2), "max_abs": max|x - x'|}`` (0.0 for an empty
    tensor or ``bits=32``).
    """
    x = _check_tensor(x)
    bits = check_bits(bits)
    rounding = check_rounding(rounding)
    clip = check_clip_percentile(clip_percentile)
    if bits == FP32_BITS or x.numel() == 0:
        return {"mse": 0.0, "max_abs": 0.0}
    with torch.no_grad():
        xf = x.detach().to(torch.float32)
        diff = _fake_quantize_values(xf, bits, rounding, clip).sub_(xf)
        return {"mse": float(diff.square().mean()), "max_abs": float(diff.abs_().max())}


# ------------------------------------------------------------------- bit packing
def _to_flat_codes(codes: Union[Tensor, np.ndarray], bits: int) -> Tensor:
    if isinstance(codes, np.ndarray):
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"codes must be an integer array, got dtype {codes.dtype}")
        codes = torch.from_numpy(codes.astype(np.int64, copy=False))
    if not isinstance(codes, Tensor):
        raise ValueError(f"codes must be an integer torch.Tensor, got {type(codes).__name__}")
    if codes.dtype not in _INT_DTYPES:
        raise ValueError(f"codes must be an integer torch.Tensor, got dtype {codes.dtype}")
    flat = codes.detach().reshape(-1)
    if flat.numel():
        lo, hi = (int(v) for v in torch.aminmax(flat))
        top = 2**bits - 1
        if lo < 0 or hi > top:
            raise ValueError(
                f"codes for bits={bits} must lie in [0, {top}], got values in [{lo}, {hi}]"
            )
    return flat


def _check_pack_bits(bits: object) -> int:
    b = check_bits(bits)
    if b == FP32_BITS:
        raise ValueError(f"bit packing supports bits 1..16, got {bits!r}")
    return b


def pack_bits(codes: Union[Tensor, np.ndarray], bits: int) -> Tensor:
    r"""Pack integer ``codes`` in :math:`[0, 2^b - 1]` into a little-endian bit stream.

    Code :math:`i` occupies stream bits :math:`[ib, (i+1)b)`, least significant bit
    first; stream bit :math:`k` is bit :math:`k \bmod 8` of byte :math:`\lfloor k/8 \rfloor`.
    Returns a 1-D ``torch.uint8`` CPU tensor of :math:`\lceil n b / 8 \rceil` bytes
    (``codes`` is flattened row-major). Chunks whose :math:`n b` is a multiple of 8
    (e.g. a multiple of 8 codes) pack to byte-aligned pieces that concatenate into the
    stream of the whole.
    """
    bits = _check_pack_bits(bits)
    flat = _to_flat_codes(codes, bits)
    n = flat.numel()
    out = np.empty((n * bits + 7) // 8, dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        c16 = flat[start:stop].cpu().numpy().astype("<u2")
        b0 = start * bits // 8  # start is a multiple of 8
        b1 = (stop * bits + 7) // 8
        if bits == 8:
            out[b0:b1] = c16
        elif bits == 16:
            out[b0:b1] = c16.view(np.uint8)
        else:
            # each code is 2 bytes = 16 stream bits: keep the low `bits` of every row
            bitmat = np.unpackbits(c16.view(np.uint8), bitorder="little").reshape(-1, 16)
            out[b0:b1] = np.packbits(bitmat[:, :bits].reshape(-1), bitorder="little")
    return torch.from_numpy(out)


def unpack_bits(
    packed: Union[Tensor, np.ndarray],
    bits: int,
    numel: int,
    bit_offset: int = 0,
) -> Tensor:
    r"""Inverse of :func:`pack_bits`: ``numel`` codes of ``bits`` bits as ``torch.int32``.

    ``bit_offset`` starts reading at that stream bit (code :math:`i` of a stream starts
    at bit :math:`ib`), so a slice of codes can be decoded from the bytes covering it.
    """
    bits = _check_pack_bits(bits)
    numel = _check_int("numel", numel)
    bit_offset = _check_int("bit_offset", bit_offset)
    if isinstance(packed, Tensor):
        if packed.dtype != torch.uint8:
            raise ValueError(f"packed must be a uint8 tensor, got dtype {packed.dtype}")
        data = packed.detach().reshape(-1).cpu().numpy()
    elif isinstance(packed, np.ndarray) and packed.dtype == np.uint8:
        data = packed.reshape(-1)
    else:
        raise ValueError(f"packed must be a uint8 tensor, got {type(packed).__name__}")
    need = (bit_offset + numel * bits + 7) // 8
    if data.size < need:
        raise ValueError(
            f"packed holds {data.size} bytes, but {numel} codes of {bits} bits from bit "
            f"{bit_offset} need {need}"
        )
    out = np.empty(numel, dtype=np.int32)
    for start in range(0, numel, _CHUNK):
        stop = min(start + _CHUNK, numel)
        count = (stop - start) * bits
        first = bit_offset + start * bits
        b0, skip = divmod(first, 8)
        b1 = (first + count + 7) // 8
        if skip == 0 and bits == 8:
            out[start:stop] = data[b0:b1]
        elif skip == 0 and bits == 16:
            out[start:stop] = data[b0:b1].view("<u2")
        else:
            stream = np.unpackbits(data[b0:b1], bitorder="little")[skip:skip + count]
            bitmat = np.zeros((stop - start, 16), dtype=np.uint8)
            bitmat[:, :bits] = stream.reshape(-1, bits)
            # rows are 16 bits = 2 bytes, so packing the flat stream gives one uint16 per code
            out[start:stop] = np.packbits(bitmat.reshape(-1), bitorder="little").view("<u2")
    return torch.from_numpy(out)


# ------------------------------------------------------------------ containers
@dataclass(eq=False)
class QuantizedTensor:
    r"""Codes of a linearly quantized tensor: :math:`\mathbf{x}' = s \cdot q + \min`.

    ``codes`` is an ``int32`` tensor of shape ``shape`` (``None`` when ``bits == 32``).
    At 32 bits nothing is quantized: ``values`` holds the original tensor, which
    :meth:`dequantize` returns unchanged (``minimum=0.0``, ``scale=1.0`` are unused).
    """

    codes: Optional[Tensor]
    minimum: float
    scale: float
    bits: int
    shape: tuple[int, ...]
    rounding: str = "floor"
    values: Optional[Tensor] = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        r"""Stored size: :math:`\lceil n b / 8 \rceil + 8`; :math:`4n` at 32 bits; 0 if empty."""
        return _packed_nbytes(self.numel, self.bits)

    def dequantize(self) -> Tensor:
        r""":math:`\mathbf{x}' = s \cdot q + \min` as float32 (``values`` itself at 32 bits)."""
        if self.bits == FP32_BITS:
            assert self.values is not None
            return self.values
        assert self.codes is not None
        return self.codes.to(torch.float32).mul_(self.scale).add_(self.minimum)

    def pack(self) -> "PackedTensor":
        """Bit-packed form (CPU); 32-bit tensors are stored as raw float32 bytes."""
        if self.bits == FP32_BITS:
            assert self.values is not None
            raw = self.values.detach().to(device="cpu", dtype=torch.float32).contiguous()
            data = raw.reshape(-1).view(torch.uint8).clone()
        else:
            assert self.codes is not None
            data = pack_bits(self.codes, self.bits)
        return PackedTensor(data, self.minimum, self.scale, self.bits, self.shape, self.rounding)


@dataclass(eq=False)
class PackedTensor:
    r"""Bit-packed codes (``data``: 1-D ``torch.uint8``, CPU) with float32 ``min``/``scale``.

    At 32 bits ``data`` holds the raw float32 bytes. ``nbytes`` equals
    :attr:`QuantizedTensor.nbytes` of the same tensor.
    """

    data: Tensor
    minimum: float
    scale: float
    bits: int
    shape: tuple[int, ...]
    rounding: str = "floor"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """``data.numel() + 8`` (min and scale); ``data.numel()`` at 32 bits; 0 if empty."""
        if self.numel == 0:
            return 0
        if self.bits == FP32_BITS:
            return int(self.data.numel())
        return int(self.data.numel()) + GROUP_OVERHEAD_BYTES

    def unpack(self) -> QuantizedTensor:
        """Decode all codes back into a :class:`QuantizedTensor`."""
        if self.bits == FP32_BITS:
            values = self.data.view(torch.float32).clone().reshape(self.shape)
            return QuantizedTensor(None, self.minimum, self.scale, self.bits, self.shape,
                                   self.rounding, values=values)
        codes = unpack_bits(self.data, self.bits, self.numel).reshape(self.shape)
        return QuantizedTensor(codes, self.minimum, self.scale, self.bits, self.shape, self.rounding)

    def dequantize(self) -> Tensor:
        r""":math:`\mathbf{x}' = s \cdot q + \min` of the whole tensor (float32)."""
        return self.unpack().dequantize()

    def dequantize_rows(self, start: int, stop: int) -> Tensor:
        r"""Rows ``[start, stop)`` (along dim 0) of :meth:`dequantize`.

        Only the bytes covering stream bits :math:`[\mathrm{start} \cdot r b,
        \mathrm{stop} \cdot r b)` are decoded, :math:`r` being the elements per row.
        """
        if len(self.shape) == 0:
            raise ValueError("dequantize_rows needs a tensor with at least one dimension")
        rows = self.shape[0]
        start = _check_int("start", start)
        stop = _check_int("stop", stop)
        if not start <= stop <= rows:
            raise ValueError(f"need 0 <= start <= stop <= {rows}, got start={start}, stop={stop}")
        per_row = math.prod(self.shape[1:])
        out_shape = (stop - start, *self.shape[1:])
        n = (stop - start) * per_row
        if self.bits == FP32_BITS:
            chunk = self.data[start * per_row * 4:stop * per_row * 4]
            return chunk.view(torch.float32).clone().reshape(out_shape)
        first = start * per_row * self.bits
        b0 = first // 8
        b1 = (first + n * self.bits + 7) // 8
        codes = unpack_bits(self.data[b0:b1], self.bits, n, bit_offset=first - 8 * b0)
        return codes.to(torch.float32).mul_(self.scale).add_(self.minimum).reshape(out_shape)
