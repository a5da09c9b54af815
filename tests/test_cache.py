"""The results cache: records are checked when read (a wrong one is discarded, measured
again and rewritten), files honour the umask, deep JSON is invalid rather than a
crash, and older records are announced, not reused."""
from __future__ import annotations

import json
import logging
import os

import pytest

from sgquant.cache import (RESULTS_VERSION, ResultCache, atomic_write_json, check_output_file,
                           parse_json, stale_records_notice)
from sgquant.measure import Measurement

DEEP = "[" * 10_000 + "]" * 10_000


@pytest.fixture
def record(cora, tmp_path):
    """A real measurement record (quick FP32 model, one fine-tune)."""
    from sgquant.assignment import BitAssignment
    from sgquant.measure import measure, prepare
    setup = prepare("Cora", "gcn", 0, "quick", str(tmp_path))
    rec = measure(setup, BitAssignment.uniform(4, 2), results=str(tmp_path))
    rec.pop("cached")
    return rec


def test_measurement_checks_every_field(record):
    assert Measurement.from_record(record).to_record() == record
    for change, match in (({"val_acc": "oops"}, "val_acc must be a finite number"),
                          ({"test_acc": 1.5}, "test_acc must be a finite number >= 0.0 and "
                                              "<= 1.0, got 1.5"),
                          ({"seed": True}, "seed must be an integer"),
                          ({"worker": 3}, "worker must be a string"),
                          ({"saving": float("nan")}, "saving"),
                          ({"config_key": "0" * 16}, "is not the key of its assignment"),
                          ({"assignment": {"att_bits": [4]}}, "emb_bits")):
        with pytest.raises(ValueError, match=match):
            Measurement.from_record({**record, **change})
    with pytest.raises(ValueError, match="needs dataset"):
        Measurement.from_record({k: v for k, v in record.items() if k != "dataset"})
    with pytest.raises(ValueError, match="is a JSON object, got list"):
        Measurement.from_record([1, 2, 3])


def test_parse_json_turns_deep_nesting_into_a_value_error():
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json(DEEP, "the record")
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_json("{", "the record")


@pytest.mark.parametrize("content", ["[1,2,3]", DEEP, "{not json", '{"key": 1, "value": {}}',
                                     "wrong value"])
def test_an_invalid_record_is_discarded_with_one_warning(content, tmp_path, caplog):
    cache = ResultCache(tmp_path)
    key = {"kind": "measure", "x": 1}
    cache.put("measure", key, {"val_acc": 0.5})
    path = cache.path("measure", key)
    if content == "wrong value":
        path.write_text(json.dumps({"key": key, "value": {"val_acc": "oops"}}))
    else:
        path.write_text(content)

    def check(value):
        if not isinstance(value.get("val_acc"), float):
            raise ValueError(f"val_acc must be a number, got {value.get('val_acc')!r}")

    with caplog.at_level(logging.WARNING, logger="sgquant.cache"):
        assert cache.get("measure", key, validate=check) is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert str(path) in message and "computed again and rewritten" in message
    assert "\n" not in message


def test_a_record_of_another_key_is_not_returned(tmp_path, caplog):
    cache = ResultCache(tmp_path)
    a, b = {"kind": "measure", "x": 1}, {"kind": "measure", "x": 2}
    cache.put("measure", a, {"v": 1})
    cache.path("measure", b).write_text(cache.path("measure", a).read_text())
    assert cache.get("measure", b) is None and "another key" in caplog.text
    assert cache.get("measure", a) == {"v": 1}


def test_a_search_heals_wrong_records_and_gives_the_same_answer(tmp_path, caplog):
    """The reported defect: a record overwritten with [1,2,3], another with
    "val_acc": "oops", and FP32 records of the wrong structure."""
    from sgquant.measure import clear_setup_cache
    from sgquant.runner import SerialExecutor
    from sgquant.search import cost_model_search
    kw = dict(budget=6, n_iter=1, n_sample=100, seed=0, profile="quick", progress=False,
              confirm_top=1, confirm_seeds=1, results=tmp_path)
    first = cost_model_search("Cora", "gcn", executor=SerialExecutor(), **kw)
    records = sorted((tmp_path / "measure").glob("*.json"))
    records[0].write_text("[1,2,3]")
    payload = json.loads(records[1].read_text())
    payload["value"]["val_acc"] = "oops"
    records[1].write_text(json.dumps(payload))
    (fp32_json,) = (tmp_path / "fp32").glob("*.json")
    (fp32_pt,) = (tmp_path / "fp32").glob("*.pt")
    fp32_json.write_text('{"key": {}, "value": [1, 2, 3]}')
    fp32_pt.write_bytes(b"not a torch file")
    clear_setup_cache()  # as a new process would
    with caplog.at_level(logging.WARNING, logger="sgquant.cache"):
        again = cost_model_search("Cora", "gcn", executor=SerialExecutor(), **kw)
    assert again.num_failed == 0 and again.chosen == first.chosen
    assert again.chosen_saving == first.chosen_saving
    assert again.records["val_acc"].tolist() == first.records["val_acc"].tolist()
    assert sorted(again.records["status"].unique()) == ["cached", "measured"]
    warned = caplog.text
    for path in (records[0], records[1], fp32_json, fp32_pt):
        assert str(path) in warned
    for path in records[:2]:  # rewritten, valid
        Measurement.from_record(json.loads(path.read_text())["value"])
    caplog.clear()
    clear_setup_cache()
    third = cost_model_search("Cora", "gcn", executor=SerialExecutor(), **kw)
    assert set(third.records["status"]) == {"cached"} and not caplog.records


@pytest.mark.parametrize("umask", [0o002, 0o022, 0o077])
def test_files_get_the_permissions_the_umask_allows(umask, tmp_path):
    before = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        ResultCache(tmp_path).put_state("fp32", {"k": 1}, {})
    finally:
        os.umask(before)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask
    (state,) = (tmp_path / "fp32").glob("*.pt")
    assert state.stat().st_mode & 0o777 == 0o666 & ~umask
    assert not list(tmp_path.glob(".*.tmp"))


def test_older_records_are_announced_once_and_kept(tmp_path):
    old = tmp_path / "measure" / "0123.json"
    old.parent.mkdir()
    old.write_text('{"key": {}, "value": {}}')
    notice = stale_records_notice(tmp_path)
    assert notice and "older sgquant (results version 1, now " + RESULTS_VERSION in notice
    assert "nothing is deleted" in notice and old.exists()
    assert stale_records_notice(tmp_path) is None  # the folder is marked
    assert stale_records_notice(tmp_path / "empty") is None


def test_output_check_accepts_only_files_sgquant_may_write(tmp_path):
    ours = tmp_path / "ours.json"
    ours.write_text('{"runs": [], "summary": []}')
    is_ours = lambda p: isinstance(p, dict) and "runs" in p  # noqa: E731
    assert check_output_file(ours, is_ours) == ours
    assert check_output_file(tmp_path / "new" / "deeper" / "x.json", is_ours)
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    for path, match in ((tmp_path, "is a folder"), (deep, "was not written by sgquant"),
                        (ours / "x.json", "is a file, not a folder")):
        with pytest.raises(ValueError, match=match):
            check_output_file(path, is_ours)


# ------------------------------------------------------------- a full disk
@pytest.mark.parametrize("call", ["fsync", "replace"])
def test_a_full_disk_is_one_line_and_leaves_the_old_file_and_no_partial_one(call, tmp_path,
                                                                             monkeypatch):
    from file_helpers import disk_full_for
    from sgquant.cache import WriteFailed
    target = tmp_path / "result.json"
    atomic_write_json(target, {"old": 1})
    refused = disk_full_for(monkeypatch, lambda p: p.parent == tmp_path, call)
    with pytest.raises(WriteFailed) as exc:
        atomic_write_json(target, {"new": 2})
    assert refused and str(exc.value) == f"cannot write {target}: No space left on device"
    assert isinstance(exc.value, OSError) and exc.value.errno == 28
    assert json.loads(target.read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]  # no temporary file


def test_records_written_before_a_full_disk_stay(tmp_path, monkeypatch):
    from file_helpers import disk_full_for
    from sgquant.cache import WriteFailed
    cache = ResultCache(tmp_path)
    cache.put("measure", {"k": 1}, {"v": 1})
    disk_full_for(monkeypatch, lambda p: p.parent.name == "measure", "fsync")
    with pytest.raises(WriteFailed, match=r"cannot write .*measure.*\.json: No space left on "
                                          r"device; the records written before it stay in the "
                                          r"cache: a rerun resumes from them$"):
        cache.put("measure", {"k": 2}, {"v": 2})
    assert cache.get("measure", {"k": 1}) == {"v": 1} and cache.get("measure", {"k": 2}) is None
    assert not list((tmp_path / "measure").glob(".*"))


def test_output_names_the_file_system_cannot_hold_are_refused_first(tmp_path):
    from sgquant.cache import check_file_name
    assert check_output_file(tmp_path / ("a" * 200 + ".json"), dict) is not None
    for bad, match in ((tmp_path / ("g" * 300 + ".json"), r"its file name has 305 bytes, more "
                                                          r"than the 255"),
                       (tmp_path / ("d" * 256) / "x.json", r"its folder d{40}\.\.\. \(256 "
                                                          r"characters\) has 256 bytes"),
                       (tmp_path / "a\0b.json", "NUL character")):
        with pytest.raises(ValueError, match=match):
            check_output_file(bad, dict)
    with pytest.raises(ValueError, match="--out x"):
        check_file_name(tmp_path / ("x" * 4096), "--out x")
