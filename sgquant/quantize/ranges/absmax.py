r"""``clip_rule="absmax"``: a symmetric range :math:`(-a, a)`, :math:`a = \max |\mathbf{x}|`
(``torch.ao``'s symmetric qscheme, for a feature whose sign matters more than its
spread; it takes no ``clip_percentile``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .base import RangeChoice, RangeRule, register_rule
from .minmax import MinMax

__all__ = ["AbsMax"]


@register_rule
@dataclass(frozen=True)
class AbsMax(RangeRule):
    r""":math:`(-a, a)` with :math:`a = \max(|\min \mathbf{x}|, |\max \mathbf{x}|)`: zero
    sits mid-range (at half of :math:`2^b - 1`); observed piece by piece, exactly."""

    name = "absmax"

    @staticmethod
    def _symmetric(minimum: Tensor, maximum: Tensor) -> tuple[Tensor, Tensor]:
        a = torch.maximum(minimum.abs(), maximum.abs())
        return -a, a

    def choose(self, x: Tensor, bits: int, rounding: str) -> RangeChoice:
        return RangeChoice(*self._symmetric(*MinMax().choose(x, bits, rounding)[:2]))

    def observe_pieces(self, source: Callable[[int, int], Tensor], n: int, step: int,
                       bits: int, rounding: str) -> tuple[Tensor, Tensor]:
        return self._symmetric(*MinMax().observe_pieces(source, n, step, bits, rounding))

    @property
    def label(self) -> str:
        return "symmetric ±max|x|"
