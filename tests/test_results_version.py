"""Results that cannot go stale: every result-changing default has a fingerprint recorded
beside the results version, so none moves without the version; the keys hold each
model's training settings; each record notes the machine that made it (not in its key),
and a results folder says which machines made its records."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from data_helpers import ring_graph_file

from sgquant import variants
from sgquant.cache import (RESULTS_CHANGES, RESULTS_FINGERPRINT, RESULTS_VERSION, ResultCache,
                           key_hash, stale_records_notice)
from sgquant.fingerprint import fingerprint, fingerprint_line
from sgquant.measure import Measurement, clear_setup_cache, fp32_key, measure, prepare
from sgquant.models import REGISTRY
from sgquant.models.gcn import GCN
from sgquant.profiles import PROFILES, get_profile
from sgquant.provenance import UNKNOWN, check_made_on, made_on, record_machines
from sgquant.schedule import SCHEDULES
from sgquant.search import strategy
from sgquant.train import Finetune

REPO = Path(__file__).resolve().parents[1]
MOVED = ("a result-changing default moved: bump RESULTS_VERSION in sgquant/cache.py, say "
         "what changed in RESULTS_CHANGES and record the new fingerprint (python -m "
         "sgquant.fingerprint prints the line)")


def test_the_recorded_fingerprint_is_todays():
    today, recorded = fingerprint(), RESULTS_FINGERPRINT.get(RESULTS_VERSION)
    assert today == recorded, f"{MOVED}; today {today}, recorded {recorded} for version " \
                              f"{RESULTS_VERSION}"
    assert RESULTS_VERSION in RESULTS_CHANGES
    assert len(set(RESULTS_FINGERPRINT.values())) == len(RESULTS_FINGERPRINT)
    assert fingerprint_line() == f'RESULTS_FINGERPRINT = {json.dumps(RESULTS_FINGERPRINT)}'


def _registry_lr(mp):
    mp.setitem(REGISTRY, "gcn", dataclasses.replace(REGISTRY["gcn"], lr=0.02))


def _class_dropout(mp):
    mp.setattr(GCN.__init__, "__defaults__", (32, 2, 0.4))


def _profile_budget(mp):
    mp.setitem(PROFILES, "default", dataclasses.replace(PROFILES["default"], search_budget=25))


def _finetune_default(mp):
    mp.setattr(Finetune.__dataclass_fields__["keep_epoch0"], "default", False)


def _schedule_preset(mp):
    mp.setitem(SCHEDULES, "cosine300", dataclasses.replace(SCHEDULES["cosine300"], floor=0.02))


def _variant_confirmation(mp):
    plus = variants.ABLATION[-1]
    moved = dataclasses.replace(plus, confirmation=dataclasses.replace(plus.confirmation,
                                                                       level=0.9))
    mp.setattr(variants, "ABLATION", (*variants.ABLATION[:-1], moved))


def _search_strategy(mp):
    mp.setattr(strategy, "STRATEGY", strategy.Strategy(trees=11))


def _optional_setting_on(mp):
    from sgquant.search.spec import SearchSpec
    mp.setattr(SearchSpec.__dataclass_fields__["epoch_budget"], "default", 100)


@pytest.mark.parametrize("move", [_registry_lr, _class_dropout, _profile_budget,
                                  _finetune_default, _schedule_preset, _variant_confirmation,
                                  _search_strategy, _optional_setting_on])
def test_a_moved_default_moves_the_fingerprint(monkeypatch, move):
    before = fingerprint()
    move(monkeypatch)
    assert fingerprint() != before


def test_the_fp32_key_holds_the_models_training_settings(monkeypatch):
    """A moved learning rate or dropout is another FP32 model, so another record (and
    every measurement key holds the FP32 key); the same settings give the same key."""
    prof = get_profile("quick")
    key = fp32_key("Cora", "gcn", 0, prof)
    assert key["training"] == {"lr": 0.01, "weight_decay": 5e-4, "dropout": 0.5}
    assert key_hash(key) == key_hash(fp32_key("Cora", "gcn", 0, prof))
    assert fp32_key("Cora", "gat", 0, prof)["training"]["dropout"] == 0.6
    _registry_lr(monkeypatch)
    assert fp32_key("Cora", "gcn", 0, prof)["training"]["lr"] == 0.02
    _class_dropout(monkeypatch)
    moved = fp32_key("Cora", "gcn", 0, prof)
    assert moved["training"]["dropout"] == 0.4 and key_hash(moved) != key_hash(key)


@pytest.fixture
def measured(tmp_path):
    """A results folder with one FP32 model and one fine-tune of a small graph file."""
    from sgquant.assignment import BitAssignment
    results = tmp_path / "results"
    clear_setup_cache()
    setup = prepare(ring_graph_file(tmp_path / "g.pt"), "gcn", 0, "quick", results=str(results),
                    device="cpu")
    record = measure(setup, BitAssignment.uniform(4, 2), results=str(results))
    yield setup, record, results
    clear_setup_cache()


def test_records_note_their_machine_outside_their_key(measured):
    setup, record, results = measured
    here = made_on("cpu")
    assert set(here) == {"cpu_capability", "device", "torch"} and here["device"] == "cpu"
    assert here["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["made_on"] == here and setup.fp32["made_on"] == here
    stored = [json.loads(p.read_text()) for kind in ("fp32", "measure")
              for p in (results / kind).glob("*.json")]
    assert len(stored) == 2 and all(r["value"]["made_on"] == here for r in stored)
    assert all("made_on" not in json.dumps(r["key"]) for r in stored)
    key = stored[1]["key"] if stored[1]["key"]["kind"] == "measure" else stored[0]["key"]
    assert key["optimizer"] == {"lr": 0.01, "weight_decay": 5e-4}
    assert key["finetune_seed"] == 0 and key["finetune"] == Finetune().to_dict()


def test_an_old_record_reads_as_unknown_and_a_bad_note_is_refused(measured):
    _, record, _ = measured
    old = {k: v for k, v in record.items() if k not in ("made_on", "cached")}
    assert Measurement.from_record(old).made_on == dict.fromkeys(
        ("cpu_capability", "device", "torch"), UNKNOWN)
    with pytest.raises(ValueError, match="made_on must be a dict of strings"):
        Measurement.from_record({**old, "made_on": ["cpu"]})
    assert check_made_on({"device": "cpu"})["torch"] == UNKNOWN


def test_a_results_folder_lists_the_machines_of_its_records(measured):
    _, _, results = measured
    assert record_machines(results / "nothing").empty
    here = made_on("cpu")
    (row,) = record_machines(results).to_dict("records")
    assert row == {**here, "fp32_models": 1, "fine_tunes": 1, "records": 2}
    (results / "measure" / "old.json").write_text('{"key": {}, "value": {"val_acc": 0.5}}')
    (results / "measure" / "junk.json").write_text("{not json")
    table = record_machines(results)
    assert table[["device", "fine_tunes", "records"]].values.tolist() == [
        ["cpu", 1, 2], [UNKNOWN, 1, 1]]


def test_a_trained_job_notes_its_machine(tmp_path):
    """FP32 models trained by a runner's worker (a TrainJob) note it too."""
    from sgquant.runner import TrainJob
    job = TrainJob.of(ring_graph_file(tmp_path / "g.pt"), "gcn", 1, get_profile("quick"))
    summary = job.write(ResultCache(tmp_path), job.check(job.run()))
    assert summary["made_on"] == made_on("cpu")
    assert record_machines(tmp_path)["fp32_models"].tolist() == [1]


def test_the_cpu_capability_follows_aten_cpu_capability():
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", "from sgquant.provenance import made_on; "
                          "print(made_on()['cpu_capability'])"], env=env, text=True,
                         capture_output=True, check=True)
    assert out.stdout.strip() == "DEFAULT"


def test_records_of_the_previous_version_are_announced_with_what_changed(tmp_path):
    (tmp_path / "fp32").mkdir()
    (tmp_path / "fp32" / "0123.json").write_text('{"key": {}, "value": {}}')
    (tmp_path / "results_version.json").write_text('{"results_version": "2"}')
    notice = stale_records_notice(tmp_path)
    assert notice and f"results version 2, now {RESULTS_VERSION}: " in notice
    assert RESULTS_CHANGES[RESULTS_VERSION] in notice and "learning rate" in notice
    assert stale_records_notice(tmp_path) is None


def test_chapter_2_shows_the_machines_of_its_results_folder(measured, monkeypatch):
    from sgquant import chapters as C
    _, _, results = measured
    monkeypatch.setenv("SGQUANT_RESULTS", str(results))
    chapter = C.setup.Chapter(profile="quick", device="cpu")
    shown = chapter.machines()
    assert shown.data.to_dict("records") == [
        {"CPU capability": made_on()["cpu_capability"], "device": "cpu",
         "torch": torch.__version__, "FP32 models": 1, "fine-tunes": 1, "records": 2}]
    monkeypatch.setenv("SGQUANT_RESULTS", str(results / "empty"))
    empty = C.setup.Chapter(profile="quick", device="cpu").machines()
    assert "holds no FP32 model or fine-tune record yet" in empty.data


def test_the_build_information_counts_them(measured, monkeypatch, tmp_path):
    """The reproducibility page's build information lists them after every chapter ran."""
    from sgquant.book import BookResult, write_build_info
    _, _, results = measured
    monkeypatch.setenv("SGQUANT_RESULTS", str(results))
    text = write_build_info(tmp_path / "book", BookResult(profile="quick")).read_text()
    here = made_on()
    assert f"| {here['cpu_capability']} | cpu | {here['torch']} | 1 | 1 | 2 |" in text
