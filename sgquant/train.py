r"""FP32 training, quantization-aware fine-tuning and evaluation.

Both report two accuracies so the book can show the two protocols side by side:

* ``test_acc`` (ours): test accuracy of the epoch with the best *validation*
  accuracy;
* ``best_test_acc`` (the authors' scripts): the best test accuracy over all
  epochs, i.e. selected on the test set.

Fine-tuning can distil the FP32 model (:class:`Distillation`): the loss adds the
Kullback-Leibler divergence between the temperature-softened class distributions of the
FP32 teacher and the quantized student on every node,

.. math::
    \mathcal{L} = (1 - w)\, \mathrm{CE}(z_s[\text{train}], y) + w\, T^2\,
    \mathrm{KL}\big(\mathrm{softmax}(z_t / T) \,\Vert\, \mathrm{softmax}(z_s / T)\big),

(Hinton et al., 2015); the teacher saw only the training labels, so no other label leaks.
Tensors stay on the device of the model's parameters: put ``data`` there too.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from .assignment import BitAssignment
from .checks import check_int, check_number, check_optional_int
from .degree import DegreeBuckets
from .fidelity import StopRule
from .models import QuantGNN, get_model
from .quantize import QuantOptions
from .schedule import LRStepper, Schedule

def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU runs are then bit-for-bit repeatable)."""
    seed = check_int(seed, "seed", minimum=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    """Outcome of a training or fine-tuning run (accuracies in [0, 1])."""

    val_acc: float
    test_acc: float
    best_test_acc: float
    train_acc: float
    epoch: int
    epochs_run: int
    seconds: float
    state_dict: dict = field(repr=False, default_factory=dict)
    history: list = field(repr=False, default_factory=list)

    def summary(self) -> dict:
        return {k: getattr(self, k) for k in
                ("val_acc", "test_acc", "best_test_acc", "train_acc", "epoch",
                 "epochs_run", "seconds")}


def _check_data(data: Data) -> None:
    for attr in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        if getattr(data, attr, None) is None:
            raise ValueError(f"the graph has no '{attr}': load it with sgquant.data.load_dataset")


@torch.no_grad()
def evaluate(model: QuantGNN, data: Data) -> dict[str, float]:
    """Accuracy on the train, validation and test masks (model in eval mode),
    and the validation loss (``val_loss``, used to break accuracy ties)."""
    _check_data(data)
    model.eval()
    logits = model(data.x, data.edge_index)
    pred = logits.argmax(dim=-1)
    out = {}
    for split in ("train", "val", "test"):
        mask = getattr(data, f"{split}_mask")
        out[split] = float((pred[mask] == data.y[mask]).float().mean()) if mask.any() else 0.0
    mask = data.val_mask
    out["val_loss"] = (float(F.cross_entropy(logits[mask], data.y[mask])) if mask.any()
                       else 0.0)
    return out


@dataclass(frozen=True)
class Distillation:
    """Distil the FP32 model's logits while fine-tuning: ``temperature`` :math:`T > 0`
    softens both distributions, ``weight`` :math:`w \\in [0, 1]` mixes the KL term with
    the cross-entropy on the training labels (see the module docstring)."""

    temperature: float = 2.0
    weight: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", check_number(
            self.temperature, "distillation temperature", above=0.0))
        object.__setattr__(self, "weight", check_number(
            self.weight, "distillation weight", minimum=0.0, maximum=1.0))

    def loss(self, student: Tensor, teacher: Tensor, data: Data) -> Tensor:
        """The fine-tuning loss of ``student`` logits against the ``teacher``'s."""
        ce = F.cross_entropy(student[data.train_mask], data.y[data.train_mask])
        T = self.temperature
        kl = F.kl_div(F.log_softmax(student / T, dim=-1), F.log_softmax(teacher / T, dim=-1),
                      reduction="batchmean", log_target=True)
        return (1.0 - self.weight) * ce + self.weight * T * T * kl


@dataclass(frozen=True)
class Finetune:
    """How a configuration is fine-tuned from the FP32 weights: ``epochs`` (``None``: the
    profile's), an optional :class:`Distillation`, and ``keep_epoch0``: whether epoch 0
    (the quantized FP32 weights, the same for every seed) may be the chosen epoch. With
    ``keep_epoch0=False`` fine-tunes with different seeds are independent draws.
    ``stop`` (a :class:`~sgquant.fidelity.StopRule`) may end it early."""

    epochs: Optional[int] = None
    distill: Optional[Distillation] = None
    keep_epoch0: bool = True
    stop: Optional[StopRule] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "epochs", check_optional_int(self.epochs, "fine-tune epochs",
                                                              minimum=1))
        if self.distill is not None and not isinstance(self.distill, Distillation):
            raise ValueError(f"distill must be a Distillation or None, got {self.distill!r}")
        if not isinstance(self.keep_epoch0, bool):
            raise ValueError(f"keep_epoch0 must be True or False, got {self.keep_epoch0!r}")
        if self.stop is not None and not isinstance(self.stop, StopRule):
            raise ValueError(f"stop must be a sgquant.fidelity.StopRule or None, "
                             f"got {self.stop!r}")

    def epochs_for(self, profile_epochs: int) -> int:
        """The epochs of one such fine-tune: ``epochs``, else ``profile_epochs`` (the
        profile's ``finetune_epochs``)."""
        return int(self.epochs or profile_epochs)

    def scaled(self, factor: int, profile_epochs: int) -> "Finetune":
        """These settings with ``factor`` times the epochs (``epochs=None`` counts as
        ``profile_epochs``); these very settings when ``factor`` is 1."""
        if factor == 1:
            return self
        return replace(self, epochs=self.epochs_for(profile_epochs) * factor)

    def to_dict(self) -> dict:
        """The settings as a dict (``stop`` only when set, so older records read alike)."""
        out = {"epochs": self.epochs, "keep_epoch0": self.keep_epoch0,
               "distill": None if self.distill is None else
               {"temperature": self.distill.temperature, "weight": self.distill.weight}}
        if self.stop is not None:
            out["stop"] = self.stop.to_dict()
        return out

    @classmethod
    def from_dict(cls, payload: "dict | None") -> "Finetune":
        if payload is None:
            return cls()
        if not isinstance(payload, dict) or set(payload) - {"epochs", "keep_epoch0", "distill",
                                                            "stop"}:
            raise ValueError(f"fine-tune settings are a dict with keys epochs, keep_epoch0, "
                             f"distill, stop; got {payload!r}")
        d = payload.get("distill")
        if d is not None and not isinstance(d, dict):
            raise ValueError(f"distill must be a dict with temperature and weight, got {d!r}")
        return cls(payload.get("epochs"), None if d is None else Distillation(**d),
                   payload.get("keep_epoch0", True), StopRule.from_dict(payload.get("stop")))


@torch.no_grad()
def teacher_logits(model: QuantGNN, data: Data, fp32_state: dict) -> Tensor:
    """Logits of the FP32 model (``fp32_state`` loaded, no quantization, eval mode)."""
    model.load_state_dict(fp32_state)
    model.set_bits(None)
    model.eval()
    return model(data.x, data.edge_index).detach()


def train_model(model: QuantGNN, data: Data, *, epochs: int = 200, lr: Optional[float] = None,
                weight_decay: Optional[float] = None, patience: Optional[int] = 100,
                seed: int = 0, evaluate_before: bool = False,
                distill: Optional[Distillation] = None, teacher: Optional[Tensor] = None,
                schedule: Optional[Schedule] = None, stop: Optional[StopRule] = None
                ) -> TrainResult:
    """Train ``model`` (with whatever bits are set on it) on the training mask.

    Keeps the weights of the best-validation-accuracy epoch (ties: the lower
    validation loss) and stops after ``patience`` epochs without improvement
    (``None``: never). With ``evaluate_before`` the untrained state counts as epoch 0
    (used by fine-tuning, so a configuration is never worse than no fine-tuning).
    With ``distill`` the loss distils ``teacher`` logits (:class:`Distillation`).
    ``schedule`` (:class:`sgquant.schedule.Schedule`; default: a constant ``lr``) moves
    the rate over the epochs; its ``epochs`` and ``patience``, when set, replace these.
    ``stop`` (:class:`~sgquant.fidelity.StopRule`) may end it sooner (best validation so far).
    """
    _check_data(data)
    schedule = Schedule() if schedule is None else schedule
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule or None, got {schedule!r}")
    epochs = check_int(epochs if schedule.epochs is None else schedule.epochs, "epochs",
                       minimum=0)
    patience = check_optional_int(patience if schedule.patience is None
                                  else schedule.patience, "patience", minimum=1)
    if distill is not None and teacher is None:
        raise ValueError("distillation needs the teacher's logits (teacher=...)")
    if lr is None or weight_decay is None:  # the model's registry entry (an unknown one: error)
        entry = get_model(getattr(model, "name", type(model).__name__))
        lr = entry.lr if lr is None else lr
        weight_decay = entry.weight_decay if weight_decay is None else weight_decay
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    set_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr * schedule.lr_scale,
                                 weight_decay=weight_decay)
    stepper = None if schedule.is_default else LRStepper(schedule, optimizer, epochs)
    start = time.perf_counter()
    history: list[dict] = []
    best = {"val": -1.0, "loss": float("inf"), "test": 0.0, "train": 0.0, "epoch": 0,
            "state": None}
    best_test = 0.0

    def consider(epoch: int) -> bool:
        """Evaluate epoch ``epoch``; whether training stops there (patience, ``stop``)."""
        nonlocal best_test
        acc = evaluate(model, data)
        history.append({"epoch": epoch, **acc})
        best_test = max(best_test, acc["test"])
        if (acc["val"], -acc["val_loss"]) > (best["val"], -best["loss"]):
            best.update(val=acc["val"], loss=acc["val_loss"], test=acc["test"],
                        train=acc["train"], epoch=epoch,
                        state={k: v.detach().clone() for k, v in model.state_dict().items()})
        return (patience is not None and epoch - best["epoch"] >= patience) or (
            stop is not None and stop.stops(epoch, best["val"]))

    if (evaluate_before or epochs == 0) and consider(0):
        epochs = 0  # already decided by the quantized FP32 weights
    for epoch in range(1, epochs + 1):
        model.train()
        optimizer.zero_grad()
        out = model(data.x, data.edge_index)
        if distill is None:
            loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
        else:
            loss = distill.loss(out, teacher, data)
        loss.backward()
        optimizer.step()
        done = consider(epoch)
        if stepper is not None:
            stepper.step(history[-1]["val"])
        if done:
            break
    model.load_state_dict(best["state"])
    model.eval()
    return TrainResult(val_acc=best["val"], test_acc=best["test"], best_test_acc=best_test,
                       train_acc=best["train"], epoch=best["epoch"],
                       epochs_run=len(history) - (1 if history and history[0]["epoch"] == 0 else 0),
                       seconds=time.perf_counter() - start, state_dict=best["state"],
                       history=history)


def finetune(model: QuantGNN, data: Data, assignment: BitAssignment, fp32_state: dict, *,
             buckets: Optional[DegreeBuckets] = None, options: Optional[QuantOptions] = None,
             epochs: int = 20, lr: Optional[float] = None, seed: int = 0,
             patience: Optional[int] = None, evaluate_before: bool = True,
             distill: Optional[Distillation] = None,
             teacher: Optional[Tensor] = None,
             stop: Optional[StopRule] = None) -> TrainResult:
    """Quantization-aware fine-tuning from FP32 weights.

    Loads ``fp32_state``, sets ``assignment`` on the model (fake quantization with
    straight-through gradients) and trains for ``epochs`` epochs, keeping the
    best-validation weights. With ``evaluate_before`` (default) epoch 0, the quantized
    FP32 model itself, competes too; without it, only fine-tuned epochs can be chosen
    (so fine-tunes with different seeds are independent draws). ``distill`` distils the
    FP32 model (``teacher`` logits, computed here from ``fp32_state`` if not given);
    ``stop`` may end it early (:class:`~sgquant.fidelity.StopRule`). The model keeps
    the assignment and the chosen weights afterwards.
    """
    if distill is not None and teacher is None:
        teacher = teacher_logits(model, data, fp32_state)
    model.load_state_dict(fp32_state)
    model.set_bits(assignment, buckets, options)
    return train_model(model, data, epochs=epochs, lr=lr, seed=seed, patience=patience,
                       evaluate_before=evaluate_before, distill=distill, teacher=teacher,
                       stop=stop)
