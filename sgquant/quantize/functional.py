r"""The quantizer as functions of a tensor and the option fields (rounding,
``clip_percentile``, ``clip_rule``), each one :class:`~sgquant.quantize.QuantOptions`
applied: the range (:func:`quant_range`, :func:`select_range`), the codes
(:func:`linear_quantize`), fake quantization (:func:`fake_quantize`) and its error
(:func:`quantization_error`)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..bitwidth import FP32_BITS, check_bits
from ..bitpack import QuantizedTensor
from .checks import check_clip_percentile, check_tensor
from .observe import observe_range
from .options import QuantOptions
from .quantizer import fake_quantize_values, quantize_codes

__all__ = ["quant_range", "select_range", "linear_quantize", "fake_quantize",
           "quantization_error"]


def quant_range(x: Tensor, clip_percentile: Optional[float] = None) -> tuple[float, float]:
    r"""Quantization range of ``x`` as Python floats (:func:`observe_range`);
    ``(0.0, 0.0)`` for an empty tensor."""
    x = check_tensor(x)
    clip = check_clip_percentile(clip_percentile)
    if x.numel() == 0:
        return 0.0, 0.0
    mn, mx = observe_range(x, clip)
    return float(mn), float(mx)


def select_range(x: Tensor, bits: int, rounding: str = "floor",
                 clip_percentile: Optional[float] = None,
                 clip_rule: str = "always") -> tuple[Tensor, Tensor]:
    r"""0-d float32 :math:`(\min, \max)` that ``x`` is quantized with at ``bits``: the
    choice of the options' range rule (:attr:`QuantOptions.range_rule`): the full range
    (``clip_percentile=None``), the clipped one (:func:`observe_range`), or with
    ``clip_rule="mse"`` whichever of the two gives the smaller squared error
    :math:`\sum (\mathbf{x}' - \mathbf{x})^2` (summed in float64; a tie keeps the full
    range), as the architecture page, "quantization", describes."""
    opts = QuantOptions(rounding, clip_percentile, clip_rule=clip_rule)
    mn, mx, _ = opts.range_rule.choose(x.detach().to(torch.float32), bits, opts.rounding)
    return mn, mx


def linear_quantize(x: Tensor, bits: int, rounding: str = "floor",
                    clip_percentile: Optional[float] = None,
                    clip_rule: str = "always") -> QuantizedTensor:
    r"""Quantize ``x`` to ``bits``-bit codes with one (min, scale) for the whole tensor.

    .. math::
        s = \frac{\max - \min}{2^b - 1}, \quad
        q = \mathrm{clamp}(\lfloor (\mathbf{x} - \min) / s \rfloor, 0, 2^b - 1)

    (``rounding="nearest"`` rounds half to even instead of flooring; the range is
    :func:`select_range`'s). ``bits=32`` returns a :class:`QuantizedTensor` that keeps
    ``x`` itself in ``values``.
    """
    x = check_tensor(x)
    bits = check_bits(bits)
    opts = QuantOptions(rounding, clip_percentile, clip_rule=clip_rule)
    return quantize_codes(x, bits, opts.rounding, opts.range_rule)


def fake_quantize(x: Tensor, bits: int, rounding: str = "floor",
                  clip_percentile: Optional[float] = None, clip_rule: str = "always") -> Tensor:
    r"""Quantize-dequantize ``x`` with a straight-through gradient
    (:meth:`QuantOptions.fake_quantize` of these fields).

    Forward: :math:`\mathbf{x}' = s \cdot q + \min`, bit-identical to
    ``linear_quantize(x, ...).dequantize()`` (cast back to ``x.dtype``). Backward:
    :math:`\partial L / \partial \mathbf{x} = \partial L / \partial \mathbf{x}'`.
    ``bits=32`` returns ``x`` itself (the same object).
    """
    x = check_tensor(x)
    bits = check_bits(bits)
    return QuantOptions(rounding, clip_percentile, clip_rule=clip_rule).fake_quantize(x, bits)


def quantization_error(x: Tensor, bits: int, rounding: str = "floor",
                       clip_percentile: Optional[float] = None,
                       clip_rule: str = "always") -> dict[str, float]:
    r"""Error of :math:`\mathbf{x}' = ` ``fake_quantize(x, ...)``: ``{"mse": mean((x - x')^2),
    "max_abs": max|x - x'|}`` (0.0 for an empty tensor or ``bits=32``)."""
    x = check_tensor(x)
    bits = check_bits(bits)
    opts = QuantOptions(rounding, clip_percentile, clip_rule=clip_rule)
    if bits == FP32_BITS or x.numel() == 0:
        return {"mse": 0.0, "max_abs": 0.0}
    with torch.no_grad():
        xf = x.detach().to(torch.float32)
        diff = fake_quantize_values(xf, bits, opts.rounding, opts.range_rule).sub_(xf)
        return {"mse": float(diff.square().mean()), "max_abs": float(diff.abs_().max())}
