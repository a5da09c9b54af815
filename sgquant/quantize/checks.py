"""Argument checks of the quantizer: rounding, clip percentile, the tensor quantized."""
from __future__ import annotations

import numbers
from typing import Optional

import numpy as np
from torch import Tensor

__all__ = ["ROUNDINGS", "check_rounding", "check_clip_percentile", "check_tensor"]

ROUNDINGS: tuple[str, ...] = ("floor", "nearest")


def check_rounding(rounding: object) -> str:
    r"""Return ``rounding`` if it is one of :data:`ROUNDINGS` (``"floor"``, ``"nearest"``)."""
    if not isinstance(rounding, str) or rounding not in ROUNDINGS:
        allowed = ", ".join(repr(r) for r in ROUNDINGS)
        raise ValueError(f"rounding must be one of {allowed}, got {rounding!r}")
    return rounding


def check_clip_percentile(clip_percentile: object) -> Optional[float]:
    r"""Return ``clip_percentile`` as a float in :math:`(50, 100]`, or ``None`` (min/max).

    ``p`` keeps the range between the :math:`(100-p)`-th and :math:`p`-th percentiles;
    ``p <= 50`` would leave an empty or inverted range and is rejected.
    """
    if clip_percentile is None:
        return None
    ok = isinstance(clip_percentile, numbers.Real) and not isinstance(
        clip_percentile, (bool, np.bool_))
    p = float(clip_percentile) if ok else float("nan")
    if not (ok and 50.0 < p <= 100.0):
        raise ValueError("clip_percentile must be None (min/max) or a number in (50, 100] "
                         f"(the upper percentile kept), got {clip_percentile!r}")
    return p


def check_tensor(x: object) -> Tensor:
    """Return ``x`` if it is a floating-point :class:`torch.Tensor`."""
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor, got dtype {x.dtype}")
    return x
