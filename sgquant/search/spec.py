"""What a search does, declared once: :class:`SearchSpec`, a frozen, validated settings
object (in the manner of scikit-learn's estimators' parameters) holding the budget, the
tolerance, the seeds, the bit choices, the cost-model rounds, the strategy, the
confirmation and the variant. Where it runs (profile, device, scheduler, workers,
results and data folders) is the other object, :class:`~sgquant.settings.RunSettings`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..checks import check_int, check_number, check_optional_int
from ..fidelity import Fidelity, get_fidelity
from ..quantize import QuantOptions
from ..train import Finetune
from ..variants import Confirmation, Variant, get_variant
from .space import check_bit_choices
from .strategy import Strategy, check_strategy

__all__ = ["SearchSpec", "COST_MODEL_SETTINGS", "check_tolerance", "check_budget",
           "check_epoch_budget"]

#: fields only a cost-model search takes
COST_MODEL_SETTINGS = ("n_mea", "n_sample", "n_iter", "strategy", "xgb_params")


def check_tolerance(tolerance: Any) -> float:
    """``tolerance`` (percentage points of validation accuracy) as a float >= 0."""
    try:
        return check_number(tolerance, "tolerance", minimum=0.0)
    except ValueError:
        raise ValueError(f"tolerance must be a finite number of percentage points >= 0 "
                         f"(e.g. 0.5), got {tolerance!r}") from None


def check_budget(budget: Any) -> int:
    """``budget`` (configurations to measure) as an int >= 1."""
    try:
        return check_int(budget, "budget", minimum=1)
    except ValueError:
        raise ValueError(f"budget must be an integer >= 1 (number of configurations to "
                         f"measure), got {budget!r}: it cannot measure a single "
                         "configuration") from None


def check_epoch_budget(epoch_budget: Any, finetune_epochs: Optional[int] = None) -> int:
    """``epoch_budget`` (fine-tune epochs the candidates may spend) as an int >= 1 and,
    when ``finetune_epochs`` is given, at least one candidate's full fine-tune."""
    try:
        value = check_int(epoch_budget, "epoch_budget", minimum=1)
    except ValueError:
        raise ValueError(f"epoch_budget must be an integer >= 1 (fine-tune epochs the "
                         f"search's candidates may spend), got {epoch_budget!r}") from None
    if finetune_epochs is not None and value < finetune_epochs:
        raise ValueError(f"epoch_budget {value} is less than one candidate's fine-tune "
                         f"({finetune_epochs} epochs): it cannot measure a configuration")
    return value


@dataclass(frozen=True)
class SearchSpec:
    r"""One search's settings, checked when made (a one-line ``ValueError`` names a bad
    one). ``None`` takes the profile's (``budget``, ``bit_choices``, ``n_iter``,
    ``n_sample``), ``seed``'s (``fp32_seed``), the variant's (``options``, ``finetune``,
    ``confirmation``, whose ``top`` and ``seeds`` ``confirm_top`` and ``confirm_seeds``
    change) or the default.

    ``budget`` configurations are measured; the choice is the largest saving within
    ``tolerance`` points of FP32 validation accuracy. ``seed`` drives the sampler and
    ``fp32_seed`` selects the FP32 model. A cost-model search splits the budget into a
    random first round and ``n_iter`` rounds of ``n_mea`` measurements, each scoring
    ``n_sample`` candidates, generated and picked by ``strategy`` (a
    :class:`~sgquant.search.Strategy` or a dict of its fields) with the regressor
    settings ``xgb_params``; these five (:data:`COST_MODEL_SETTINGS`) a random search
    refuses. ``variant`` (``"sgquant"``, ``"sgquant+"``, an ablation step or a
    :class:`~sgquant.variants.Variant`) is kept as its :class:`~sgquant.variants.Variant`.

    ``epoch_budget`` (default ``None``: the budget counts configurations) makes the budget
    one of fine-tune epochs, :math:`\sum_c e_c \ge E` ends the search, over the
    candidates :math:`c` measured so far, each counted with the epochs it ran, at least
    one (``epochs_run`` of :class:`~sgquant.measure.Measurement`: a fidelity that stops
    hopeless fine-tunes early buys more configurations). The rounds keep the sizes ``budget``
    gives them (a random search measures in rounds of the cost model's ``n_mea``); rounds
    run until the epochs spent reach :math:`E` (the last round may pass it) or the
    space is exhausted.
    """

    budget: Optional[int] = None
    epoch_budget: Optional[int] = None
    tolerance: float = 0.5
    seed: int = 0
    fp32_seed: Optional[int] = None
    bit_choices: Optional[tuple[int, ...]] = None
    n_mea: Optional[int] = None
    n_sample: Optional[int] = None
    n_iter: Optional[int] = None
    strategy: Optional[Strategy] = None
    xgb_params: Optional[Mapping[str, Any]] = None
    confirm_top: Optional[int] = None
    confirm_seeds: Optional[int] = None
    variant: Optional[Variant] = None
    options: Optional[QuantOptions] = None
    finetune: Optional[Finetune] = None
    confirmation: Optional[Confirmation] = None
    fidelity: "Fidelity | str | None" = None

    def __post_init__(self) -> None:
        checked = {
            "budget": None if self.budget is None else check_budget(self.budget),
            "epoch_budget": None if self.epoch_budget is None else check_epoch_budget(
                self.epoch_budget),
            "tolerance": check_tolerance(self.tolerance),
            "seed": check_int(self.seed, "seed", minimum=0),
            "fp32_seed": check_optional_int(self.fp32_seed, "fp32_seed", minimum=0),
            "bit_choices": None if self.bit_choices is None else check_bit_choices(
                self.bit_choices),
            "strategy": None if self.strategy is None else check_strategy(self.strategy),
            "variant": None if self.variant is None else get_variant(self.variant),
            "fidelity": get_fidelity(self.fidelity)}
        for name in ("n_mea", "n_sample", "n_iter"):
            checked[name] = check_optional_int(getattr(self, name), name, minimum=1)
        if self.xgb_params is not None:
            if not isinstance(self.xgb_params, Mapping):
                raise ValueError(f"xgb_params must be a dict of xgboost parameters, "
                                 f"got {self.xgb_params!r}")
            checked["xgb_params"] = dict(self.xgb_params)
        for name, kind in (("options", QuantOptions), ("finetune", Finetune),
                           ("confirmation", Confirmation)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"{name} must be a {kind.__module__}.{kind.__name__}, "
                                 f"got {value!r}")
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        self.quantization()  # the confirmation's top and seeds are checked now

    def replace(self, **changes: Any) -> "SearchSpec":
        """This spec with ``changes`` (checked again; an unknown name is a ``ValueError``)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown search setting(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)

    def cost_model_values(self) -> dict[str, Any]:
        """The cost-model settings given (not ``None``), by name."""
        return {k: getattr(self, k) for k in COST_MODEL_SETTINGS if getattr(self, k) is not None}

    def quantization(self) -> tuple[Optional[QuantOptions], Finetune, Confirmation]:
        """The quantizer options, fine-tuning and confirmation the search uses: each given
        one, else the variant's, else the default (``confirm_top`` / ``confirm_seeds``
        change the confirmation's ``top`` / ``seeds``)."""
        var = self.variant
        options = self.options if self.options is not None else (var.options if var else None)
        finetune = self.finetune if self.finetune is not None else (
            var.finetune if var else Finetune())
        conf = self.confirmation if self.confirmation is not None else (
            var.confirmation if var else Confirmation())
        conf = dataclasses.replace(
            conf, top=conf.top if self.confirm_top is None else self.confirm_top,
            seeds=conf.seeds if self.confirm_seeds is None else self.confirm_seeds)
        return options, finetune, conf
