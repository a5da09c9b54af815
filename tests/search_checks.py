"""Shared by the search tests: Cora's GCN layout, quick settings, the invariants of
any search result, and a complete fake measurement record."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from sgquant.assignment import BitAssignment
from sgquant.memory import FeatureLayout, LayerLayout
from sgquant.search import SearchResult, SearchSpec
from sgquant.settings import RunSettings

#: Cora's GCN layout with 3 degree buckets (sizes as sgquant.data computes them).
CORA_LAYOUT = FeatureLayout((1068, 942, 698), (LayerLayout(1433, 13264, 1),
                                               LayerLayout(32, 13264, 1)), 46119)
QUICK = dict(profile="quick", progress=False)

_SPEC_FIELDS = {f.name for f in dataclasses.fields(SearchSpec)}
_RUN_FIELDS = {f.name for f in dataclasses.fields(RunSettings)}


def search_args(**kw: Any) -> dict:
    """Keyword arguments by name as a search's ``spec`` (a :class:`SearchSpec`),
    ``settings`` (a :class:`RunSettings`) and the rest (``executor``, ``progress``)."""
    spec = {k: kw.pop(k) for k in list(kw) if k in _SPEC_FIELDS}
    run = {k: kw.pop(k) for k in list(kw) if k in _RUN_FIELDS}
    return dict(spec=SearchSpec(**spec), settings=RunSettings.resolve(**run), **kw)


def check_result(result: SearchResult, budget: int) -> None:
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
            c = result.settings.get("confirmation") or {}
            models = int(c.get("search_model", True)) + int(c.get("other_fp32", 0))
            assert len(mine) == result.confirm_seeds * models and mine["confirmed"].all()
            assert result.chosen_val_acc_mean >= result.threshold - 1e-6
            own = [] if c.get("fresh_only") else [result.chosen_val_acc]
            assert result.chosen_val_acc_mean == pytest.approx(
                np.mean([*own, *mine["val_acc"]]))
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
    check_cost(result)
    assert again.cost == result.cost


def check_cost(result: SearchResult) -> None:
    """The search's cost by purpose: one job per configuration measured (cached or
    not), each the epochs it ran (at most the search's fine-tune epochs: a fine-tune may
    stop early, sgquant.fidelity); one per confirmation fine-tune; its FP32 model(s);
    and the summary says so."""
    from sgquant.profiles import get_profile

    recs, conf, cost = result.records, result.confirmations, result.cost
    measured = recs.loc[recs["status"] != "failed", "config_key"].nunique()
    epochs = (result.settings.get("finetune") or {}).get("epochs") \
        or get_profile(result.profile).finetune_epochs
    assert cost.get("candidate", {}).get("jobs", 0) == measured
    ran = recs[recs["status"] != "failed"].drop_duplicates("config_key")["epochs_run"]
    assert ran.between(0, epochs).all()
    assert cost.get("candidate", {}).get("epochs", 0) == int(ran.sum())
    fresh = conf[conf["status"] != "failed"] if len(conf) else conf
    n_conf = len(fresh.drop_duplicates(["config_key", "finetune_seed", "fp32_seed"])) \
        if len(fresh) else 0
    assert cost.get("confirmation", {}).get("jobs", 0) == n_conf
    assert cost["fp32"]["jobs"] >= 1 and cost["fp32"]["epochs"] >= 1
    assert "spent: fp32" in result.summary()


def fake_record(job, val: float, worker: str = "oracle") -> dict:
    """A complete measurement record of ``job`` with validation accuracy ``val``."""
    from sgquant.measure import Measurement, memory_record
    setup = job.fp32.setup()
    a = BitAssignment.from_dict(job.assignment)
    fp32 = setup.fp32
    return Measurement(
        dataset=setup.dataset, model=setup.model_name, seed=setup.seed,
        finetune_seed=job.finetune_seed,
        assignment=a.to_dict(), config_key=a.key(), val_acc=val, test_acc=val,
        best_test_acc=val, epoch=0, val_acc_before=val, fp32_val_acc=fp32["val_acc"],
        fp32_test_acc=fp32["test_acc"], fp32_best_test_acc=fp32["best_test_acc"],
        **memory_record(setup, a), rounding="floor", clip_percentile=None,
        options={"rounding": "floor", "clip_percentile": None},
        finetune={"epochs": None, "keep_epoch0": True, "distill": None}, seconds=0.0,
        worker=worker).to_record()
