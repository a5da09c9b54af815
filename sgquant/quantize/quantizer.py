r"""Quantizing a tensor with a rounding and a range rule (:mod:`.ranges`): its codes
(:func:`quantize_codes`) and its straight-through fake quantization
(:func:`straight_through`). Arguments are checked by the callers
(:class:`~sgquant.quantize.QuantOptions`, :mod:`.functional`)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..bitwidth import FP32_BITS
from ..bitpack import QuantizedTensor
from .codes import codes, dequantized
from .ranges import RangeRule

__all__ = ["fake_quantize_values", "straight_through", "quantize_codes"]


def fake_quantize_values(x: Tensor, bits: int, rounding: str, rule: RangeRule) -> Tensor:
    r"""Dequantized float32 values :math:`\mathbf{x}' = s q + \min` of ``x`` over the
    range ``rule`` chooses (no autograd); a choice that computed them is reused."""
    xf = x.detach().to(torch.float32)
    if xf.numel() == 0:
        return torch.empty(xf.shape, dtype=torch.float32, device=xf.device)
    mn, mx, xq = rule.choose(xf, bits, rounding)
    return dequantized(xf, mn, mx, bits, rounding) if xq is None else xq


class _StraightThroughQuantize(torch.autograd.Function):
    r"""Forward :math:`\mathbf{x}'`, backward :math:`\partial \mathbf{x}' / \partial \mathbf{x} = 1`."""

    @staticmethod
    def forward(ctx, x: Tensor, bits: int, rounding: str,  # type: ignore[override]
                rule: RangeRule) -> Tensor:
        return fake_quantize_values(x, bits, rounding, rule).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        return grad_output, None, None, None


def straight_through(x: Tensor, bits: int, rounding: str, rule: RangeRule) -> Tensor:
    r"""Quantize-dequantize ``x`` (cast back to ``x.dtype``) with a straight-through
    gradient, :math:`\partial L / \partial \mathbf{x} = \partial L / \partial \mathbf{x}'`;
    ``bits=32`` returns ``x`` itself."""
    if bits == FP32_BITS:
        return x
    if x.requires_grad and torch.is_grad_enabled():
        return _StraightThroughQuantize.apply(x, bits, rounding, rule)
    return fake_quantize_values(x, bits, rounding, rule).to(x.dtype)


def quantize_codes(x: Tensor, bits: int, rounding: str, rule: RangeRule) -> QuantizedTensor:
    r"""``x`` as ``bits``-bit codes with one (min, scale), over the range ``rule``
    chooses (:func:`~sgquant.quantize.codes`); ``bits=32`` keeps ``x`` in ``values``."""
    shape = tuple(x.shape)
    if bits == FP32_BITS:
        return QuantizedTensor(None, 0.0, 1.0, bits, shape, rounding, values=x)
    if x.numel() == 0:
        empty = torch.zeros(shape, dtype=torch.int32, device=x.device)
        return QuantizedTensor(empty, 0.0, 0.0, bits, shape, rounding)
    mn, mx, _ = rule.choose(x.detach().to(torch.float32), bits, rounding)
    t, scale = codes(x, mn, mx, bits, rounding)
    return QuantizedTensor(t.to(torch.int32), float(mn), float(scale), bits, shape, rounding)
