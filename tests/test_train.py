import json

import pytest
import torch

from sgquant.assignment import BitAssignment
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


# ---------------------------------------------------------------------- CLI
TRAIN = ["train", "--dataset", "Cora", "--model", "gcn", "--profile", "quick"]


def test_cli_refuses_a_repeated_width_before_any_work(tmp_path, capsys):
    from sgquant.cli import main
    code = main(TRAIN + ["--bits", "8", "8", "--seeds", "1", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--bits lists 8 more than once (got 8 8): give each width once" in err
    assert not (tmp_path / "fp32").exists()  # nothing trained
    for bad, message in ((["--bits", "0"], "--bits entry must be an integer in [1, 32]"),
                         (["--bits", "17"], "--bits entry 17 is not an allowed width"),
                         (["--seeds", "0"], "--seeds must be an integer >= 1, got 0")):
        assert main(TRAIN + bad + ["--results", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err


def test_cli_std_is_the_sample_std_and_one_seed_shows_none(tmp_path, capsys):
    import pandas as pd
    from sgquant.cli import main
    from sgquant.train_cli import mean_pm_std, summarize
    values = pd.Series([0.80, 0.82, 0.84])
    assert mean_pm_std(values) == "82.00 ± 2.00"  # ddof=1: sqrt(8e-4 / 2); ddof=0 gives 1.63
    assert mean_pm_std(pd.Series([0.8])) == "80.00"
    table = pd.DataFrame({"bits": ["8", "8"], "seed": [0, 1], "val_acc": [0.8, 0.9],
                          "test_acc": [0.7, 0.7], "best_test_acc": [0.7, 0.7],
                          "saving": [4.0, 4.0], "average_bits": [8.0, 8.0]})
    row = summarize(table).iloc[0]
    assert row["val %"] == "85.00 ± 7.07" and row["test %"] == "70.00 ± 0.00"
    out = tmp_path / "runs.json"
    assert main(TRAIN + ["--bits", "8", "--seeds", "1", "--results", str(tmp_path / "c"),
                         "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mean ± sample std over 1 seed, in %" in printed and "±" not in printed.split(
        "\n", 1)[1]
    assert json.loads(out.read_text())["summary"][1]["bits"] == "8"
    # a second run may replace the file it wrote, never another one
    assert main(TRAIN + ["--bits", "8", "--seeds", "1", "--results", str(tmp_path / "c"),
                         "--output", str(out)]) == 0
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(TRAIN + ["--bits", "8", "--seeds", "1", "--results", str(tmp_path / "c"),
                         "--output", str(notes)]) == 2
    assert "was not written by sgquant" in capsys.readouterr().err and notes.read_text() == "mine"


@pytest.mark.parametrize("case", ["output is a folder", "results is a file"])
def test_cli_file_faults_are_one_line_before_any_work(case, tmp_path, capsys):
    from sgquant.cli import main
    results, output = tmp_path / "cache", tmp_path / "out.json"
    if case == "output is a folder":
        output.mkdir()
    else:
        results.write_text("x")
    code = main(TRAIN + ["--bits", "8", "--seeds", "1", "--results", str(results),
                         "--output", str(output)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(output if "output" in case else results) in err[0]
