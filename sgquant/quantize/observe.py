r"""The range of a tensor: its :math:`(\min, \max)` or a percentile range
(:func:`observe_range`), and the running min/max of a group seen in pieces
(:class:`RangeObserver`)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .checks import check_clip_percentile

__all__ = ["observe_range", "RangeObserver"]

# torch.quantile refuses inputs above 2**24 elements.
_TORCH_QUANTILE_MAX: int = 1 << 24


def observe_range(x: Tensor, clip_percentile: Optional[float] = None) -> tuple[Tensor, Tensor]:
    r"""0-d float32 :math:`(\min, \max)` of the non-empty tensor ``x``.

    With ``clip_percentile=p`` the range is the :math:`(100-p)`-th and :math:`p`-th
    percentiles of :math:`\mathbf{x}` (linear interpolation, exact and deterministic at
    any size), so outliers are clamped to the end codes. Non-finite values raise
    :class:`ValueError`.
    """
    xf = x.detach().to(torch.float32)
    if xf.numel() == 0:
        raise ValueError("cannot observe the range of an empty tensor")
    mn, mx = torch.aminmax(xf)
    if not bool(torch.isfinite(mn) & torch.isfinite(mx)):
        raise ValueError("x contains non-finite values (nan or inf); cannot quantize it")
    if clip_percentile is None or clip_percentile == 100.0:
        return mn, mx
    q_hi = clip_percentile / 100.0
    q_lo = 1.0 - q_hi
    flat = xf.reshape(-1)
    if flat.device.type != "cpu" and flat.numel() <= _TORCH_QUANTILE_MAX:
        lo, hi = torch.quantile(flat, torch.tensor([q_lo, q_hi], device=flat.device))
    else:  # exact, deterministic, O(n) (introselect), no size limit
        lo_hi = np.quantile(flat.cpu().numpy(), [q_lo, q_hi])
        lo = torch.tensor(lo_hi[0], dtype=torch.float32, device=xf.device)
        hi = torch.tensor(lo_hi[1], dtype=torch.float32, device=xf.device)
    lo = lo.to(torch.float32)
    return lo, torch.maximum(hi.to(torch.float32), lo)


class RangeObserver:
    r"""The quantization range of a group seen in pieces (rows chunk by chunk).

    With the full range (``clip_percentile=None``, the paper) it keeps the running
    :math:`\min` and :math:`\max` of every :meth:`update`, which equals the range of the
    whole group exactly (min/max do not depend on the order). A clipped range needs
    the percentiles of the whole group: it takes one :meth:`update` with all of it.
    """

    def __init__(self, clip_percentile: Optional[float] = None) -> None:
        self.clip_percentile = check_clip_percentile(clip_percentile)
        self.minimum: Optional[Tensor] = None
        self.maximum: Optional[Tensor] = None

    def update(self, x: Tensor) -> "RangeObserver":
        if x.numel() == 0:
            return self
        if self.clip_percentile is not None and self.minimum is not None:
            raise ValueError("a clipped (percentile) range is observed on the whole group at "
                             "once: call update() a single time")
        lo, hi = observe_range(x, self.clip_percentile)
        self.minimum = lo if self.minimum is None else torch.minimum(self.minimum, lo)
        self.maximum = hi if self.maximum is None else torch.maximum(self.maximum, hi)
        return self

    def calculate_range(self) -> tuple[Tensor, Tensor]:
        """0-d float32 ``(min, max)`` of everything seen."""
        if self.minimum is None or self.maximum is None:
            raise ValueError("the observer has seen no element")
        return self.minimum, self.maximum
