"""Which seed each purpose uses (:mod:`sgquant.seeds`): the FP32 models of evaluation,
search and confirmation, and the fine-tunes' streams, apart from each other and between
the development and held-out plans; Table III's runs follow the plan."""
from __future__ import annotations

from dataclasses import replace

import pytest

from sgquant.seeds import (CONFIRMATION_ROOM, DEVELOPMENT, FP32_SEED_LIMIT, HELD_OUT, PLANS,
                           SeedPlan, confirmation_finetune_seeds, evaluation_finetune_seed,
                           finetune_seed, get_plan, search_finetune_seed)

#: Counts a Table III run might use: evaluation models, search seeds, confirmation
#: fine-tunes per search.
N_EVAL, N_SEARCH, N_CONFIRM = 20, 20, 5


def fp32_by_purpose(plan: SeedPlan) -> dict[str, set[int]]:
    evaluation = plan.evaluation_seeds(N_EVAL)
    search = plan.search_seeds(N_SEARCH)
    return {"evaluation": set(evaluation),
            "search": {plan.search_fp32(s) for s in search},
            "confirmation": {plan.confirmation_fp32(s, j) for s in search
                             for j in range(CONFIRMATION_ROOM)}}


def finetunes_by_purpose(plan: SeedPlan) -> dict[str, set[int]]:
    search = plan.search_seeds(N_SEARCH)
    return {"evaluation": {evaluation_finetune_seed(e) for e in plan.evaluation_seeds(N_EVAL)},
            "search": {search_finetune_seed(plan.search_fp32(s)) for s in search},
            "confirmation": {x for s in search for x in confirmation_finetune_seeds(
                plan.search_fp32(s), s, N_CONFIRM)}}


def assert_apart(groups: dict[str, set[int]]) -> None:
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not groups[a] & groups[b], f"{a} and {b} share {sorted(groups[a] & groups[b])}"


@pytest.mark.parametrize("name", sorted(PLANS))
def test_every_purpose_has_fp32_models_and_fine_tune_streams_of_its_own(name):
    plan = get_plan(name)
    fp32, finetunes = fp32_by_purpose(plan), finetunes_by_purpose(plan)
    assert_apart(fp32)
    assert_apart(finetunes)
    everything = set().union(*fp32.values())
    assert len(everything) == N_EVAL + N_SEARCH * (1 + CONFIRMATION_ROOM)
    assert max(everything) < FP32_SEED_LIMIT
    streams = set().union(*finetunes.values())  # no fine-tune replays an FP32 training
    assert not streams & everything
    assert len(streams) == N_EVAL + N_SEARCH * (1 + N_CONFIRM) and max(streams) < 2 ** 32


def test_development_and_held_out_share_no_seed_for_any_purpose():
    dev, held = DEVELOPMENT, HELD_OUT
    assert not set(dev.search_seeds(N_SEARCH)) & set(held.search_seeds(N_SEARCH))
    for purpose, seeds in fp32_by_purpose(dev).items():
        assert not seeds & set().union(*fp32_by_purpose(held).values()), purpose
    for purpose, seeds in finetunes_by_purpose(dev).items():
        assert not seeds & set().union(*finetunes_by_purpose(held).values()), purpose


def test_development_keeps_the_seeds_the_method_was_designed_on():
    """Evaluation 0, 1, 2 and search seeds 0, 1, 2 as always; search seed 0 still
    searches on model 100 and confirms on 101 (SGQuant+'s confirmation finds them as
    the models after its search's), the next ones on models of their own."""
    from sgquant.variants import get_variant

    assert DEVELOPMENT.evaluation_seeds(3) == [0, 1, 2]
    assert DEVELOPMENT.search_seeds(3) == [0, 1, 2]
    assert [DEVELOPMENT.search_fp32(s) for s in range(3)] == [100, 110, 120]
    assert [DEVELOPMENT.confirmation_fp32(s, 0) for s in range(3)] == [101, 111, 121]
    plus = get_variant("sgquant+").confirmation
    assert plus.fp32_seeds(DEVELOPMENT.search_fp32(1)) == [DEVELOPMENT.confirmation_fp32(1, 0)]
    assert HELD_OUT.evaluation_seeds(3) == [1000, 1001, 1002]
    assert HELD_OUT.search_seeds(3) == [500, 501, 502]
    assert HELD_OUT.search_fp32(500) == 25000 and HELD_OUT.confirmation_fp32(500, 0) == 25001


def test_fine_tune_seeds_are_stable_and_checked():
    """A stable hash (not Python's, which changes per process): pinned values."""
    assert finetune_seed("evaluation", 0) == evaluation_finetune_seed(0) == 323002662
    assert search_finetune_seed(100) == 776229776
    assert confirmation_finetune_seeds(100, 0, 2) == [864219229, 1010750608]
    with pytest.raises(ValueError, match="unknown fine-tune purpose 'final'"):
        finetune_seed("final", 0)
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        finetune_seed("search", -1)


def test_plans_by_name_and_plans_whose_purposes_clash():
    assert get_plan("development") is DEVELOPMENT and get_plan(HELD_OUT) is HELD_OUT
    with pytest.raises(ValueError, match="unknown seed plan 'heldout'; choose one of "
                                         "development, held-out"):
        get_plan("heldout")
    with pytest.raises(ValueError, match="FP32 seed 130 would be both evaluation model 130 "
                                         "and the search model of search seed 3"):
        SeedPlan("bad", evaluation_base=130, first_search_seed=0, search_fp32_base=100)
    with pytest.raises(ValueError, match="confirmation model index"):
        DEVELOPMENT.confirmation_fp32(0, CONFIRMATION_ROOM)
    with pytest.raises(ValueError, match="other_fp32"):
        from sgquant.variants import Confirmation
        Confirmation(other_fp32=CONFIRMATION_ROOM + 1)
    from sgquant.chapters.common import check_parameters
    with pytest.raises(ValueError, match="unknown seed plan"):
        check_parameters(profile="quick", plan="test")


class _Job:
    def __init__(self, seed: int) -> None:
        self.finetune_seed = seed

    def for_purpose(self, purpose: str) -> "_Job":
        return self


class _Runner:
    """What :func:`~sgquant.chapters.common.final_finetune_jobs` asks of a runner, the
    fine-tune seed of each job recorded (the FP32 seed when none is given)."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        from sgquant.profiles import get_profile
        self.settings = SimpleNamespace(profile=get_profile("quick"))

    def finetune_job(self, dataset, model, seed, assignment, *, options=None, finetune=None,
                     finetune_seed=None) -> _Job:
        return _Job(seed if finetune_seed is None else finetune_seed)


def test_confirmation_fine_tunes_never_replay_an_evaluation_fine_tune():
    """Search seed 0's confirmation once drew seeds 1 and 2: the streams of evaluation
    models 1 and 2's final fine-tunes."""
    from sgquant.assignment import BitAssignment
    from sgquant.chapters.common import final_finetune_jobs
    from sgquant.search import confirmation_seeds
    from sgquant.variants import get_variant

    for plan in (DEVELOPMENT, HELD_OUT):
        evaluation = plan.evaluation_seeds(5)
        final = {j.finetune_seed for j in final_finetune_jobs(
            _Runner(), "Cora", "gcn", evaluation, BitAssignment.uniform(4, 2),
            get_variant("sgquant+"))}
        confirm = {x for s in plan.search_seeds(3)
                   for x in confirmation_seeds(s, 2, plan.search_fp32(s))}
        assert len(final) == 5 and len(confirm) == 6
        assert not final & confirm and not final & set(evaluation)


def test_each_search_seed_searches_on_its_own_fp32_model_and_streams_stay_apart(
        cora, tmp_path, monkeypatch):
    """A Table III row with two search seeds: each searches on its own FP32 model (both
    methods share it, trained once), none an evaluation model; every fine-tune the row
    runs (candidates, confirmations, final) draws its purpose's stream."""
    from sgquant.chapters.table3 import overall_runs
    from sgquant.profiles import get_profile
    from sgquant.runner.jobs import FinetuneJob, TrainJob
    from sgquant.variants import VARIANTS, get_variant

    monkeypatch.setenv("SGQUANT_RESULTS", str(tmp_path))
    ran: list[tuple[str, int, int]] = []
    trained: list[int] = []
    real_run, real_train = FinetuneJob.run, TrainJob.run

    def finetune(job):
        ran.append((job.purpose, job.fp32.seed, job.finetune_seed))
        return real_run(job)

    def train(job):
        trained.append(job.seed)
        return real_train(job)

    monkeypatch.setattr(FinetuneJob, "run", finetune)
    monkeypatch.setattr(TrainJob, "run", train)
    prof = get_profile("quick", fp32_epochs=4, patience=4, finetune_epochs=1, search_budget=3,
                       search_iterations=1, search_sample=50)
    # both methods, each confirming its top configuration once
    variants = [replace(v, final_factor=1, confirmation=replace(
        v.confirmation, top=1, seeds=1, epochs_factor=1)) for v in map(get_variant, VARIANTS)]
    runs = overall_runs("Cora", "gcn", prof, seeds=1, search_seeds=2, variants=variants,
                        include_missing=False, workers=0)
    by_purpose: dict[str, set[int]] = {}
    for purpose, _, seed in ran:
        by_purpose.setdefault(purpose, set()).add(seed)
    assert set(by_purpose) == {"candidate", "confirmation", "final"}
    assert_apart(by_purpose)
    fp32 = {s for _, s, _ in ran}
    assert not fp32 & set().union(*by_purpose.values())
    assert {s for p, s, _ in ran if p == "final"} == {0}
    assert by_purpose["final"] == {evaluation_finetune_seed(0)}
    models = runs.groupby("search_seed")["search_fp32_seed"].unique()
    assert {s: list(m) for s, m in models.items()} == {0: [100], 1: [110]}
    assert sorted(trained) == [0, 100, 101, 110, 111]  # each FP32 model trained once
    assert set(runs["plan"]) == {"development"}
    assert set(runs["finetune_seed"]) == by_purpose["final"]
