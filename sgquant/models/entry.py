"""What sgquant knows about one model: a :class:`ModelEntry` (the architecture page,
"models"). Each model's file defines its ``ENTRY`` beside its class; :mod:`.registry`
lists the files."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["ModelEntry"]


@dataclass(frozen=True)
class ModelEntry:
    """One model of the registry.

    Args:
        name: how it is asked for (``--model``, ``-p model``), lower case.
        cls: its :class:`~sgquant.models.base.QuantGNN` subclass, built as
            ``cls(in_dim, num_classes, hidden, num_layers, **options)``.
        label: how the book prints it.
        hidden, num_layers: its size by default: the paper's Table I for a model the
            paper evaluates (``in_paper``), ours for one it does not.
        lr, weight_decay: Adam's settings of its FP32 training and fine-tuning (its
            dropout is its class's constructor default: :attr:`dropout`).
        in_paper: the paper evaluates it (the profiles run these models).
        options: further constructor arguments and their paper values (GAT: ``heads``).
        profile_fields: architecture arguments a profile sets, mapped to the
            :class:`~sgquant.profiles.Profile` field holding each (GAT: ``hidden`` and
            ``heads``); empty: every profile trains the default size.
    """

    name: str
    cls: type
    label: str
    hidden: int
    num_layers: int
    lr: float
    weight_decay: float
    in_paper: bool = False
    options: Mapping[str, int] = field(default_factory=dict)
    profile_fields: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower():
            raise ValueError(f"a model's name is lower case, got {self.name!r}")
        if min(self.hidden, self.num_layers) < 1 or not (self.lr > 0 and self.weight_decay >= 0):
            raise ValueError(f"model {self.name!r}: sizes must be >= 1, lr > 0 and "
                             f"weight_decay >= 0")

    @property
    def hparams(self) -> dict[str, float]:
        """Adam's settings: ``{"lr": ..., "weight_decay": ...}``."""
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def constructor_defaults(self) -> dict[str, Any]:
        """The class's keyword defaults that neither its size (``hidden``,
        ``num_layers``) nor :attr:`options` set: ``{"dropout": 0.5}`` ..."""
        params = inspect.signature(self.cls.__init__).parameters.values()
        return {p.name: p.default for p in params
                if p.default is not inspect.Parameter.empty
                and p.name not in ("hidden", "num_layers", *self.options)}

    @property
    def dropout(self) -> float:
        """The dropout probability it trains with (its class's default)."""
        return float(self.constructor_defaults()["dropout"])

    @property
    def training(self) -> dict[str, Any]:
        """Every setting of this entry that changes its training beside its size, so
        part of every FP32 cache key: Adam's ``lr`` and ``weight_decay``, the class's
        other defaults (``dropout``) and the options no profile sets."""
        fixed = {k: v for k, v in self.options.items() if k not in self.profile_fields}
        return {**self.hparams, **self.constructor_defaults(), **fixed}

    @property
    def architecture(self) -> tuple[int, int]:
        """``(hidden, num_layers)`` by default (the paper's Table I when ``in_paper``)."""
        return self.hidden, self.num_layers

    def profile_architecture(self, profile: Any) -> dict[str, int]:
        """Keyword arguments of :func:`~sgquant.models.build_model` under ``profile``
        (part of every FP32 cache key: keep their names and order)."""
        if self.profile_fields:
            return {arg: getattr(profile, f) for arg, f in self.profile_fields.items()}
        return {"hidden": self.hidden, "num_layers": self.num_layers}

    def size_label(self, profile: Any = None) -> str:
        """The size ``profile`` trains (``None``: the paper's) as the paper writes it, the
        options first: GAT's heads x hidden (``"8 x 256"``), else hidden x layers."""
        size = {"hidden": self.hidden, "num_layers": self.num_layers, **self.options}
        if profile is not None:
            size.update(self.profile_architecture(profile))
        keys = [*self.options, "hidden"] if self.options else ["hidden", "num_layers"]
        return " x ".join(str(size[k]) for k in keys)

    def paper_mismatch(self, profile: Any) -> str:
        """``""`` when ``profile`` trains the paper's size (or the paper has no such
        model), else :meth:`size_label` of ``profile`` (GAT in ``default``: ``"8 x 8"``)."""
        ours = self.profile_architecture(profile)
        paper = {"hidden": self.hidden, "num_layers": self.num_layers, **self.options}
        if not self.in_paper or all(paper.get(k) == v for k, v in ours.items()):
            return ""
        return self.size_label(profile)
