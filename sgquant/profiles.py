"""Run profiles: how much compute a book build or search spends.

* ``quick``: CI, the whole book in minutes (tiny budgets, one seed, Cora only,
  a small GAT);
* ``default``: the book on a 2-core CPU in about 37 minutes cold (Cora and CiteSeer,
  three seeds and three search seeds, then the held-out evaluation; GAT with PyG's
  example width, 8 heads x 8, because the paper's 8 x 256 takes minutes per run on a CPU);
* ``full``: ``default`` plus Amazon-Computers, the three datasets of the book's Table III
  (hours on a 2-core CPU cold: its GAT row's nine FP32 models alone take about 100
  CPU-minutes; its measurements are shared with ``default`` through the results cache);
* ``paper``: the paper's budgets and Table I architectures on all five
  datasets (GPU recommended).

``held_out_datasets`` x ``held_out_models``: chapter 3's held-out evaluation of the frozen
SGQuant+ (:mod:`sgquant.chapters.held_out`): the development datasets again under fresh
seeds and Coauthor-CS, which no design choice read (``quick``: Cora GCN, a smoke run of the
path; ``default``/``full``: Cora, CiteSeer and Coauthor-CS with GCN, because a held-out row
costs as much as a Table III row and Coauthor-CS, 18,333 nodes x 6,805 features, more;
``paper``: every model).

FP32 training stops after ``patience`` epochs without a better validation accuracy, at
most ``fp32_epochs`` epochs, at a constant rate, on a graph with a public split
(Planetoid's 140/500/1000 nodes). On a graph trained on the seeded random 60/30/10 split,
60% of the nodes labelled, the constant rate converges late: Amazon-Computers' best
validation epochs were 573/579 (GCN), 614/78 (AGNN, which stalled on seed 1) and 664
(GAT, seed 0) of at most ``fp32_epochs_random`` = 1000. There ``fp32_schedule_random``
(:mod:`sgquant.schedule`; ``None`` or ``"constant"``: the constant rate with
``fp32_epochs_random`` and ``patience``) trains the models it names; ``default`` and
``full`` use ``cosine300`` for GCN and AGNN: twice the rate, 10 warm-up epochs, cosine
decay to 1% over 300 epochs, patience 50. Chosen on Amazon-Computers' validation accuracy
alone (``benchmarks/fp32_schedule.py``, seeds 0 and 1, one thread), it reaches GCN's
90.43/90.23% against 90.64/90.55% in at most 300 epochs instead of 673/679, and AGNN's
76.13/81.77% against 80.51/72.54% (the seed moves AGNN more than any schedule) in 300
instead of 714/178. GAT keeps the constant rate: every faster schedule tried cost it at
least 1.8 points (89.53% for ``cosine300`` against 91.32% in 764 epochs, seed 0).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

from .data import canonical_name, has_public_split
from .models import DEFAULT_GAT_HEADS, PAPER_ARCHITECTURES, PAPER_MODELS, get_model
from .schedule import Schedule, as_schedule, schedule_setting

DEFAULT_BIT_CHOICES = (1, 2, 3, 4, 5, 6, 7, 8, 16, 32)


@dataclass(frozen=True)
class Profile:
    """Budgets of one profile (see the module docstring)."""

    name: str
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    seeds: int
    fp32_epochs: int
    patience: int
    finetune_epochs: int
    search_budget: int
    search_sample: int
    search_iterations: int
    search_seeds: int
    granularity_samples: int
    num_buckets: int
    gat_hidden: int
    gat_heads: int
    bit_choices: tuple[int, ...] = DEFAULT_BIT_CHOICES
    fp32_epochs_random: Optional[int] = None
    fp32_schedule_random: "Schedule | str | dict | None" = None
    held_out_datasets: tuple[str, ...] = ()
    held_out_models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.fp32_epochs_random is None:
            object.__setattr__(self, "fp32_epochs_random", self.fp32_epochs)
        schedule = as_schedule(self.fp32_schedule_random, "fp32_schedule_random")
        if schedule.epochs is None:
            schedule.check_warmup(int(self.fp32_epochs_random))
        object.__setattr__(self, "fp32_schedule_random",
                           None if schedule.is_default else schedule)

    def fp32_schedule_for(self, dataset: str, model: Optional[str] = None) -> Schedule:
        """The FP32 learning-rate schedule of ``model`` on ``dataset`` (see the module
        docstring): the constant rate on a public split or for a model the random-split
        schedule leaves out, else ``fp32_schedule_random`` (``model=None``: whichever
        model it applies to)."""
        schedule = as_schedule(self.fp32_schedule_random)
        if has_public_split(dataset) or (model is not None and not schedule.applies_to(
                str(model).lower())):
            return Schedule()
        return schedule

    def fp32_epochs_for(self, dataset: str, model: Optional[str] = None) -> int:
        """The FP32 epoch cap of ``model`` on ``dataset`` (see the module docstring):
        ``fp32_epochs`` when it ships a public split, else the random-split schedule's
        ``epochs`` or, if it sets none or leaves ``model`` out, ``fp32_epochs_random``."""
        if has_public_split(dataset):
            return self.fp32_epochs
        epochs = self.fp32_schedule_for(dataset, model).epochs
        return int(self.fp32_epochs_random if epochs is None else epochs)

    def fp32_patience_for(self, dataset: str, model: Optional[str] = None) -> int:
        """The FP32 patience of ``model`` on ``dataset``: its schedule's, else
        ``patience``."""
        patience = self.fp32_schedule_for(dataset, model).patience
        return self.patience if patience is None else patience

    def seed_list(self) -> list[int]:
        """The FP32 seeds results are reported over: ``0 .. seeds - 1``."""
        return list(range(self.seeds))

    def search_seed_list(self, first: int = 0) -> list[int]:
        """The search seeds of a table row: ``first .. first + search_seeds - 1``."""
        return list(range(first, first + self.search_seeds))

    def architecture(self, model: str) -> dict[str, int]:
        """Keyword arguments of :func:`sgquant.models.build_model` for ``model``: its
        registry entry's size, or the fields of this profile the entry names (GAT's
        ``gat_hidden`` and ``gat_heads``)."""
        return get_model(model).profile_architecture(self)

    def to_dict(self) -> dict[str, Any]:
        """The fields; the random-split schedule by name (or its fields if unnamed)."""
        return {**asdict(self),
                "fp32_schedule_random": schedule_setting(self.fp32_schedule_random)}


_DEFAULT = Profile(
    name="default", datasets=("Cora", "CiteSeer"), models=PAPER_MODELS,
    seeds=3, fp32_epochs=200, patience=100, finetune_epochs=10,
    search_budget=24, search_sample=2000, search_iterations=3, search_seeds=3,
    granularity_samples=8, num_buckets=3, gat_hidden=8, gat_heads=8,
    fp32_epochs_random=1000, fp32_schedule_random="cosine300",
    held_out_datasets=("Cora", "CiteSeer", "Coauthor-CS"), held_out_models=("gcn",))

PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick", datasets=("Cora",), models=PAPER_MODELS, seeds=1,
        fp32_epochs=60, patience=30, finetune_epochs=3,
        search_budget=8, search_sample=200, search_iterations=2, search_seeds=1,
        granularity_samples=3, num_buckets=3, gat_hidden=8, gat_heads=2,
        held_out_datasets=("Cora",), held_out_models=("gcn",)),
    "default": _DEFAULT,
    "full": replace(_DEFAULT, name="full", datasets=("Cora", "CiteSeer", "Amazon-Computers")),
    "paper": Profile(
        name="paper", datasets=("Cora", "CiteSeer", "PubMed", "Amazon-Computers", "Reddit"),
        models=PAPER_MODELS, seeds=5, fp32_epochs=200, patience=100, finetune_epochs=50,
        search_budget=200, search_sample=10000, search_iterations=10, search_seeds=5,
        granularity_samples=20, num_buckets=3,
        gat_hidden=PAPER_ARCHITECTURES["gat"][0], gat_heads=DEFAULT_GAT_HEADS,
        fp32_epochs_random=1000,
        held_out_datasets=("Cora", "CiteSeer", "PubMed", "Amazon-Computers", "Coauthor-CS"),
        held_out_models=PAPER_MODELS),
}


def get_profile(profile: "str | Profile", **overrides: Any) -> Profile:
    """The named profile, optionally with some fields replaced."""
    if isinstance(profile, Profile):
        base = profile
    else:
        if profile not in PROFILES:
            raise ValueError(
                f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        base = PROFILES[profile]
    if not overrides:
        return base
    unknown = set(overrides) - set(base.to_dict())
    if unknown:
        raise ValueError(f"unknown profile field(s) {sorted(unknown)}; "
                         f"fields are {', '.join(base.to_dict())}")
    if "datasets" in overrides:
        overrides["datasets"] = tuple(canonical_name(d) for d in overrides["datasets"])
    return replace(base, **overrides)
