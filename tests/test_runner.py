"""The one runner: the driver owns the cache, the workers only compute (they never need
the results folder), FP32 training in a worker equals training in the driver bit for
bit, and the run settings are declared once."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from sgquant.assignment import BitAssignment
from sgquant.chapters.common import final_finetune_jobs, pretrain, run_labelled
from sgquant.measure import clear_setup_cache, prepare
from sgquant.runner import FinetuneJob, Runner, SerialExecutor, TrainJob
from sgquant.runner.jobs import state_arrays
from sgquant.runner.orphans import QuietSpawnContext
from sgquant.settings import RunSettings, config_context, get_config, set_config
from sgquant.variants import get_variant


class CountingExecutor(SerialExecutor):
    """Serial, counting the jobs submitted."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list = []

    def submit(self, fn, /, *args, **kwargs):
        self.jobs.append(args[0])
        return super().submit(fn, *args, **kwargs)


def _batch(runner: Runner) -> list[dict]:
    """A chapter-style batch: FP32 models trained as jobs, then final fine-tunes."""
    pretrain(runner, [("Cora", "gcn", 0), ("Cora", "gcn", 1)])
    a = BitAssignment.uniform(4, 2)
    return run_labelled(runner, [{"row": 0}, {"row": 1}],
                        final_finetune_jobs(runner, "Cora", "gcn", [0, 1], a,
                                            get_variant("sgquant")))


@pytest.mark.parametrize("pool", ["serial", "process"])
def test_workers_never_touch_the_results_folder(cora, tmp_path, monkeypatch, pool):
    """The workers' ``$SGQUANT_RESULTS`` names a folder that cannot exist; the batch
    still runs because only the driver (its settings' folder) reads and writes."""
    monkeypatch.setenv("SGQUANT_RESULTS", "/proc/sgquant-no-such-folder")
    settings = RunSettings.resolve("quick", results=tmp_path, device="cpu")
    clear_setup_cache()
    executor = (SerialExecutor() if pool == "serial" else
                ProcessPoolExecutor(1, mp_context=QuietSpawnContext()))
    with executor:
        records = _batch(Runner(executor, str(settings.results), settings))
    assert [r["row"] for r in records] == [0, 1] and [r["seed"] for r in records] == [0, 1]
    assert len(list((tmp_path / "fp32").glob("*.pt"))) == 2
    assert len(list((tmp_path / "measure").glob("*.json"))) == 2


def test_the_runner_submits_only_the_misses_and_keeps_the_order(cora, tmp_path):
    settings = RunSettings.resolve("quick", results=tmp_path, device="cpu")
    first = CountingExecutor()
    records = _batch(Runner(first, str(tmp_path), settings))
    assert [type(j) for j in first.jobs] == [TrainJob, TrainJob, FinetuneJob, FinetuneJob]
    again = CountingExecutor()
    assert _batch(Runner(again, str(tmp_path), settings)) == records and not again.jobs


def test_an_fp32_model_trained_in_a_worker_equals_the_drivers_bit_for_bit(cora, tmp_path):
    """A spawned worker trains and returns the arrays; the driver trains the same model
    itself (:func:`sgquant.measure.prepare`, another results folder): identical."""
    job = TrainJob.of("Cora", "gcn", 0, RunSettings.resolve("quick").profile)
    with ProcessPoolExecutor(1, mp_context=QuietSpawnContext()) as pool:
        summary = Runner(pool, str(tmp_path / "worker")).run([job])[0]
    clear_setup_cache()
    mine = prepare("Cora", "gcn", 0, "quick", str(tmp_path / "driver"), device="cpu")
    theirs = prepare("Cora", "gcn", 0, "quick", str(tmp_path / "worker"), device="cpu")
    assert summary["val_acc"] == mine.fp32["val_acc"]
    for name, array in state_arrays(mine.fp32_state).items():
        assert np.array_equal(array, state_arrays(theirs.fp32_state)[name]), name


def test_run_settings_are_declared_once_and_checked(tmp_path):
    before = get_config()
    with config_context(profile="quick", workers=0, results=tmp_path) as s:
        assert get_config() is s and s.profile.name == "quick" and s.workers == 0
        assert s.results == tmp_path.resolve()
    assert get_config() == before
    with pytest.raises(ValueError, match="workers"):
        set_config(workers=-1)
    with pytest.raises(ValueError, match="profile"):
        RunSettings.resolve("fastest")
    with pytest.raises(ValueError, match="scheduler"):
        RunSettings.resolve(scheduler="nowhere")
