"""Auto-bit search: space and sampler, features, cost-model step, end-to-end
searches on Cora GCN (``quick`` profile, in-process executor), resume, failures,
validation and the CLI."""
from __future__ import annotations

import json
from concurrent.futures import Future

import numpy as np
import pandas as pd
import pytest

from sgquant.bits import BitAssignment
from sgquant.memory import FeatureLayout, LayerLayout, feature_memory
from sgquant.profiles import DEFAULT_BIT_CHOICES
from sgquant.search import (
    PAPER_STRATEGY,
    CostModel,
    SearchResult,
    SearchSpace,
    Sampler,
    SerialExecutor,
    FeatureCache,
    best_so_far,
    check_bit_choices,
    config_features,
    cost_model_search,
    cost_model_step,
    curves,
    feature_frame,
    propose_candidates,
    random_search,
    select_candidates,
)

#: Cora's GCN layout with 3 degree buckets (sizes as sgquant.data computes them).
CORA_LAYOUT = FeatureLayout((1068, 942, 698), (LayerLayout(1433, 13264, 1),
                                               LayerLayout(32, 13264, 1)), 46119)
QUICK = dict(profile="quick", progress=False)


# ------------------------------------------------------------ space, sampler
def test_sampler_is_deterministic_distinct_and_within_the_bit_set():
    space = SearchSpace(2, 3, (2, 4, 8))
    a = Sampler(space, seed=3).draw(30)
    b = Sampler(space, seed=3).draw(30)
    c = Sampler(space, seed=4).draw(30)
    assert [x.key() for x in a] == [x.key() for x in b]
    assert [x.key() for x in a] != [x.key() for x in c]
    assert len({x.key() for x in a}) == 30
    for x in a:
        assert x.num_layers == 2 and x.num_buckets == 3
        assert set(x.flat().values()) <= {2, 4, 8}
    # prefix-stable: the first draws do not depend on how many are drawn
    assert [x.key() for x in Sampler(space, seed=3).draw(5)] == [x.key() for x in a[:5]]
    # all of a tiny space, then no more
    tiny = SearchSpace(1, 1, (4, 8))
    sampler = Sampler(tiny, 0)
    assert len({x.key() for x in sampler.draw(4)}) == 4 == tiny.size
    with pytest.raises(ValueError, match="cannot draw 1 new"):
        sampler.draw(1)


def test_space_fixes_fields_that_store_nothing_and_round_trips_vectors():
    layout = FeatureLayout((5, 0), (LayerLayout(4, 0, 0), LayerLayout(8, 20, 2)))
    space = SearchSpace.from_layout(layout, (1, 2))
    assert dict(space.fixed) == {"att_L1": 32, "emb_L1_B1": 32, "emb_L2_B1": 32}
    assert space.free_fields == ("emb_L1_B0", "att_L2", "emb_L2_B0")
    assert space.size == 2 ** 3
    for a in Sampler(space, 0).draw(8):
        assert a.att_bits[0] == 32 and a.emb_bits[0][1] == 32
        assert space.assignment(space.vector(a)) == a
    with pytest.raises(ValueError, match="outside the search space"):
        space.vector(BitAssignment.uniform(2, 2, 2))


def test_bit_choices_are_validated():
    assert check_bit_choices(None) == DEFAULT_BIT_CHOICES
    assert check_bit_choices([8, 2, 8]) == (2, 8)
    for bad, match in (([], "empty"), ([0], "0"), ([17], "17"), ([4, 33], "33"),
                       ("48", "'48'"), ([True], "True")):
        with pytest.raises(ValueError, match=match):
            check_bit_choices(bad)


# ----------------------------------------------------------------- features
def test_features_are_the_flat_bits_and_sgquant_memory():
    a = BitAssignment.full((8, 4), ((1, 1, 2), (4, 8, 16)))
    feats = config_features(a, CORA_LAYOUT)
    report = feature_memory(CORA_LAYOUT, a)
    assert {k: feats[k] for k in a.flat()} == a.flat()
    assert feats["average_bits"] == report.average_bits
    assert feats["memory_mb"] == report.mb and feats["saving"] == report.saving
    frame = feature_frame([a, BitAssignment.uniform(8, 2, 3)], CORA_LAYOUT)
    assert list(frame.columns) == [*a.flat(), "average_bits", "memory_mb", "saving"]
    assert frame.loc[0, "saving"] > frame.loc[1, "saving"]  # 1-bit inputs dominate
    space = SearchSpace.from_layout(CORA_LAYOUT)
    rows = FeatureCache(space, CORA_LAYOUT).rows(np.array([space.vector(a)]))
    assert np.allclose(rows[0], frame.iloc[0].to_numpy(dtype=float))


# -------------------------------------------------------------- cost model
def test_cost_model_predictions_are_monotone_in_bits():
    space = SearchSpace.from_layout(CORA_LAYOUT)
    cache = FeatureCache(space, CORA_LAYOUT)
    rng = np.random.default_rng(0)
    vecs = space.random_vectors(rng, 200)
    hidden = vecs[:, [space.fields.index(f) for f in space.fields if not f.startswith("emb_L1")]]
    acc = 0.8 - 0.3 * (hidden.min(axis=1) < 4) + rng.normal(0, 0.01, 200)
    model = CostModel(cache.columns, seed=0).fit(cache.rows(vecs), acc)
    low = space.random_vectors(rng, 200)
    high = np.maximum(low, space.random_vectors(rng, 200))
    p_low, p_high = model.predict(cache.rows(low)), model.predict(cache.rows(high))
    assert np.all(p_high >= p_low - 1e-6)
    # and it learned the landscape: 8 bits everywhere but the inputs beats one field at 2
    ok = np.array([space.vector(BitAssignment.full((8, 8), ((1, 1, 1), (8, 8, 8))))])
    bad = np.array([space.vector(BitAssignment.full((8, 2), ((1, 1, 1), (8, 8, 8))))])
    assert model.predict(cache.rows(ok))[0] > model.predict(cache.rows(bad))[0] + 0.1


def test_select_candidates_ranks_feasible_improvements_by_saving():
    predicted = np.array([0.80, 0.70, 0.81, 0.79, 0.82, 0.60])
    saving = np.array([10.0, 30.0, 20.0, 25.0, 5.0, 40.0])
    # threshold 0.795, best measured saving 8: feasible improving = 0 (10x), 2 (20x)
    assert select_candidates(predicted, saving, 0.795, 2, best_saving=8.0).tolist() == [2, 0]
    # more picks than feasible improving ones: then the closest to the threshold
    assert select_candidates(predicted, saving, 0.795, 4, 8.0).tolist() == [2, 0, 3, 1]
    # nothing improves: the best predicted accuracy
    assert select_candidates(predicted, saving, 0.795, 1, 100.0).tolist() == [4]
    # hedging alternates the boldest (largest saving) and the most confident pick
    predicted, saving = np.array([0.9, 0.85, 0.80, 0.80]), np.array([10.0, 20.0, 30.0, 40.0])
    assert select_candidates(predicted, saving, 0.8, 3).tolist() == [3, 0, 2]
    assert select_candidates(predicted, saving, 0.8, 3, hedge=False).tolist() == [3, 2, 1]
    # a trust region puts the allowed candidates first
    allowed = np.array([True, True, False, False])
    assert select_candidates(predicted, saving, 0.8, 3, allowed=allowed).tolist() == [1, 0, 3]


def test_expected_improvement_weighs_saving_against_the_risk():
    from scipy.special import ndtr
    # A saves a little less than B but is surely within tolerance; B is borderline
    predicted, saving = np.array([0.80, 0.792]), np.array([29.0, 29.4])
    zero = np.zeros(2)
    assert select_candidates(predicted, saving, 0.79, 1, 10.0, hedge=False).tolist() == [1]
    assert select_candidates(predicted, saving, 0.79, 1, 10.0, hedge=False,
                             spread=zero).tolist() == [0]
    ei = (saving - 10.0) * ndtr((predicted - 0.79) / 0.003)
    assert ei[0] > ei[1]
    # an uncertain large saving beats a sure tiny one; a certain bad one does not
    predicted, saving = np.array([0.70, 0.85]), np.array([40.0, 11.0])
    assert select_candidates(predicted, saving, 0.79, 1, 10.0, hedge=False,
                             spread=np.array([0.1, 0.0])).tolist() == [0]
    assert select_candidates(predicted, saving, 0.79, 1, 10.0, hedge=False,
                             spread=zero).tolist() == [1]
    # hedging: the second pick is the most probably feasible improvement
    predicted = np.array([0.70, 0.85, 0.80])
    saving = np.array([40.0, 11.0, 12.0])
    picks = select_candidates(predicted, saving, 0.79, 2, 10.0, spread=np.array([0.1, 0, 0]))
    assert picks.tolist() == [0, 1]


def test_propose_candidates_are_fresh_distinct_and_local_around_elites():
    space = SearchSpace.from_layout(CORA_LAYOUT)
    rng = np.random.default_rng(1)
    measured = space.random_vectors(rng, 10)
    exclude = {v.tobytes() for v in measured}
    cand, sources = propose_candidates(space, rng, 500, measured[:3], exclude)
    assert cand.shape == (500, len(space.fields)) and len(sources) == 500
    keys = [v.tobytes() for v in cand]
    assert len(set(keys)) == 500 and not set(keys) & exclude
    assert set(np.unique(cand)) <= set(space.bit_choices)
    assert {"uniform", "mutation", "crossover"} == set(sources)
    # a tiny space gives what is left of it
    tiny = SearchSpace(1, 1, (4, 8))
    used = {np.array([4, 4]).tobytes(), np.array([8, 4]).tobytes()}
    rest, _ = propose_candidates(tiny, rng, 10, np.zeros((0, 2), np.int64), used)
    assert sorted(map(tuple, rest.tolist())) == [(4, 8), (8, 8)]
    mutated = cand[[s == "mutation" for s in sources]]
    closest = np.min([(mutated != e).sum(axis=1) for e in measured[:3]], axis=0)
    assert closest.max() <= 3  # 1-3 fields redrawn


def test_cost_model_step_times_each_phase_and_picks_n_mea():
    space = SearchSpace.from_layout(CORA_LAYOUT)
    cache = FeatureCache(space, CORA_LAYOUT)
    rng = np.random.default_rng(0)
    measured = space.random_vectors(rng, 12)
    acc = np.linspace(0.5, 0.8, 12)
    acc[3] = np.nan  # a failed measurement is ignored
    timings: dict = {}
    picks = cost_model_step(space, cache, measured, acc, 0.79, 300, 5, rng, timings=timings)
    assert picks["vectors"].shape == (5, len(space.fields))
    assert np.all(np.isfinite(picks["predicted"]))
    assert set(timings) == {"fit", "generate", "features", "predict", "select"}


def test_cost_model_step_stays_near_configurations_known_to_be_good():
    space = SearchSpace.from_layout(CORA_LAYOUT)
    cache = FeatureCache(space, CORA_LAYOUT)
    rng = np.random.default_rng(3)
    measured = space.random_vectors(rng, 8)
    # nothing measured is within tolerance: FP32 is the only known-good point
    picks = cost_model_step(space, cache, measured, np.full(8, 0.6), 0.79, 500, 4, rng,
                            fp32_accuracy=0.8)
    distance = (picks["vectors"] != space.fp32_vector()).sum(axis=1)
    assert len(distance) == 4 and distance.max() <= 3 and distance.min() >= 1
    # a feasible measured configuration becomes a second anchor
    acc = np.full(8, 0.6)
    acc[5] = 0.8
    picks = cost_model_step(space, cache, measured, acc, 0.79, 500, 4, rng, fp32_accuracy=0.8)
    near = [min((v != measured[5]).sum(), (v != space.fp32_vector()).sum()) for v in
            picks["vectors"]]
    assert max(near) <= 3


# ------------------------------------------------------------- end to end
def _check_result(result: SearchResult, budget: int) -> None:
    recs = result.records
    assert len(recs) == budget == result.num_measured
    assert recs["order"].tolist() == list(range(1, budget + 1))
    assert "test_acc" not in recs.columns  # test accuracy only for the chosen one
    ok = recs[recs["status"] != "failed"]
    feasible = ok[ok["val_acc"] >= result.threshold - 1e-6]
    assert recs["feasible"].sum() == len(feasible)
    conf = result.confirmations
    if result.confirm_top == 0:
        assert result.num_confirmations == 0
        if len(feasible):
            assert result.chosen is not None
            assert result.chosen_val_acc >= result.threshold - 1e-6
            assert result.chosen_saving == feasible["saving"].max()
            assert 0.0 <= result.chosen_test_acc <= 1.0
            assert result.chosen_test_acc_mean == result.chosen_test_acc
        else:
            assert result.chosen is None
    else:  # the chosen one is feasible, confirmed, and no larger saving was confirmed
        assert result.num_confirmations == len(conf)
        if result.chosen is not None:
            assert result.chosen.key() in set(feasible["config_key"])
            mine = conf[conf["config_key"] == result.chosen.key()]
            assert len(mine) == result.confirm_seeds and mine["confirmed"].all()
            assert result.chosen_val_acc_mean >= result.threshold - 1e-6
            assert result.chosen_val_acc_mean == pytest.approx(
                np.mean([result.chosen_val_acc, *mine["val_acc"]]))
            assert 0.0 <= result.chosen_test_acc_mean <= 1.0
            assert not conf[conf["saving"] > result.chosen_saving]["confirmed"].any()
        else:
            assert len(feasible) == 0 or not conf["confirmed"].any()
    curve = result.best_so_far()
    assert len(curve) == budget and curve["best_saving"].is_monotonic_increasing
    assert curve["best_saving"].iloc[-1] == (feasible["saving"].max() if len(feasible) else 1.0)
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    again = SearchResult.from_dict(payload)
    assert again.chosen == result.chosen and again.threshold == result.threshold
    assert again.num_confirmations == result.num_confirmations
    assert again.chosen_test_acc_mean == result.chosen_test_acc_mean
    assert result.dataset in result.summary()


def test_cost_model_and_random_search_end_to_end(tmp_path):
    kw = dict(budget=6, seed=0, executor=SerialExecutor(), results=tmp_path, **QUICK)
    cm = cost_model_search("Cora", "gcn", n_iter=2, n_sample=100, **kw)
    rs = random_search("Cora", "gcn", **kw)
    _check_result(cm, 6)
    _check_result(rs, 6)
    assert cm.records["iteration"].tolist() == [0, 0, 1, 1, 2, 2]
    assert cm.records["predicted_val_acc"].iloc[2:].notna().all()
    assert (rs.records["source"] == "uniform").all()
    # same seed: the cost model's random round is random search's first draws
    assert cm.records["config_key"].iloc[:2].tolist() == rs.records["config_key"].iloc[:2].tolist()
    assert cm.fp32_val_acc == rs.fp32_val_acc
    table = curves([cm, rs])
    assert set(table["method"]) == {"cost-model", "random"} and len(table) == 12
    plain = cost_model_search("Cora", "gcn", n_iter=2, n_sample=100, strategy=PAPER_STRATEGY,
                              **kw)
    _check_result(plain, 6)
    assert plain.settings["strategy"] == dict(PAPER_STRATEGY) == PAPER_STRATEGY
    assert (plain.records["source"] == "uniform").all()


def test_tolerance_decides_the_chosen_configuration(tmp_path):
    kw = dict(budget=4, seed=0, executor=SerialExecutor(), results=tmp_path, confirm_top=0,
              **QUICK)
    loose = random_search("Cora", "gcn", tolerance=100.0, **kw)
    assert loose.records["feasible"].all()
    assert loose.chosen_saving == loose.records["saving"].max()
    strict = random_search("Cora", "gcn", tolerance=0.0, **kw)
    ok = strict.records[strict.records["val_acc"] >= strict.fp32_val_acc - 1e-6]
    assert (strict.chosen is None) == ok.empty
    if not ok.empty:
        assert strict.chosen_saving == ok["saving"].max()
    assert (strict.records["status"] == "cached").all()  # same configurations as `loose`


def test_rerun_measures_nothing_and_gives_the_same_result(tmp_path):
    kw = dict(budget=6, n_iter=2, n_sample=100, seed=1, results=tmp_path, **QUICK)
    first = cost_model_search("Cora", "gcn", executor=SerialExecutor(), **kw)
    assert set(first.records["status"]) == {"measured"}
    second = cost_model_search("Cora", "gcn", executor=SerialExecutor(), **kw)
    assert set(second.records["status"]) == {"cached"}
    cols = ["config_key", "val_acc", "saving", "predicted_val_acc"]
    pd.testing.assert_frame_equal(first.records[cols], second.records[cols])
    assert first.chosen == second.chosen and first.chosen_test_acc == second.chosen_test_acc


class CrashingExecutor(SerialExecutor):
    """Every job whose number is in ``crash`` raises instead of measuring
    (``message`` names the job unless ``same_cause``)."""

    def __init__(self, crash: set[int], same_cause: bool = False) -> None:
        super().__init__()
        self.crash, self.calls, self.same_cause = crash, 0, same_cause

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self.calls += 1
        if self.calls in self.crash:
            text = "worker died" if self.same_cause else f"worker died on job {self.calls}"

            def boom(*a, **k):
                raise RuntimeError(text)
            return super().submit(boom)
        return super().submit(fn, *args, **kwargs)


def test_a_few_crashing_measurements_are_recorded_and_the_search_goes_on(tmp_path):
    # budget 10 = a random round of 4 and 2 rounds of 3: one failure in the first
    # round, a second (another cause) in the last: 2 of 10 is not more than 20%
    pool = CrashingExecutor({2, 9})
    result = cost_model_search("Cora", "gcn", budget=10, n_iter=2, n_sample=100, seed=2,
                               executor=pool, results=tmp_path, confirm_top=0, **QUICK)
    _check_result(result, 10)
    status = result.records["status"].tolist()
    assert status[1] == status[8] == "failed" and status.count("failed") == 2
    assert result.records["error"].iloc[1] == "RuntimeError: worker died on job 2"
    assert result.records["val_acc"].iloc[[1, 8]].isna().all()
    assert result.num_failed == 2 and pool.calls == 10
    assert "(2 failed)" in result.summary() and result.to_dict()["num_failed"] == 2


@pytest.mark.parametrize("crash, same, match", [
    ({2, 3}, True, r"2 of 4 measurements failed, all with the same cause: "
                   r"RuntimeError: worker died \("),
    ({2, 3}, False, r"2 of 4 measurements failed \(more than 20%\); the first: "
                    r"RuntimeError: worker died on job 2"),
    ({1}, False, r"1 of 1 measurements failed"),
])
def test_a_search_whose_failures_are_many_or_alike_stops_with_the_cause(tmp_path, crash,
                                                                          same, match):
    from sgquant.search import SearchFailed
    budget = 1 if crash == {1} else 10
    kw = dict(n_iter=2, n_sample=100) if budget > 1 else {}
    method = cost_model_search if budget > 1 else random_search
    with pytest.raises(SearchFailed, match=match):
        method("Cora", "gcn", budget=budget, seed=2, executor=CrashingExecutor(crash, same),
               results=tmp_path, confirm_top=0, **kw, **QUICK)


def fake_record(job, val: float, worker: str = "oracle") -> dict:
    """A complete measurement record of ``job`` with validation accuracy ``val``."""
    from sgquant.measure import Measurement, memory_record, prepare
    setup = prepare(job.dataset, job.model, job.seed, job.profile)
    a = BitAssignment.from_dict(job.assignment)
    fp32 = setup.fp32
    return Measurement(
        dataset=job.dataset, model=job.model, seed=job.seed, finetune_seed=job.finetune_seed,
        assignment=a.to_dict(), config_key=a.key(), val_acc=val, test_acc=val,
        best_test_acc=val, epoch=0, val_acc_before=val, fp32_val_acc=fp32["val_acc"],
        fp32_test_acc=fp32["test_acc"], fp32_best_test_acc=fp32["best_test_acc"],
        **memory_record(setup, a), rounding="floor", clip_percentile=None, seconds=0.0,
        worker=worker).to_record()


def test_cost_model_beats_random_search_on_a_known_landscape(tmp_path):
    """Same budget, seeds and FP32 models; measurements replaced by an oracle
    shaped like Cora GCN's (binary inputs lossless at any width, every other
    field needs >= 4 bits): the cost model must find clearly more saving."""
    from sgquant.measure import prepare

    class Oracle(SerialExecutor):
        def submit(self, fn, job) -> Future:
            fp32 = prepare(job.dataset, job.model, job.seed, job.profile).fp32["val_acc"]
            a = BitAssignment.from_dict(job.assignment)
            hidden = [b for f, b in a.flat().items() if not f.startswith("emb_L1")]
            val = fp32 if min(hidden) >= 4 else fp32 - 0.2
            return super().submit(fake_record, job, val)

    best: dict = {"cost-model": [], "random": []}
    for seed in range(3):
        kw = dict(budget=30, seed=seed, executor=Oracle(), results=tmp_path, **QUICK)
        for r in (cost_model_search("Cora", "gcn", n_sample=2000, **kw),
                  random_search("Cora", "gcn", **kw)):
            best[r.method].append(r.chosen_saving or 1.0)
    assert np.mean(best["cost-model"]) > np.mean(best["random"]) + 5.0, best


# ------------------------------------------------------------ confirmation
class RiggedExecutor(SerialExecutor):
    """Serial, but every confirmation fine-tune (a job with a ``finetune_seed``) of a
    configuration in ``sink`` returns validation accuracy 0 (a lucky search measurement)."""

    def __init__(self, sink: set[str]) -> None:
        super().__init__()
        self.sink, self.finetune_seeds = sink, []

    def submit(self, fn, job) -> Future:
        if job.finetune_seed == job.seed:  # a search measurement
            return super().submit(fn, job)
        self.finetune_seeds.append(job.finetune_seed)

        def rigged(job):
            rec = fn(job)
            if rec["config_key"] in self.sink:
                rec = {**rec, "val_acc": 0.0}
            return rec
        return super().submit(rigged, job)


@pytest.fixture(scope="module")
def confirm_setup(tmp_path_factory):
    """A quick Cora cost-model search without confirmation (its measurements cached in a
    results folder shared by the confirmation tests) and its feasible keys by saving."""
    tmp_path = tmp_path_factory.mktemp("confirm")
    kw = dict(budget=8, n_iter=1, n_sample=100, seed=1, tolerance=1.0, results=tmp_path,
              **QUICK)
    plain = cost_model_search("Cora", "gcn", executor=SerialExecutor(), confirm_top=0, **kw)
    order = plain.records[plain.records["feasible"]].sort_values(
        ["saving", "val_acc", "order"], ascending=[False, False, True])["config_key"].tolist()
    assert len(order) >= 4, "the quick Cora search should find four feasible configurations"
    import shutil
    pristine = tmp_path_factory.mktemp("pristine") / "results"
    shutil.copytree(tmp_path, pristine)
    PRISTINE[:] = [pristine]
    return kw, plain, order


#: a copy of the confirmation fixture's results as its search left them
PRISTINE: list = []


def test_confirmation_refinetunes_the_top_feasible_with_distinct_seeds(confirm_setup):
    from sgquant.measure import measure, prepare
    from sgquant.search import confirmation_seeds
    kw, plain, _ = confirm_setup
    tmp_path = kw["results"]
    pool = RiggedExecutor(set())
    result = cost_model_search("Cora", "gcn", executor=pool, confirm_top=2, confirm_seeds=2,
                               **kw)
    _check_result(result, 8)
    assert set(result.records["status"]) == {"cached"}  # the budget was measured by `plain`
    feasible = plain.records[plain.records["feasible"]].sort_values(
        ["saving", "val_acc", "order"], ascending=[False, False, True])
    assert len(feasible) >= 2, "the quick Cora search should find two feasible configurations"
    conf = result.confirmations
    seeds = confirmation_seeds(1, 2)
    assert seeds == [1001, 1002] and 1 not in seeds
    assert conf["config_key"].tolist() == [k for k in feasible["config_key"][:2] for _ in seeds]
    assert conf["finetune_seed"].tolist() == seeds * 2 and sorted(pool.finetune_seeds) == \
        sorted(seeds * 2)
    assert set(conf["status"]) == {"measured"} and result.num_confirmations == 4
    assert result.num_measured == 8  # confirmations are not part of the budget
    # each confirmation is its own cached measurement, fine-tuned with its own seed
    setup = prepare("Cora", "gcn", 1, "quick", str(tmp_path))
    for _, row in conf.iterrows():
        rec = measure(setup, as_assignment_of(result, row["config_key"]), results=str(tmp_path),
                      finetune_seed=int(row["finetune_seed"]))
        assert rec["cached"] and rec["finetune_seed"] == row["finetune_seed"]
        assert rec["val_acc"] == pytest.approx(row["val_acc"])
    # nothing rigged: the top feasible configuration is confirmed when its mean holds
    top = conf[conf["config_key"] == feasible["config_key"].iloc[0]]
    if top["mean_val_acc"].iloc[0] >= result.threshold - 1e-6:
        assert result.chosen.key() == feasible["config_key"].iloc[0]
    summary = result.summary()
    assert "confirmation: top 2" in summary and "4 extra fine-tunes" in summary
    assert plain.num_confirmations == 0 and "confirmation" not in plain.summary()


def as_assignment_of(result: SearchResult, key: str):
    from sgquant.bits import as_assignment
    row = result.records[result.records["config_key"] == key].iloc[0]
    return as_assignment(row["assignment"])


def rigged_search(kw: dict, sink: set[str], tmp_path, **settings) -> SearchResult:
    """A search on a private copy of the shared results folder (the driver caches
    what the rigged executor returns, and cached fine-tunes never reach it)."""
    import shutil
    folder = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
    shutil.copytree(PRISTINE[0], folder)
    return cost_model_search("Cora", "gcn", executor=RiggedExecutor(sink),
                             **{**kw, "results": folder}, **settings)


def test_a_configuration_whose_mean_falls_below_tolerance_is_not_chosen(confirm_setup,
                                                                          tmp_path):
    kw, plain, order = confirm_setup
    # the largest saving passed by luck: its other fine-tunes fail, the next one is chosen
    rigged = rigged_search(kw, {order[0]}, tmp_path, confirm_top=2, confirm_seeds=1)
    _check_result(rigged, 8)
    conf = rigged.confirmations
    assert not conf[conf["config_key"] == order[0]]["confirmed"].any()
    assert rigged.chosen is not None and rigged.chosen.key() != order[0]
    assert rigged.chosen_saving < plain.chosen_saving
    # none of the top 2 holds: the next 2 are tried (4 at most), then FP32
    lucky = set(order)
    everything = rigged_search(kw, lucky, tmp_path, confirm_top=2, confirm_seeds=1)
    _check_result(everything, 8)
    assert everything.chosen is None and everything.chosen_test_acc_mean is None
    assert everything.confirmations["config_key"].tolist() == order[:4]
    assert "keep FP32" in everything.summary()
    # one rigged configuration rejected, the next batch confirms
    two = rigged_search(kw, set(order[:1]), tmp_path, confirm_top=1, confirm_seeds=1)
    assert two.confirmations["config_key"].tolist() == order[:2]
    assert two.chosen is None or two.chosen.key() == order[1]


def test_rerun_reuses_cached_confirmations(confirm_setup):
    kw, _, _ = confirm_setup
    kw = {**kw, "confirm_top": 2, "confirm_seeds": 3}  # seed 1003: new to this folder
    first = cost_model_search("Cora", "gcn", executor=SerialExecutor(), **kw)
    assert (first.confirmations["finetune_seed"] == 1003).any()
    assert "measured" in set(first.confirmations["status"])
    second = cost_model_search("Cora", "gcn", executor=SerialExecutor(), **kw)
    assert set(second.records["status"]) == {"cached"}
    assert set(second.confirmations["status"]) == {"cached"}
    cols = ["config_key", "finetune_seed", "val_acc", "test_acc", "confirmed"]
    pd.testing.assert_frame_equal(first.confirmations[cols], second.confirmations[cols])
    assert first.chosen == second.chosen
    assert first.chosen_test_acc_mean == second.chosen_test_acc_mean


@pytest.mark.parametrize("kwargs, match", [
    (dict(confirm_top=-1), "confirm_top must be an integer >= 0"),
    (dict(confirm_top=1.5), "confirm_top"),
    (dict(confirm_seeds=0), r"confirm_seeds must be an integer in \[1, 999\], got 0"),
    (dict(confirm_seeds=1000), "confirm_seeds must be an integer in"),
])
def test_confirmation_settings_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_search("Cora", "gcn", **{**QUICK, **kwargs})


# ---------------------------------------------------------- batch memory
@pytest.mark.parametrize("buckets", [1, 3])
def test_batch_memory_equals_feature_memory(buckets):
    from sgquant.memory import batch_memory
    layouts = [CORA_LAYOUT,  # and one with an empty bucket and a layer without att
               FeatureLayout((5, 0, 7), (LayerLayout(4, 0, 0), LayerLayout(8, 20, 2)), 10)]
    rng = np.random.default_rng(buckets)
    choices = np.array([1, 2, 3, 4, 8, 16, 32])
    for layout in layouts:
        L, n = layout.num_layers, 200
        att = choices[rng.integers(0, len(choices), (n, L))]
        emb = choices[rng.integers(0, len(choices), (n, L, buckets))]
        att[0], emb[0] = 32, 32  # FP32: no group overhead
        got = batch_memory(layout, att, emb)
        for i in range(n):
            rep = feature_memory(layout, BitAssignment.full(att[i].tolist(), emb[i].tolist()))
            assert got["bits_total"][i] == rep.bits_total
            assert got["groups"][i] == rep.groups and got["elements"][i] == rep.elements
            for name, value in (("bytes", rep.bytes), ("fp32_bytes", rep.fp32_bytes),
                                ("average_bits", rep.average_bits), ("saving", rep.saving),
                                ("paper_saving", rep.paper_saving), ("memory_mb", rep.mb),
                                ("fp32_memory_mb", rep.fp32_mb)):
                assert got[name][i] == value, (name, i)
        assert got["saving"][0] == 1.0 and got["groups"][0] == 0
    with pytest.raises(ValueError, match="emb_bits has 2 degree buckets"):
        batch_memory(CORA_LAYOUT, np.full((1, 2), 8), np.full((1, 2, 2), 8))
    with pytest.raises(ValueError, match=r"att_bits must have shape \[n, 2\]"):
        batch_memory(CORA_LAYOUT, np.full((1, 3), 8), np.full((1, 2, 1), 8))
    with pytest.raises(ValueError, match="holds 33 bits"):
        batch_memory(CORA_LAYOUT, np.full((1, 2), 8), np.full((1, 2, 1), 33))


# --------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, match", [
    (dict(tolerance=-0.5), "tolerance"),
    (dict(tolerance=float("nan")), "tolerance"),
    (dict(tolerance="0.5"), "tolerance"),
    (dict(budget=0), "cannot measure a single configuration"),
    (dict(budget=2.5), "budget"),
    (dict(budget=10, n_mea=11), "n_mea = 11 exceeds the budget"),
    (dict(budget=10, n_iter=0), "n_iter must be None or an integer >= 1, got 0"),
    (dict(budget=3, n_iter=4), "budget 3 cannot measure one configuration"),
    (dict(budget=10, n_mea=4, n_iter=3), "exceed the budget of 10"),
    (dict(budget=10, n_mea=6), "no cost-model iteration"),
    (dict(budget=10, n_sample=1), "n_sample = 1 must be >= n_mea"),
    (dict(bit_choices=[]), "empty"),
    (dict(bit_choices=[3, 64]), "64"),
    (dict(seed=-1), "seed"),
    (dict(workers=-1), "workers"),
    (dict(profile="huge"), "huge"),
    (dict(executor=object()), "Executor"),
    (dict(strategy={"bogus": 1}), "unknown strategy key"),
    (dict(strategy={"radius": -1}), "radius"),
    (dict(strategy={"local_share": 2.0}), "local_share"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cost_model_search("Cora", "gcn", **{**QUICK, **kwargs})


def test_random_search_rejects_cost_model_settings_and_oversized_budgets(tmp_path):
    from sgquant.search import search
    with pytest.raises(ValueError, match="n_mea is a cost-model setting"):
        search("Cora", "gcn", "random", n_mea=3)
    with pytest.raises(ValueError, match="unknown search method 'grid'"):
        search("Cora", "gcn", "grid")
    with pytest.raises(ValueError, match="budget 3 exceeds the 1 distinct configurations"):
        random_search("Cora", "gcn", budget=3, bit_choices=[8], executor=SerialExecutor(),
                      results=tmp_path, **QUICK)


def test_best_so_far_starts_at_fp32_and_only_counts_feasible():
    recs = pd.DataFrame({"order": [1, 2, 3, 4], "status": ["measured", "failed", "cached",
                                                           "measured"],
                         "val_acc": [0.70, np.nan, 0.80, 0.79], "saving": [9.0, 50.0, 4.0, 6.0]})
    assert best_so_far(recs, 0.79)["best_saving"].tolist() == [1.0, 1.0, 4.0, 6.0]


# ---------------------------------------------------------------------- CLI
def test_cli_writes_json_and_exits_0(tmp_path, capsys):
    from sgquant.cli import main
    out = tmp_path / "result.json"
    code = main(["search", "--dataset", "Cora", "--model", "gcn", "--method", "random",
                 "--budget", "3", "--profile", "quick", "--workers", "0", "--no-progress",
                 "--results", str(tmp_path / "cache"), "--output", str(out),
                 "--confirm-top", "1", "--confirm-seeds", "1"])
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["method"] == "random" and payload["num_measured"] == 3
    assert payload["confirm_top"] == 1 and payload["confirm_seeds"] == 1
    assert payload["num_confirmations"] == len(payload["confirmations"]) <= 2
    assert len(payload["records"]) == 3 and payload["fp32"]["val_acc"] > 0.5
    printed = capsys.readouterr().out
    assert "FP32: val" in printed and str(out) in printed


@pytest.mark.parametrize("argv, message", [
    (["--budget", "0"], "cannot measure a single configuration"),
    (["--tolerance", "-1"], "tolerance"),
    (["--bits", "0", "4"], "bit choice 0"),
    (["--method", "random", "--n-mea", "2"], "--n-mea applies to --method cost-model"),
    (["--workers", "-2"], "workers"),
    (["--confirm-top", "-1"], "confirm_top"),
    (["--confirm-seeds", "0"], "confirm_seeds"),
    (["--method", "random", "--strategy", "paper"], "--strategy applies to --method cost-model"),
])
def test_cli_bad_values_exit_2(argv, message, tmp_path, capsys):
    from sgquant.cli import main
    base = ["search", "--dataset", "Cora", "--model", "gcn", "--profile", "quick",
            "--workers", "0", "--no-progress", "--results", str(tmp_path)]
    assert main(base + argv) == 2
    assert message in capsys.readouterr().err


def test_cli_unknown_choice_exits_2(capsys):
    from sgquant.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["search", "--dataset", "Cora", "--model", "gcn", "--method", "grid"])
    assert exc.value.code == 2
    assert "invalid choice: 'grid'" in capsys.readouterr().err


@pytest.mark.slow
def test_default_process_pool_measures_in_spawned_workers(tmp_path):
    result = random_search("Cora", "gcn", budget=4, seed=0, workers=2, results=tmp_path,
                           **QUICK)
    _check_result(result, 4)
    assert set(result.records["status"]) == {"measured"}
    assert result.settings["workers"] == min(2, __import__("os").cpu_count())
    again = random_search("Cora", "gcn", budget=4, seed=0, executor=SerialExecutor(),
                          results=tmp_path, **QUICK)
    assert set(again.records["status"]) == {"cached"}
    assert again.records["val_acc"].tolist() == result.records["val_acc"].tolist()


# ----------------------------------------------------------------- strategy
def test_strategy_is_validated_once_and_reads_like_a_dict():
    from sgquant.search import STRATEGY, Strategy, check_strategy
    assert isinstance(STRATEGY, Strategy) and Strategy.paper() == PAPER_STRATEGY
    assert dict(STRATEGY)["ensemble"] == 5 and {**PAPER_STRATEGY}["radius"] is None
    assert check_strategy(None) is STRATEGY
    assert check_strategy({"radius": 2}) == {**STRATEGY, "radius": 2}
    assert check_strategy(dict(PAPER_STRATEGY)) == PAPER_STRATEGY
    for bad, match in (({"ensemble": 0}, "strategy ensemble must be an integer >= 1"),
                       ({"hedge": 1}, "strategy hedge must be True or False"),
                       ({"acquisition": "ucb"}, "unknown strategy acquisition 'ucb'"),
                       ({"trees": True}, "strategy trees"),
                       ({"learning_rate": 0.0 - 1}, "strategy learning_rate")):
        with pytest.raises(ValueError, match=match):
            check_strategy(bad)
    with pytest.raises(ValueError, match="strategy radius"):
        Strategy(radius=-1)
    with pytest.raises(AttributeError):
        STRATEGY.ensemble = 3  # frozen


def test_cost_model_step_accepts_a_strategy_or_its_fields_as_keywords():
    from sgquant.search import STRATEGY
    space = SearchSpace.from_layout(CORA_LAYOUT)
    cache = FeatureCache(space, CORA_LAYOUT)
    measured = space.random_vectors(np.random.default_rng(5), 12)
    acc = np.linspace(0.5, 0.8, 12)
    args = (space, cache, measured, acc, 0.79, 300, 4)
    a = cost_model_step(*args, np.random.default_rng(0), strategy=STRATEGY.replace(ensemble=2))
    b = cost_model_step(*args, np.random.default_rng(0), ensemble=2)  # the older keyword form
    assert np.array_equal(a["vectors"], b["vectors"]) and a["sources"] == b["sources"]
    c = cost_model_step(*args, np.random.default_rng(0), ensemble=2, n_estimators=5)
    assert np.all(np.isfinite(c["predicted"]))


def test_vectorised_candidates_are_deterministic_and_label_their_generations():
    space = SearchSpace.from_layout(CORA_LAYOUT)
    cache = FeatureCache(space, CORA_LAYOUT)
    measured = space.random_vectors(np.random.default_rng(2), 10)
    acc = np.linspace(0.6, 0.8, 10)
    runs = [cost_model_step(space, cache, measured, acc, 0.79, 400, 6,
                            np.random.default_rng(9), fp32_accuracy=0.8) for _ in range(2)]
    assert np.array_equal(runs[0]["vectors"], runs[1]["vectors"])
    assert runs[0]["sources"] == runs[1]["sources"]
    assert len({v.tobytes() for v in runs[0]["vectors"]}) == 6
    assert not {v.tobytes() for v in runs[0]["vectors"]} & {v.tobytes() for v in measured}
    kinds = {s.split(" (gen")[0] for s in runs[0]["sources"]}
    assert kinds <= {"uniform", "mutation", "crossover"}
    # an array of excluded rows works like the older set of their bytes
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    a, _ = propose_candidates(space, rng_a, 50, measured[:2], measured)
    b, _ = propose_candidates(space, rng_b, 50, measured[:2], {v.tobytes() for v in measured})
    assert np.array_equal(a, b)


def test_fields_apart_counts_differing_fields_of_packed_rows():
    from sgquant.search.space import fields_apart, first_unique, row_codes
    rng = np.random.default_rng(0)
    for width in (3, 8, 11):  # one and two 64-bit words per row
        a = rng.choice([1, 2, 4, 8, 32], size=(40, width))
        b = rng.choice([1, 2, 4, 8, 32], size=(7, width))
        expected = (a[:, None, :] != b[None, :, :]).sum(axis=-1)
        assert np.array_equal(fields_apart(row_codes(a), row_codes(b)), expected)
        rows = np.vstack([b, a, b[:3], a[:5]])
        keep = first_unique(row_codes(rows), skip=len(b))
        expect = [i for i in range(len(b), len(rows))
                  if not any((rows[j] == rows[i]).all() for j in range(i))]
        assert keep.tolist() == expect


# ------------------------------------------------- CLI: files and failures
def unwritable_folder(tmp_path):
    """A folder this process cannot create files in: a read-only temporary folder, or
    (as root, who may write anywhere but in the kernel's files) /sys/kernel."""
    import os
    import tempfile
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, "/sys/kernel"):
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            return candidate
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no unwritable folder on this system")


SEARCH = ["search", "--dataset", "Cora", "--model", "gcn", "--method", "random",
          "--budget", "2", "--profile", "quick", "--workers", "0", "--no-progress",
          "--confirm-top", "0"]


@pytest.mark.parametrize("case", ["output is a folder", "results is a file",
                                  "results not writable", "output not ours"])
def test_cli_checks_files_before_any_work_and_exits_2(case, tmp_path, capsys, monkeypatch):
    from sgquant import measure
    from sgquant.cli import main
    called = []
    monkeypatch.setattr(measure, "_prepare_cached", lambda *a: called.append(a))
    results, output = tmp_path / "cache", tmp_path / "out.json"
    if case == "output is a folder":
        output.mkdir()
        expected = f"--output {output} is a folder: give a file name"
    elif case == "results is a file":
        results.write_text("x")
        expected = f"results folder {results} is a file, not a folder"
    elif case == "results not writable":
        results = unwritable_folder(tmp_path)
        expected = f"results folder {results} is not writable"
    else:
        output.write_text("my notes\n")
        expected = f"--output {output} exists and was not written by sgquant"
    code = main(SEARCH + ["--results", str(results), "--output", str(output)])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not called  # checked before the FP32 model was even looked for
    assert case != "output not ours" or output.read_text() == "my notes\n"


def test_cli_default_names_differ_by_every_setting_that_changes_the_result(tmp_path, capsys):
    from sgquant.cli import main

    def run(**changes: str) -> None:
        options = {"--budget": "2", "--tolerance": "0.5", "--confirm-top": "0", **changes}
        argv = SEARCH[:SEARCH.index("--budget")] + ["--profile", "quick", "--workers", "0",
                                                    "--no-progress", "--results", str(tmp_path)]
        for flag, value in options.items():
            argv += [flag, *value.split()]
        assert main(argv) == 0

    for changes in ({}, {"--tolerance": "1.0"}, {"--budget": "3"}, {"--bits": "2 4 8"}, {},
                    {"--confirm-top": "1"}):
        run(**changes)
    written = sorted(p.name for p in (tmp_path / "search").iterdir())
    assert len(written) == 5, written  # the repeated default run rewrote its own file
    assert any("-b3-" in n for n in written) and any("-tol1-" in n for n in written)
    assert all(n.startswith("Cora-gcn-random-seed0-quick-b") for n in written)


def test_cli_search_that_cannot_write_a_record_stops_with_the_cause_and_exit_1(tmp_path,
                                                                               capsys):
    """A folder standing where the first measurement's record goes (as a read-only
    ``measure/`` folder would, but also for root): one line, exit 1, no result file."""
    from sgquant.cli import main
    from sgquant.cache import ResultCache
    from sgquant.measure import measurement_key, prepare
    setup = prepare("Cora", "gcn", 0, "quick", str(tmp_path))
    space = SearchSpace.from_layout(setup.layout)
    first = Sampler(space, 0).draw(1)[0]
    blocked = ResultCache(tmp_path).path("measure", measurement_key(setup, first, None, 0))
    blocked.mkdir(parents=True)
    out = tmp_path / "o.json"
    code = main(SEARCH + ["--results", str(tmp_path), "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and not out.exists()
    assert err[-1].startswith("sgquant search: error: cannot write the results cache under")
    assert "IsADirectoryError" in err[-1]
