"""The confirmation step of a search (against the winner's curse): the top feasible
configurations are fine-tuned again with other seeds, and a lucky one is not chosen."""
from __future__ import annotations

from concurrent.futures import Future

import pandas as pd
import pytest

from sgquant.runner import SerialExecutor
from sgquant.search import SearchResult, cost_model_search, random_search
from sgquant.seeds import confirmation_finetune_seeds, search_finetune_seed

from search_checks import QUICK, check_result, search_args


# ------------------------------------------------------------ confirmation
class RiggedExecutor(SerialExecutor):
    """Serial, but every confirmation fine-tune (a job with a seed other than its search's,
    :func:`sgquant.seeds.search_finetune_seed`) of a configuration in ``sink`` returns
    validation accuracy 0 (a lucky search measurement)."""

    def __init__(self, sink: set[str]) -> None:
        super().__init__()
        self.sink, self.finetune_seeds = sink, []

    def submit(self, fn, job) -> Future:
        if job.finetune_seed == search_finetune_seed(job.fp32.seed):  # a search measurement
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
    # every fine-tune in full: these tests re-measure confirmations by their plain keys
    kw = dict(budget=8, n_iter=1, n_sample=100, seed=1, tolerance=1.0, results=tmp_path,
              fidelity="full", **QUICK)
    plain = cost_model_search("Cora", "gcn", **search_args(
        executor=SerialExecutor(), confirm_top=0, **kw))
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
    result = cost_model_search("Cora", "gcn", **search_args(
        executor=pool, confirm_top=2, confirm_seeds=2, **kw))
    check_result(result, 8)
    assert set(result.records["status"]) == {"cached"}  # the budget was measured by `plain`
    feasible = plain.records[plain.records["feasible"]].sort_values(
        ["saving", "val_acc", "order"], ascending=[False, False, True])
    assert len(feasible) >= 2, "the quick Cora search should find two feasible configurations"
    conf = result.confirmations
    seeds = confirmation_seeds(1, 2, 1)  # search seed 1 on FP32 model 1
    assert seeds == confirmation_finetune_seeds(1, 1, 2) and len(set(seeds)) == 2
    assert not {1, search_finetune_seed(1)} & set(seeds)  # not the search's streams
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
    from sgquant.assignment import as_assignment
    row = result.records[result.records["config_key"] == key].iloc[0]
    return as_assignment(row["assignment"])


def rigged_search(kw: dict, sink: set[str], tmp_path, **settings) -> SearchResult:
    """A search on a private copy of the shared results folder (the driver caches
    what the rigged executor returns, and cached fine-tunes never reach it)."""
    import shutil
    folder = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
    shutil.copytree(PRISTINE[0], folder)
    return cost_model_search("Cora", "gcn", **search_args(
        executor=RiggedExecutor(sink), **{**kw, "results": folder}, **settings))


def test_a_configuration_whose_mean_falls_below_tolerance_is_not_chosen(confirm_setup,
                                                                          tmp_path):
    kw, plain, order = confirm_setup
    # the largest saving passed by luck: its other fine-tunes fail, the next one is chosen
    rigged = rigged_search(kw, {order[0]}, tmp_path, confirm_top=2, confirm_seeds=1)
    check_result(rigged, 8)
    conf = rigged.confirmations
    assert not conf[conf["config_key"] == order[0]]["confirmed"].any()
    assert rigged.chosen is not None and rigged.chosen.key() != order[0]
    assert rigged.chosen_saving < plain.chosen_saving
    # none of the top 2 holds: the next 2 are tried (4 batches at most), then FP32
    lucky = set(order)
    everything = rigged_search(kw, lucky, tmp_path, confirm_top=2, confirm_seeds=1)
    check_result(everything, 8)
    assert everything.chosen is None and everything.chosen_test_acc_mean is None
    assert everything.confirmations["config_key"].tolist() == order[:2 * 4]
    assert "keep FP32" in everything.summary()
    # one rigged configuration rejected, the next batch confirms
    two = rigged_search(kw, set(order[:1]), tmp_path, confirm_top=1, confirm_seeds=1)
    assert two.confirmations["config_key"].tolist() == order[:2]
    assert two.chosen is None or two.chosen.key() == order[1]


def test_rerun_reuses_cached_confirmations(confirm_setup):
    kw, _, _ = confirm_setup
    kw = {**kw, "confirm_top": 2, "confirm_seeds": 3}  # the third seed: new to this folder
    first = cost_model_search("Cora", "gcn", **search_args(executor=SerialExecutor(), **kw))
    third = confirmation_finetune_seeds(1, 1, 3)[2]
    assert (first.confirmations["finetune_seed"] == third).any()
    assert "measured" in set(first.confirmations["status"])
    second = cost_model_search("Cora", "gcn", **search_args(executor=SerialExecutor(), **kw))
    assert set(second.records["status"]) == {"cached"}
    assert set(second.confirmations["status"]) == {"cached"}
    cols = ["config_key", "finetune_seed", "val_acc", "test_acc", "confirmed"]
    pd.testing.assert_frame_equal(first.confirmations[cols], second.confirmations[cols])
    assert first.chosen == second.chosen
    assert first.chosen_test_acc_mean == second.chosen_test_acc_mean


class OtherModelRigged(SerialExecutor):
    """Serial, but every fine-tune from an FP32 model other than the search's (``home``)
    of a configuration in ``sink`` returns validation accuracy 0."""

    def __init__(self, sink: set[str], home: int) -> None:
        super().__init__()
        self.sink, self.home, self.fp32_seeds = sink, home, set()

    def submit(self, fn, job) -> Future:
        self.fp32_seeds.add(job.fp32.seed)
        if job.fp32.seed == self.home:
            return super().submit(fn, job)

        def rigged(job):
            rec = fn(job)
            return {**rec, "val_acc": 0.0} if rec["config_key"] in self.sink else rec
        return super().submit(rigged, job)


def test_other_fp32_models_reject_a_choice_that_holds_only_on_the_search_model(
        confirm_setup, tmp_path):
    """``other_fp32=1``: the fresh fine-tunes also run from FP32 seed + 1, shifted by
    that model's FP32 validation accuracy; a configuration that fails there is not
    chosen although the search model's fine-tunes hold."""
    import shutil

    from sgquant.measure import measure, prepare
    from sgquant.variants import Confirmation

    kw, plain, order = confirm_setup
    folder = tmp_path / "results"
    shutil.copytree(PRISTINE[0], folder)
    conf = Confirmation(top=2, seeds=1, other_fp32=1)
    assert conf.fp32_seeds(1) == [2] and conf.to_dict()["other_fp32"] == 1
    pool = OtherModelRigged({order[0]}, home=1)
    result = cost_model_search("Cora", "gcn", **search_args(
        executor=pool, confirmation=conf, **{**kw, "results": folder}))
    check_result(result, 8)
    c = result.confirmations
    assert pool.fp32_seeds == {1, 2} and sorted(set(c["fp32_seed"])) == [1, 2]
    assert not c[c["config_key"] == order[0]]["confirmed"].any()
    assert result.chosen is None or result.chosen.key() != order[0]
    # an unrigged fine-tune on model 2 is shifted by the two models' FP32 validation accuracy
    base, other = prepare("Cora", "gcn", 1, "quick", str(folder)), prepare(
        "Cora", "gcn", 2, "quick", str(folder))
    row = c[(c["config_key"] == order[1]) & (c["fp32_seed"] == 2)].iloc[0]
    rec = measure(other, as_assignment_of(result, order[1]), results=str(folder),
                  finetune_seed=int(row["finetune_seed"]),
                  finetune=conf.finetune(result_finetune(result), QUICK_EPOCHS))
    assert rec["cached"]
    assert row["val_acc"] == pytest.approx(rec["val_acc"] - other.fp32["val_acc"]
                                           + base.fp32["val_acc"])
    with pytest.raises(ValueError, match="other_fp32"):
        Confirmation(other_fp32=-1)
    # held-out only: no fine-tune from the search model, epoch 0 allowed on the other one
    with pytest.raises(ValueError, match="search_model=False needs other_fp32"):
        Confirmation(search_model=False)
    held = Confirmation(top=2, seeds=1, other_fp32=1, search_model=False, fresh_only=True)
    out = cost_model_search("Cora", "gcn", **search_args(
        executor=SerialExecutor(), confirmation=held, **{**kw, "results": folder}))
    assert set(out.confirmations["fp32_seed"]) == {2}
    assert out.settings["confirmation"]["search_model"] is False
    if out.chosen is not None:
        assert out.chosen_test_acc_mean == pytest.approx(float(out.confirmations[
            out.confirmations["config_key"] == out.chosen.key()]["test_acc"].mean()))


#: the quick profile's fine-tune epochs (what ``Finetune(epochs=None)`` means there)
QUICK_EPOCHS = 3


def test_ladder_steps_down_the_savings_and_confirmation_runs_at_the_final_length(
        confirm_setup, tmp_path):
    """``ladder``: after a failed batch the next one takes the largest savings at most
    ``ladder`` times the failed batch's smallest; ``epochs_factor``: the extra fine-tunes
    run that many times the candidates' epochs (cached under that length)."""
    from sgquant.measure import measure, prepare
    from sgquant.profiles import get_profile
    from sgquant.train import Finetune
    from sgquant.variants import Confirmation

    assert get_profile("quick").finetune_epochs == QUICK_EPOCHS
    kw, plain, order = confirm_setup
    feasible = plain.records[plain.records["feasible"]].sort_values(
        ["saving", "val_acc", "order"], ascending=[False, False, True])
    savings = dict(zip(feasible["config_key"], feasible["saving"]))
    # every configuration fails its confirmation: the batches are all that is tried
    walked = rigged_search(kw, set(order), tmp_path,
                           confirmation=Confirmation(top=1, seeds=1, ladder=0.9))
    tried = walked.confirmations["config_key"].tolist()
    expected, rest = [], list(order)
    while rest and len(expected) < 4:
        expected.append(rest[0])
        rest = [k for k in rest[1:] if savings[k] <= 0.9 * savings[expected[-1]]]
    assert 1 < len(expected) < 4 and expected != order[:len(expected)], \
        "the fixture's savings should make the ladder skip one and stop early"
    assert walked.chosen is None and tried == expected
    assert walked.confirmations["rank"].tolist() == [order.index(k) + 1 for k in expected]
    in_order = rigged_search(kw, set(order), tmp_path,
                             confirmation=Confirmation(top=1, seeds=1))
    assert in_order.confirmations["config_key"].tolist() == order[:4]
    # confirmed at twice the candidates' length: the cache holds those fine-tunes
    folder = tmp_path / "long"
    import shutil
    shutil.copytree(PRISTINE[0], folder)
    conf = Confirmation(top=1, seeds=1, epochs_factor=2)
    assert conf.finetune(Finetune(), QUICK_EPOCHS).epochs == 2 * QUICK_EPOCHS
    assert conf.finetune(Finetune(epochs=5), QUICK_EPOCHS).epochs == 10
    assert Confirmation().finetune(Finetune(), QUICK_EPOCHS).epochs is None
    long = cost_model_search("Cora", "gcn", **search_args(
        executor=SerialExecutor(), confirmation=conf, **{**kw, "results": folder}))
    row = long.confirmations.iloc[0]
    setup = prepare("Cora", "gcn", 1, "quick", str(folder))
    rec = measure(setup, as_assignment_of(long, row["config_key"]), results=str(folder),
                  finetune_seed=int(row["finetune_seed"]),
                  finetune=Finetune(epochs=2 * QUICK_EPOCHS))
    assert rec["cached"] and rec["val_acc"] == pytest.approx(row["val_acc"])
    assert long.settings["confirmation"]["epochs_factor"] == 2
    for bad, match in [(dict(ladder=0), "ladder"), (dict(ladder=1.5), "ladder"),
                       (dict(epochs_factor=0), "epochs_factor")]:
        with pytest.raises(ValueError, match=match):
            Confirmation(**bad)


def result_finetune(result: SearchResult):
    from sgquant.train import Finetune
    return Finetune.from_dict(result.settings["finetune"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(confirm_top=-1), "confirm_top must be an integer >= 0"),
    (dict(confirm_top=1.5), "confirm_top"),
    (dict(confirm_seeds=0), r"confirm_seeds must be an integer in \[1, 999\], got 0"),
    (dict(confirm_seeds=1000), "confirm_seeds must be an integer in"),
])
def test_confirmation_settings_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_search("Cora", "gcn", **search_args(**{**QUICK, **kwargs}))


def test_sgquant_plus_clips_by_mse_and_the_earlier_version_runs_by_name():
    """SGQuant+ clips its hidden and attention ranges only where that lowers the squared
    error; ``sgquant+p99``, the earlier SGQuant+ that always clipped, differs from it in
    those ranges alone (same fine-tuning and confirmation), runs by name and sits in no
    default table."""
    from dataclasses import replace

    from sgquant.variants import ABLATION, TRIALS, VARIANTS, get_variant

    earlier, plus = get_variant("sgquant+p99"), get_variant("sgquant+")
    assert earlier in TRIALS and earlier.name not in VARIANTS
    assert earlier.name not in {v.name for v in ABLATION}
    for point in ("att_L1", "emb_L2"):
        assert plus.options.for_point(point).clip_rule == "mse"
        assert earlier.options.for_point(point).clip_rule == "always"
        assert plus.options.for_point(point).clip_percentile == 99.0
    assert earlier.options.for_point("emb_L1") == plus.options.for_point("emb_L1")
    assert plus.options.for_point("emb_L1").clip_percentile is None  # inputs: min/max
    # the ablation's quantizer steps use SGQuant+'s quantizer
    steps = {v.name: v for v in ABLATION}
    assert steps["quantizer"].options == steps["distillation"].options == plus.options
    assert replace(earlier, name=plus.name, label=plus.label, options=plus.options,
                   note=plus.note) == plus
    with pytest.raises(ValueError, match="variant"):
        get_variant("sgquant+mse")
