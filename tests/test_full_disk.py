"""A full disk after the work is done (``sgquant search`` and ``sgquant train``): one
line naming the file and the cause, exit 1, no partial file, and everything measured
kept in the cache, so the same command, rerun, writes its result without measuring."""
from __future__ import annotations

import json

import pytest

from file_helpers import disk_full_for
from sgquant.cli import main

SEARCH = ["search", "--dataset", "Cora", "--model", "gcn", "--method", "random",
          "--budget", "2", "--profile", "quick", "--workers", "0", "--no-progress",
          "--confirm-top", "0"]
TRAIN = ["train", "--dataset", "Cora", "--model", "gcn", "--profile", "quick", "--bits", "8",
         "--seeds", "1"]


def _one_line(capsys, command: str, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"sgquant {command}: error: cannot write "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _measuring_fails(monkeypatch) -> None:
    """From now on, any FP32 training or fine-tune raises: a rerun must read the cache."""
    from sgquant import measure
    from sgquant.runner import jobs

    def fail(*a, **k):
        raise AssertionError("measured again")
    monkeypatch.setattr(measure, "train_model", fail)
    monkeypatch.setattr(measure, "finetune_record", fail)
    monkeypatch.setattr(jobs, "finetune_record", fail)


@pytest.mark.parametrize("default_output", [True, False])
def test_search_result_on_a_full_disk_is_one_line_and_a_rerun_measures_nothing(
        default_output, tmp_path, capsys, monkeypatch):
    results, out = tmp_path / "cache", tmp_path / "out" / "result.json"
    argv = SEARCH + ["--results", str(results)] + ([] if default_output else
                                                    ["--output", str(out)])
    folder = results / "search" if default_output else out.parent
    with monkeypatch.context() as m:
        refused = disk_full_for(m, lambda p: p.parent == folder, "fsync")
        assert main(argv) == 1
    err = _one_line(capsys, "search", "No space left on device",
                    f"everything measured is kept in the results cache {results}: rerun "
                    "the same command once the file can be written")
    assert str(refused[0].parent) in err and not list(folder.iterdir())  # no partial file
    assert len(list((results / "measure").glob("*.json"))) == 2  # both measurements kept
    _measuring_fails(monkeypatch)
    assert main(argv) == 0
    (written,) = folder.iterdir()
    assert json.loads(written.read_text())["num_measured"] == 2


def test_train_output_on_a_full_disk_is_one_line_and_a_rerun_trains_nothing(
        tmp_path, capsys, monkeypatch):
    results, out = tmp_path / "cache", tmp_path / "runs.json"
    argv = TRAIN + ["--results", str(results), "--output", str(out)]
    with monkeypatch.context() as m:
        disk_full_for(m, lambda p: p == out)
        assert main(argv) == 1
    _one_line(capsys, "train", f"cannot write {out}: No space left on device; everything "
                               f"measured is kept in the results cache {results}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    _measuring_fails(monkeypatch)
    assert main(argv) == 0 and json.loads(out.read_text())["summary"][1]["bits"] == "8"


def test_train_record_on_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    results = tmp_path / "cache"
    disk_full_for(monkeypatch, lambda p: p.parent.name == "measure", "fsync")
    assert main(TRAIN + ["--results", str(results)]) == 1
    _one_line(capsys, "train", str(results / "measure"), "No space left on device; the "
              "records written before it stay in the cache: a rerun resumes from them")
    assert len(list((results / "fp32").glob("*.pt"))) == 1  # the FP32 model is kept
    assert not list((results / "measure").iterdir())  # no partial record
