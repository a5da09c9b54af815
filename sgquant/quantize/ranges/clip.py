r"""``clip_rule="always"``: the percentile range wherever ``clip_percentile`` is set."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor

from ..observe import observe_range
from .base import RangeChoice, RangeRule, register_rule
from .minmax import MinMax

__all__ = ["Clip"]


@register_rule
@dataclass(frozen=True)
class Clip(RangeRule):
    r"""The :math:`(100-p)`-th to :math:`p`-th percentiles of :math:`\mathbf{x}`
    (:func:`~sgquant.quantize.observe_range`): outliers clamp to the end codes."""

    percentile: float
    name = "always"

    @classmethod
    def from_percentile(cls, percentile: Optional[float]) -> RangeRule:
        return MinMax() if percentile is None else cls(percentile)

    def choose(self, x: Tensor, bits: int, rounding: str) -> RangeChoice:
        return RangeChoice(*observe_range(x, self.percentile))

    @property
    def label(self) -> str:
        return f"clip p{self.percentile:g}"
