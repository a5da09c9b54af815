r"""Which codes: the integral codes and scale of a tensor for a given range
(:func:`codes`), the values they rematch to (:func:`dequantized`) and their squared
error (:func:`squared_error`)."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["codes", "dequantized", "squared_error"]


def codes(x: Tensor, minimum: Tensor, maximum: Tensor, bits: int,
          rounding: str = "floor") -> tuple[Tensor, Tensor]:
    r"""Integral-valued float32 codes of ``x`` and the float32 scale, for a given range.

    .. math::
        q = \mathrm{clamp}(\mathrm{round}((x - \min) / (\max - \min) \cdot (2^b - 1)),
            0, 2^b - 1), \qquad s = (\max - \min) / (2^b - 1)

    ``round`` is floor (the paper) or half-to-even. A zero range gives codes 0 and
    scale 0. ``x`` is not modified.
    """
    levels = float(2**bits - 1)
    rng = maximum - minimum
    scale = rng / levels
    positive = rng > 0
    denom = torch.where(positive, rng, torch.ones_like(rng))
    mult = torch.where(positive, torch.full_like(rng, levels), torch.zeros_like(rng))
    t = x.detach().to(torch.float32) - minimum  # the one full-size temporary
    t.div_(denom).mul_(mult)
    if rounding == "floor":
        t.floor_()
    else:
        t.round_()  # half to even
    t.clamp_(0.0, levels)
    return t, scale


def dequantized(x: Tensor, minimum: Tensor, maximum: Tensor, bits: int,
                rounding: str) -> Tensor:
    r""":math:`\mathbf{x}' = s q + \min` of float32 ``x`` over ``(minimum, maximum)``."""
    t, scale = codes(x, minimum, maximum, bits, rounding)
    return t.mul_(scale).add_(minimum)


def squared_error(x: Tensor, xq: Tensor) -> float:
    r""":math:`\sum (\mathbf{x}' - \mathbf{x})^2` of a dequantized ``xq``, summed in float64."""
    return float((xq - x).to(torch.float64).square_().sum())
