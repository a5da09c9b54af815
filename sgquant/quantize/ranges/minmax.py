r"""The paper's range: the group's full :math:`(\min, \max)`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor

from ..observe import RangeObserver, observe_range
from .base import RangeChoice, RangeRule

__all__ = ["MinMax"]


@dataclass(frozen=True)
class MinMax(RangeRule):
    r""":math:`(\min \mathbf{x}, \max \mathbf{x})` (what ``clip_rule="always"`` means
    without a ``clip_percentile``); observed piece by piece, exactly, in any order."""

    def choose(self, x: Tensor, bits: int, rounding: str) -> RangeChoice:
        return RangeChoice(*observe_range(x))

    def observe_pieces(self, source: Callable[[int, int], Tensor], n: int, step: int,
                       bits: int, rounding: str) -> tuple[Tensor, Tensor]:
        observer = RangeObserver()
        for s in range(0, n, step):
            observer.update(source(s, min(s + step, n)))
        return observer.calculate_range()

    @property
    def label(self) -> str:
        return "min/max"
