import pytest
import torch

from sgquant.bits import BitAssignment
from sgquant.models import build_model
from sgquant.train import evaluate, finetune, set_seed, train_model


def _gcn(data, seed=0):
    torch.manual_seed(seed)
    return build_model("gcn", data.num_features, int(data.y.max()) + 1)


def test_gcn_cora_learns_and_is_deterministic(cora):
    r1 = train_model(_gcn(cora), cora, epochs=40, seed=0)
    r2 = train_model(_gcn(cora), cora, epochs=40, seed=0)
    assert r1.val_acc > 0.7 and r1.test_acc > 0.7
    assert (r1.val_acc, r1.test_acc, r1.epoch) == (r2.val_acc, r2.test_acc, r2.epoch)
    assert r1.best_test_acc >= r1.test_acc
    for k, v in r1.state_dict.items():
        assert torch.equal(v, r2.state_dict[k])


def test_best_validation_weights_are_kept(cora):
    model = _gcn(cora)
    result = train_model(model, cora, epochs=30, seed=1)
    acc = evaluate(model, cora)
    assert acc["val"] == pytest.approx(result.val_acc)
    assert acc["test"] == pytest.approx(result.test_acc)
    assert max(h["val"] for h in result.history) == pytest.approx(result.val_acc)


def test_finetune_starts_from_fp32_and_never_loses_to_it(cora):
    model = _gcn(cora)
    fp32 = train_model(model, cora, epochs=30, seed=0)
    same = finetune(_gcn(cora, 5), cora, BitAssignment.fp32(2), fp32.state_dict, epochs=0)
    assert same.val_acc == pytest.approx(fp32.val_acc)
    q = finetune(_gcn(cora, 5), cora, BitAssignment.uniform(4, 2), fp32.state_dict, epochs=5)
    assert q.history[0]["epoch"] == 0
    assert q.val_acc >= q.history[0]["val"]
    assert q.epochs_run == 5


def test_bad_arguments(cora):
    model = _gcn(cora)
    with pytest.raises(ValueError, match="epochs"):
        train_model(model, cora, epochs=-1)
    with pytest.raises(ValueError, match="lr"):
        train_model(model, cora, epochs=1, lr=0.0)
    with pytest.raises(ValueError, match="seed"):
        set_seed(-3)
    from torch_geometric.data import Data
    with pytest.raises(ValueError, match="train_mask"):
        train_model(model, Data(x=cora.x, edge_index=cora.edge_index, y=cora.y), epochs=1)
