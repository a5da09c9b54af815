r""":class:`QuantOptions`: the one configuration of the quantizer (rounding, range
rule, per-kind overrides), and what it serialises to in cache keys and records."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from torch import Tensor

from ..bitwidth import check_bits
from .checks import check_clip_percentile, check_rounding, check_tensor
from .quantizer import straight_through
from .ranges import RangeRule, range_rule

__all__ = ["POINT_KINDS", "QuantOptions"]

#: The kinds of quantization point a :class:`QuantOptions` can set apart.
POINT_KINDS: tuple[str, ...] = ("input", "hidden", "att")


@dataclass(frozen=True)
class QuantOptions:
    """How features are quantized: the paper's floor rounding over the full min/max range
    by default; ``rounding="nearest"`` (half to even) and a clipped range
    (``clip_percentile``, e.g. 99.0: the 1st to 99th percentiles) are options.

    ``clip_rule`` names the range rule (:data:`~sgquant.quantize.ranges.RANGE_RULES`,
    one module each in :mod:`sgquant.quantize.ranges`): ``"always"`` clips wherever
    ``clip_percentile`` is set (min/max without it); ``"mse"`` clips a group only where
    that quantizes it with a smaller squared error than the full range. The rule object
    is :attr:`range_rule`. A clipped range stores the same float32 ``min`` and ``scale``
    per group as the full one, so no option changes the memory count.

    ``input``, ``hidden`` and ``att`` optionally give other options to one kind of
    quantization point: the dataset's features (``emb_L1``), the hidden embeddings
    (``emb_L2`` ...) and the edge coefficients (``att_L*``); :meth:`for_point` picks them.
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
        # not a field: equality, hashing and to_dict see the fields it is built from
        object.__setattr__(self, "_range_rule", range_rule(self.clip_rule, self.clip_percentile))
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
    def range_rule(self) -> RangeRule:
        """The range rule of these options (not of their per-kind overrides)."""
        return self._range_rule  # type: ignore[attr-defined]

    @property
    def has_overrides(self) -> bool:
        return any(getattr(self, k) is not None for k in POINT_KINDS)

    def base(self) -> "QuantOptions":
        """These options without per-kind overrides."""
        return replace(self, input=None, hidden=None, att=None)

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

    def fake_quantize(self, x: Tensor, bits: int) -> Tensor:
        r"""Quantize-dequantize ``x`` at ``bits`` with these options, with a
        straight-through gradient (:func:`~sgquant.quantize.fake_quantize`); options
        with per-kind overrides first need :meth:`for_point`."""
        x = check_tensor(x)
        bits = check_bits(bits)
        return straight_through(x, bits, self.rounding, self.single().range_rule)

    def single(self) -> "QuantOptions":
        """These options, which must hold no per-kind overrides (a quantization point's
        own, :meth:`for_point`): what quantizes one tensor."""
        if self.has_overrides:
            raise ValueError(f"options with per-kind overrides ({self.label}) quantize no "
                             "tensor themselves: use options.for_point(name)")
        return self

    @property
    def label(self) -> str:
        """``"floor, min/max"``, ``"nearest, clip p99"`` ... (per-kind overrides appended)."""
        parts = [f"{self.rounding}, {self.range_rule.label}"] + [
            f"{k}: {getattr(self, k).label}" for k in POINT_KINDS if getattr(self, k) is not None]
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
