"""The protocol holds: no choice reads the test labels (book/architecture.md: test data is
for the final report only).

Each run is made twice, each time into its own empty results folder: on Cora's labels,
and with the test nodes' labels permuted among themselves
(:func:`sgquant.data.permuted_test_labels`: seeded, class counts kept, every other field
untouched). Everything but test accuracies must then come out byte-identical: every
record the run wrote (FP32 summaries: epochs run, best epoch, validation accuracy; the
FP32 weights; every fine-tune: search candidates, confirmations, final fine-tunes) and
every value the run returned (search records, confirmation rows, chosen configurations,
chapter tables), fields named ``*test*`` (and the test drop) and wall times aside. The
test accuracies must differ, so the permutation changed what a leak would read; and a
chooser made to read test accuracy must be caught (the controls).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import pytest
import torch

from sgquant.assignment import BitAssignment
from sgquant.data import (PERMUTE_ENV, dataset_key, label_permutation_seed, load_dataset,
                          permute_test_labels, permuted_test_labels)
from sgquant.profiles import get_profile
from sgquant.runner import jobs
from sgquant.search import SearchResult, cost_model_search, random_search
from sgquant.seeds import DEVELOPMENT
from sgquant.settings import RunSettings

pytestmark = pytest.mark.usefixtures("one_thread", "cora")

#: The seed of the test labels' permutation.
PERMUTATION = 0
#: What a key carries under the permutation (:func:`sgquant.data.dataset_key`).
PERMUTED = f"|test-labels-permuted-seed{PERMUTATION}"
#: Tiny budgets: every step of the protocol, in seconds.
PROFILE = get_profile("quick", fp32_epochs=15, patience=10, finetune_epochs=1,
                      search_budget=6, search_sample=100, search_iterations=2,
                      search_seeds=1, seeds=1, granularity_samples=2)
#: Fields computed from test accuracy whose names do not say ``test``.
TEST_DERIVED = frozenset({"acc_drop", "acc_drop_std", "over_tolerance"})
VARIANTS = ("sgquant", "sgquant+")
#: Points of validation accuracy a choice may lose: wide enough at these budgets that every
#: search finds feasible configurations, so its confirmation runs too.
TOLERANCE = 2.0


# ------------------------------------------------------------------ comparing two runs
def _plain(obj: Any) -> Any:
    """``obj`` as JSON-like dicts and lists (tables as their records, in order)."""
    if isinstance(obj, SearchResult):
        return obj.to_dict()
    if isinstance(obj, BitAssignment):
        return obj.to_json()
    if isinstance(obj, pd.DataFrame):
        return {"columns": [str(c) for c in obj.columns],
                "rows": [_plain(r) for r in obj.to_dict(orient="records")]}
    if isinstance(obj, pd.Series):
        return _plain(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj.item() if hasattr(obj, "item") and not isinstance(obj, torch.Tensor) else obj


def _leaves(obj: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """``(path, value as JSON text)`` of every leaf: floats in full (``repr``), NaN as
    ``NaN``; the path's last name is the field's."""
    if isinstance(obj, dict):
        for k in sorted(obj):
            yield from _leaves(obj[k], (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, i))
    else:
        yield path, json.dumps(obj, sort_keys=True, default=str)


def _name(path: tuple) -> str:
    names = [p for p in path if isinstance(p, str)]
    return names[-1] if names else ""


def _is_test(path: tuple) -> bool:
    """A field named ``*test*``, one of :data:`TEST_DERIVED`, or the test drop of Table
    III's ``search_choices`` (saving, test drop, validation drop)."""
    name = _name(path)
    return ("test" in name.lower() or name in TEST_DERIVED
            or (len(path) > 2 and path[-3] == "search_choices" and path[-1] == 1))


def _fields(obj: Any) -> tuple[dict, dict]:
    """(what a choice may depend on, the test fields) of ``obj``, leaf by leaf; wall
    times (``*seconds``) and the process that ran a job (``worker``: ``host:pid``) in
    neither. A table's column list is kept as a choice field."""
    choice, test = {}, {}
    for path, value in _leaves(_plain(obj)):
        name = _name(path)
        if name.endswith("seconds") or name == "worker":
            continue
        (test if _is_test(path) else choice)[path] = value
    return choice, test


def differences(a: Any, b: Any) -> list[str]:
    """The paths (outside the test fields and wall times) where ``a`` and ``b`` differ."""
    ca, cb = _fields(a)[0], _fields(b)[0]
    return [f"{'/'.join(map(str, p))}: {ca.get(p)} != {cb.get(p)}"
            for p in sorted(set(ca) | set(cb), key=str) if ca.get(p) != cb.get(p)]


def _state_digest(path: Path) -> str:
    return jobs.state_digest(jobs.state_arrays(torch.load(path, weights_only=True)))


def cache_records(folder: Path) -> dict[str, dict]:
    """Every record of a results folder by ``kind`` and key (the permutation's mark taken
    out of the key), an FP32 model's with its ``weights`` (a hash of their bytes)."""
    out = {}
    for path in sorted(folder.glob("*/*.json")):
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or set(record) != {"key", "value"}:
            continue
        key = json.dumps(record["key"], sort_keys=True).replace(PERMUTED, "")
        value = dict(record["value"])
        if path.with_suffix(".pt").exists():
            value["weights"] = _state_digest(path.with_suffix(".pt"))
        out[f"{path.parent.name} {key}"] = value
    return out


def twice(tmp_path: Path, run: Callable[[RunSettings], Any]) -> list[tuple[Any, dict]]:
    """``run`` on the real labels, then on permuted test labels, each with its own empty
    results folder, in this process: (its value, the records it wrote) of each."""
    out = []
    for name, seed in (("labels", None), ("permuted", PERMUTATION)):
        folder = tmp_path / name
        assert not folder.exists()
        with permuted_test_labels(seed):
            value = run(RunSettings.resolve(PROFILE, device="cpu", workers=0, results=folder))
        out.append((value, cache_records(folder)))
    return out


def check_protocol(pair: list[tuple[Any, dict]]) -> None:
    """Everything but test accuracies is byte-identical across the two runs (their values
    and every record they wrote: FP32 models with their weights, fine-tunes); they
    trained and fine-tuned, and their test accuracies differ."""
    (value, records), (permuted, permuted_records) = pair
    assert differences(value, permuted) == []
    assert differences(records, permuted_records) == []
    assert {"fp32", "measure"} <= {k.split()[0] for k in records}
    assert all({"epoch", "epochs_run", "val_acc", "weights"} <= set(v)
               for k, v in records.items() if k.startswith("fp32 "))
    for kind in ("fp32", "measure"):  # a model predicting one class keeps its test accuracy
        changed = [k for k, v in records.items() if k.startswith(f"{kind} ")
                   and _fields(v)[1] != _fields(permuted_records[k])[1]]
        assert changed, f"the permutation changed no {kind} record's test accuracy"


# ------------------------------------------------------------------ the permutation
def test_permuting_test_labels_changes_only_the_test_labels(cora):
    out = permute_test_labels(cora, PERMUTATION)
    test = cora.test_mask
    assert torch.equal(out.y[~test], cora.y[~test])
    assert torch.equal(out.y[test].bincount(), cora.y[test].bincount())
    assert (out.y[test] != cora.y[test]).float().mean() > 0.5
    for name in ("x", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(out[name], cora[name])
    assert torch.equal(permute_test_labels(cora, PERMUTATION).y, out.y)  # seeded
    assert not torch.equal(permute_test_labels(cora, PERMUTATION + 1).y, out.y)


def test_the_permutation_applies_to_every_load_and_names_itself_in_the_key(monkeypatch):
    with permuted_test_labels(PERMUTATION):
        loaded = load_dataset("Cora")
        assert dataset_key("Cora") == f"Cora{PERMUTED}"
    assert dataset_key("Cora") == "Cora"
    assert torch.equal(loaded.y, permute_test_labels(load_dataset("Cora"), PERMUTATION).y)
    monkeypatch.setenv(PERMUTE_ENV, "one")
    with pytest.raises(ValueError, match=PERMUTE_ENV):
        load_dataset("Cora")



@pytest.mark.slow
def test_measurement_processes_started_under_the_permutation_load_it():
    from sgquant.runner import make_executor

    with permuted_test_labels(PERMUTATION):
        pool = make_executor(1)
        try:
            assert pool.submit(label_permutation_seed).result() == PERMUTATION
            loaded = pool.submit(load_dataset, "Cora").result()
        finally:
            pool.shutdown()
    assert torch.equal(loaded.y, permute_test_labels(load_dataset("Cora"), PERMUTATION).y)

def test_the_comparison_ignores_test_fields_and_wall_times_only():
    a = pd.DataFrame({"config": ["x"], "val_acc": [0.5], "test_acc": [0.1],
                      "acc_drop": [1.0], "seconds": [3.0]})
    b = a.assign(test_acc=0.2, acc_drop=2.0, seconds=4.0)
    assert differences(a, b) == []
    assert differences(a, a.assign(val_acc=math.nextafter(0.5, 1))) != []
    assert differences(a, a.assign(config="y")) != []
    assert differences(a, a.assign(extra=1)) != []


# ------------------------------------------------------------------ searches, chapter 3
def _searches_and_table3(settings: RunSettings) -> dict:
    """Both searches with both variants on Table III's search model, then chapter 3's
    Table III runs (both variants' searches, here read from the cache and chosen again,
    and the final fine-tunes of their choices), all in one results folder. Also each
    search's candidate at a given saving (at_paper_info, chosen on validation) and
    what the paper's saving costs (at_paper_runs)."""
    from sgquant.chapters import at_paper, table3

    out: dict[str, Any] = {}
    for variant in VARIANTS:
        for method, search in (("random", random_search), ("cost-model", cost_model_search)):
            result = search("Cora", "gcn", variant=variant, settings=settings, seed=0,
                            fp32_seed=DEVELOPMENT.search_fp32(0), tolerance=TOLERANCE, progress=False)
            out[f"{method} {variant}"] = result
            out[f"at 2x {method} {variant}"] = at_paper.at_paper_info(result, 2.0)
    runs = table3.overall_runs("Cora", "gcn", settings, tolerance=TOLERANCE,
                               include_missing=False)
    out["table3"] = {"runs": runs, "table": table3.overall_table(runs, TOLERANCE),
                     "at_paper": at_paper.at_paper_runs(runs, settings)}
    return out


@pytest.fixture(scope="module")
def searched(cora, tmp_path_factory) -> list[tuple[Any, dict]]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return twice(tmp_path_factory.mktemp("protocol"), _searches_and_table3)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("method", ["random", "cost-model"])
def test_a_search_chooses_the_same_on_permuted_test_labels(searched, method, variant):
    """Records, confirmation rows and the chosen configuration (everything but test
    accuracies) are byte-identical; the confirmation ran, so it is compared too."""
    (value, _), (permuted, _) = searched
    result, other = value[f"{method} {variant}"], permuted[f"{method} {variant}"]
    assert differences(result, other) == []
    assert result.chosen is not None and result.num_confirmations > 0
    assert result.chosen_test_acc_mean != other.chosen_test_acc_mean


def test_table3_chooses_the_same_on_permuted_test_labels(searched):
    (value, _), (permuted, _) = searched
    assert differences(value["table3"], permuted["table3"]) == []
    runs = value["table3"]["runs"]
    assert set(runs["variant"]) == set(VARIANTS)
    assert (runs["search_confirmations"] > 0).all()
    assert all(value[f"at 2x {m} {v}"]["at_paper_json"] for m in ("random", "cost-model")
               for v in VARIANTS)
    assert list(runs["test"]) != list(permuted["table3"]["runs"]["test"])


def test_every_record_written_is_the_same_on_permuted_test_labels(searched):
    """FP32 models (epochs run, best epoch, validation accuracy, weights) and every
    fine-tune (candidates, confirmations, final fine-tunes); test accuracies differ."""
    check_protocol(searched)


def test_a_search_that_reads_test_accuracy_is_caught(tmp_path, monkeypatch):
    """The control: measurements that report test accuracy as validation accuracy (a
    chooser reading test) make the comparison fail."""
    real = jobs.finetune_record

    def leaky(*args: Any, **kwargs: Any) -> dict:
        record = real(*args, **kwargs)
        return {**record, "val_acc": record["test_acc"]}

    monkeypatch.setattr(jobs, "finetune_record", leaky)
    (value, records), (permuted, permuted_records) = twice(
        tmp_path, lambda s: random_search("Cora", "gcn", variant="sgquant", settings=s,
                                          tolerance=TOLERANCE, progress=False))
    assert any("val_acc" in d for d in differences(value, permuted))
    assert any("val_acc" in d for d in differences(records, permuted_records))
    with pytest.raises(AssertionError):
        check_protocol([(value, records), (permuted, permuted_records)])


# ------------------------------------------------------------------ the other chapters
@pytest.mark.slow
def test_granularity_chooses_the_same_on_permuted_test_labels(tmp_path):
    """Chapter 4: the Pareto fronts (validation error against memory), the comparison at
    equal memory and the sensitivity claims."""
    from sgquant.chapters import granularity as G

    def run(settings: RunSettings) -> dict:
        runs = G.granularity_runs("Cora", "gcn", settings)
        front = G.pareto_front(runs)
        sensitivity = G.sensitivity_runs("Cora", "gcn", settings, bits=(1, 4))
        return {"runs": runs, "front": front, "comparison": G.granularity_comparison(front),
                "claims": G.sensitivity_claims(sensitivity, TOLERANCE)}

    check_protocol(twice(tmp_path, run))


@pytest.mark.slow
def test_autobit_chooses_the_same_on_permuted_test_labels(tmp_path):
    """Chapter 5: the three searches (paper's steps, default cost model, random) and the
    summary of their choices."""
    from sgquant.chapters import autobit

    def run(settings: RunSettings) -> dict:
        results = autobit.autobit_runs("Cora", "gcn", settings, tolerance=TOLERANCE)
        return {"searches": results, "summary": autobit.autobit_summary(results)}

    check_protocol(twice(tmp_path, run))


def _top_on_test(runs: pd.DataFrame, k: int = 3) -> list[str]:
    """The control: a chooser that keeps the ``k`` configurations of highest *test*
    accuracy."""
    top = runs.sort_values("test", ascending=False, kind="stable").head(k)
    return [f"{r.method} {r.config_key}" for r in top.itertuples()]


@pytest.mark.slow
def test_peers_choose_the_same_on_permuted_test_labels(tmp_path):
    """Chapter 8: the fronts (chosen on validation), the point beside each published one
    (best_within_bits) and the ablation; a chooser on test is caught."""
    from sgquant.chapters import peers as P
    from sgquant.variants import ABLATION

    pairs = (("Cora", "gcn"),)

    def run(settings: RunSettings) -> dict:
        runs = P.front_runs(pairs, settings, tolerance=TOLERANCE)
        fronts = P.pareto_fronts(runs)
        chosen = {f"{r.method} {method}": P.best_within_bits(front, r.average_bits)
                  for r in P.peer_points(pairs).itertuples()
                  for method, front in fronts.groupby("method", sort=False)}
        ablation = P.ablation_table(P.ablation_runs(pairs, settings, tolerance=TOLERANCE),
                                    TOLERANCE)
        return {"runs": runs, "fronts": fronts, "chosen": chosen, "ablation": ablation}

    pair = twice(tmp_path, run)
    check_protocol(pair)
    (value, _), (permuted, _) = pair
    assert any(c is not None for c in value["chosen"].values())
    assert len(value["ablation"]) == len(ABLATION)  # each step, paper's method to SGQuant+
    assert _top_on_test(value["runs"]) != _top_on_test(permuted["runs"])


@pytest.mark.slow
def test_below_one_bit_chooses_the_same_on_permuted_test_labels(tmp_path):
    """Chapter 7: the configuration chapter 3's SGQuant+ search chooses, and the bytes of
    every storage at it."""
    from sgquant.chapters import below_one_bit as B

    def run(settings: RunSettings) -> dict:
        tables = B.below_one_bit_tables("Cora", "gcn", settings, bits=(1, 2), repeats=1)
        return {"chosen": list(tables["timing"]["assignment"]), "totals": tables["totals"]}

    check_protocol(twice(tmp_path, run))


@pytest.mark.slow
def test_rematching_chooses_the_same_on_permuted_test_labels(tmp_path):
    """Chapter 6: the rounding options, averaged and ranked on validation."""
    from sgquant.chapters import rematching as R

    def run(settings: RunSettings) -> dict:
        table = R.rounding_table("Cora", "gcn", (1, 2), seeds=[0], profile=PROFILE,
                                 results=str(settings.results))
        summary = R.rounding_summary(table)
        best = summary.loc[summary.groupby(["target", "bits"])["val"].idxmax(), "option"]
        return {"table": table, "summary": summary, "best": list(best)}

    check_protocol(twice(tmp_path, run))
