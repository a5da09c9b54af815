r"""Which seed each purpose uses: the FP32 models a Table III row trains, and the
streams its fine-tunes draw (book/architecture.md, "Protocol").

A seed fixes a whole stream (:func:`sgquant.train.set_seed` seeds Python, NumPy and torch
with it): two trainings or fine-tunes with one seed draw the same initialisation and
dropout masks. So no two purposes share a seed.

**FP32 models** (:class:`SeedPlan`, with the plan's ``evaluation_base`` :math:`E` and
``search_fp32_base`` :math:`B`, and :data:`BLOCK` :math:`= 10`):

* evaluation model :math:`i` (its test accuracy is reported): :math:`E + i`;
* the model search seed :math:`s` searches on (each search seed its own, so a row's
  spread includes the search model's variance): :math:`B + 10 s`;
* SGQuant+'s held-out confirmation model :math:`j` of search seed :math:`s`:
  :math:`B + 10 s + 1 + j`, :math:`0 \le j <` :data:`CONFIRMATION_ROOM` (the models
  following the search's, :func:`following_fp32`, as
  :meth:`~sgquant.variants.Confirmation.fp32_seeds` finds them).

**Fine-tunes** (:func:`finetune_seed`): the :math:`k`-th purpose of :data:`PURPOSES`
(``evaluation``: a chosen configuration's final fine-tunes; ``search``: a search's
candidates; ``confirmation``: a search's extra fine-tunes) and integers
:math:`n_1 .. n_m` give

.. math:: 2^{28}(k + 1) + \operatorname{sha256}(p\!:\!n_1,\dots,n_m) \bmod 2^{28},

each purpose in a range of its own, above every FP32 seed (:data:`FP32_SEED_LIMIT`
:math:`= 2^{28}`): a fine-tune never replays an FP32 training's stream or another
purpose's fine-tunes.

**Plans**: :data:`DEVELOPMENT`, the seeds SGQuant+ was designed on (evaluation 0, 1, 2 ...;
search seeds 0, 1, 2 ... on FP32 models 100, 110, 120 ...; confirmation 101, 111, 121 ...),
and :data:`HELD_OUT`, seeds no run used before it (evaluation 1000, 1001 ...; search seeds
500, 501 ... on FP32 models 25000, 25010 ...; confirmation 25001, 25011 ...).
:func:`get_plan` names them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from .checks import check_choice, check_int

__all__ = ["BLOCK", "CONFIRMATION_ROOM", "FP32_SEED_LIMIT", "PURPOSES", "SeedPlan",
           "DEVELOPMENT", "HELD_OUT", "PLANS", "get_plan", "following_fp32", "finetune_seed",
           "evaluation_finetune_seed", "search_finetune_seed", "confirmation_finetune_seeds"]

#: FP32 seeds per search seed: its search model, then its confirmation models.
BLOCK = 10
#: Confirmation FP32 models a search seed has room for.
CONFIRMATION_ROOM = BLOCK - 1
#: Every FP32 seed is below this; the fine-tune seeds are at or above it.
FP32_SEED_LIMIT = 2 ** 28
#: The purposes of a fine-tune, each with a range of seeds of its own.
PURPOSES = ("evaluation", "search", "confirmation")
#: The counts a plan is checked for when it is made (evaluation models, search seeds).
_CHECKED_COUNTS = (100, 50)


def following_fp32(fp32_seed: int, n: int) -> list[int]:
    """The ``n`` FP32 seeds after ``fp32_seed`` (a search model's confirmation models):
    ``fp32_seed + 1 .. fp32_seed + n``, ``n <=`` :data:`CONFIRMATION_ROOM`."""
    check_int(n, "confirmation FP32 models", minimum=0, maximum=CONFIRMATION_ROOM)
    return [int(fp32_seed) + 1 + j for j in range(n)]


def finetune_seed(purpose: str, *ints: int) -> int:
    r"""The fine-tune seed of ``purpose`` (one of :data:`PURPOSES`) and ``ints``:
    :math:`2^{28}(k + 1) + \operatorname{sha256}(\text{purpose:ints}) \bmod 2^{28}`
    (module docstring), stable across processes and Python versions."""
    k = PURPOSES.index(check_choice(purpose, "fine-tune purpose", PURPOSES))
    values = [check_int(n, f"{purpose} fine-tune seed input", minimum=0) for n in ints]
    text = f"{purpose}:{','.join(map(str, values))}".encode()
    digest = int.from_bytes(hashlib.sha256(text).digest()[:8], "big")
    return FP32_SEED_LIMIT * (k + 1) + digest % FP32_SEED_LIMIT


def evaluation_finetune_seed(fp32_seed: int) -> int:
    """The final fine-tunes' seed from evaluation model ``fp32_seed`` (every chosen
    configuration from that model draws it: the methods are compared on one stream)."""
    return finetune_seed("evaluation", fp32_seed)


def search_finetune_seed(fp32_seed: int) -> int:
    """The seed of a search's candidates on FP32 model ``fp32_seed`` (searches sharing
    a model share its measurements)."""
    return finetune_seed("search", fp32_seed)


def confirmation_finetune_seeds(fp32_seed: int, search_seed: int, n: int) -> list[int]:
    """The ``n`` seeds of the extra fine-tunes of search ``search_seed`` on FP32 model
    ``fp32_seed`` (they run from its confirmation models too)."""
    return [finetune_seed("confirmation", fp32_seed, search_seed, i) for i in range(n)]


@dataclass(frozen=True)
class SeedPlan:
    """The FP32 seeds of a Table III run, by purpose (module docstring's formulas):
    evaluation models from ``evaluation_base``, search seeds from ``first_search_seed``,
    search and confirmation models from ``search_fp32_base``. Made only if its seeds
    stay apart for 100 evaluation models, 50 search seeds and
    :data:`CONFIRMATION_ROOM` confirmation models each (:meth:`check`)."""

    name: str
    evaluation_base: int
    first_search_seed: int
    search_fp32_base: int
    note: str = ""

    def __post_init__(self) -> None:
        for field in ("evaluation_base", "first_search_seed", "search_fp32_base"):
            check_int(getattr(self, field), field, minimum=0)
        n_eval, n_search = _CHECKED_COUNTS
        self.check(self.evaluation_seeds(n_eval), self.search_seeds(n_search),
                   CONFIRMATION_ROOM)

    def evaluation_fp32(self, i: int) -> int:
        """Evaluation model ``i``: ``evaluation_base + i``."""
        return self.evaluation_base + check_int(i, "evaluation index", minimum=0)

    def evaluation_seeds(self, n: int) -> list[int]:
        """The first ``n`` evaluation models."""
        return [self.evaluation_fp32(i) for i in range(check_int(n, "seeds", minimum=1))]

    def search_seeds(self, n: int, first: "int | None" = None) -> list[int]:
        """``n`` search seeds from ``first`` (default: the plan's first)."""
        start = self.first_search_seed if first is None else check_int(first, "search_seed",
                                                                       minimum=0)
        return list(range(start, start + check_int(n, "search_seeds", minimum=1)))

    def search_fp32(self, search_seed: int) -> int:
        """The model search seed ``s`` searches on: ``search_fp32_base + BLOCK * s``."""
        return self.search_fp32_base + BLOCK * check_int(search_seed, "search seed", minimum=0)

    def confirmation_fp32(self, search_seed: int, j: int) -> int:
        """Confirmation model ``j`` of search seed ``s``: ``search_fp32(s) + 1 + j``."""
        j = check_int(j, "confirmation model index", minimum=0, maximum=CONFIRMATION_ROOM - 1)
        return following_fp32(self.search_fp32(search_seed), CONFIRMATION_ROOM)[j]

    def fp32_by_purpose(self, evaluation: Sequence[int], search: Sequence[int],
                        confirmations: int) -> dict[int, str]:
        """Every FP32 seed of a run (``evaluation`` models, the models of the ``search``
        seeds and ``confirmations`` confirmation models each), each with its purpose in
        words; ``ValueError`` naming the first seed two purposes share, or one outside
        ``0 <= seed <`` :data:`FP32_SEED_LIMIT`."""
        owners: dict[int, str] = {}

        def claim(seed: int, what: str) -> None:
            if not 0 <= seed < FP32_SEED_LIMIT:
                raise ValueError(f"{what} is FP32 seed {seed}, outside 0 .. "
                                 f"{FP32_SEED_LIMIT - 1} (the fine-tune seeds' ranges start "
                                 f"there)")
            if seed in owners:
                raise ValueError(f"seed plan {self.name!r}: FP32 seed {seed} would be both "
                                 f"{owners[seed]} and {what}")
            owners[seed] = what

        for e in evaluation:
            claim(int(e), f"evaluation model {int(e)}")
        for s in search:
            claim(self.search_fp32(s), f"the search model of search seed {s}")
            for j in range(confirmations):
                claim(self.confirmation_fp32(s, j), f"confirmation model {j} of search seed {s}")
        return owners

    def check(self, evaluation: Sequence[int], search: Sequence[int],
              confirmations: int) -> None:
        """Raise ``ValueError`` unless the run's FP32 seeds are pairwise distinct
        (:meth:`fp32_by_purpose`)."""
        self.fp32_by_purpose(evaluation, search, confirmations)


#: The seeds SGQuant+ was designed on: Table III as the book has always run it.
DEVELOPMENT = SeedPlan("development", evaluation_base=0, first_search_seed=0,
                       search_fp32_base=100,
                       note="the seeds the method was designed on: evaluation 0, 1, 2 ...; "
                            "search seeds 0, 1, 2 ... on FP32 models 100, 110, 120 ...")
#: Seeds no run used before: a held-out evaluation of a frozen method.
HELD_OUT = SeedPlan("held-out", evaluation_base=1000, first_search_seed=500,
                    search_fp32_base=20_000,
                    note="fresh seeds: evaluation 1000, 1001, 1002 ...; search seeds 500, "
                         "501, 502 ... on FP32 models 25000, 25010, 25020 ...")
#: The plans by name.
PLANS: dict[str, SeedPlan] = {p.name: p for p in (DEVELOPMENT, HELD_OUT)}


def get_plan(plan: "str | SeedPlan") -> SeedPlan:
    """A :class:`SeedPlan` by name (``"development"``, ``"held-out"``) or itself;
    ``ValueError`` naming the choices otherwise."""
    if isinstance(plan, SeedPlan):
        return plan
    return PLANS[check_choice(plan, "seed plan", tuple(PLANS))]
