"""The model registry (sgquant.models.registry): one entry per model, the paper's models'
settings as they were (their cache keys hold them), unknown names refused everywhere,
and GraphSAGE and GIN added through it alone."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch_geometric.data import Data

from sgquant import __version__
from sgquant.chapters.common import check_parameters, resolve_models
from sgquant.models import (MODEL_MODULES, MODELS, PAPER_ARCHITECTURES, PAPER_MODELS,
                            REGISTRY, QuantGNN, build_model, get_model)
from sgquant.profiles import PROFILES, get_profile
from sgquant.train import train_model

ALLOWED = "choose one of gcn, agnn, gat, sage, gin"

#: What train.HPARAMS, models.PAPER_ARCHITECTURES and plots.MODEL_LABELS held before the
#: registry: (Adam's settings, (hidden, layers), label).
BEFORE = {
    "gcn": ({"lr": 0.01, "weight_decay": 5e-4}, (32, 2), "GCN"),
    "agnn": ({"lr": 0.005, "weight_decay": 5e-4}, (16, 4), "AGNN"),
    "gat": ({"lr": 0.005, "weight_decay": 5e-4}, (256, 2), "GAT"),
}
#: Profile.architecture of the paper's models before the registry (part of every FP32 key).
ARCHITECTURES = {
    "quick": {"gcn": {"hidden": 32, "num_layers": 2}, "agnn": {"hidden": 16, "num_layers": 4},
              "gat": {"hidden": 8, "heads": 2}},
    "default": {"gcn": {"hidden": 32, "num_layers": 2}, "agnn": {"hidden": 16, "num_layers": 4},
                "gat": {"hidden": 8, "heads": 8}},
    "paper": {"gcn": {"hidden": 32, "num_layers": 2}, "agnn": {"hidden": 16, "num_layers": 4},
              "gat": {"hidden": 256, "heads": 8}},
}


def test_paper_models_keep_their_settings():
    for name, (hparams, arch, label) in BEFORE.items():
        entry = get_model(name)
        assert (entry.hparams, entry.architecture, entry.label) == (hparams, arch, label)
        assert entry.in_paper
    assert PAPER_MODELS == ("gcn", "agnn", "gat") == MODELS[:3]
    assert PAPER_ARCHITECTURES == {n: BEFORE[n][1] for n in BEFORE}
    assert get_model("gat").options == {"heads": 8}
    # the profiles run the paper's models, with the architectures they always had
    for name, prof in PROFILES.items():
        assert prof.models == PAPER_MODELS
        want = ARCHITECTURES["default" if name == "full" else name]
        for m in PAPER_MODELS:
            assert list(prof.architecture(m).items()) == list(want[m].items())


def test_fp32_keys_of_the_paper_models_hold_their_settings():
    """The FP32 cache key (and so every measurement key built on it) of each paper model:
    its architecture as before the registry, and the settings it trains with (its
    entry's Adam settings, its class's dropout)."""
    from sgquant.measure import fp32_key
    from sgquant.schedule import Schedule
    dropout = {"gcn": 0.5, "agnn": 0.5, "gat": 0.6}
    for profile, epochs, patience in (("quick", 60, 30), ("default", 200, 100),
                                      ("paper", 200, 100)):
        for m in PAPER_MODELS:
            key = fp32_key("Cora", m, 3, get_profile(profile))
            assert key == {"kind": "fp32", "dataset": "Cora", "model": m, "seed": 3,
                           "architecture": ARCHITECTURES[profile][m], "epochs": epochs,
                           "training": {**BEFORE[m][0], "dropout": dropout[m]},
                           "schedule": Schedule().to_dict(),
                           "patience": patience, "version": __version__}


def test_train_takes_the_entry_settings(monkeypatch, tiny_graph):
    seen = []
    adam = torch.optim.Adam
    monkeypatch.setattr(torch.optim, "Adam",
                        lambda params, **kw: seen.append(kw) or adam(params, **kw))
    data = _with_masks(tiny_graph)
    for name in MODELS:
        train_model(_small(name), data, epochs=1)
        assert seen.pop() == get_model(name).hparams
    train_model(_small("agnn"), data, epochs=1, lr=0.02)
    assert seen.pop() == {"lr": 0.02, "weight_decay": 5e-4}


class _Unregistered(QuantGNN):
    name = "mine"

    def __init__(self) -> None:
        super().__init__([])
        self.lin = torch.nn.Linear(5, 2)

    def forward(self, x, edge_index):
        return self.lin(x)


def test_an_unknown_model_is_an_error_everywhere(tiny_graph):
    """Before the registry, a model without an entry trained silently with GCN's settings."""
    for call in (lambda: build_model("mlp", 5, 2), lambda: get_model("mlp"),
                 lambda: get_profile("quick").architecture("mlp"),
                 lambda: resolve_models("gcn,mlp", "quick"),
                 lambda: check_parameters(model="mlp", profile="quick"),
                 lambda: train_model(_Unregistered(), _with_masks(tiny_graph), epochs=1)):
        with pytest.raises(ValueError, match=ALLOWED):
            call()
    with pytest.raises(ValueError, match="unknown model 'mine'"):
        train_model(_Unregistered(), _with_masks(tiny_graph), epochs=1)
    # with both settings given, no lookup is needed
    train_model(_Unregistered(), _with_masks(tiny_graph), epochs=1, lr=0.01, weight_decay=0.0)
    with pytest.raises(ValueError, match="model 'gcn' takes no heads; its options: none"):
        build_model("gcn", 5, 2, heads=2)


@pytest.mark.parametrize("command", ["train", "search"])
def test_cli_model_choices(command, capsys):
    from sgquant.cli import build_parser
    parser = build_parser()
    for name in MODELS:
        assert parser.parse_args([command, "--dataset", "Cora", "--model", name]).model == name
    with pytest.raises(SystemExit) as exc:
        parser.parse_args([command, "--dataset", "Cora", "--model", "mlp"])
    assert exc.value.code == 2
    assert "invalid choice: 'mlp' (choose from gcn, agnn, gat, sage, gin)" in \
        capsys.readouterr().err.replace("'gcn', 'agnn', 'gat', 'sage', 'gin'",
                                        "gcn, agnn, gat, sage, gin")


def test_labels_and_choices_come_from_the_registry():
    from sgquant.plots import MODEL_LABELS
    assert MODEL_LABELS == {n: e.label for n, e in REGISTRY.items()}
    assert MODELS == tuple(REGISTRY) == tuple(get_model(m).name for m in MODEL_MODULES)


def test_sage_and_gin_are_registry_entries():
    assert MODELS[3:] == ("sage", "gin") and MODEL_MODULES[3:] == ("sage", "gin")
    from sgquant.plots import MODEL_LABELS
    assert (MODEL_LABELS["sage"], MODEL_LABELS["gin"]) == ("GraphSAGE", "GIN")
    for name in ("sage", "gin"):
        entry = get_model(name.upper())
        assert not entry.in_paper and entry.architecture == (64, 2)
        assert entry.hparams == {"lr": 0.01, "weight_decay": 5e-4}
        assert get_profile("quick").architecture(name) == {"hidden": 64, "num_layers": 2}
        assert resolve_models(name, "quick") == [name]


def test_sage_and_gin_live_in_their_files_alone():
    """Adding a model is its file plus its name in MODEL_MODULES: no other module of the
    package names GraphSAGE's or GIN's code (their names as strings, classes, modules)."""
    package = Path(__file__).resolve().parents[1] / "sgquant"
    word = re.compile(r"[\"'](sage|gin)[\"']|\b(SAGE|GIN|sage\.|gin\.)|GINConv|SAGEConv")
    hits = []
    for path in package.rglob("*.py"):
        if path.relative_to(package).as_posix() in ("models/sage.py", "models/gin.py"):
            continue
        for no, line in enumerate(path.read_text().splitlines(), start=1):
            if word.search(line) and not line.startswith("MODEL_MODULES = "):
                hits.append(f"{path.relative_to(package)}:{no}: {line.strip()}")
    assert not hits, hits


def test_chapters_list_models_the_paper_does_not_have():
    from sgquant.chapters.setup import architecture_table, reading_setup
    from sgquant.plots import format_architectures
    arch = architecture_table("quick", ["gcn", "sage", "gin"])
    assert list(arch["in_paper"]) == [True, False, False]
    assert arch["paper_hidden"].iloc[1:].isna().all() and list(arch["hidden"]) == [32, 64, 64]
    assert list(arch["quantized_fields"]) == [4, 4, 2]  # GIN: no att
    shown = format_architectures(arch)
    assert list(shown[("", "same as paper")]) == ["yes", "—", "—"]
    stats = pd.DataFrame(columns=["dataset", "status", "nodes_diff", "features_diff",
                                  "classes_diff"])
    text = reading_setup(arch, stats)
    assert "GCN use the paper's Table I architecture" in text
    assert "GraphSAGE and GIN are not in the paper (ours: GraphSAGE hidden 64, 2 layers, " \
           "GIN hidden 64, 2 layers)" in text


def _small(name: str) -> QuantGNN:
    torch.manual_seed(0)
    return build_model(name, 5, 2, **({"hidden": 4, "heads": 2} if name == "gat" else {}))


def _with_masks(graph: Data) -> Data:
    data = graph.clone()
    n = data.num_nodes
    data.y = torch.arange(n) % 2
    data.train_mask = torch.arange(n) < 3
    data.val_mask = ~data.train_mask
    data.test_mask = ~data.train_mask
    return data
