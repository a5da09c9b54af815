r"""Linear quantization of GNN features (SGQuant, Feng et al., ICTAI 2020).

A tensor :math:`\mathbf{x}` quantized at :math:`b` bits (:math:`1 \le b \le 16`) is

.. math::
    s = \frac{\max - \min}{2^b - 1}, \qquad
    q = \mathrm{clamp}\left(\left\lfloor \frac{\mathbf{x} - \min}{s}
        \right\rfloor, 0, 2^b - 1\right), \qquad
    \mathbf{x}' = s \cdot q + \min

("rematching" is the last step). :math:`b = 32` means "kept in float32".

As in ``torch.ao.quantization``, *which range* and *which codes* are separate, public
steps, used alike by fake quantization (:func:`fake_quantize`, training) and by packed
inference (:mod:`sgquant.packed`), so both give the same codes for the same floats:

* :class:`RangeObserver` / :func:`observe_range`: the range :math:`(\min, \max)`, the
  paper's full range or a clipped percentile range;
* :func:`codes`: the integral codes and the scale for a given range;
* :class:`QuantOptions`: the one configuration object (rounding, range).

All arithmetic is float32. The normalised code is computed as
:math:`(\mathbf{x} - \min) / (\max - \min) \cdot (2^b - 1)` (mathematically equal to
:math:`(\mathbf{x} - \min) / s`), so that :math:`\max` maps to exactly :math:`2^b - 1`
and :math:`\min` to exactly :math:`0` in floating point. A constant tensor gets code 0
and scale 0 (no division by zero).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .bitwidth import ALLOWED_BITS, FP32_BITS, GROUP_OVERHEAD_BYTES, check_bits
from .packing import PackedTensor, QuantizedTensor, pack_bits, unpack_bits

__all__ = [
    "ALLOWED_BITS", "FP32_BITS", "GROUP_OVERHEAD_BYTES", "ROUNDINGS", "POINT_KINDS",
    "check_bits", "check_rounding", "check_clip_percentile", "CLIP_RULES", "check_clip_rule",
    "select_range",
    "QuantOptions", "RangeObserver", "observe_range", "codes",
    "QuantizedTensor", "PackedTensor", "quant_range", "linear_quantize", "fake_quantize",
    "pack_bits", "unpack_bits", "quantization_error",
]

ROUNDINGS: tuple[str, ...] = ("floor", "nearest")

# torch.quantile refuses inputs above 2**24 elements.
_TORCH_QUANTILE_MAX: int = 1 << 24


# --------------------------------------------------------------------------- checks
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


#: How a clipped range is used: ``"always"``, or ``"mse"``: per group, only where it
#: quantizes with a smaller mean squared error than the full range (:func:`select_range`).
CLIP_RULES: tuple[str, ...] = ("always", "mse")


def check_clip_rule(clip_rule: object) -> str:
    r"""Return ``clip_rule`` if it is one of :data:`CLIP_RULES`."""
    if not isinstance(clip_rule, str) or clip_rule not in CLIP_RULES:
        allowed = ", ".join(repr(r) for r in CLIP_RULES)
        raise ValueError(f"clip_rule must be one of {allowed}, got {clip_rule!r}")
    return clip_rule


def _check_tensor(x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor, got dtype {x.dtype}")
    return x


#: The kinds of quantization point a :class:`QuantOptions` can set apart.
POINT_KINDS: tuple[str, ...] = ("input", "hidden", "att")


@dataclass(frozen=True)
class QuantOptions:
    """How features are quantized: the paper's floor rounding over the full min/max range
    by default; ``rounding="nearest"`` (half to even) and a clipped range
    (``clip_percentile``, e.g. 99.0: the 1st to 99th percentiles) are options.

    ``input``, ``hidden`` and ``att`` optionally give other options to one kind of
    quantization point: the dataset's features (``emb_L1``), the hidden embeddings
    (``emb_L2`` ...) and the edge coefficients (``att_L*``). ``clip_rule="mse"`` clips a
    group only where that quantizes it with a smaller squared error than the full range
    (:func:`select_range`; ``"always"``: wherever ``clip_percentile`` is set). A clipped
    range stores the same float32 ``min`` and ``scale`` per group as the full one, so no
    option changes the memory count.
    """

    rounding: str = "floor"
    clip_percentile: Optional[float] = None
    input: Optional["QuantOptions"] = None
    hidden: Optional["QuantOptions"] = None
    att: Optional["QuantOptions"] = None
    clip_rule: str = "always"

    def __post_init__(self) -> None:
        check_rounding(self.rounding)
        object.__setattr__(self, "clip_percentile", check_clip_percentile(self.clip_percentile))
        check_clip_rule(self.clip_rule)
        if self.clip_rule != "always" and self.clip_percentile is None:
            raise ValueError(f"clip_rule {self.clip_rule!r} chooses between a clipped and the "
                             "full range: it needs a clip_percentile")
        for kind in POINT_KINDS:
            sub = getattr(self, kind)
            if sub is None:
                continue
            if not isinstance(sub, QuantOptions):
                raise ValueError(f"QuantOptions.{kind} must be QuantOptions or None, "
                                 f"got {type(sub).__name__}")
            if sub.has_overrides:
                raise ValueError(f"QuantOptions.{kind} cannot itself hold per-kind options")

    @property
    def has_overrides(self) -> bool:
        return any(getattr(self, k) is not None for k in POINT_KINDS)

    def base(self) -> "QuantOptions":
        """These options without per-kind overrides."""
        return QuantOptions(self.rounding, self.clip_percentile, clip_rule=self.clip_rule)

    def for_point(self, name: str) -> "QuantOptions":
        """The options of the quantization point ``name`` (``emb_L1``, ``emb_L3``, ``att_L2``)."""
        if name.startswith("att_"):
            kind = "att"
        elif name == "emb_L1":
            kind = "input"
        elif name.startswith("emb_L"):
            kind = "hidden"
        else:
            raise ValueError(f"unknown quantization point {name!r}; points are named "
                             "emb_L<k> or att_L<k>")
        return getattr(self, kind) or self.base()

    @property
    def label(self) -> str:
        """``"floor, min/max"``, ``"nearest, clip p99"`` ... (per-kind overrides appended)."""
        def one(o: "QuantOptions") -> str:
            rng = "min/max" if o.clip_percentile is None else f"clip p{o.clip_percentile:g}" + (
                " where smaller MSE" if o.clip_rule == "mse" else "")
            return f"{o.rounding}, {rng}"
        parts = [one(self)] + [f"{k}: {one(getattr(self, k))}" for k in POINT_KINDS
                               if getattr(self, k) is not None]
        return "; ".join(parts)

    def to_dict(self) -> dict:
        """JSON-able form (``from_dict`` reads it back); per-kind keys only when set."""
        out: dict = {"rounding": self.rounding, "clip_percentile": self.clip_percentile}
        if self.clip_rule != "always":  # only when set, so earlier records keep their keys
            out["clip_rule"] = self.clip_rule
        for k in POINT_KINDS:
            if getattr(self, k) is not None:
                out[k] = getattr(self, k).to_dict()
        return out

    @classmethod
    def from_dict(cls, payload: "dict | None") -> "QuantOptions":
        if payload is None:
            return cls()
        if not isinstance(payload, dict):
            raise ValueError(f"QuantOptions need a dict, got {type(payload).__name__}")
        allowed = {"rounding", "clip_percentile", "clip_rule", *POINT_KINDS}
        unknown = set(payload) - allowed
        if unknown:
            raise ValueError(f"unknown QuantOptions key(s) {sorted(unknown)}; "
                             f"keys are {', '.join(sorted(allowed))}")
        kinds = {k: cls.from_dict(payload[k]) for k in POINT_KINDS if payload.get(k) is not None}
        return cls(payload.get("rounding", "floor"), payload.get("clip_percentile"), **kinds,
                   clip_rule=payload.get("clip_rule", "always"))


# ------------------------------------------------------------------------ range
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


# ------------------------------------------------------------------------ codes
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


def _dequantized(x: Tensor, minimum: Tensor, maximum: Tensor, bits: int,
                 rounding: str) -> Tensor:
    """:math:`\\mathbf{x}' = s q + \\min` of float32 ``x`` over ``(minimum, maximum)``."""
    t, scale = codes(x, minimum, maximum, bits, rounding)
    return t.mul_(scale).add_(minimum)


def _squared_error(x: Tensor, xq: Tensor) -> float:
    """:math:`\\sum (x' - x)^2` of a dequantized ``xq``, summed in float64."""
    return float((xq - x).to(torch.float64).square_().sum())


def _select(xf: Tensor, bits: int, rounding: str, clip_percentile: Optional[float],
            clip_rule: str) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """:func:`select_range` of float32 ``xf``, with the dequantized values when choosing
    the range computed them (the ``"mse"`` rule), else ``None``."""
    if clip_percentile is None or clip_percentile == 100.0:
        return (*observe_range(xf), None)
    clipped = observe_range(xf, clip_percentile)
    if clip_rule == "always":
        return (*clipped, None)
    full = observe_range(xf)
    xq_clipped = _dequantized(xf, *clipped, bits, rounding)
    xq_full = _dequantized(xf, *full, bits, rounding)
    if _squared_error(xf, xq_clipped) < _squared_error(xf, xq_full):
        return (*clipped, xq_clipped)
    return (*full, xq_full)


def select_range(x: Tensor, bits: int, rounding: str = "floor",
                 clip_percentile: Optional[float] = None,
                 clip_rule: str = "always") -> tuple[Tensor, Tensor]:
    r"""0-d float32 :math:`(\min, \max)` that ``x`` is quantized with at ``bits``.

    The full range (``clip_percentile=None``), the clipped one (:func:`observe_range`), or
    with ``clip_rule="mse"`` whichever of the two gives the smaller squared error
    :math:`\sum (\mathbf{x}' - \mathbf{x})^2` (summed in float64; a tie keeps the full
    range). Clipping trades the clamped outliers' error for a finer step, which pays at
    1 to 4 bits and costs at more, where the step is already fine (the architecture
    page, "quantization").
    """
    mn, mx, _ = _select(x.detach().to(torch.float32), bits, rounding, clip_percentile,
                        clip_rule)
    return mn, mx


def _fake_quantize_values(x: Tensor, bits: int, rounding: str, clip: Optional[float],
                          clip_rule: str = "always") -> Tensor:
    """Dequantized float32 values of ``x`` (no autograd); the ``"mse"`` rule's choice
    reuses the values it compared."""
    xf = x.detach().to(torch.float32)
    if xf.numel() == 0:
        return torch.empty(xf.shape, dtype=torch.float32, device=xf.device)
    mn, mx, xq = _select(xf, bits, rounding, clip, clip_rule)
    return _dequantized(xf, mn, mx, bits, rounding) if xq is None else xq


class _StraightThroughQuantize(torch.autograd.Function):
    r"""Forward :math:`\mathbf{x}'`, backward :math:`\partial \mathbf{x}' / \partial \mathbf{x} = 1`."""

    @staticmethod
    def forward(ctx, x: Tensor, bits: int, rounding: str,  # type: ignore[override]
                clip: Optional[float], clip_rule: str) -> Tensor:
        return _fake_quantize_values(x, bits, rounding, clip, clip_rule).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        return grad_output, None, None, None, None


# ------------------------------------------------------------------ public quantizer
def quant_range(x: Tensor, clip_percentile: Optional[float] = None) -> tuple[float, float]:
    r"""Quantization range of ``x`` as Python floats (:func:`observe_range`);
    ``(0.0, 0.0)`` for an empty tensor."""
    x = _check_tensor(x)
    clip = check_clip_percentile(clip_percentile)
    if x.numel() == 0:
        return 0.0, 0.0
    mn, mx = observe_range(x, clip)
    return float(mn), float(mx)


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
    x = _check_tensor(x)
    bits = check_bits(bits)
    rounding = check_rounding(rounding)
    clip = check_clip_percentile(clip_percentile)
    clip_rule = check_clip_rule(clip_rule)
    shape = tuple(x.shape)
    if bits == FP32_BITS:
        return QuantizedTensor(None, 0.0, 1.0, bits, shape, rounding, values=x)
    if x.numel() == 0:
        empty = torch.zeros(shape, dtype=torch.int32, device=x.device)
        return QuantizedTensor(empty, 0.0, 0.0, bits, shape, rounding)
    mn, mx = select_range(x, bits, rounding, clip, clip_rule)
    t, scale = codes(x, mn, mx, bits, rounding)
    return QuantizedTensor(t.to(torch.int32), float(mn), float(scale), bits, shape, rounding)


def fake_quantize(x: Tensor, bits: int, rounding: str = "floor",
                  clip_percentile: Optional[float] = None, clip_rule: str = "always") -> Tensor:
    r"""Quantize-dequantize ``x`` with a straight-through gradient.

    Forward: :math:`\mathbf{x}' = s \cdot q + \min`, bit-identical to
    ``linear_quantize(x, ...).dequantize()`` (cast back to ``x.dtype``). Backward:
    :math:`\partial L / \partial \mathbf{x} = \partial L / \partial \mathbf{x}'`.
    ``bits=32`` returns ``x`` itself (the same object).
    """
    x = _check_tensor(x)
    bits = check_bits(bits)
    rounding = check_rounding(rounding)
    clip = check_clip_percentile(clip_percentile)
    clip_rule = check_clip_rule(clip_rule)
    if bits == FP32_BITS:
        return x
    if x.requires_grad and torch.is_grad_enabled():
        return _StraightThroughQuantize.apply(x, bits, rounding, clip, clip_rule)
    return _fake_quantize_values(x, bits, rounding, clip, clip_rule).to(x.dtype)


def quantization_error(x: Tensor, bits: int, rounding: str = "floor",
                       clip_percentile: Optional[float] = None,
                       clip_rule: str = "always") -> dict[str, float]:
    r"""Error of :math:`\mathbf{x}' = ` ``fake_quantize(x, ...)``: ``{"mse": mean((x - x')^2),
    "max_abs": max|x - x'|}`` (0.0 for an empty tensor or ``bits=32``)."""
    x = _check_tensor(x)
    bits = check_bits(bits)
    rounding = check_rounding(rounding)
    clip = check_clip_percentile(clip_percentile)
    clip_rule = check_clip_rule(clip_rule)
    if bits == FP32_BITS or x.numel() == 0:
        return {"mse": 0.0, "max_abs": 0.0}
    with torch.no_grad():
        xf = x.detach().to(torch.float32)
        diff = _fake_quantize_values(xf, bits, rounding, clip, clip_rule).sub_(xf)
        return {"mse": float(diff.square().mean()), "max_abs": float(diff.abs_().max())}
