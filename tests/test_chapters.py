"""The chapters package: how it loads, the Chapter classes the notebooks drive, and the
walks each chapter takes through the library (its import rules and sizes are
tests/test_architecture.py's)."""
from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sgquant import chapters as C
from sgquant import plots as P

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sgquant"


# ------------------------------------------------------------------ structure
# (the package's import rules and sizes: tests/test_architecture.py)
def test_chapter_modules_load_on_first_use():
    """A measurement worker imports only what its job needs: not matplotlib."""
    code = ("import sys, sgquant.chapters.common, sgquant.chapters as C; "
            "print('matplotlib' in sys.modules, 'sgquant.chapters.overall' in sys.modules); "
            "C.overall; print('sgquant.chapters.overall' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.split()
    assert out == ["False", "False", "True"]
    assert set(C.CHAPTERS.values()) <= set(dir(C))


def test_labels_are_defined_once():
    from sgquant.chapters import granularity

    assert granularity.GRANULARITIES is P.GRANULARITY_ORDER
    sources = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    # a model's label is its registry entry's (models/<name>.py), nowhere else
    assert not re.findall(r'"gcn": "GCN"', sources)
    assert sources.count('ModelEntry("gcn", GCN, "GCN"') == 1
    assert len(re.findall(r'"CWQ \(component\)"', sources)) == 1


# ------------------------------------------------------------------ chapters
def test_chapter_checks_its_parameters():
    with pytest.raises(ValueError, match="tolerance"):
        C.overall.Chapter(profile="quick", tolerance=-1)
    with pytest.raises(ValueError, match="one dataset"):
        C.autobit.Chapter(dataset="Cora,CiteSeer", profile="quick")
    with pytest.raises(ValueError, match="one model"):
        C.granularity.Chapter(model="all", profile="quick")
    with pytest.raises(ValueError, match="chunk_sizes"):
        C.rematching.Chapter(profile="quick", chunk_sizes=[0])
    with pytest.raises(ValueError, match="fast"):
        C.setup.Chapter(profile="fast")


def test_single_dataset_chapter_refuses_unavailable_data():
    from sgquant.data import DatasetUnavailableError

    if C.common.dataset_available("PubMed"):
        pytest.skip("PubMed's files are complete here")
    for module in (C.granularity, C.autobit, C.rematching):
        with pytest.raises(DatasetUnavailableError, match="PubMed"):
            module.Chapter(dataset="PubMed", profile="quick")


def test_configuration_lists_the_chapters_parameters(cora):
    shown = C.overall.Chapter(dataset="Cora", model="gcn", profile="quick").configuration()
    settings = list(shown.data["setting"])
    assert settings[:5] == ["dataset", "model", "seeds", "tolerance", "search_seed"]
    assert "workers" not in settings and "profile.search_budget" in settings
    breakdown = C.memory_breakdown.Chapter(profile="quick").configuration().data["setting"]
    assert list(breakdown[:2]) == ["dataset", "model"] and "seeds" not in set(breakdown)


def test_overall_chapter_lists_unavailable_data(cora):
    if C.common.dataset_available("PubMed"):
        pytest.skip("PubMed's files are complete here")
    chapter = C.overall.Chapter(dataset="PubMed", model="gcn", profile="quick", workers=0)
    assert set(chapter.runs["status"]) <= {C.common.NOT_AVAILABLE, C.common.NOT_IN_PROFILE}
    pub = chapter.table3.set_index(["dataset", "model"]).loc[("PubMed", "gcn")]
    assert pub.status == C.common.NOT_AVAILABLE
    assert "not run: data unavailable" in chapter.runs_table().data
    assert "No (dataset, model) pair was run" in chapter.reading().data
    assert chapter.accuracy_table().to_html().count(C.common.NOT_AVAILABLE) >= 1


def test_overall_reads_fp32_accuracy_from_the_record(cora):
    from sgquant.measure import prepare

    runs = C.table3.overall_runs("Cora", "gcn", "quick", include_missing=False, workers=0)
    fp32 = prepare("Cora", "gcn", 0, "quick").fp32
    row = runs.iloc[0]
    assert row.status == "run"
    assert row.fp32_best_test == pytest.approx(100 * fp32["best_test_acc"])
    assert row.fp32_test == pytest.approx(100 * fp32["test_acc"])
    assert row.fp32_val == pytest.approx(100 * fp32["val_acc"])


def test_overall_table_keeps_pairs_the_paper_does_not_have():
    rows = [{"dataset": "Coauthor-CS", "model": "gcn", "seed": 0, "status": "run",
             "variant": "sgquant+", "variant_label": "SGQuant+", "search_seed": 0,
             "fp32_val": 90.0, "fp32_test": 91.0, "fp32_best_test": 92.0, "val": 89.5,
             "test": 90.0, "best_test": 91.0, "average_bits": 2.0, "fp32_memory_mb": 16.0,
             "memory_mb": 1.0, "saving": 16.0, "paper_saving": 16.0, "weight_mb": 0.2,
             "chosen": "BitAssignment(L1: att 2, emb 2)", "chosen_json": "{}", "found": True,
             "final_epochs": 60}]
    t = C.table3.overall_table(pd.DataFrame(rows))
    assert len(t) == 16 and t.iloc[-1]["dataset"] == "Coauthor-CS"
    assert math.isnan(t.iloc[-1]["paper_saving"]) and t.iloc[-1]["acc_drop"] == 1.0
    mem = C.table3_display.format_memory(t)
    last = mem.iloc[-1]
    assert last[(C.table3_display.PAPER, "saving")] == "—"
    assert last[("SGQuant+", C.table3_display.SAVING)] == "16.0x"
    text = C.overall.reading_overall(t)
    assert "16.0x" in text and "reaches the paper's saving" not in text


def test_rounding_table_prepares_each_seed_once(monkeypatch, cora, tmp_path):
    from sgquant.chapters import rematching

    calls = []
    real = rematching.prepare

    def counting(*args, **kwargs):
        calls.append(args[:3])
        return real(*args, **kwargs)

    monkeypatch.setattr(rematching, "prepare", counting)
    df = rematching.rounding_table("Cora", "gcn", (1, 4), targets=("uniform",),
                                   profile="quick", results=str(tmp_path))
    assert calls == [("Cora", "gcn", 0)]
    assert len(df) == 2 * len(rematching.ROUNDING_OPTIONS)
    setup = real("Cora", "gcn", 0, "quick", str(tmp_path))
    assert setup.model.assignment is None  # the shared FP32 model is never quantized
    err = df.set_index(["target", "bits", "rounding", "range"])["rel_error"]
    assert err[("uniform", 1, "floor", "min/max")] > err[("uniform", 4, "floor", "min/max")] > 0


def test_strategy_fields_take_the_searchs_own_strategy():
    from sgquant.chapters.autobit import strategy_fields
    from sgquant.search import PAPER_STRATEGY, STRATEGY

    fields, anchored = strategy_fields(dict(STRATEGY))
    assert anchored is True and "fp32_anchor" not in fields
    assert fields == {k: v for k, v in dict(STRATEGY).items() if k != "fp32_anchor"}
    assert strategy_fields(PAPER_STRATEGY)[1] is False

    @dataclasses.dataclass(frozen=True)
    class Strategy:
        generations: int = 1
        fp32_anchor: bool = True

    assert strategy_fields(Strategy()) == ({"generations": 1}, True)
    assert strategy_fields(None) == ({}, False)
    with pytest.raises(ValueError, match="strategy"):
        strategy_fields(42)


def _quick(results):
    from sgquant.settings import RunSettings

    return RunSettings.resolve("quick", results=results)


def test_coded_storage_job_is_cached_and_heals_a_broken_record(cora, tmp_path, caplog):
    """Chapter 3's coded column: one job per choice, cached under ``coded``; a rebuilt
    chapter reads it back, and a broken record is discarded and measured again."""
    from sgquant.assignment import BitAssignment

    chosen = BitAssignment.uniform(2, 2).to_json()
    first = C.coded_column.coded_storage(_quick(tmp_path), "Cora", "gcn", 0, chosen)
    assert first["coded_saving"] > 16 and 0 < first["coded_bits"] < 2
    records = list((tmp_path / "coded").glob("*.json"))
    assert len(records) == 1
    assert C.coded_column.coded_storage(_quick(tmp_path), "Cora", "gcn", 0, chosen) == first
    records[0].write_text('{"key": {}, "value": {"coded_saving": "oops"}}')
    again = C.coded_column.coded_storage(_quick(tmp_path), "Cora", "gcn", 0, chosen)
    assert again == first and "discarding invalid cache record" in caplog.text
    table3 = pd.DataFrame([{"dataset": "Cora", "model": "gcn", "variant": "sgquant",
                            "status": "run"}, {"dataset": "PubMed", "model": "gcn",
                                               "status": C.common.NOT_AVAILABLE}])
    runs = pd.DataFrame([{"dataset": "Cora", "model": "gcn", "variant": "sgquant",
                          "status": "run", "search_seed": 0, "seed": 0, "chosen_json": chosen}])
    out = C.overall.add_coded_storage(table3, runs, "quick", workers=0)
    assert out.loc[0, "coded_saving"] == pytest.approx(first["coded_saving"])
    assert math.isnan(out.loc[1, "coded_saving"])


def test_coded_storage_uses_each_methods_own_quantizer(cora, tmp_path):
    """SGQuant+'s choice is coded with SGQuant+'s quantizer (its own cache key); the
    paper's quantizer keeps the key it always had (no ``options``)."""
    import json

    from sgquant.assignment import BitAssignment
    from sgquant.variants import get_variant

    chosen = BitAssignment.uniform(2, 2).to_json()
    plus = get_variant("sgquant+").options
    paper = C.coded_column.coded_storage(_quick(tmp_path), "Cora", "gcn", 0, chosen)
    mine = C.coded_column.coded_storage(_quick(tmp_path), "Cora", "gcn", 0, chosen, plus)
    assert mine != paper  # nearest rounding and clipped ranges give other codes
    keys = [json.loads(f.read_text())["key"] for f in (tmp_path / "coded").glob("*.json")]
    assert sorted("options" in k for k in keys) == [False, True]
    table3 = pd.DataFrame([{"dataset": "Cora", "model": "gcn", "variant": v, "status": "run"}
                           for v in ("sgquant", "sgquant+")])
    runs = pd.DataFrame([{"dataset": "Cora", "model": "gcn", "variant": v, "status": "run",
                          "search_seed": 0, "seed": 0, "chosen_json": chosen}
                         for v in ("sgquant", "sgquant+")])
    out = C.overall.add_coded_storage(table3, runs, "quick", workers=0)
    assert list(out["coded_bits"]) == [paper["coded_bits"], mine["coded_bits"]]
    with pytest.raises(ValueError, match="variant"):
        C.overall.add_coded_storage(table3.assign(variant="mine"), runs.assign(variant="mine"),
                                    "quick", workers=0)


def test_reading_names_the_measured_reason_of_each_missed_target():
    """A SGQuant+ row under the paper's saving says how many searches kept FP32; a row
    over the tolerance gives its validation drop beside the test drop."""
    def row(seed: int, search_seed: int, found: bool, saving: float) -> dict:
        return {"dataset": "Cora", "model": "gcn", "seed": seed, "status": "run",
                "variant": "sgquant+", "variant_label": "SGQuant+", "search_seed": search_seed,
                "fp32_val": 80.0, "fp32_test": 81.0, "fp32_best_test": 82.0, "val": 79.8,
                "test": 80.0, "best_test": 81.0, "average_bits": 32 / saving,
                "fp32_memory_mb": 16.0, "memory_mb": 16.0 / saving, "saving": saving,
                "paper_saving": saving, "weight_mb": 0.2, "chosen": f"c{search_seed}",
                "chosen_json": "{}", "found": found, "final_epochs": 60}

    runs = pd.DataFrame([row(e, s, s == 0, 30.0 if s == 0 else 1.0)
                         for s in (0, 1) for e in (0, 1)])
    runs.loc[runs["search_seed"] == 0, "test"] = 79.0
    text = C.overall.reading_overall(C.table3.overall_table(runs))
    assert ("Cora/GCN (1 of 2 searches reach the paper's 26.1x, the row saving 1.9x and its "
            "lowest search 1.0x: 1 of 2 searches kept FP32") in text
    assert ("test drop 1.00 > 0.5, with a validation drop of only 0.10: validation did not "
            "predict test") in text  # (2.0 + 0) / 2: the search that kept FP32 drops 0
    # every search found a configuration: the searches' largest feasible saving tells
    # whether the search or the confirmation stopped short of the paper
    found = pd.DataFrame([{**row(e, s, True, 10.0), "search_top_saving": top}
                          for s, top in ((0, 10.0), (1, 10.4)) for e in (0, 1)])
    text = C.overall.reading_overall(C.table3.overall_table(found))
    assert ("Cora/GCN (0 of 2 searches reach the paper's 26.1x, the row saving 10.0x and its "
            "lowest search 10.0x: the searches' largest feasible savings average only 10.2x, "
            "so within its budget the search found nothing larger within tolerance") in text
    found["search_top_saving"] = 30.0
    text = C.overall.reading_overall(C.table3.overall_table(found))
    assert ("lowest search 10.0x: confirmation rejected larger feasible "
            "savings (the searches' largest average 30.0x)") in text
    found["search_top_saving"] = 13.0
    text = C.overall.reading_overall(C.table3.overall_table(found))
    assert "(the searches' largest average 13.0x, itself below the paper's)" in text


def test_reading_explains_each_row_whose_choice_depends_on_the_search_seed():
    """A SGQuant+ row whose test drop varies across search seeds by more than the
    tolerance lists every search's choice and says whether validation predicted the worst."""
    def row(seed: int, search_seed: int, saving: float, val: float, test: float) -> dict:
        return {"dataset": "Cora", "model": "gcn", "seed": seed, "status": "run",
                "variant": "sgquant+", "variant_label": "SGQuant+", "search_seed": search_seed,
                "fp32_val": 80.0, "fp32_test": 81.0, "fp32_best_test": 82.0, "val": val,
                "test": test, "best_test": 81.0, "average_bits": 32 / saving,
                "fp32_memory_mb": 16.0, "memory_mb": 16.0 / saving, "saving": saving,
                "paper_saving": saving, "weight_mb": 0.2, "chosen": f"c{search_seed}",
                "chosen_json": "{}", "found": True, "final_epochs": 60}

    # search 0: 30x losing 2.0 test points at a 0.2 validation drop; search 1: 27x, none
    runs = pd.DataFrame([row(e, 0, 30.0, 79.8, 79.0) for e in (0, 1)]
                        + [row(e, 1, 27.0, 80.0, 81.0) for e in (0, 1)])
    text = C.overall.reading_overall(C.table3.overall_table(runs))
    assert ("has a standard deviation of at most 0.5 points on 0 of 1 comparable rows (the "
            "standard deviation of its saving across search seeds reaches 2.1x); above it on "
            "Cora/GCN (1.41: the searches chose 30.0x "
            "losing 2.00, 27.0x losing 0.00; the worst, 30.0x, whose validation drop was "
            "0.20: validation did not predict test)") in text
    runs.loc[runs["search_seed"] == 0, "val"] = 78.0
    text = C.overall.reading_overall(C.table3.overall_table(runs))
    assert ("whose validation drop was 2.00 too: the final fine-tunes of that configuration "
            "lost more than the search measured") in text
    runs.loc[runs["search_seed"] == 0, "test"] = 80.9
    text = C.overall.reading_overall(C.table3.overall_table(runs))
    assert "at most 0.5 points on 1 of 1 comparable rows (the standard deviation of its " \
           "saving across search seeds reaches 2.1x): the choice is stable." in text


def test_overall_refuses_a_held_out_fp32_model_that_is_an_evaluation_seed():
    """SGQuant+ confirms on the FP32 model after its search's (development plan: search
    seed 0 searches on 100, confirms on 101): it must not be one of the evaluation seeds,
    or the confirmation would see the evaluation weights."""
    with pytest.raises(ValueError, match=r"FP32 seed 101 would be both evaluation model 101 "
                                         r"and confirmation model 0 of search seed 0"):
        C.table3.overall_runs("Cora", "gcn", "quick", seeds=[0, 101], search_seeds=1,
                               variants=["sgquant+"], include_missing=False, workers=0)
    with pytest.raises(ValueError, match=r"FP32 seed 100 would be both evaluation model 100 "
                                         r"and the search model of search seed 0"):
        C.table3.overall_runs("Cora", "gcn", "quick", seeds=[100], search_seeds=1,
                               variants=["sgquant"], include_missing=False, workers=0)
    # the paper's method has no held-out model: the same seeds are fine up to training
    from sgquant.variants import get_variant
    assert get_variant("sgquant").confirmation.fp32_seeds(100) == []
    assert get_variant("sgquant+").confirmation.fp32_seeds(100) == [101]


def test_at_paper_saving_picks_the_best_validation_at_or_above_the_paper():
    """The configuration the paper's saving allows: the best validation accuracy among
    the measurements with at least that saving (ties: larger saving, then first
    measured); failed or missing measurements never count; ``None`` when none reaches."""
    records = pd.DataFrame([
        {"config_key": "a", "saving": 31.0, "val_acc": 0.70, "order": 0, "status": "ok"},
        {"config_key": "b", "saving": 26.1, "val_acc": 0.72, "order": 1, "status": "ok"},
        {"config_key": "c", "saving": 27.0, "val_acc": 0.72, "order": 2, "status": "ok"},
        {"config_key": "d", "saving": 30.0, "val_acc": 0.90, "order": 3, "status": "failed"},
        {"config_key": "e", "saving": 29.0, "val_acc": float("nan"), "order": 4, "status": "ok"},
        {"config_key": "f", "saving": 20.0, "val_acc": 0.80, "order": 5, "status": "ok"}])
    assert C.at_paper.at_paper_saving(records, 26.1)["config_key"] == "c"
    assert C.at_paper.at_paper_saving(records, 30.5)["config_key"] == "a"
    assert C.at_paper.at_paper_saving(records, 31.5) is None


def test_at_paper_runs_fine_tune_the_best_candidate_from_every_evaluation_seed(cora, tmp_path,
                                                                                monkeypatch):
    """Chapter 3's converse question: across a row's searches the candidate with the
    smallest validation drop is fine-tuned (the method's final fine-tune) from every
    evaluation seed; the table and the reading report its test drop."""
    from sgquant.assignment import BitAssignment
    from sgquant.measure import measure, prepare
    from sgquant.seeds import evaluation_finetune_seed
    from sgquant.variants import get_variant

    monkeypatch.setenv("SGQUANT_RESULTS", str(tmp_path))
    worse, better = BitAssignment.uniform(1, 2, 3), BitAssignment.uniform(2, 2, 3)

    def row(seed: int, search_seed: int, candidate, val_drop: float) -> dict:
        return {"dataset": "Cora", "model": "gcn", "seed": seed, "status": "run",
                "variant": "sgquant+", "variant_label": "SGQuant+", "search_seed": search_seed,
                "fp32_val": 80.0, "fp32_test": 81.0, "fp32_best_test": 82.0, "val": 79.8,
                "test": 80.0, "best_test": 81.0, "average_bits": 4.0, "fp32_memory_mb": 16.0,
                "memory_mb": 2.0, "saving": 8.0, "paper_saving": 8.0, "weight_mb": 0.2,
                "chosen": "c", "chosen_json": "{}", "found": True, "final_epochs": 3,
                "search_top_saving": 9.0,
                "at_paper_json": None if candidate is None else candidate.to_json(),
                "at_paper_saving": float("nan") if candidate is None else 30.0,
                "at_paper_val_drop": val_drop}

    runs = pd.DataFrame([row(e, s, c, d) for s, c, d in ((0, worse, 2.0), (1, better, 0.4),
                                                          (2, None, float("nan")))
                         for e in (0, 1)])
    points = C.at_paper.at_paper_runs(runs, "quick", workers=0)
    assert list(points["seed"]) == [0, 1] and set(points["search_seed"]) == {1}
    assert set(points["chosen"]) == {str(better)}
    plus = get_variant("sgquant+")
    for r in points.itertuples():  # the final fine-tune of SGQuant+ from that seed
        setup = prepare("Cora", "gcn", r.seed, "quick", str(tmp_path))
        rec = measure(setup, better, options=plus.options, results=str(tmp_path),
                      finetune=plus.final_finetune(setup.profile),
                      finetune_seed=evaluation_finetune_seed(r.seed))
        assert rec["cached"] is True
        assert r.acc_drop == pytest.approx(100 * (rec["fp32_test_acc"] - rec["test_acc"]))
    table = C.at_paper.at_paper_table(points)
    assert len(table) == 1 and table.iloc[0]["seeds"] == 2
    assert table.iloc[0]["paper_saving"] == pytest.approx(26.1)
    assert table.iloc[0]["acc_drop"] == pytest.approx(points["acc_drop"].mean())
    assert "val drop (search model)" in P.format_at_paper(table).columns
    t3 = C.table3.overall_table(runs)  # 8x: short of the paper's 26.1x
    text = C.overall.reading_overall(t3, at_paper=table)
    p = table.iloc[0]
    over = int(p["over_tolerance"])
    assert (f"costs a test drop of {p['acc_drop']:.2f} ± {p['acc_drop_std']:.2f} points on "
            f"Cora/GCN ({p['saving']:.1f}x; {over} of 2 evaluation seeds over 0.5)") in text
    within = int(p["acc_drop"] <= 0.5)
    assert (f"the mean test drop is {p['acc_drop']:.2f} points for SGQuant+ (within 0.5 on "
            f"{within} of the 1 row its searches measured there, at {p['saving']:.1f}x on "
            f"average)") in text
    # a row none of whose searches reached the paper's saving says so; without the
    # table the reading does not speak of it
    empty = C.at_paper.at_paper_table(pd.DataFrame())
    text = C.overall.reading_overall(t3, at_paper=empty)
    assert "nothing its searches measured reaches it on Cora/GCN" in text
    assert "At the paper's saving itself" not in text
    assert "paper's saving itself" not in C.overall.reading_overall(t3)
    assert C.at_paper.at_paper_runs(runs.drop(columns=list(C.at_paper.AT_PAPER_FIELDS)),
                                   "quick").empty


def test_peers_reading_chooses_on_validation_and_never_on_test():
    """Chapter 8 places, beside a peer, the front point within the peer's bits with the
    highest *validation* accuracy, and reports its test accuracy: permuting the test
    accuracies of the front changes the number shown, never the point chosen."""
    from sgquant.chapters.peers import best_within_bits, reading_peers

    front = pd.DataFrame({"dataset": "Cora", "model": "gcn", "variant": "sgquant",
                          "method": "SGQuant", "average_bits": [1.0, 2.0, 3.0, 9.0],
                          "val": [70.0, 78.0, 77.0, 90.0], "test": [75.0, 71.0, 80.0, 85.0],
                          "fp32_seed": [100, 110, 100, 110], "fp32_val": [79.0, 80.0, 79.0, 80.0],
                          "fp32_test": [81.0, 83.0, 81.0, 83.0]})
    best = best_within_bits(front, 3.0)
    assert best["average_bits"] == 2.0 and best["test"] == 71.0   # not test's 80.0 at 3 bits
    assert best_within_bits(front, 0.5) is None
    peers = pd.DataFrame({"dataset": ["Cora"], "model": ["gcn"], "method": ["A2Q"],
                          "accuracy": [80.0], "accuracy_std": [float("nan")],
                          "average_bits": [3.0], "protocol": ["theirs"]})
    assert "71.0% test (its validation 78.0%) at 2.00 bits" in reading_peers(front, peers)
    for perm in ([80.0, 85.0, 75.0, 71.0], [85.0, 80.0, 71.0, 75.0]):
        shuffled = front.assign(test=perm)
        assert best_within_bits(shuffled, 3.0)["average_bits"] == 2.0


def test_peers_fronts_name_every_search_model_they_pool():
    """A front pools the searches of several search seeds, each on its own FP32 model: the
    reading names each model and its FP32 test accuracy, and the figure's FP32 line is
    their mean with their range shaded (it showed the first model's alone)."""
    from sgquant.chapters.peers import plot_fronts, reading_peers

    front = pd.DataFrame({"dataset": "Cora", "model": "gcn", "variant": "sgquant",
                          "method": "SGQuant", "average_bits": [1.0, 2.0, 3.0],
                          "val": [70.0, 78.0, 79.0], "test": [75.0, 71.0, 80.0],
                          "fp32_seed": [100, 110, 120], "fp32_val": [79.0, 80.0, 81.0],
                          "fp32_test": [81.0, 83.0, 82.0]})
    peers = pd.DataFrame({"dataset": ["Cora"], "model": ["gcn"], "method": ["A2Q"],
                          "accuracy": [80.0], "accuracy_std": [float("nan")],
                          "average_bits": [3.0], "protocol": ["theirs"]})
    text = reading_peers(front, peers)
    assert "Cora GCN: seed 100 81.0%, 110 83.0%, 120 82.0%" in text
    ax = plot_fronts(front, peers).axes[0]
    fp32 = [ln for ln in ax.get_lines() if ln.get_label().startswith("FP32")]
    assert len(fp32) == 1 and fp32[0].get_ydata()[0] == 82.0
    assert "mean of the 3 search models" in fp32[0].get_label()
    assert len(ax.patches) >= 1  # the shaded range


def test_chapter_resolves_one_run_settings_and_passes_it_to_its_runs(monkeypatch):
    """The notebook's parameters become one RunSettings, made once in the chapter and
    passed down as one argument (not re-read from the environment below it)."""
    from sgquant.settings import RunSettings

    chapter = C.autobit.Chapter(profile="quick", device="cpu", workers=0, budget=3)
    run = chapter.run_settings
    assert isinstance(run, RunSettings) and run.profile.name == "quick"
    assert (run.device, run.workers) == ("cpu", 0)
    seen = {}
    monkeypatch.setattr(C.autobit, "autobit_runs",
                        lambda *args, **kwargs: seen.setdefault("args", args))
    chapter.searches
    assert seen["args"][2] is run
