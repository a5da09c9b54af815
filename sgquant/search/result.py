"""The outcome of a search: :class:`SearchResult` (records, chosen configuration,
confirmation), its JSON form, and the best-so-far curves of Fig. 8."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from ..assignment import BitAssignment, as_assignment
from ..runner.ledger import cost_sentence
from .candidates import ACCURACY_SLACK

__all__ = ["SearchResult", "best_so_far", "curves", "TEST_FIELDS"]


def best_so_far(records: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Best saving within tolerance after each measurement (Fig. 8).

    Columns ``measurements`` (1..n, in measurement order) and ``best_saving``;
    before the first configuration within tolerance the best is FP32 itself
    (saving 1).
    """
    df = records.sort_values("order")
    ok = (df["status"] != "failed") & (df["val_acc"] >= threshold - ACCURACY_SLACK)
    running = df["saving"].where(ok, 1.0).cummax().clip(lower=1.0)
    return pd.DataFrame({"measurements": np.arange(1, len(df) + 1),
                         "best_saving": running.to_numpy()})


TEST_FIELDS = ("test_acc", "best_test_acc")


@dataclass
class SearchResult:
    """Outcome of one search. Accuracies are fractions in [0, 1]; ``tolerance``
    is in percentage points. ``records`` has one row per measured configuration
    (no test accuracy: that is reported for the ``chosen`` one only)."""

    method: str
    dataset: str
    model: str
    seed: int
    profile: str
    tolerance: float
    budget: int
    bit_choices: tuple[int, ...]
    fp32_val_acc: float
    fp32_test_acc: float
    records: pd.DataFrame
    chosen: Optional[BitAssignment]
    chosen_test_acc: Optional[float]
    chosen_best_test_acc: Optional[float]
    wall_seconds: float
    settings: dict = field(default_factory=dict)
    #: the confirmation step (:func:`confirm_choice`): settings, one row per extra
    #: fine-tune (``confirm_top = 0``: no confirmation, the chosen is the top feasible)
    confirm_top: int = 0
    confirm_seeds: int = 0
    confirmations: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: means over the chosen configuration's 1 + ``confirm_seeds`` fine-tunes
    #: (``None`` without confirmation: see the ``*_mean`` properties' fallback)
    confirmed_val_acc: Optional[float] = None
    confirmed_test_acc: Optional[float] = None
    confirmed_best_test_acc: Optional[float] = None
    confirm_seconds: float = 0.0
    #: epochs, CPU seconds and jobs (unique records, cached or not) it asked for, by
    #: purpose (``fp32``, ``candidate``, ``confirmation``):
    #: :func:`sgquant.runner.ledger.cost_by_purpose`
    cost: dict = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        """Lowest validation accuracy within tolerance: FP32 val - tolerance / 100."""
        return self.fp32_val_acc - self.tolerance / 100.0

    @property
    def chosen_record(self) -> Optional[dict]:
        if self.chosen is None:
            return None
        row = self.records[self.records["config_key"] == self.chosen.key()].iloc[0]
        return row.to_dict()

    def _chosen(self, name: str) -> Optional[float]:
        rec = self.chosen_record
        return None if rec is None else float(rec[name])

    @property
    def chosen_val_acc(self) -> Optional[float]:
        return self._chosen("val_acc")

    @property
    def chosen_saving(self) -> Optional[float]:
        return self._chosen("saving")

    @property
    def chosen_paper_saving(self) -> Optional[float]:
        return self._chosen("paper_saving")

    @property
    def chosen_average_bits(self) -> Optional[float]:
        return self._chosen("average_bits")

    @property
    def chosen_val_acc_mean(self) -> Optional[float]:
        """Validation accuracy of the chosen configuration, mean over its fine-tunes
        (the single search measurement when there was no confirmation)."""
        return self.chosen_val_acc if self.confirmed_val_acc is None else self.confirmed_val_acc

    @property
    def chosen_test_acc_mean(self) -> Optional[float]:
        """Test accuracy (at the best-validation epoch) of the chosen configuration,
        mean over its 1 + ``confirm_seeds`` fine-tunes (``chosen_test_acc``, the
        first fine-tune alone, when there was no confirmation)."""
        return self.chosen_test_acc if self.confirmed_test_acc is None \
            else self.confirmed_test_acc

    @property
    def chosen_best_test_acc_mean(self) -> Optional[float]:
        return self.chosen_best_test_acc if self.confirmed_best_test_acc is None \
            else self.confirmed_best_test_acc

    @property
    def num_measured(self) -> int:
        """Search measurements (the budget); confirmations are counted apart."""
        return int(len(self.records))

    @property
    def num_confirmations(self) -> int:
        """Extra fine-tunes of the confirmation step (not part of the budget)."""
        return int(len(self.confirmations))

    @property
    def num_failed(self) -> int:
        return int((self.records["status"] == "failed").sum())

    def best_so_far(self) -> pd.DataFrame:
        """:func:`best_so_far` of this search's records (Fig. 8)."""
        return best_so_far(self.records, self.threshold)

    def to_dict(self) -> dict:
        """JSON-able dict (NaN written as ``None``)."""
        return {
            "method": self.method, "dataset": self.dataset, "model": self.model,
            "seed": self.seed, "profile": self.profile, "tolerance": self.tolerance,
            "budget": self.budget, "bit_choices": list(self.bit_choices),
            "settings": self.settings, "wall_seconds": self.wall_seconds,
            "fp32": {"val_acc": self.fp32_val_acc, "test_acc": self.fp32_test_acc},
            "threshold": self.threshold,
            "chosen": None if self.chosen is None else {
                "assignment": self.chosen.to_dict(), "config_key": self.chosen.key(),
                "val_acc": self.chosen_val_acc, "test_acc": self.chosen_test_acc,
                "best_test_acc (authors' protocol)": self.chosen_best_test_acc,
                "average_bits": self.chosen_average_bits, "saving": self.chosen_saving,
                "paper_saving": self.chosen_paper_saving,
                "memory_mb": self._chosen("memory_mb"),
                "finetunes": 1 + (0 if self.confirmed_val_acc is None else self.confirm_seeds),
                "val_acc_mean": self.chosen_val_acc_mean,
                "test_acc_mean": self.chosen_test_acc_mean,
                "best_test_acc_mean (authors' protocol)": self.chosen_best_test_acc_mean},
            "num_measured": self.num_measured, "num_failed": self.num_failed,
            "confirm_top": self.confirm_top, "confirm_seeds": self.confirm_seeds,
            "num_confirmations": self.num_confirmations,
            "confirm_seconds": self.confirm_seconds, "cost": self.cost,
            "confirmations": json.loads(self.confirmations.to_json(orient="records"))
            if len(self.confirmations) else [],
            "records": json.loads(self.records.to_json(orient="records")),
            "best_so_far": self.best_so_far()["best_saving"].tolist(),
        }

    def summary(self) -> str:
        pct = lambda x: f"{100 * x:.2f}"  # noqa: E731
        lines = [
            f"{self.method} search, {self.dataset} / {self.model}, seed {self.seed}, "
            f"profile {self.profile}: {self.num_measured} configurations measured "
            f"({self.num_failed} failed) in {self.wall_seconds:.1f} s" + (
                f", their fine-tunes {self.settings['epochs_spent']} epochs of an epoch "
                f"budget of {self.settings['epoch_budget']}"
                if "epochs_spent" in self.settings else ""),
            f"FP32: val {pct(self.fp32_val_acc)} / test {pct(self.fp32_test_acc)}; "
            f"tolerance {self.tolerance:g} points -> val >= {pct(self.threshold)}",
        ]
        if self.confirm_top:
            tried = (self.confirmations["config_key"].nunique()
                     if len(self.confirmations) else 0)
            lines.append(
                f"confirmation: top {self.confirm_top} feasible re-fine-tuned with "
                f"{self.confirm_seeds} more seed(s): {tried} configuration(s), "
                f"{self.num_confirmations} extra fine-tunes ({self.confirm_seconds:.1f} s), "
                "chosen = largest saving whose mean val is within tolerance")
        if self.cost:
            lines.append(f"spent: {cost_sentence(self.cost)}")
        if self.chosen is None:
            lines.append("no measured configuration is within tolerance"
                         + (" (and confirmed)" if self.confirm_top else "")
                         + ": keep FP32 (saving 1x)")
        else:
            lines += [
                f"chosen: {self.chosen}",
                f"  average bits {self.chosen_average_bits:.3f}, saving "
                f"{self.chosen_saving:.2f}x "
                f"(paper's 32/avg bits: {self.chosen_paper_saving:.2f}x), "
                f"memory {self._chosen('memory_mb'):.3f} MB",
                f"  val {pct(self.chosen_val_acc)} / test {pct(self.chosen_test_acc)} "
                f"(authors' best-test protocol: {pct(self.chosen_best_test_acc)})"
                + (" [first fine-tune]" if self.confirmed_val_acc is not None else ""),
            ]
            if self.confirmed_val_acc is not None:
                lines.append(
                    f"  mean of {1 + self.confirm_seeds} fine-tunes: val "
                    f"{pct(self.chosen_val_acc_mean)} / test {pct(self.chosen_test_acc_mean)} "
                    f"(authors' protocol: {pct(self.chosen_best_test_acc_mean)}); "
                    f"test vs FP32 {100 * (self.chosen_test_acc_mean - self.fp32_test_acc):+.2f}"
                    " points")
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, payload: dict) -> "SearchResult":
        """Read back :meth:`to_dict` (e.g. a JSON file written by ``sgquant search``)."""
        chosen = payload.get("chosen")
        return cls(
            method=payload["method"], dataset=payload["dataset"], model=payload["model"],
            seed=payload["seed"], profile=payload["profile"], tolerance=payload["tolerance"],
            budget=payload["budget"], bit_choices=tuple(payload["bit_choices"]),
            fp32_val_acc=payload["fp32"]["val_acc"], fp32_test_acc=payload["fp32"]["test_acc"],
            records=pd.DataFrame(payload["records"]),
            chosen=None if chosen is None else as_assignment(chosen["assignment"]),
            chosen_test_acc=None if chosen is None else chosen["test_acc"],
            chosen_best_test_acc=None if chosen is None
            else chosen["best_test_acc (authors' protocol)"],
            wall_seconds=payload["wall_seconds"], settings=payload.get("settings", {}),
            confirm_top=int(payload.get("confirm_top", 0)),
            confirm_seeds=int(payload.get("confirm_seeds", 0)),
            confirmations=pd.DataFrame(payload.get("confirmations") or []),
            confirmed_val_acc=_confirmed(payload, chosen, "val_acc_mean"),
            confirmed_test_acc=_confirmed(payload, chosen, "test_acc_mean"),
            confirmed_best_test_acc=_confirmed(
                payload, chosen, "best_test_acc_mean (authors' protocol)"),
            confirm_seconds=float(payload.get("confirm_seconds", 0.0)),
            cost=dict(payload.get("cost") or {}))


def _confirmed(payload: dict, chosen: Optional[dict], name: str) -> Optional[float]:
    """A ``*_mean`` of a written result, ``None`` where it had no confirmation."""
    if chosen is None or not payload.get("confirm_top") or chosen.get(name) is None:
        return None
    if int(chosen.get("finetunes", 1)) <= 1:
        return None
    return float(chosen[name])


def curves(results: Iterable[SearchResult]) -> pd.DataFrame:
    """Long table of :meth:`SearchResult.best_so_far` of many searches
    (columns method, dataset, model, seed, measurements, best_saving)."""
    frames = []
    for r in results:
        df = r.best_so_far()
        frames.append(df.assign(method=r.method, dataset=r.dataset, model=r.model, seed=r.seed))
    cols = ["method", "dataset", "model", "seed", "measurements", "best_saving"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
