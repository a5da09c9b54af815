r"""What a range rule is, and the registry of rules by name.

A range rule (in the manner of ``torch.ao.quantization``'s observers) decides the
:math:`(\min, \max)` a group is quantized with. It is a small frozen object held by a
quantization point's :class:`~sgquant.quantize.QuantOptions` (``options.range_rule``),
built from the options' ``clip_rule`` (the rule's :attr:`RangeRule.name`) and
``clip_percentile``. A new rule is one class in its own module of
:mod:`sgquant.quantize.ranges`, decorated with :func:`register_rule`, plus the import
of that module in the package (the architecture page, "quantization").
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, NamedTuple, Optional, TypeVar

import torch
from torch import Tensor

__all__ = ["RangeChoice", "RangeRule", "RANGE_RULES", "register_rule", "check_clip_rule",
           "range_rule"]


class RangeChoice(NamedTuple):
    """A rule's choice for one group: the 0-d float32 range and, when choosing it
    computed them, the dequantized values over it (float32, else ``None``)."""

    minimum: Tensor
    maximum: Tensor
    dequantized: Optional[Tensor] = None


@dataclass(frozen=True)
class RangeRule(ABC):
    """How the range of a group is chosen (abstract): :meth:`choose` on the whole group,
    :meth:`observe_pieces` on a group read in pieces."""

    #: The rule's spelling in ``QuantOptions.clip_rule`` (registered rules only).
    name: ClassVar[str] = ""

    @classmethod
    def from_percentile(cls, percentile: Optional[float]) -> "RangeRule":
        """The rule for ``QuantOptions.clip_percentile = percentile`` (checked already:
        ``None`` or a float in (50, 100]); a rule raises :class:`ValueError` for a value it
        cannot use."""
        if percentile is not None:
            raise ValueError(f"clip_rule {cls.name!r} takes no clip_percentile, "
                             f"got {percentile!r}")
        return cls()

    @abstractmethod
    def choose(self, x: Tensor, bits: int, rounding: str) -> RangeChoice:
        """The range of the non-empty float32 tensor ``x`` quantized at ``bits`` with
        ``rounding`` (``"floor"`` or ``"nearest"``)."""

    def observe_pieces(self, source: Callable[[int, int], Tensor], n: int, step: int,
                       bits: int, rounding: str) -> tuple[Tensor, Tensor]:
        """The range of the ``n`` rows that ``source(s, e)`` gives in pieces of ``step``
        rows: by default :meth:`choose` on the whole group at once; a rule whose range
        combines over pieces (min/max) overrides it."""
        return self.choose(source(0, n).detach().to(torch.float32), bits, rounding)[:2]

    @property
    @abstractmethod
    def label(self) -> str:
        """How tables name the range (``"min/max"``, ``"clip p99"`` ...)."""


#: The registered rules by name (what ``QuantOptions.clip_rule`` may be).
RANGE_RULES: dict[str, type[RangeRule]] = {}

_Rule = TypeVar("_Rule", bound=type[RangeRule])


def register_rule(cls: _Rule) -> _Rule:
    """Class decorator: make ``cls`` selectable as ``QuantOptions(clip_rule=cls.name)``."""
    if not cls.name or cls.name in RANGE_RULES:
        raise ValueError(f"a range rule needs a new name, got {cls.name!r} "
                         f"(registered: {', '.join(RANGE_RULES)})")
    RANGE_RULES[cls.name] = cls
    return cls


def check_clip_rule(clip_rule: object) -> str:
    r"""Return ``clip_rule`` if it names a registered rule (:data:`RANGE_RULES`)."""
    if not isinstance(clip_rule, str) or clip_rule not in RANGE_RULES:
        allowed = ", ".join(repr(r) for r in RANGE_RULES)
        raise ValueError(f"clip_rule must be one of {allowed}, got {clip_rule!r}")
    return clip_rule


def range_rule(clip_rule: str, clip_percentile: Optional[float]) -> RangeRule:
    """The rule object of options ``clip_rule`` / ``clip_percentile`` (both checked)."""
    return RANGE_RULES[check_clip_rule(clip_rule)].from_percentile(clip_percentile)
