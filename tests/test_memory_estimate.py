"""The memory estimate of a training run and the check before it starts: shapes are
synthetic (models built on the meta device, nothing big allocated) and the machine's
memory is faked."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import sgquant.memory.estimate as E
from sgquant.cli import main
from sgquant.measure import clear_setup_cache, prepare
from sgquant.models import MODELS, build_model
from sgquant.profiles import PROFILES

GIB = 2**30
#: nodes, features, stored edges, classes of the datasets the book uses
BOOK = {"Cora": (2708, 1433, 10556, 7), "CiteSeer": (3327, 3703, 9104, 6),
        "Amazon-Computers": (13752, 767, 491722, 10), "Coauthor-CS": (18333, 6805, 163788, 15),
        "Coauthor-Physics": (34493, 8415, 495924, 5)}


def _estimate(model: str, n: int, f: int, e: int, c: int, **arch: int) -> E.TrainingMemory:
    with torch.device("meta"):
        net = build_model(model, f, c, **arch)
    return E.training_memory(E.layout_bound(net, n, e), c, e, model)


def _machine(cpu: float, cuda: float = 0.0):
    def fake(device="cpu"):
        return ((int(cuda), "the memory of cuda:0 (fake)") if torch.device(device).type == "cuda"
                else (int(cpu), "this machine's cgroup memory limit"))
    return fake


def test_the_formula_on_a_small_shape() -> None:
    # GCN 2 layers, hidden 4, on 10 nodes x 3 features, 20 edges, 2 classes
    est = _estimate("gcn", 10, 3, 20, 2, hidden=4, num_layers=2)
    assert est.graph == 4 * 10 * 3 + 16 * 20 + 11 * 10
    assert est.features == 4 * 4 * 10 * 3
    assert est.nodes == 8 * 4 * 10 * (4 + 2)
    # both layers add self-loops: 30 edges each, 1 coefficient, GCN keeps 2 message copies
    assert est.edges == 30 * (4 * (2 * 4 + 12) + 48) + 30 * (4 * (2 * 2 + 12) + 48)
    assert est.parameters == 6 * 4 * (3 * 4 + 4 + 4 * 2 + 2)
    assert est.host(False) == est.graph + est.device + E.RUNTIME_BYTES
    assert est.host(True) == 2 * est.graph + E.RUNTIME_BYTES


def test_2708_by_200000_features_is_refused_under_8_gb(monkeypatch: pytest.MonkeyPatch) -> None:
    est = _estimate("gcn", 2708, 200_000, 10556, 7, hidden=32, num_layers=2)
    assert 2 * 2.17e9 < est.graph + est.features and est.host(False) < 16e9  # not absurd
    with torch.device("meta"):
        net = build_model("gcn", 200_000, 7, hidden=32, num_layers=2)
    layout = E.layout_bound(net, 2708, 10556)
    monkeypatch.setattr(E, "machine_memory", _machine(8e9))
    with pytest.raises(E.InsufficientMemoryError) as info:
        E.check_training_fits(layout, 7, 10556, "gcn", "cpu", "graph file /x/big.pt with gcn")
    msg = str(info.value)
    assert msg.startswith("graph file /x/big.pt with gcn: training needs about 13.7 GB on cpu")
    assert "cgroup memory limit is 8.0 GB; refused before starting" in msg and "\n" not in msg
    monkeypatch.setattr(E, "machine_memory", _machine(24 * GIB))
    assert E.check_training_fits(layout, 7, 10556, "gcn", "cpu", "x") == est


def test_cuda_checks_the_device_and_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    with torch.device("meta"):
        net = build_model("gcn", 200_000, 7, hidden=32, num_layers=2)
    layout = E.layout_bound(net, 2708, 10556)
    est = E.training_memory(layout, 7, 10556, "gcn")
    need = est.device + E.CUDA_CONTEXT_BYTES
    monkeypatch.setattr(E, "machine_memory", _machine(24 * GIB, need - 1))
    with pytest.raises(E.InsufficientMemoryError, match="on cuda:0 .* the memory of cuda:0"):
        E.check_training_fits(layout, 7, 10556, "gcn", "cuda:0", "x")
    monkeypatch.setattr(E, "machine_memory", _machine(est.host(True), need))
    E.check_training_fits(layout, 7, 10556, "gcn", "cuda:0", "x")  # both fit exactly
    monkeypatch.setattr(E, "machine_memory", _machine(est.host(True) - 1, need))
    with pytest.raises(E.InsufficientMemoryError, match="on cpu"):
        E.check_training_fits(layout, 7, 10556, "gcn", "cuda:0", "x")


@pytest.mark.parametrize("profile", ["quick", "default", "full", "paper"])
def test_the_books_datasets_fit_on_24_gib(profile: str) -> None:
    prof = PROFILES[profile]
    for name, (n, f, e, c) in BOOK.items():
        if profile == "paper" and name.startswith("Coauthor"):
            continue  # the paper profile runs the paper's datasets only
        for model in MODELS:
            est = _estimate(model, n, f, e, c, **prof.architecture(model))
            assert est.host(False) < 24 * GIB, (name, model, est.describe())


def test_machine_memory_takes_the_least_limit(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    total, source = E.machine_memory("cpu")
    assert total > 0 and source.startswith("this machine's ")
    # cgroup v1 (memory controller) and v2 (unified) limits, ancestors included
    (tmp_path / "memory" / "job").mkdir(parents=True)
    (tmp_path / "memory" / "job" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("8000000000\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "memory.max").write_text("max\n")
    (tmp_path / "a" / "memory.max").write_text("6000000000\n")
    cgroup = tmp_path / "cgroup"
    monkeypatch.setattr(E, "_CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(E, "_PROC_CGROUP", cgroup)
    cgroup.write_text("4:memory:/job\n1:cpu:/\n")
    assert E._cgroup_limit() == 8_000_000_000
    cgroup.write_text("4:memory:/job\n0::/a/b\n")
    assert E._cgroup_limit() == 6_000_000_000
    assert E.machine_memory("cpu") == (6_000_000_000, "this machine's cgroup memory limit")
    cgroup.write_text("0::/a/b/c\n")  # no such folder: its ancestors still count
    assert E._cgroup_limit() == 6_000_000_000
    cgroup.write_text("0::/\n")
    assert E._cgroup_limit() is None


def test_physical_memory_without_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    with_psutil = E._physical_memory()
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    from_proc = E._physical_memory()
    assert from_proc == pytest.approx(with_psutil, rel=0.01)
    monkeypatch.setattr(E, "_MEMINFO", Path("/nonexistent/meminfo"))
    assert E._physical_memory() == pytest.approx(with_psutil, rel=0.01)  # os.sysconf


def test_prepare_refuses_before_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "g.pt"
    src = torch.arange(20)
    torch.save({"x": torch.rand(20, 4), "edge_index": torch.stack([src, src.flip(0)]),
                "y": src % 2}, path)
    monkeypatch.setattr(E, "machine_memory", _machine(100e6))
    clear_setup_cache()
    with pytest.raises(E.InsufficientMemoryError,
                       match=f"^{path} with gcn: training needs about 0.5 GB on cpu"):
        prepare(str(path), "gcn", 0, "quick", results=str(tmp_path / "results"), device="cpu")
    assert not (tmp_path / "results").exists()  # nothing trained, nothing written
    code = main(["train", "--dataset", str(path), "--model", "gat", "--profile", "quick",
                 "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and f"{path} with gat: training needs about" in err
