"""Fine-tunes that stop early (sgquant.fidelity): the rules, their refusals, and the
search decisions they must not change."""
from __future__ import annotations

import re

import pytest
import torch

from sgquant.assignment import BitAssignment
from sgquant.fidelity import FIDELITIES, Fidelity, StopRule, get_fidelity
from sgquant.runner import SerialExecutor
from sgquant.runner.ledger import record_cost
from sgquant.search import SearchSpec, random_search
from sgquant.search.confirm import every_run_must_pass
from sgquant.settings import RunSettings
from sgquant.train import Finetune, train_model
from sgquant.variants import Confirmation, VARIANTS

from search_checks import check_result, fake_record


@pytest.mark.parametrize("kw, words", [
    (dict(rung=0.0), "fidelity rung"), (dict(rung=-0.2), "fidelity rung"),
    (dict(rung=1.5), "1 is the whole fine-tune"), (dict(margin=-1.0), "fidelity margin"),
    (dict(stop_when_feasible="yes"), "stop_when_feasible"), (dict(rung=float("nan")), "rung"),
])
def test_a_fidelity_that_cannot_run_is_refused_by_name(kw, words):
    with pytest.raises(ValueError, match=words):
        Fidelity("bad", **kw)


def test_fidelities_by_name_and_unknown_names():
    assert get_fidelity(None) is FIDELITIES["thrifty"]
    assert get_fidelity("full").is_full and not get_fidelity("thrifty").is_full
    with pytest.raises(ValueError, match="fidelity"):
        get_fidelity("fast")
    with pytest.raises(ValueError, match="fidelity"):
        SearchSpec(fidelity="fast")
    with pytest.raises(ValueError, match="rung_floor"):
        StopRule(rung_epoch=3)
    with pytest.raises(ValueError, match="rung_epoch"):
        StopRule(rung_epoch=0, rung_floor=0.5)


def test_rules_from_a_fidelity():
    f = Fidelity("f", stop_when_feasible=True, rung=0.3, margin=5.0)
    r = f.rule(0.8, 10)
    assert (r.stop_at, r.rung_epoch) == (0.8, 3) and r.rung_floor == pytest.approx(0.75)
    assert r.stops(0, 0.8) and not r.stops(2, 0.7) and r.stops(3, 0.7) and not r.stops(3, 0.76)
    assert f.rule(0.8, 10, confirmation=True).rung_epoch is None  # confirm_rung False
    assert f.rule(0.8, 10, averaged=True).stop_at is None
    assert f.rule(0.8, 1).rung_epoch is None  # a rung at the last epoch saves nothing
    assert get_fidelity("full").rule(0.8, 10) is None
    ft = Finetune(stop=r)
    assert Finetune.from_dict(ft.to_dict()) == ft
    assert "stop" not in Finetune().to_dict()  # older records and keys read alike


def test_training_stops_once_the_rule_says_so(tiny_graph):
    from sgquant.models import build_model

    def run(stop):
        torch.manual_seed(0)
        net = build_model("gcn", tiny_graph.num_features, int(tiny_graph.y.max()) + 1)
        return train_model(net, tiny_graph, epochs=30, patience=None, seed=0,
                           evaluate_before=True, stop=stop)
    full = run(None)
    target = full.history[5]["val"]
    first = next(h["epoch"] for h in full.history if h["val"] >= target)
    stopped = run(StopRule(stop_at=target))
    assert stopped.epochs_run == first < full.epochs_run
    assert stopped.val_acc >= target
    hopeless = run(StopRule(rung_epoch=2, rung_floor=2.0))  # no accuracy reaches 2
    assert hopeless.epochs_run == 2


def test_the_ledger_counts_the_epochs_a_fine_tune_ran():
    key = {"finetune_epochs": 10}
    assert record_cost("measure", key, {"epochs_run": 3, "seconds": 1.0}) == (3, 1.0)
    assert record_cost("measure", key, {"seconds": 1.0}) == (10, 1.0)  # an older record


def test_every_run_rule():
    plus = VARIANTS["sgquant+"].confirmation
    assert every_run_must_pass(plus)  # two fresh fine-tunes, bound = their minimum
    assert not every_run_must_pass(VARIANTS["sgquant"].confirmation)  # a mean with the search's
    assert not every_run_must_pass(Confirmation(fresh_only=True, level=0.5))  # a mean of two
    assert not every_run_must_pass(Confirmation(fresh_only=True, seeds=3, level=0.75))


@pytest.mark.parametrize("variant", ["sgquant+"])
def test_stopping_once_feasible_changes_no_decision_of_a_random_search(tmp_path, variant):
    """Random search draws the same configurations whatever they measure; stopping once
    within tolerance keeps every candidate's feasibility and, for a confirmation that needs
    every fresh fine-tune within tolerance, every confirmation decision: same choice, fewer
    epochs."""
    feasible_only = Fidelity("feasible-only", stop_when_feasible=True)
    out = {}
    for name, fid in (("full", "full"), ("stop", feasible_only)):
        settings = RunSettings.resolve(profile="quick", results=tmp_path / name, workers=0)
        out[name] = random_search("Cora", "gcn", SearchSpec(budget=8, seed=3, tolerance=1.0,
                                                            variant=variant, fidelity=fid),
                                  settings=settings, executor=SerialExecutor(), progress=False)
        check_result(out[name], 8)
    full, stop = out["full"], out["stop"]
    assert full.records["feasible"].tolist() == stop.records["feasible"].tolist()
    assert full.records["feasible"].any()
    assert (full.chosen is None) == (stop.chosen is None)
    if full.chosen is not None:
        assert full.chosen.key() == stop.chosen.key()
    decisions = lambda r: r.confirmations.groupby("config_key")["confirmed"].first().to_dict()
    assert decisions(full) == decisions(stop)
    spent = lambda r: sum(c["epochs"] for p, c in r.cost.items() if p != "fp32")
    assert spent(stop) < spent(full)
    assert (stop.records["epochs_run"] <= full.records["epochs_run"]).all()


# ------------------------------------------------------------- epoch budget
class _EpochOracle(SerialExecutor):
    """Records shaped like a thrifty search's: a configuration with every hidden field
    at >= 4 bits keeps FP32 accuracy and stops after one epoch; any other drops and
    runs the full fine-tune (the quick profile's 3 epochs)."""

    def submit(self, fn, job):
        a = BitAssignment.from_dict(job.assignment)
        good = min(b for f, b in a.flat().items() if not f.startswith("emb_L1")) >= 4
        return super().submit(_record_with_epochs, job, good)


def _record_with_epochs(job, good: bool) -> dict:
    fp32 = job.fp32.summary["val_acc"]
    return {**fake_record(job, fp32 if good else fp32 - 0.2), "epochs_run": 1 if good else 3}


@pytest.mark.parametrize("method", ["cost-model", "random"])
def test_an_epoch_budget_runs_rounds_until_its_epochs_are_spent(tmp_path, method):
    """Rounds of n_mea (budget 8, quick profile: first round 4 for the cost model, then
    2 a round; random search measures 2 a round) until the candidates' epochs reach the
    budget: the last round passes it, the one before did not; cheap candidates buy more
    configurations than the configuration budget; a rerun reads everything back."""
    from sgquant.search import search
    spec = SearchSpec(budget=8, epoch_budget=30, seed=1, confirm_top=0)
    kw = dict(settings=RunSettings.resolve(profile="quick", results=tmp_path),
              executor=_EpochOracle(), progress=False)
    result = search("Cora", "gcn", method, spec, **kw)
    recs = result.records
    spent = recs["epochs_run"].cumsum()
    last = recs["iteration"].max()
    assert spent.iloc[-1] >= 30 and spent[recs["iteration"] < last].iloc[-1] < 30
    assert result.settings["epochs_spent"] == spent.iloc[-1]
    assert f"{spent.iloc[-1]} epochs of an epoch budget of 30" in result.summary()
    sizes = recs.groupby("iteration").size()
    assert sizes.iloc[1:].tolist() == [2] * (len(sizes) - 1)
    assert sizes.iloc[0] == (4 if method == "cost-model" else 2)
    assert len(recs) > 8  # feasible candidates cost one epoch each
    again = search("Cora", "gcn", method, spec, **kw)
    assert set(again.records["status"]) == {"cached"}
    assert again.records["config_key"].tolist() == recs["config_key"].tolist()


@pytest.mark.parametrize("epoch_budget, words", [
    (0, "epoch_budget must be an integer >= 1"), (-5, "epoch_budget must be"),
    (2.5, "epoch_budget must be"), (2, "epoch_budget 2 is less than one candidate's "
                                      "fine-tune (3 epochs)")])
def test_an_epoch_budget_that_cannot_run_is_refused_by_name(tmp_path, epoch_budget, words):
    from sgquant.search import search
    with pytest.raises(ValueError, match=re.escape(words)):
        search("Cora", "gcn", "random", SearchSpec(budget=4, epoch_budget=epoch_budget),
               settings=RunSettings.resolve(profile="quick", results=tmp_path),
               executor=_EpochOracle(), progress=False)
