"""Unit tests of the book's tables and figures (sgquant.chapters) and sgquant.plots."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sgquant import plots as P
from sgquant.assignment import BitAssignment
from sgquant.chapters.autobit import (AUTOBIT_METHODS, autobit_curves, autobit_latency,
                                      autobit_runs, autobit_summary, measurement_seconds,
                                      reading_autobit)
from sgquant.chapters.common import (NO_FILES, NOT_AVAILABLE, NOT_IN_PROFILE, check_parameters,
                                     default_workers, mean_std, resolve_datasets,
                                     resolve_models, resolve_seeds, run_info)
from sgquant.chapters.granularity import (granularity_comparison, granularity_configs,
                                          pareto_front, sensitivity_claims, sensitivity_configs)
from sgquant.chapters.memory_breakdown import layout_from_sizes, memory_breakdown, reading_memory
from sgquant.chapters.overall import reading_overall
from sgquant.chapters.setup import architecture_table, dataset_table, reading_setup
from sgquant.chapters import table3_display as D
from sgquant.chapters.table3 import overall_table
from sgquant.data import available_datasets
from sgquant.paper import paper_table
from sgquant.profiles import get_profile
from sgquant.memory import MB, FeatureLayout, LayerLayout, feature_memory
from sgquant.models import build_model


# ------------------------------------------------------------------ helpers
def test_paper_tables_use_canonical_names():
    t3 = paper_table("table3_overall")
    assert set(t3["dataset"]) == {"Cora", "CiteSeer", "PubMed", "Amazon-Computers", "Reddit"}
    assert set(t3["model"]) == {"gcn", "agnn", "gat"}
    assert len(t3) == 15
    with pytest.raises(ValueError, match="table3_overall"):
        paper_table("table9")


def test_resolve_parameters():
    assert resolve_datasets("all", "default") == ["Cora", "CiteSeer"]
    assert resolve_datasets("all", "full") == ["Cora", "CiteSeer", "Amazon-Computers"]
    assert resolve_datasets("citeseer, cora", "quick") == ["CiteSeer", "Cora"]
    assert resolve_models("all", "quick") == ["gcn", "agnn", "gat"]
    assert resolve_models("GAT", "quick") == ["gat"]
    assert resolve_seeds(None, "default") == [0, 1, 2]
    assert resolve_seeds(2, "paper") == [0, 1]
    assert resolve_seeds([3, 1, 3], "quick") == [3, 1]
    with pytest.raises(ValueError, match="Nope"):
        resolve_datasets("Nope", "quick")
    with pytest.raises(ValueError, match="mlp.*gcn"):
        resolve_models("mlp", "quick")
    assert resolve_models("gin,sage", "quick") == ["gin", "sage"]
    for bad in (0, -1, [], ["a"], "three", True):
        with pytest.raises(ValueError):
            resolve_seeds(bad, "quick")
    with pytest.raises(ValueError, match="fast"):
        check_parameters(dataset="Cora", model="gcn", profile="fast")


def test_default_workers():
    assert default_workers("quick") == 0
    assert default_workers("default") >= 1
    assert default_workers("default", 0) == 0
    with pytest.raises(ValueError, match="workers"):
        default_workers("quick", -1)


def test_mean_std():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    m, s = mean_std([5.0])
    assert m == 5.0 and math.isnan(s)
    assert all(math.isnan(v) for v in mean_std([]))


# ---------------------------------------------------------------- chapter 1-2
def test_memory_breakdown_uses_data_or_paper_sizes(cora):
    df = memory_breakdown()
    assert list(df["dataset"]) == ["Cora", "CiteSeer", "PubMed", "Amazon-Computers", "Reddit"]
    present = set(available_datasets())
    for r in df.itertuples():
        assert (r.source == "loaded data") == (r.dataset in present)
        assert 0 < r.feature_share < 100
    # PubMed is incomplete offline: the paper's Table II sizes, counted by hand here
    # for GAT 8 heads x 256 (layer 1: N x 500 inputs, (E + N) x 8 attention values;
    # layer 2: N x 2048 inputs, (E + N) x 1), float32.
    if "PubMed" not in present:
        n, e = 19717, 88676
        expected = 4 * (n * 500 + (e + n) * 8 + n * 2048 + (e + n)) / MB
        row = df[df["dataset"] == "PubMed"].iloc[0]
        assert row.feature_mb == pytest.approx(expected)
        net = build_model("gat", 500, 3, hidden=256, heads=8)
        weights = sum(p.numel() for p in net.parameters())
        assert row.weight_mb == pytest.approx(4 * weights / MB)
    # features dominate more on the larger graphs (the paper's Fig. 1 point)
    share = df.set_index("dataset")["feature_share"]
    assert share["Reddit"] > share["Cora"]
    text = reading_memory(df)
    assert f"{share.max():.2f}%" in text and f"{share.min():.2f}%" in text


def test_layout_from_sizes_matches_feature_layout(cora):
    from sgquant.memory import feature_layout
    net = build_model("gcn", cora.num_features, 7)
    exact = feature_layout(net, cora.edge_index, cora.num_nodes)
    sized = layout_from_sizes(net, cora.num_nodes, int(cora.edge_index.size(1)))
    fp32 = BitAssignment.fp32(2)
    # Cora has no self-loops, so adding N self-loops is what GCN aggregates over
    assert feature_memory(sized, fp32).bytes == feature_memory(exact, fp32).bytes


def test_setup_tables(cora):
    arch = architecture_table("default").set_index("model")
    assert bool(arch.loc["gcn", "same_as_paper"]) and bool(arch.loc["agnn", "same_as_paper"])
    assert not bool(arch.loc["gat", "same_as_paper"])
    assert bool(architecture_table("paper").set_index("model").loc["gat", "same_as_paper"])
    stats = dataset_table().set_index("dataset")
    assert stats.loc["Cora", "nodes"] == 2708 and stats.loc["Cora", "nodes_diff"] == 0
    assert stats.loc["Cora", "features"] == 1433
    assert stats.loc["Cora", "edges"] == int(cora.edge_index.size(1))
    if "Reddit" not in available_datasets():
        assert stats.loc["Reddit", "status"] == NO_FILES
        assert pd.isna(stats.loc["Reddit", "nodes"])
    assert "Cora" in reading_setup(arch.reset_index(), stats.reset_index())
    shown = P.format_datasets(stats.reset_index())
    assert shown.iloc[0][("nodes", "ours")] == "2,708" and shown.iloc[0][("nodes", "diff")] == "+0"
    assert len(P.format_architectures(arch.reset_index())) == 3


# ------------------------------------------------------------------ chapter 3
def _fake_runs() -> pd.DataFrame:
    """Two methods; the paper's with two search seeds (choices of 16x and 20x) and two
    evaluation seeds each, SGQuant+ with one search seed."""
    rows = []
    fp32 = {0: (80.0, 81.0), 1: (82.0, 83.0)}  # seed -> (test, best test)
    tests = {("sgquant", 0): (79.0, 80.0), ("sgquant", 1): (79.5, 81.5),
             ("sgquant+", 0): (80.0, 82.0)}  # (method, search seed) -> test at seeds 0, 1
    savings = {("sgquant", 0): 16.0, ("sgquant", 1): 20.0, ("sgquant+", 0): 30.0}
    labels = {"sgquant": "SGQuant (paper's method)", "sgquant+": "SGQuant+"}
    for (v, s), per_seed in tests.items():
        for seed, test in enumerate(per_seed):
            rows.append({"dataset": "Cora", "model": "gcn", "seed": seed, "status": "run",
                         "variant": v, "variant_label": labels[v], "search_seed": s,
                         "fp32_val": 79.0, "fp32_test": fp32[seed][0],
                         "fp32_best_test": fp32[seed][1], "val": 78.8, "test": test,
                         "best_test": test + 1, "average_bits": 32 / savings[(v, s)],
                         "fp32_memory_mb": 16.0, "memory_mb": 16.0 / savings[(v, s)],
                         "saving": savings[(v, s)], "paper_saving": savings[(v, s)],
                         "weight_mb": 0.2, "chosen": f"BitAssignment(L1: att 2, emb {s + 1})",
                         "chosen_json": "{}", "found": True, "search_val": 78.9,
                         "search_measurements": 8, "search_confirmations": 2,
                         "search_seconds": 1.0, "final_epochs": 10})
    rows.append({"dataset": "PubMed", "model": "gcn", "status": NOT_AVAILABLE})
    return pd.DataFrame(rows)


def test_overall_table_aggregates_over_search_seeds_and_keeps_paper_rows():
    t = overall_table(_fake_runs())
    assert len(t) == 16  # the paper's 15 pairs, Cora/GCN once per method
    paper_method = t[(t["dataset"] == "Cora") & (t["variant"] == "sgquant")].iloc[0]
    assert paper_method.status == "run" and paper_method.seeds == 2 and paper_method.searches == 2
    # per search seed: drops 1.5 (80-79, 82-80) and 0.5 (80-79.5, 82-81.5)
    assert paper_method.acc_drop == pytest.approx(1.0)
    assert paper_method.acc_drop_std == pytest.approx(math.sqrt(0.5))
    # 16x and 20x: the ratio of the mean memories 16 / ((1 + 0.8) / 2), not their mean 18x
    assert paper_method.saving == pytest.approx(16 / 0.9)
    assert paper_method.saving_mean_of_ratios == pytest.approx(18.0)
    assert paper_method.saving_median == pytest.approx(18.0)
    assert paper_method.saving_min == pytest.approx(16.0)
    assert paper_method.saving_std == pytest.approx(math.sqrt(8.0))
    assert paper_method.fp32_test == pytest.approx(81.0)  # one FP32 model per seed
    assert paper_method.over_tolerance == 1 and paper_method.paper_saving == pytest.approx(26.1)
    plus = t[(t["dataset"] == "Cora") & (t["variant"] == "sgquant+")].iloc[0]
    assert plus.acc_drop == pytest.approx(0.0) and plus.over_tolerance == 0 and plus.searches == 1
    pub = t[(t["dataset"] == "PubMed") & (t["model"] == "gcn")].iloc[0]
    assert pub.status == NOT_AVAILABLE and pub.paper_fp32_acc == pytest.approx(80.36)
    assert t[(t["dataset"] == "Reddit") & (t["model"] == "gat")].iloc[0].status == NOT_IN_PROFILE
    text = reading_overall(t)
    assert "16.0x to 20.0x" not in text and "17.8x to 17.8x" in text  # per-row ratios
    assert "in 1 of 2 searches" in text and "misses the target" not in text
    assert "on **1 of 1** comparable rows" in text  # SGQuant+: 30x >= 26.1x at no drop
    acc, mem = D.format_accuracy(t), D.format_memory(t)
    chosen = D.format_chosen(t)
    assert len(acc) == len(mem) == 15 and len(chosen) == 2
    row = acc.iloc[0]
    paper = "SGQuant (paper's method)"
    assert row[(paper, "drop ± std over search seeds")] == "1.00 ± 0.71"
    assert row[("SGQuant+", "test (%) ± std over search seeds")] == "81.00"
    assert row[(D.PAPER, "test (%)")] == "81.72"
    assert row[("FP32 test (%)", "ours ± std over evaluation seeds")] == "81.00 ± 1.41"
    # the paper's columns sit beside the paper's method
    groups = list(dict.fromkeys(acc.columns.get_level_values(0)))
    assert groups.index(D.PAPER) == groups.index(paper) + 1
    assert mem.iloc[0][("SGQuant+", D.SAVING)] == "30.0x"
    assert mem.iloc[0][(paper, "lowest")] == "16.0x"
    html = P.table(acc).to_html()
    assert "<table" in html and NOT_AVAILABLE in html


# ------------------------------------------------------------------ chapter 4
def _fake_granularity() -> pd.DataFrame:
    rows = []
    data = {"uniform": [(1.0, 60.0), (2.0, 30.0), (4.0, 20.0)],
            "layer": [(1.2, 25.0), (3.0, 21.0), (3.5, 24.0)],
            "component": [(5.0, 19.5)], "fp32": [(16.0, 19.8)]}
    for g, pts in data.items():
        for i, (mb, err) in enumerate(pts):
            for seed, noise in enumerate((-0.5, 0.5)):
                rows.append({"granularity": g, "config": f"{g}{i}", "seed": seed,
                             "memory_mb": mb, "average_bits": mb, "saving": 16 / mb,
                             "error": err + noise, "val_acc": 100 - err - noise})
    return pd.DataFrame(rows)


def test_pareto_front_and_comparison():
    front = pareto_front(_fake_granularity())
    layer = front[front["granularity"] == "layer"].set_index("config")
    assert layer.loc["layer0", "pareto"] and layer.loc["layer1", "pareto"]
    assert not layer.loc["layer2", "pareto"]  # more memory and more error than layer1
    assert front[front["granularity"] == "uniform"]["pareto"].all()
    assert layer.loc["layer0", "error"] == pytest.approx(25.0)
    assert layer.loc["layer0", "error_std"] == pytest.approx(math.sqrt(0.5))
    comp = granularity_comparison(front).set_index("budget")
    assert list(comp.index) == ["uniform 1-bit", "uniform 2-bit", "uniform 4-bit"]
    assert math.isnan(comp.loc["uniform 1-bit", "layer"])  # nothing that small
    assert comp.loc["uniform 2-bit", "layer"] == pytest.approx(25.0)
    assert comp.loc["uniform 4-bit", "layer"] == pytest.approx(21.0)
    assert math.isnan(comp.loc["uniform 4-bit", "component"])
    fig = P.plot_granularity(front)
    assert len(fig.axes) == 2


def test_granularity_and_sensitivity_configs():
    layout = FeatureLayout((100, 50, 10), (LayerLayout(20, 500, 1), LayerLayout(8, 500, 1)), 0)
    configs = granularity_configs(layout, "quick", samples=4)
    counts = configs["granularity"].value_counts()
    choices = [b for b in get_profile("quick").bit_choices if b != 32]
    assert counts["uniform"] == len(choices) and counts["fp32"] == 1
    for g in ("component", "topology", "layer", "full"):
        assert counts[g] == 4
    assert not configs.duplicated(["granularity", "assignment"]).any()
    for a in configs["assignment"]:
        BitAssignment.from_json(a).check_shape(2, 3)
    again = granularity_configs(layout, "quick", samples=4)
    assert configs["assignment"].tolist() == again["assignment"].tolist()  # seeded
    sens = sensitivity_configs(layout, bits=(1, 4))
    assert set(sens["family"]) == {"component", "topology", "layer"}
    assert len(sens) == 2 * (2 + 3 + 2)
    row = sens[(sens["part"] == "bucket 1") & (sens["bits"] == 1)].iloc[0]
    a = BitAssignment.from_json(row.assignment)
    assert a.att_bits == (32, 32) and a.emb_bits == ((32, 1, 32), (32, 1, 32))


def test_sensitivity_claims():
    rows = []
    drops = {("component", "att"): {1: 3.0, 2: 0.2}, ("component", "emb"): {1: 9.0, 2: 2.0},
             ("layer", "layer 1"): {1: 0.1, 2: 0.0}, ("layer", "layer 2"): {1: 5.0, 2: 1.0}}
    for (fam, part), by_bits in drops.items():
        for b, d in by_bits.items():
            rows.append({"family": fam, "part": part, "bits": b, "seed": 0, "drop": d})
    claims = sensitivity_claims(pd.DataFrame(rows), tolerance=0.5).set_index("family")
    assert claims.loc["component", "holds"]  # att lossless from 2 bits, emb never
    assert claims.loc["component", "min_bits_fewer"] == 2
    assert math.isnan(claims.loc["component", "min_bits_more"])
    assert not claims.loc["layer", "holds"]  # layer 1 (earlier) is the tolerant one
    assert claims.loc["layer", "part_fewer"] == "layer 2"


# ------------------------------------------------------------------ chapter 5
def test_autobit_tiny_search(cora):
    results = autobit_runs("Cora", "gcn", "quick", seeds=1, budget=6, workers=0)
    labels = [r.label for r in results]
    assert labels == list(AUTOBIT_METHODS)
    assert [r.method for r in results] == ["cost-model", "cost-model", "random"]
    curves = autobit_curves(results)
    assert set(curves["method"]) == set(labels)
    for _, sub in curves.groupby("method"):
        assert np.all(np.diff(sub["best_saving"]) >= 0) and len(sub) == 6
    summary = autobit_summary(results).set_index("method")
    assert summary.loc["random", "measurements"] == 6
    latency = autobit_latency(results, repeats=1)
    n_iter = results[0].settings["n_iter"]
    assert len(latency) == 2 * n_iter and (latency["total"] > 0).all()
    assert set(latency["method"]) == set(labels[:2])
    text = reading_autobit(curves, summary.reset_index(), latency, "Cora", "gcn",
                             measurement_seconds(results))
    assert f"{summary.loc['random', 'saving']:.1f}x" in text
    assert P.plot_autobit(curves, {"cost model": 25.0}).axes
    assert len(P.plot_latency(latency).axes) == 2
    with pytest.raises(ValueError, match="bayes"):
        autobit_runs("Cora", "gcn", "quick", seeds=1, budget=6, workers=0, methods=["bayes"])


def test_full_is_default_plus_amazon_computers():
    """``full`` differs from ``default`` in its datasets alone, so both read the same
    cached FP32 models and measurements (the keys hold budgets, not profile names)."""
    from dataclasses import replace

    from sgquant.measure import fp32_key

    default, full = get_profile("default"), get_profile("full")
    assert full.datasets == (*default.datasets, "Amazon-Computers")
    assert replace(full, name="default", datasets=default.datasets) == default
    assert fp32_key("Cora", "gat", 0, full) == fp32_key("Cora", "gat", 0, default)


def test_run_info_lists_profile():
    info = run_info("quick", dataset="Cora")
    assert {"dataset", "profile.search_budget"} <= set(info["setting"])
