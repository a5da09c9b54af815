r"""How long a search's fine-tunes run: a budget in epochs, spent where it pays.

A search asks one question of each fine-tune: does this configuration stay within
tolerance of FP32 validation accuracy, i.e. does its best validation accuracy so far
reach the threshold :math:`T` (FP32 validation minus the tolerance)? The best
validation accuracy of a fine-tune is a running maximum over its epochs, so

* once it reaches :math:`T` the answer is *yes* and cannot change: the fine-tune may stop
  there (``stop_when_feasible``);
* at a *rung* (``rung`` times the fine-tune's epochs) a fine-tune still more than
  ``margin`` points below :math:`T` is unlikely to get there: it stops and counts as
  infeasible (successive halving's first rung, with feasibility as the score).

:class:`StopRule` is one fine-tune's rule (an absolute ``stop_at`` accuracy, a
``rung_epoch`` and a ``rung_floor``); :class:`Fidelity` makes it from a search's
threshold. The recorded validation accuracy of a stopped fine-tune is its best *so
far* (at least :math:`T` when it stopped feasible): the cost model learns from these
censored values, and a confirmation that averages accuracies (the paper's rule) judges
them. A confirmation that needs *every* fresh fine-tune within tolerance (SGQuant+'s
bound over two fine-tunes is their minimum) decides exactly as with full fine-tunes
under ``stop_when_feasible``; the rung may reject a configuration that the full
fine-tune would have kept.

Named fidelities (:data:`FIDELITIES`): ``full`` (every fine-tune runs all its epochs:
the schedule before 2026-12-02) and ``thrifty`` (both rules, rung 0.3, margin 5 points).
Its rung and margin were chosen on validation accuracy alone: ``benchmarks/
fidelity_study.py`` replayed the validation curves of 420 fine-tunes (30 random
configurations each on Cora GCN/AGNN/GAT and CiteSeer GCN/AGNN, both methods' fine-tunes,
10 and 60 epochs), of which 229 end within tolerance; the cheapest rule that stops none
of those 229 was rung 0.3 at margin 3 (0.32 of the full epochs); ``thrifty`` takes one
margin step wider (0.35). See the book's chapter 3, "How SGQuant+ was designed".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from .checks import check_bool, check_choice, check_number

__all__ = ["StopRule", "Fidelity", "FIDELITIES", "DEFAULT_FIDELITY", "get_fidelity"]


@dataclass(frozen=True)
class StopRule:
    """When one fine-tune stops early: once its best validation accuracy reaches
    ``stop_at`` (a fraction), or at epoch ``rung_epoch`` if its best is still below
    ``rung_floor``. ``None`` fields never stop it."""

    stop_at: Optional[float] = None
    rung_epoch: Optional[int] = None
    rung_floor: Optional[float] = None

    def __post_init__(self) -> None:
        if self.stop_at is not None:
            object.__setattr__(self, "stop_at", check_number(self.stop_at, "stop_at"))
        if (self.rung_epoch is None) != (self.rung_floor is None):
            raise ValueError("a rung needs both rung_epoch and rung_floor, got "
                             f"rung_epoch={self.rung_epoch!r}, rung_floor={self.rung_floor!r}")
        if self.rung_epoch is not None:
            if isinstance(self.rung_epoch, bool) or not isinstance(self.rung_epoch, int) \
                    or self.rung_epoch < 1:
                raise ValueError(f"rung_epoch must be an integer >= 1, got {self.rung_epoch!r}")
            object.__setattr__(self, "rung_floor", check_number(self.rung_floor, "rung_floor"))

    def stops(self, epoch: int, best_val: float) -> bool:
        """Whether a fine-tune whose best validation accuracy after ``epoch`` epochs is
        ``best_val`` stops now."""
        if self.stop_at is not None and best_val >= self.stop_at:
            return True
        return self.rung_epoch is not None and epoch == self.rung_epoch \
            and best_val < self.rung_floor

    def to_dict(self) -> dict[str, Any]:
        return {"stop_at": self.stop_at, "rung_epoch": self.rung_epoch,
                "rung_floor": self.rung_floor}

    @classmethod
    def from_dict(cls, payload: Any) -> Optional["StopRule"]:
        if payload is None:
            return None
        if not isinstance(payload, dict) or set(payload) - {"stop_at", "rung_epoch",
                                                            "rung_floor"}:
            raise ValueError(f"a stop rule is a dict with keys stop_at, rung_epoch, "
                             f"rung_floor; got {payload!r}")
        return cls(**payload)


@dataclass(frozen=True)
class Fidelity:
    r"""How a search's fine-tunes may stop early (see the module docstring).

    ``stop_when_feasible``: stop once the best validation accuracy reaches the threshold
    :math:`T`. ``rung`` (a fraction in (0, 1], or ``None``: no rung): at epoch
    :math:`\lceil \text{rung} \cdot E \rceil` of an :math:`E`-epoch fine-tune, stop one whose
    best is below :math:`T - \text{margin}/100`. ``confirm_rung``: whether the
    confirmation's fine-tunes have the rung too."""

    name: str
    stop_when_feasible: bool = False
    rung: Optional[float] = None
    margin: float = 0.0
    confirm_rung: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a fidelity needs a name, got {self.name!r}")
        check_bool(self.stop_when_feasible, "stop_when_feasible")
        check_bool(self.confirm_rung, "confirm_rung")
        if self.rung is not None:
            object.__setattr__(self, "rung", check_number(
                self.rung, "fidelity rung (a fraction of the fine-tune's epochs; 1 is the "
                "whole fine-tune)", above=0.0, maximum=1.0))
        object.__setattr__(self, "margin", check_number(self.margin, "fidelity margin (points)",
                                                        minimum=0.0))

    @property
    def is_full(self) -> bool:
        """Whether every fine-tune runs all its epochs."""
        return not self.stop_when_feasible and self.rung is None

    def rule(self, threshold: float, epochs: int, *, confirmation: bool = False,
             averaged: bool = False) -> Optional[StopRule]:
        """The :class:`StopRule` of an ``epochs``-epoch fine-tune judged against
        ``threshold`` (a validation accuracy, a fraction); ``None`` when it runs in full.
        ``confirmation``: a confirmation's fine-tune (the rung only with
        ``confirm_rung``); ``averaged``: its decision averages several fine-tunes' accuracies,
        which a stop at the threshold would lower, so it has none."""
        stop_at = threshold if self.stop_when_feasible and not averaged else None
        rung_epoch = None
        if self.rung is not None and (self.confirm_rung or not confirmation):
            rung_epoch = max(1, math.ceil(self.rung * epochs))
            if rung_epoch >= epochs:
                rung_epoch = None  # a rung at the last epoch saves nothing
        if stop_at is None and rung_epoch is None:
            return None
        return StopRule(stop_at, rung_epoch,
                        None if rung_epoch is None else threshold - self.margin / 100.0)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "stop_when_feasible": self.stop_when_feasible,
                "rung": self.rung, "margin": self.margin, "confirm_rung": self.confirm_rung}


#: The named fidelities: ``full`` (the old schedule) and ``thrifty`` (the default).
FIDELITIES: dict[str, Fidelity] = {
    "full": Fidelity("full"),
    "thrifty": Fidelity("thrifty", stop_when_feasible=True, rung=0.3, margin=5.0,
                        confirm_rung=True),
}
DEFAULT_FIDELITY = "thrifty"


def get_fidelity(fidelity: "str | Fidelity | None") -> Fidelity:
    """A :class:`Fidelity` by name (``None``: :data:`DEFAULT_FIDELITY`)."""
    if isinstance(fidelity, Fidelity):
        return fidelity
    name = DEFAULT_FIDELITY if fidelity is None else fidelity
    return FIDELITIES[check_choice(name, "fidelity", tuple(FIDELITIES))]
