"""Table III's aggregates, from synthetic runs (no training): the saving as the ratio of
the mean memories, a search that keeps FP32, rows not comparable with the paper, the
confirmation's confidence bound, the replication status, the peers' like-for-like
comparison, and the width of the tables a reader sees (tests/html_width.py)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from html_width import content_width, table_width

from sgquant import chapters as C
from sgquant.chapters import table3_display as D
from sgquant.chapters.common import NOT_AVAILABLE
from sgquant.paper import paper_table
from sgquant.plots import table

LABELS = {"sgquant": "SGQuant (paper's method)", "sgquant+": "SGQuant+"}


def run_row(dataset: str, model: str, variant: str, search_seed: int, seed: int,
            saving: float, test: float, found: bool = True) -> dict:
    """One run of :func:`sgquant.chapters.table3.overall_runs`, FP32 test 81 (best 82)."""
    return {"dataset": dataset, "model": model, "seed": seed, "status": "run",
            "variant": variant, "variant_label": LABELS[variant], "search_seed": search_seed,
            "fp32_val": 80.0, "fp32_test": 81.0, "fp32_best_test": 82.0, "val": 79.9,
            "test": test, "best_test": test + 1, "average_bits": 32 / saving,
            "fp32_memory_mb": 16.0, "memory_mb": 16.0 / saving, "saving": saving,
            "paper_saving": 32 / (32 / saving), "weight_mb": 0.2,
            "chosen": f"BitAssignment(L1: att 2, emb {search_seed + 1})", "chosen_json": "{}",
            "found": found, "final_epochs": 60}


def runs_of(dataset: str, model: str, savings: list[float], tests: list[float],
            variant: str = "sgquant+", found: "list[bool] | None" = None) -> pd.DataFrame:
    """One search per saving, each fine-tuned from evaluation seeds 0 and 1."""
    found = found or [True] * len(savings)
    return pd.DataFrame([run_row(dataset, model, variant, s, e, sv, te, f)
                         for s, (sv, te, f) in enumerate(zip(savings, tests, found))
                         for e in (0, 1)])


def _row(t: pd.DataFrame, dataset: str = "Cora", model: str = "gcn") -> pd.Series:
    return t[(t["dataset"] == dataset) & (t["model"] == model) & (t["status"] == "run")].iloc[0]


# ------------------------------------------------------------------ aggregates
def test_saving_is_the_ratio_of_mean_memories_with_the_median_beside_it():
    """30x and 1x: the mean of the ratios says 15.5x, the memories say 1.9x."""
    t = C.table3.overall_table(runs_of("Cora", "gcn", [30.0, 1.0], [80.9, 81.0]))
    r = _row(t)
    assert r.saving == pytest.approx(16.0 / ((16.0 / 30 + 16.0) / 2))
    assert f"{r.saving:.1f}" == "1.9"
    assert r.saving_mean_of_ratios == pytest.approx(15.5) and r.saving_median == 15.5
    assert (r.saving_min, r.saving_max) == (1.0, 30.0)
    assert r.formula_saving == pytest.approx(32 / ((32 / 30 + 32) / 2))
    assert "saves **1.9x to 1.9x**" in C.overall.reading_overall(t)


def test_a_row_reaches_the_papers_saving_only_when_every_search_does():
    """40x and 20x against the paper's 26.1x: the mean of ratios (30x), the ratio of mean
    memories (26.7x) and the median (30x) all pass, the 20x search does not."""
    t = C.table3.overall_table(runs_of("Cora", "gcn", [40.0, 20.0], [80.9, 81.0]))
    r = _row(t)
    assert min(r.saving, r.saving_median, r.saving_mean_of_ratios) >= 26.1
    assert not r.reaches and r.searches_reaching == 1
    text = C.overall.reading_overall(t)
    assert "on **0 of 1** comparable rows (the median search on 1)" in text
    t = C.table3.overall_table(runs_of("Cora", "gcn", [40.0, 27.0], [80.9, 81.0]))
    assert _row(t).reaches and "on **1 of 1** comparable rows" in C.overall.reading_overall(t)


def test_a_search_that_keeps_fp32_has_drop_zero():
    """A search that found nothing ships the FP32 model: drop 0 by definition, not the
    +2 points a further fine-tune of the FP32 weights happened to gain."""
    t = C.table3.overall_table(runs_of("Cora", "gcn", [30.0, 1.0], [80.0, 83.0],
                                       found=[True, False]))
    r = _row(t)
    assert [c[1] for c in r.search_choices] == [1.0, 0.0]
    assert r.acc_drop == pytest.approx(0.5) and r.test == pytest.approx(80.5)
    assert r.found == 1 and r.saving_min == 1.0


# ------------------------------------------------------------------ like for like
def _cora_gcn_and_gat() -> pd.DataFrame:
    return pd.concat([runs_of("Cora", "gcn", [30.0, 28.0], [80.9, 81.0]),
                      runs_of("Cora", "gat", [30.0, 28.0], [80.9, 81.0])], ignore_index=True)


def test_gat_rows_of_a_narrower_profile_are_not_comparable_and_left_out_of_counts():
    runs = _cora_gcn_and_gat()
    t = C.table3.overall_table(runs, 0.5, "default")  # GAT 8 heads x 8 there
    gat, gcn = _row(t, model="gat"), _row(t, model="gcn")
    assert (gat.comparable, gat.architecture) == (False, "8 x 8") and gcn.comparable
    text = C.overall.reading_overall(t)
    assert "on **1 of 1** comparable rows" in text  # GAT would reach 12.37x: not counted
    assert ("Left out of every count above and below, marked not comparable: Cora/GAT (GAT "
            "is 8 x 8 here, 8 x 256 in the paper") in text
    acc = D.format_accuracy(t)
    cora = acc[acc[("", "dataset")] == "Cora"]
    notes = dict(zip(cora[("", "model")], cora[("", "note")]))
    assert notes == {"GCN": "", "AGNN": "not run: not in this profile",
                     "GAT": "not comparable (8 x 8)"}
    status = C.replication.replication_status(t)
    assert status.loc[status["model"] == "gat", "status"].iloc[0] == "not comparable (8 x 8)"
    # the paper's architecture: both rows count
    t = C.table3.overall_table(runs, 0.5, "paper")
    assert _row(t, model="gat").comparable
    assert "on **2 of 2** comparable rows" in C.overall.reading_overall(t)
    assert C.table3.overall_table(runs, 0.5, "quick")["architecture"].eq("2 x 8").any()


def test_peers_compare_only_points_whose_bits_are_ours():
    """Chapter 8 sets our fronts beside a published point only when its average bits
    count what ours count and our model has the paper's size; the others are quoted with
    their ± and source, and marked."""
    from sgquant.chapters.peers import OUR_BITS, peer_points, reading_peers

    peers = peer_points()
    assert peers["bits_definition"].notna().all()
    like = peers[peers["bits_definition"] == OUR_BITS]
    assert set(like["method"]) == {"SGQuant"}
    front = pd.DataFrame({"dataset": ["Cora"] * 2 + ["CiteSeer"] * 2, "model": "gcn",
                          "variant": "sgquant+", "method": "SGQuant+",
                          "average_bits": [1.0, 8.0] * 2, "val": [70.0, 79.0] * 2,
                          "test": [71.0, 80.0] * 2, "fp32_seed": 100, "fp32_val": 80.0,
                          "fp32_test": 81.0})
    gat = front.iloc[:2].assign(model="gat")
    text = reading_peers(pd.concat([front, gat]), peers, mismatch={"gat": "8 x 8"})
    lines = {line.split("**")[1] + " " + line.split(",")[0]: line
             for line in text.splitlines() if line.startswith("* ")}
    assert "within as many bits our fronts reach" in lines["SGQuant * Cora/GCN"]
    assert "another quantity (layer-1 input unquantized)" in lines["A2Q * Cora/GCN"]
    assert "68.8% ± 0.9 at 1 average bits" in lines["Bi-GCN * CiteSeer/GCN"]
    assert "not comparable (8 x 8)" in lines["SGQuant * Cora/GAT"]
    mixq = peers[peers["method"] == "MixQ-GNN"].set_index("average_bits")
    assert mixq.loc[5.82, "accuracy_std"] == 2.85
    assert (mixq.loc[3.84, "accuracy"], mixq.loc[3.84, "accuracy_std"]) == (68.68, 2.72)
    assert "feng2020sgquant, Table III" in text
    # Bi-GCN's ratios on the input data: 32 F / (F + 32), one float32 scale per node
    bi = peers[peers["method"] == "Bi-GCN"].set_index("dataset")
    for name, features in (("Cora", 1433), ("CiteSeer", 3703)):
        assert bi.loc[name, "saving"] == round(32 * features / (features + 32), 2)
        assert bi.loc[name, "saving_of"] == "input data"


# ------------------------------------------------------------------ confirmation
def test_confirmation_bound_is_a_one_sided_t_bound_of_stated_level():
    from scipy.stats import t as student

    from sgquant.search.confirm import confirmed_accuracy, t_quantile
    from sgquant.variants import Confirmation, get_variant

    vals = [0.8132, 0.7907]
    a = np.asarray(vals)
    # level 0.75 at n = 2 is the old z = 1 bound, bit for bit (t_{0.75,1} = tan(pi/4) = 1)
    assert t_quantile(0.75, 1) == 1.0
    assert confirmed_accuracy(vals, 0.75) == float(a.mean() - 1.0 * a.std(ddof=1) / np.sqrt(2))
    three = [0.81, 0.79, 0.80]
    assert confirmed_accuracy(three, 0.9) == pytest.approx(
        np.mean(three) - student.ppf(0.9, 2) * np.std(three, ddof=1) / math.sqrt(3))
    assert confirmed_accuracy(three, 0.5) == pytest.approx(np.mean(three))
    plus = get_variant("sgquant+").confirmation
    assert (plus.level, plus.judged()) == (0.75, 2)
    assert get_variant("sgquant").confirmation.level == 0.5  # the paper's method: the mean
    assert plus.to_dict()["level"] == 0.75
    for bad in (0.4, 1.0):
        with pytest.raises(ValueError, match="confirmation level"):
            Confirmation(level=bad)
    text = C.overall.reading_overall(C.table3.overall_table(
        runs_of("Cora", "gcn", [30.0], [80.9])))
    assert ("SGQuant+ confirms a configuration when the one-sided 75% lower confidence bound "
            "of its mean validation accuracy (Student's t with 1 degree(s) of freedom over its "
            "2 confirmation fine-tunes: the mean minus 1 times the standard error)") in text


# ------------------------------------------------------------------ replication status
def test_replication_status_follows_its_rule():
    """Reproduced: every search at the paper's saving and the drop within tolerance;
    partly: one of the two; not: neither; rows not run say why."""
    runs = pd.concat([runs_of("Cora", "gcn", [30.0, 27.0], [80.9, 81.0]),       # both
                      runs_of("CiteSeer", "gcn", [33.0, 20.0], [80.9, 81.0]),   # drop only
                      runs_of("Cora", "agnn", [12.0, 10.0], [79.0, 79.5])],    # neither
                     ignore_index=True)
    runs = pd.concat([runs, pd.DataFrame([{"dataset": "PubMed", "model": "gcn",
                                           "status": NOT_AVAILABLE}])], ignore_index=True)
    status = C.replication.replication_status(C.table3.overall_table(runs)).set_index(
        ["dataset", "model"])
    assert status.loc[("Cora", "gcn"), "status"] == "reproduced"
    assert status.loc[("CiteSeer", "gcn"), "status"] == "partly"
    assert status.loc[("CiteSeer", "gcn"), "saving"] == "1 of 2 reach 31.9x (lowest 20.0x)"
    assert status.loc[("Cora", "agnn"), "status"] == "not reproduced"
    assert status.loc[("Cora", "agnn"), "drop"] == "1.75 > 0.5; 2 of 2 searches over"
    assert status.loc[("PubMed", "gcn"), "status"] == "not run"
    assert status.loc[("PubMed", "gcn"), "saving"] == NOT_AVAILABLE
    assert len(status) == 15  # the paper's rows, each once per method run (one here)


# ------------------------------------------------------------------ what a reader sees
def _worst_case_table3() -> pd.DataFrame:
    """Every Table III row, both methods, three searches of three seeds, numbers as wide as
    they get (two-digit accuracies with ±, savings over 10x, negative drops), two rows not
    run, GAT not comparable (``default``), coded storage measured."""
    rows = []
    for p in paper_table("table3_overall").itertuples():
        if (p.dataset, p.model) in {("PubMed", "gcn"), ("Reddit", "agnn")}:
            rows.append({"dataset": p.dataset, "model": p.model, "status": NOT_AVAILABLE})
            continue
        for v in LABELS:
            for s, sv in enumerate((31.93, 5.12, 28.8)):
                for e in range(3):
                    rows.append({**run_row(p.dataset, p.model, v, s, e, sv, 92.11 + s + e / 3,
                                           found=s != 1),
                                 "fp32_test": 92.66 + e * 0.37, "fp32_memory_mb": 643.92,
                                 "memory_mb": 643.92 / sv, "chosen": "BitAssignment(L1: att 2, "
                                 "emb 1/2/4 | L2: att 1, emb 2/2/4)"})
    t = C.table3.overall_table(pd.DataFrame(rows), 0.5, "default")
    return t.assign(coded_saving=33.123, coded_bits=0.97)


def test_table3_and_peers_tables_fit_a_1400_pixel_window():
    """Our numbers beside the paper's, as chapters 3 and 8 render them, need no horizontal
    scroll in a 1,400-pixel window; the check does catch a table that would."""
    from sgquant.chapters.peers import format_peer_sources, format_peers, peer_points

    t = _worst_case_table3()
    shown = {"accuracy": D.format_accuracy(t), "memory": D.format_memory(t),
             "memory details": D.format_memory_details(t), "authors": D.format_authors(t),
             "replication": D.format_replication(C.replication.replication_status(t)),
             "chosen": D.format_chosen(t), "peers": format_peers(peer_points()),
             "peer sources": format_peer_sources(peer_points())}
    budget = content_width(1400)  # the book's content column (tests/html_width.py)
    assert budget == pytest.approx(1023.2)
    assert content_width(1920) == pytest.approx(80 * 16 - 4 * 16 - 16)  # 80rem cap
    widths = {name: table_width(table(df, caption="x").to_html()) for name, df in shown.items()}
    assert all(w <= budget for w in widths.values()), (budget, widths)
    # the accuracy table with the memory table's columns beside it would not fit
    both = pd.concat([shown["accuracy"].iloc[:, :-1], shown["memory"].iloc[:, 2:]], axis=1)
    assert table_width(table(both).to_html()) > budget
