"""The ledger of what runs asked for (``sgquant.runner.ledger``): a line for every job a
runner is asked for, cached or measured; the purpose is not part of a job's key; a
record asked for twice is paid once; a broken last line is skipped; epochs are derived
from records as they are (FP32 ``epochs_run``, a fine-tune's key's ``finetune_epochs``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import pytest


from sgquant.assignment import BitAssignment
from sgquant.profiles import Profile, get_profile
from sgquant.runner import Job, Runner, SerialExecutor, accounting, cost_by_purpose, cost_table
from sgquant.runner.ledger import ledger_path, read_ledger, record_cost
from sgquant.settings import RunSettings

from data_helpers import ring_graph_file


@dataclass(frozen=True)
class ToyJob(Job):
    """A job that costs nothing: its record says it took ``seconds``."""

    kind: ClassVar[str] = "toy"
    seconds: float = 1.5
    profile: Optional[Profile] = None

    def run(self) -> dict:
        return {"seconds": self.seconds}


def _job(n: int, purpose: str = "") -> ToyJob:
    return ToyJob({"kind": "toy", "n": n}, 60.0 * n, get_profile("quick"), purpose=purpose)


def test_hits_and_misses_are_ledgered_and_purpose_is_not_in_the_key(tmp_path):
    runner = Runner(SerialExecutor(), str(tmp_path))
    runner.run([_job(1, "candidate"), _job(2, "candidate")])
    assert _job(1, "final").key == _job(1, "candidate").key
    again = Runner(SerialExecutor(), str(tmp_path))
    (rec,) = again.run([_job(1, "final")])  # same key, another purpose: a cache hit
    assert rec == {"seconds": 60.0}
    lines = read_ledger(ledger_path(tmp_path, "quick"))
    assert sorted((e["purpose"], e["cached"]) for e in lines) == [
        ("candidate", False), ("candidate", False), ("final", True)]
    assert len({e["key"] for e in lines}) == 2
    cost = cost_by_purpose(lines)  # the record asked for twice is paid once
    assert cost == {"candidate": {"epochs": 0, "seconds": 180.0, "jobs": 2}}


def test_a_broken_last_line_is_skipped(tmp_path):
    Runner(SerialExecutor(), str(tmp_path)).run([_job(1)])
    path = ledger_path(tmp_path, "quick")
    with path.open("a") as fh:
        fh.write('{"profile": "quick", "purpose": "fin')  # a write cut short
    assert len(read_ledger(path)) == 1 and read_ledger(tmp_path / "missing.jsonl") == []


def test_accounting_names_the_asker_and_the_default_purpose(tmp_path):
    with accounting("granularity") as acct:
        runner = Runner(SerialExecutor(), str(tmp_path), asked_by="search random seed 0")
        runner.run([_job(1), _job(3, "candidate")])
    assert sorted(e["purpose"] for e in acct.entries) == ["candidate", "granularity"]
    assert {e["asked_by"] for e in acct.entries} == {"granularity/search random seed 0"}
    table = cost_table(acct.entries)
    assert list(table["purpose"]) == ["candidate", "granularity"]  # PURPOSES first
    assert list(table["cpu_minutes"]) == [3.0, 1.0]


def test_epochs_are_derived_from_records_as_they_are():
    assert record_cost("fp32", {"epochs": 200}, {"epochs_run": 57, "seconds": 2.0}) == (57, 2.0)
    assert record_cost("measure", {"finetune_epochs": 20}, {"seconds": 1.0}) == (20, 1.0)
    assert record_cost("coded", {}, {"coded_saving": 3.0}) == (0, 0.0)


def test_fp32_and_finetune_records_in_the_ledger(tmp_path):
    """A real FP32 training and fine-tune (a 40-node graph, the quick profile): the
    fine-tune's epochs are the profile's, the training's its ``epochs_run``."""
    graph = ring_graph_file(tmp_path / "ring.pt")
    settings = RunSettings.resolve("quick", results=tmp_path / "results", device="cpu")
    runner = Runner(SerialExecutor(), str(settings.results), settings)
    (summary,) = runner.run([runner.train_job(graph, "gcn", 0)])
    job = runner.finetune_job(graph, "gcn", 0, BitAssignment.uniform(4, 2, 3))
    runner.run([job.for_purpose("candidate")])
    cost = cost_by_purpose(runner.spent)
    assert cost["fp32"]["epochs"] == summary["epochs_run"] and cost["fp32"]["jobs"] == 1
    assert cost["candidate"]["epochs"] == settings.profile.finetune_epochs


def test_measure_and_prepare_outside_a_runner_are_ledgered(tmp_path):
    """Chapter 6's path (``prepare`` then ``measure``, no runner) and ``sgquant train``'s:
    the FP32 model and each fine-tune get their lines, under the asking chapter."""
    from sgquant.measure import clear_setup_cache, measure, prepare

    graph = ring_graph_file(tmp_path / "ring.pt")
    results = str(tmp_path / "results")
    clear_setup_cache()
    with accounting("rematching") as acct:
        setup = prepare(graph, "gcn", 0, "quick", results)
        measure(setup, BitAssignment.uniform(4, 2), results=results)
        measure(setup, BitAssignment.uniform(4, 2), results=results)  # a hit
    lines = read_ledger(ledger_path(tmp_path / "results", "quick"))
    assert [e["cached"] for e in lines] == [False, False, True] and lines == acct.entries
    assert [e["purpose"] for e in lines] == ["fp32", "rematching", "rematching"]
    assert cost_by_purpose(lines)["rematching"] == {  # seconds via minutes: float rounding
        "epochs": setup.profile.finetune_epochs,
        "seconds": pytest.approx(lines[1]["seconds"], rel=1e-12), "jobs": 1}


def test_a_read_only_results_folder_still_serves_its_records(tmp_path, monkeypatch):
    """A ledger that cannot be written is one warning; the cached record is served."""
    from sgquant.runner import ledger

    Runner(SerialExecutor(), str(tmp_path)).run([_job(1)])

    def refuse(path, entry):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(ledger, "append_entry", refuse)
    with pytest.warns(UserWarning, match="cannot append to the ledger"):
        (rec,) = Runner(SerialExecutor(), str(tmp_path)).run([_job(1), _job(1)])[:1]
    assert rec == {"seconds": 60.0}
