"""Fine-tuning options: distillation from the FP32 logits, and fine-tunes that cannot
choose epoch 0 (independent draws for confirmations); the device resolver."""
import pytest
import torch

from sgquant.assignment import BitAssignment
from sgquant.device import check_device_spec, describe_device, resolve_device
from sgquant.models import build_model
from sgquant.train import Distillation, finetune, teacher_logits, train_model


def _trained(tiny_graph):
    torch.manual_seed(0)
    model = build_model("gcn", 5, 2, hidden=8)
    result = train_model(model, tiny_graph, epochs=30, seed=0)
    return model, result.state_dict


def test_distillation_checks_its_settings():
    assert Distillation(2.0, 0.5).temperature == 2.0
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="distillation temperature must be a finite number > 0"):
            Distillation(temperature=bad)
    with pytest.raises(ValueError, match="distillation weight"):
        Distillation(weight=1.5)


def test_distillation_loss_is_kl_plus_ce(tiny_graph):
    torch.manual_seed(1)
    student, teacher = torch.randn(6, 2), torch.randn(6, 2)
    ce = torch.nn.functional.cross_entropy(student[tiny_graph.train_mask],
                                           tiny_graph.y[tiny_graph.train_mask])
    assert torch.allclose(Distillation(2.0, 0.0).loss(student, teacher, tiny_graph), ce)
    # w = 1 and the student equal to the teacher: nothing to learn
    assert float(Distillation(3.0, 1.0).loss(teacher, teacher, tiny_graph)) == pytest.approx(0.0, abs=1e-6)
    assert float(Distillation(3.0, 1.0).loss(student, teacher, tiny_graph)) > 0


def test_finetune_with_distillation_changes_the_weights(tiny_graph):
    model, state = _trained(tiny_graph)
    a = BitAssignment.uniform(2, 2)
    t = teacher_logits(model, tiny_graph, state)
    plain = finetune(model, tiny_graph, a, state, epochs=5, seed=0, evaluate_before=False)
    distilled = finetune(model, tiny_graph, a, state, epochs=5, seed=0, evaluate_before=False,
                         distill=Distillation(2.0, 0.9), teacher=t)
    assert plain.history[0]["epoch"] == 1 and distilled.history[0]["epoch"] == 1
    assert any(not torch.equal(plain.state_dict[k], distilled.state_dict[k]) for k in state)
    with pytest.raises(ValueError, match="teacher"):
        train_model(model, tiny_graph, epochs=1, distill=Distillation())


def test_finetune_can_exclude_epoch_zero(tiny_graph):
    model, state = _trained(tiny_graph)
    a = BitAssignment.uniform(1, 2)
    with_zero = finetune(model, tiny_graph, a, state, epochs=3, seed=0)
    without = finetune(model, tiny_graph, a, state, epochs=3, seed=0, evaluate_before=False)
    assert with_zero.history[0]["epoch"] == 0 and with_zero.epochs_run == 3
    assert [h["epoch"] for h in without.history] == [1, 2, 3] and without.epoch >= 1


def test_device_resolver():
    assert resolve_device("cpu") == torch.device("cpu")
    assert check_device_spec(" CUDA:1 ") == "cuda:1"
    for bad in ("gpu", "cpu:0", "cuda:x", 3, None):
        with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
            check_device_spec(bad)
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
            resolve_device("cuda")
    else:
        with pytest.raises(ValueError, match="does not exist"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    assert describe_device(torch.device("cpu")).startswith("cpu (")


def test_device_from_environment(monkeypatch):
    monkeypatch.setenv("SGQUANT_DEVICE", "cpu")
    assert resolve_device(None) == torch.device("cpu")
    monkeypatch.setenv("SGQUANT_DEVICE", "tpu")
    with pytest.raises(ValueError, match="'tpu'"):
        resolve_device(None)
