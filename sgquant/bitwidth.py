r"""Bit widths: what "``b`` bits" may be, and what a quantized group costs to store.

A feature is quantized at :math:`b \in \{1, \dots, 16\}` bits, or kept in float32
(:data:`FP32_BITS` = 32). A quantized group of :math:`n` elements is stored as
:math:`\lceil n b / 8 \rceil` bytes of codes plus its float32 ``min`` and ``scale``
(:data:`GROUP_OVERHEAD_BYTES` = 8); a float32 group as :math:`4n` bytes.

This is the bottom of the library: :mod:`sgquant.bitpack`, :mod:`sgquant.quantize`,
:mod:`sgquant.assignment` and :mod:`sgquant.memory` all take their widths from here.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional

__all__ = ["FP32_BITS", "ALLOWED_BITS", "GROUP_OVERHEAD_BYTES", "check_bits", "stored_nbytes"]

#: "Kept in float32": nothing is quantized.
FP32_BITS: int = 32
#: Every width a field may take.
ALLOWED_BITS: tuple[int, ...] = (*range(1, 17), FP32_BITS)
#: Bytes of per-group overhead of a quantized tensor: float32 ``min`` and ``scale``.
GROUP_OVERHEAD_BYTES: int = 8


def check_bits(bits: object) -> int:
    r"""Return ``bits`` as an ``int`` if it is one of :data:`ALLOWED_BITS` (1..16 or 32).

    Integral floats (``8.0``) and one-element integer tensors are accepted; bools,
    strings and non-integral numbers raise :class:`ValueError`.
    """
    value: Optional[int] = None
    if isinstance(bits, bool) or type(bits).__name__ == "bool_":
        value = None
    elif isinstance(bits, numbers.Integral):
        value = int(bits)
    elif isinstance(bits, numbers.Real):
        f = float(bits)
        if math.isfinite(f) and f.is_integer():
            value = int(f)
    elif hasattr(bits, "numel") and hasattr(bits, "dtype"):  # a torch tensor
        dtype = bits.dtype
        if bits.numel() == 1 and not dtype.is_floating_point and not dtype.is_complex \
                and str(dtype) != "torch.bool":
            value = int(bits.item())
    if value is None or value not in ALLOWED_BITS:
        raise ValueError(
            f"bits must be an integer in 1..16 or 32 (32 = kept in float32), got {bits!r}")
    return value


def stored_nbytes(numel: int, bits: int) -> int:
    r"""Bytes of a stored group of ``numel`` elements: :math:`\lceil n b / 8 \rceil + 8`
    when quantized, :math:`4n` at 32 bits, 0 when empty."""
    if numel == 0:
        return 0
    if bits == FP32_BITS:
        return 4 * numel
    return (numel * bits + 7) // 8 + GROUP_OVERHEAD_BYTES
