r"""``clip_rule="mse"``: per group, the clipped range only where it quantizes with a
smaller squared error than the full one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor

from ..codes import dequantized, squared_error
from ..observe import observe_range
from .base import RangeChoice, RangeRule, register_rule

__all__ = ["ClipWhereSmallerMse"]


@register_rule
@dataclass(frozen=True)
class ClipWhereSmallerMse(RangeRule):
    r"""The percentile range (:class:`~sgquant.quantize.ranges.clip.Clip`) or the full
    one, whichever gives the smaller :math:`\sum (\mathbf{x}' - \mathbf{x})^2` at the
    group's bits and rounding (summed in float64; a tie keeps the full range; ``p = 100``
    is the full range). Clipping trades the clamped outliers' error for a finer step,
    which pays at 1 to 4 bits and costs at more, where the step is already fine.
    The choice keeps the dequantized values it compared."""

    percentile: float
    name = "mse"

    @classmethod
    def from_percentile(cls, percentile: Optional[float]) -> RangeRule:
        if percentile is None:
            raise ValueError(f"clip_rule {cls.name!r} chooses between a clipped and the "
                             "full range: it needs a clip_percentile")
        return cls(percentile)

    def choose(self, x: Tensor, bits: int, rounding: str) -> RangeChoice:
        full = observe_range(x)
        if self.percentile == 100.0:
            return RangeChoice(*full)
        clipped = observe_range(x, self.percentile)
        xq_clipped = dequantized(x, *clipped, bits, rounding)
        xq_full = dequantized(x, *full, bits, rounding)
        if squared_error(x, xq_clipped) < squared_error(x, xq_full):
            return RangeChoice(*clipped, xq_clipped)
        return RangeChoice(*full, xq_full)

    @property
    def label(self) -> str:
        return f"clip p{self.percentile:g} where smaller MSE"
