r"""Learning-rate schedules of FP32 training (the architecture page, "protocol").

A :class:`Schedule` moves the optimiser's rate over the epochs of
:func:`sgquant.train.train_model`. Its peak rate is :math:`\eta = s\,\eta_0`, ``lr_scale``
:math:`s` times the model's rate :math:`\eta_0` (:data:`sgquant.train.HPARAMS`), reached by
a linear warm-up over the first ``warmup`` :math:`W` epochs (torch's ``LinearLR``: epoch
:math:`k \le W + 1` trains at :math:`k\,\eta / (W + 1)`), then ``decay``:

* ``constant``: :math:`\eta` to the end;
* ``cosine``: annealed towards ``floor`` :math:`f` times the peak over the remaining
  :math:`T = E - W` epochs of the cap :math:`E` (``CosineAnnealingLR``),
  :math:`\eta_t = f\eta + (1 - f)\,\eta\,(1 + \cos(\pi t / T)) / 2`;
* ``plateau``: multiplied by ``factor`` after ``plateau`` epochs without a better
  validation accuracy, never below :math:`f\eta` (``ReduceLROnPlateau``).

``epochs`` and ``patience`` (``None``: the caller's) cap training and stop it after that
many epochs without a better validation accuracy. ``models`` (``None``: all) are the
models a profile trains under the schedule (:meth:`sgquant.profiles.Profile.fp32_schedule_for`);
the others keep the constant rate. The default ``Schedule()`` is the training the book
has always used: a constant rate, no scheduler at all.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional, Union

import torch
from torch.optim.lr_scheduler import (CosineAnnealingLR, LinearLR, ReduceLROnPlateau,
                                      SequentialLR)

from .checks import check_choice, check_int, check_number, check_optional_int
from .models import MODELS

__all__ = ["DECAYS", "Schedule", "SCHEDULES", "as_schedule", "schedule_setting", "LRStepper"]

DECAYS = ("constant", "cosine", "plateau")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule and stopping rule (see the module docstring)."""

    lr_scale: float = 1.0
    warmup: int = 0
    decay: str = "constant"
    floor: float = 0.0
    factor: float = 0.5
    plateau: int = 10
    epochs: Optional[int] = None
    patience: Optional[int] = None
    models: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "lr_scale", check_number(self.lr_scale, "schedule lr_scale", above=0.0))
        set_(self, "warmup", check_int(self.warmup, "schedule warmup", minimum=0))
        set_(self, "decay", check_choice(self.decay, "schedule decay", DECAYS))
        set_(self, "floor", check_number(self.floor, "schedule floor", minimum=0.0,
                                         below=1.0))
        set_(self, "factor", check_number(self.factor, "schedule factor", above=0.0,
                                          below=1.0))
        set_(self, "plateau", check_int(self.plateau, "schedule plateau", minimum=1))
        set_(self, "epochs", check_optional_int(self.epochs, "schedule epochs", minimum=1))
        set_(self, "patience", check_optional_int(self.patience, "schedule patience",
                                                  minimum=1))
        if self.epochs is not None:
            self.check_warmup(self.epochs)
        if self.models is not None:
            if isinstance(self.models, str) or not self.models:
                raise ValueError(f"schedule models must be None or a non-empty list of "
                                 f"{', '.join(MODELS)}, got {self.models!r}")
            set_(self, "models", tuple(check_choice(m, "schedule models entry", MODELS)
                                       for m in self.models))

    def applies_to(self, model: str) -> bool:
        """Whether a profile trains ``model`` under this schedule (:attr:`models`)."""
        return self.models is None or model in self.models

    @property
    def is_default(self) -> bool:
        return self == Schedule()

    def check_warmup(self, epochs: int) -> None:
        """Refuse a warm-up that leaves none of the ``epochs`` at the peak rate."""
        if self.warmup and self.warmup >= epochs:
            raise ValueError(f"schedule warmup must be shorter than training: "
                             f"{self.warmup} warm-up epochs of {epochs}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["models"] = None if self.models is None else list(self.models)
        return out

    def label(self) -> str:
        """A short description, e.g. ``x3 lr, warm-up 10, cosine to 0.01, 200 epochs``."""
        parts = [f"x{self.lr_scale:g} lr"] + ([f"warm-up {self.warmup}"] if self.warmup else [])
        parts.append({"constant": "constant", "cosine": f"cosine to {self.floor:g}",
                      "plateau": f"x{self.factor:g} after {self.plateau} flat, floor "
                                 f"{self.floor:g}"}[self.decay])
        parts += [f"{self.epochs} epochs"] if self.epochs else []
        parts += [f"patience {self.patience}"] if self.patience else []
        parts += [f"for {'/'.join(self.models)}"] if self.models else []
        return ", ".join(parts)


#: Schedules by name: ``constant`` is the book's training before schedules (and still its
#: training on public splits); ``cosine300`` the one chosen on Amazon-Computers'
#: validation accuracy for the random split (the architecture page, "protocol").
SCHEDULES: dict[str, Schedule] = {
    "constant": Schedule(),
    "cosine300": Schedule(lr_scale=2.0, warmup=10, decay="cosine", floor=0.01, epochs=300,
                          patience=50, models=("gcn", "agnn")),
}


def schedule_setting(schedule: Optional[Schedule]) -> Union[None, str, dict]:
    """How a setting names ``schedule``: ``None`` for none, its name in
    :data:`SCHEDULES`, else its fields (:func:`as_schedule` reads each back)."""
    if schedule is None:
        return None
    name = next((n for n, s in SCHEDULES.items() if s == schedule), None)
    return schedule.to_dict() if name is None else name


def as_schedule(value: Union[None, str, dict, Schedule], name: str = "schedule"
                ) -> Schedule:
    """``value`` as a :class:`Schedule`: ``None`` (the default), a name in
    :data:`SCHEDULES`, a dict of its fields, or a schedule."""
    if value is None:
        return Schedule()
    if isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        return SCHEDULES[check_choice(value, name, tuple(SCHEDULES))]
    if isinstance(value, dict):
        unknown = set(value) - set(Schedule().to_dict())
        if unknown:
            raise ValueError(f"{name}: unknown field(s) {sorted(unknown)}; fields are "
                             f"{', '.join(Schedule().to_dict())}")
        return Schedule(**value)
    raise ValueError(f"{name} must be None, a name ({', '.join(SCHEDULES)}), a dict or a "
                     f"Schedule, got {value!r}")


class LRStepper:
    """Steps ``schedule``'s torch schedulers on ``optimizer`` once an epoch (nothing for
    the default schedule, so its training is bit for bit the constant-rate one)."""

    def __init__(self, schedule: Schedule, optimizer: torch.optim.Optimizer, epochs: int):
        schedule.check_warmup(epochs)
        self.warmup = schedule.warmup
        self.epoch = 0
        warm = (LinearLR(optimizer, start_factor=1.0 / (schedule.warmup + 1),
                         total_iters=schedule.warmup) if schedule.warmup else None)
        self.plateau: Optional[ReduceLROnPlateau] = None
        self.scheduler: Any = warm
        if schedule.decay == "cosine":
            peak = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
            cosine = CosineAnnealingLR(optimizer, T_max=max(1, epochs - schedule.warmup),
                                       eta_min=schedule.floor * peak)
            self.scheduler = (cosine if warm is None else
                              SequentialLR(optimizer, [warm, cosine], [schedule.warmup]))
        elif schedule.decay == "plateau":
            peak = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
            self.plateau = ReduceLROnPlateau(optimizer, mode="max", factor=schedule.factor,
                                             patience=schedule.plateau,
                                             min_lr=schedule.floor * peak)

    def step(self, val_acc: float) -> None:
        """Advance one epoch, given the epoch's validation accuracy."""
        self.epoch += 1
        if self.scheduler is not None and (self.plateau is None or self.epoch <= self.warmup):
            self.scheduler.step()
        elif self.plateau is not None:
            self.plateau.step(val_acc)
