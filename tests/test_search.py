"""Auto-bit search: space and sampler, features, cost model and strategy, one
cost-model step, end-to-end searches on Cora GCN (``quick`` profile, in-process
executor), resume and validation. Confirmation: test_search_confirm.py; the CLI and
failures: test_search_cli.py."""
from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import pandas as pd
import pytest

from sgquant.assignment import BitAssignment
from sgquant.memory import FeatureLayout, LayerLayout, feature_memory
from sgquant.profiles import DEFAULT_BIT_CHOICES
from sgquant.runner import SerialExecutor
from sgquant.search import (
    PAPER_STRATEGY,
    CostModel,
    SearchSpace,
    Sampler,
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

from search_checks import CORA_LAYOUT, QUICK, check_result, fake_record, search_args


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
def test_cost_model_and_random_search_end_to_end(tmp_path):
    kw = dict(budget=6, seed=0, executor=SerialExecutor(), results=tmp_path, **QUICK)
    cm = cost_model_search("Cora", "gcn", **search_args(n_iter=2, n_sample=100, **kw))
    rs = random_search("Cora", "gcn", **search_args(**kw))
    check_result(cm, 6)
    check_result(rs, 6)
    assert cm.records["iteration"].tolist() == [0, 0, 1, 1, 2, 2]
    assert cm.records["predicted_val_acc"].iloc[2:].notna().all()
    assert (rs.records["source"] == "uniform").all()
    # same seed: the cost model's random round is random search's first draws
    assert cm.records["config_key"].iloc[:2].tolist() == rs.records["config_key"].iloc[:2].tolist()
    assert cm.fp32_val_acc == rs.fp32_val_acc
    table = curves([cm, rs])
    assert set(table["method"]) == {"cost-model", "random"} and len(table) == 12
    plain = cost_model_search("Cora", "gcn", **search_args(
        n_iter=2, n_sample=100, strategy=PAPER_STRATEGY, **kw))
    check_result(plain, 6)
    assert plain.settings["strategy"] == dict(PAPER_STRATEGY) == PAPER_STRATEGY
    assert (plain.records["source"] == "uniform").all()


def test_tolerance_decides_the_chosen_configuration(tmp_path):
    # fine-tunes in full: a thrifty one stops at its threshold, so its record (and key)
    # belongs to one tolerance and the strict search could not reuse the loose one's
    kw = dict(budget=4, seed=0, executor=SerialExecutor(), results=tmp_path, confirm_top=0,
              fidelity="full", **QUICK)
    loose = random_search("Cora", "gcn", **search_args(tolerance=100.0, **kw))
    assert loose.records["feasible"].all()
    assert loose.chosen_saving == loose.records["saving"].max()
    strict = random_search("Cora", "gcn", **search_args(tolerance=0.0, **kw))
    ok = strict.records[strict.records["val_acc"] >= strict.fp32_val_acc - 1e-6]
    assert (strict.chosen is None) == ok.empty
    if not ok.empty:
        assert strict.chosen_saving == ok["saving"].max()
    assert (strict.records["status"] == "cached").all()  # same configurations as `loose`


def test_rerun_measures_nothing_and_gives_the_same_result(tmp_path):
    kw = dict(budget=6, n_iter=2, n_sample=100, seed=1, results=tmp_path, **QUICK)
    first = cost_model_search("Cora", "gcn", **search_args(executor=SerialExecutor(), **kw))
    assert set(first.records["status"]) == {"measured"}
    second = cost_model_search("Cora", "gcn", **search_args(executor=SerialExecutor(), **kw))
    assert set(second.records["status"]) == {"cached"}
    cols = ["config_key", "val_acc", "saving", "predicted_val_acc"]
    pd.testing.assert_frame_equal(first.records[cols], second.records[cols])
    assert first.chosen == second.chosen and first.chosen_test_acc == second.chosen_test_acc


def test_cost_model_beats_random_search_on_a_known_landscape(tmp_path):
    """Same budget, seeds and FP32 models; measurements replaced by an oracle
    shaped like Cora GCN's (binary inputs lossless at any width, every other
    field needs >= 4 bits): the cost model must find clearly more saving."""

    class Oracle(SerialExecutor):
        def submit(self, fn, job) -> Future:
            fp32 = job.fp32.summary["val_acc"]
            a = BitAssignment.from_dict(job.assignment)
            hidden = [b for f, b in a.flat().items() if not f.startswith("emb_L1")]
            val = fp32 if min(hidden) >= 4 else fp32 - 0.2
            return super().submit(fake_record, job, val)

    best: dict = {"cost-model": [], "random": []}
    for seed in range(3):
        kw = dict(budget=30, seed=seed, executor=Oracle(), results=tmp_path, **QUICK)
        for r in (cost_model_search("Cora", "gcn", **search_args(n_sample=2000, **kw)),
                  random_search("Cora", "gcn", **search_args(**kw))):
            best[r.method].append(r.chosen_saving or 1.0)
    assert np.mean(best["cost-model"]) > np.mean(best["random"]) + 5.0, best


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
        cost_model_search("Cora", "gcn", **search_args(**{**QUICK, **kwargs}))


def test_random_search_rejects_cost_model_settings_and_oversized_budgets(tmp_path):
    from sgquant.search import search
    with pytest.raises(ValueError, match="n_mea is a cost-model setting"):
        search("Cora", "gcn", "random", **search_args(n_mea=3))
    with pytest.raises(ValueError, match="unknown search method 'grid'"):
        search("Cora", "gcn", "grid")
    with pytest.raises(ValueError, match="budget 3 exceeds the 1 distinct configurations"):
        random_search("Cora", "gcn", **search_args(
            budget=3, bit_choices=[8], executor=SerialExecutor(), results=tmp_path, **QUICK))


def test_search_spec_is_frozen_checked_and_the_keywords_change_it(tmp_path):
    """A search takes one SearchSpec and one RunSettings; budget, tolerance, seed,
    fp32_seed, variant and profile given by keyword change them."""
    import dataclasses

    from sgquant.search import SearchSpec
    from sgquant.settings import RunSettings
    spec = SearchSpec(budget=4, seed=0, confirm_top=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.budget = 5
    with pytest.raises(ValueError, match="unknown search setting.*budgte"):
        spec.replace(budgte=3)
    assert SearchSpec(variant="sgquant+").variant.name == "sgquant+"
    with pytest.raises(ValueError, match="settings must be a sgquant.settings.RunSettings"):
        random_search("Cora", "gcn", spec, settings="quick")
    with pytest.raises(ValueError, match="spec must be a sgquant.search.SearchSpec"):
        random_search("Cora", "gcn", {"budget": 4})
    here = RunSettings.resolve(results=tmp_path)
    by_keywords = random_search("Cora", "gcn", spec, tolerance=100.0, profile="quick",
                                settings=here, executor=SerialExecutor(), progress=False)
    by_objects = random_search("Cora", "gcn", spec.replace(tolerance=100.0),
                               settings=here.replace(profile="quick"),
                               executor=SerialExecutor(), progress=False)
    assert by_keywords.profile == "quick" and by_keywords.tolerance == 100.0
    cols = ["config_key", "val_acc", "saving", "feasible"]
    pd.testing.assert_frame_equal(by_keywords.records[cols], by_objects.records[cols])
    assert by_keywords.chosen == by_objects.chosen
    assert set(by_objects.records["status"]) == {"cached"}


def test_best_so_far_starts_at_fp32_and_only_counts_feasible():
    recs = pd.DataFrame({"order": [1, 2, 3, 4], "status": ["measured", "failed", "cached",
                                                           "measured"],
                         "val_acc": [0.70, np.nan, 0.80, 0.79], "saving": [9.0, 50.0, 4.0, 6.0]})
    assert best_so_far(recs, 0.79)["best_saving"].tolist() == [1.0, 1.0, 4.0, 6.0]


@pytest.mark.slow
def test_default_process_pool_measures_in_spawned_workers(tmp_path):
    result = random_search("Cora", "gcn", **search_args(
        budget=4, seed=0, workers=2, results=tmp_path, **QUICK))
    check_result(result, 4)
    assert set(result.records["status"]) == {"measured"}
    assert result.settings["workers"] == min(2, __import__("os").cpu_count())
    again = random_search("Cora", "gcn", **search_args(
        budget=4, seed=0, executor=SerialExecutor(), results=tmp_path, **QUICK))
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
