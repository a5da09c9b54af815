"""How a cost-model search generates, scores and picks candidates: one frozen,
validated :class:`Strategy` (checked once, when it is made).

:data:`STRATEGY` is sgquant's default; :meth:`Strategy.paper` (also
:data:`PAPER_STRATEGY`) the paper's plain steps: one XGBoost model, uniform
candidates, the top predicted-feasible saving (an ablation). A strategy reads like
a mapping of its fields, so ``dict(STRATEGY)`` and ``{**STRATEGY, "radius": 2}``
work and a search result stores it as a plain JSON object.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Iterator, Optional

from ..checks import check_bool, check_choice, check_int, check_number, check_optional_int

__all__ = ["Strategy", "STRATEGY", "PAPER_STRATEGY", "ACQUISITIONS", "check_strategy"]

ACQUISITIONS = ("ei", "plain")


@dataclass(frozen=True, eq=False)
class Strategy(Mapping):
    """Settings of one cost-model step (:func:`sgquant.search.cost_model_step`).

    Candidates: ``generations`` batches; the first has a ``local_share`` of
    mutations / recombinations of the best measured configurations (the rest
    uniform draws), later ones breed from the best candidates scored so far.

    Model: a bagged ensemble of ``ensemble`` XGBoost regressors (``monotone``:
    more bits never predict a lower accuracy), each of ``trees`` trees of depth
    ``max_depth`` with learning rate ``learning_rate`` on at most ``max_bin``
    histogram bins, all boosted together on one thread (see
    :class:`~sgquant.search.cost_model.CostModel`): settings made for a few dozen
    rows. ``fp32_anchor``: the FP32 model is a known, measured-free training row and
    trust-region anchor.

    Picking: ``acquisition="ei"`` ranks by the expected improvement of the saving
    under the accuracy constraint with measurement ``noise``; ``"plain"`` takes the
    largest saving whose mean + ``optimism`` x spread reaches the threshold;
    ``hedge`` alternates with the most probably feasible improvement; ``radius``
    (``None``: off) is the trust region, in fields changed from a configuration
    known to be within tolerance.
    """

    generations: int = 4
    local_share: float = 0.5
    ensemble: int = 5
    acquisition: str = "ei"
    noise: float = 0.003
    optimism: float = 1.0
    hedge: bool = True
    radius: Optional[int] = 3
    monotone: bool = True
    fp32_anchor: bool = True
    trees: int = 10
    learning_rate: float = 0.5
    max_depth: int = 3
    max_bin: int = 32

    def __post_init__(self) -> None:
        for name in ("generations", "ensemble", "trees", "max_depth", "max_bin"):
            object.__setattr__(self, name, check_int(getattr(self, name), f"strategy {name}",
                                                     minimum=2 if name == "max_bin" else 1))
        object.__setattr__(self, "radius",
                           check_optional_int(self.radius, "strategy radius", minimum=0))
        for name in ("hedge", "monotone", "fp32_anchor"):
            check_bool(getattr(self, name), f"strategy {name}")
        check_choice(self.acquisition, "strategy acquisition", ACQUISITIONS)
        for name, low, high in (("local_share", 0.0, 1.0), ("optimism", 0.0, math.inf),
                                ("noise", 0.0, 1.0), ("learning_rate", 0.0, 1.0)):
            value = check_number(getattr(self, name), f"strategy {name}", minimum=low,
                                 maximum=None if math.isinf(high) else high)
            object.__setattr__(self, name, value)

    @classmethod
    def paper(cls) -> "Strategy":
        """The paper's plain steps: one regressor, uniform candidates, no trust region."""
        return cls(generations=1, local_share=0.0, ensemble=1, acquisition="plain",
                   optimism=0.0, hedge=False, radius=None, monotone=False, fp32_anchor=False)

    def replace(self, **changes: Any) -> "Strategy":
        """A copy with some fields changed (validated like a new one)."""
        return replace(self, **_known(changes))

    # read-only mapping of the fields
    def __getitem__(self, key: str) -> Any:
        if key not in _FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)

    def __repr__(self) -> str:
        return f"Strategy({', '.join(f'{k}={getattr(self, k)!r}' for k in _FIELDS)})"


_FIELDS = tuple(f.name for f in fields(Strategy))


def _known(values: Mapping) -> dict:
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown strategy key(s) {unknown}; keys are {', '.join(_FIELDS)}")
    return dict(values)


#: sgquant's default cost-model strategy ...
STRATEGY = Strategy()
#: ... and the paper's plain steps (an ablation).
PAPER_STRATEGY = Strategy.paper()


def check_strategy(strategy: "Strategy | Mapping | None") -> Strategy:
    """``strategy`` as a :class:`Strategy`: ``None`` gives :data:`STRATEGY`; a mapping
    (e.g. ``{"radius": 2}``, or a stored result's settings) overrides its fields
    (unknown keys: ``ValueError``)."""
    if strategy is None:
        return STRATEGY
    if isinstance(strategy, Strategy):
        return strategy
    if not isinstance(strategy, Mapping):
        raise ValueError(f"strategy must be a Strategy or a dict with keys from "
                         f"{', '.join(_FIELDS)}, got {strategy!r}")
    return STRATEGY.replace(**strategy)
