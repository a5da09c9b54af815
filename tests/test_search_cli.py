"""``sgquant search`` and its failures: the JSON it writes, one-line errors with exit
2 (bad input, unusable files, checked before any work) or exit 1 (a search whose
measurements fail too often, or whose records cannot be written), and the default
output names."""
from __future__ import annotations

import json
from concurrent.futures import Future

import pytest

from sgquant.runner import SerialExecutor
from sgquant.search import SearchSpace, Sampler, cost_model_search, random_search

from file_helpers import unwritable_folder
from search_checks import QUICK, check_result, search_args


class CrashingExecutor(SerialExecutor):
    """Every job whose number is in ``crash`` raises instead of measuring
    (``message`` names the job unless ``same_cause``)."""

    def __init__(self, crash: set[int], same_cause: bool = False) -> None:
        super().__init__()
        self.crash, self.calls, self.same_cause = crash, 0, same_cause

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self.calls += 1
        if self.calls in self.crash:
            text = "worker died" if self.same_cause else f"worker died on job {self.calls}"

            def boom(*a, **k):
                raise RuntimeError(text)
            return super().submit(boom)
        return super().submit(fn, *args, **kwargs)


def test_a_few_crashing_measurements_are_recorded_and_the_search_goes_on(tmp_path):
    # budget 10 = a random round of 4 and 2 rounds of 3: one failure in the first
    # round, a second (another cause) in the last: 2 of 10 is not more than 20%
    pool = CrashingExecutor({2, 9})
    result = cost_model_search("Cora", "gcn", **search_args(
        budget=10, n_iter=2, n_sample=100, seed=2, executor=pool, results=tmp_path, confirm_top=0,
        **QUICK))
    check_result(result, 10)
    status = result.records["status"].tolist()
    assert status[1] == status[8] == "failed" and status.count("failed") == 2
    assert result.records["error"].iloc[1] == "RuntimeError: worker died on job 2"
    assert result.records["val_acc"].iloc[[1, 8]].isna().all()
    assert result.num_failed == 2 and pool.calls == 10
    assert "(2 failed)" in result.summary() and result.to_dict()["num_failed"] == 2


@pytest.mark.parametrize("crash, same, match", [
    ({2, 3}, True, r"2 of 4 measurements failed, all with the same cause: "
                   r"RuntimeError: worker died \("),
    ({2, 3}, False, r"2 of 4 measurements failed \(more than 20%\); the first: "
                    r"RuntimeError: worker died on job 2"),
    ({1}, False, r"1 of 1 measurements failed"),
])
def test_a_search_whose_failures_are_many_or_alike_stops_with_the_cause(tmp_path, crash,
                                                                          same, match):
    from sgquant.search import SearchFailed
    budget = 1 if crash == {1} else 10
    kw = dict(n_iter=2, n_sample=100) if budget > 1 else {}
    method = cost_model_search if budget > 1 else random_search
    with pytest.raises(SearchFailed, match=match):
        method("Cora", "gcn", **search_args(
            budget=budget, seed=2, confirm_top=0, executor=CrashingExecutor(crash, same),
            results=tmp_path, **kw, **QUICK))


# ---------------------------------------------------------------------- CLI
def test_cli_writes_json_and_exits_0(tmp_path, capsys):
    from sgquant.cli import main
    out = tmp_path / "result.json"
    code = main(["search", "--dataset", "Cora", "--model", "gcn", "--method", "random",
                 "--budget", "3", "--profile", "quick", "--workers", "0", "--no-progress",
                 "--results", str(tmp_path / "cache"), "--output", str(out),
                 "--confirm-top", "1", "--confirm-seeds", "1"])
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["method"] == "random" and payload["num_measured"] == 3
    assert payload["confirm_top"] == 1 and payload["confirm_seeds"] == 1
    assert payload["num_confirmations"] == len(payload["confirmations"]) <= 2
    assert len(payload["records"]) == 3 and payload["fp32"]["val_acc"] > 0.5
    printed = capsys.readouterr().out
    assert "FP32: val" in printed and str(out) in printed


def test_cli_resolves_one_run_settings_and_one_spec(tmp_path, monkeypatch, capsys):
    """``sgquant search`` makes one RunSettings and one SearchSpec at its entry and the
    search takes them as they are."""
    from sgquant.cli import main
    from sgquant.search import cli as search_cli
    from sgquant.settings import RunSettings
    seen = {}

    def stop(dataset, model, method, spec, *, settings, progress):
        seen.update(spec=spec, settings=settings)
        raise ValueError("stopped here")

    monkeypatch.setattr(search_cli, "search", stop)
    code = main(["search", "--dataset", "Cora", "--model", "gcn", "--profile", "quick",
                 "--workers", "0", "--device", "cpu", "--budget", "4", "--n-iter", "1",
                 "--epoch-budget", "40", "--results", str(tmp_path)])
    assert code == 2 and "stopped here" in capsys.readouterr().err
    run, spec = seen["settings"], seen["spec"]
    assert isinstance(run, RunSettings) and run.profile.name == "quick"
    assert (run.device, run.workers, run.results) == ("cpu", 0, tmp_path.resolve())
    assert (spec.budget, spec.n_iter, spec.variant.name) == (4, 1, "sgquant")
    assert spec.epoch_budget == 40


@pytest.mark.parametrize("argv, message", [
    (["--budget", "0"], "cannot measure a single configuration"),
    (["--epoch-budget", "0"], "epoch_budget must be an integer >= 1"),
    (["--epoch-budget", "2"], "epoch_budget 2 is less than one candidate's fine-tune"),
    (["--tolerance", "-1"], "tolerance"),
    (["--bits", "0", "4"], "bit choice 0"),
    (["--method", "random", "--n-mea", "2"], "--n-mea applies to --method cost-model"),
    (["--workers", "-2"], "workers"),
    (["--confirm-top", "-1"], "confirm_top"),
    (["--confirm-seeds", "0"], "confirm_seeds"),
    (["--method", "random", "--strategy", "paper"], "--strategy applies to --method cost-model"),
])
def test_cli_bad_values_exit_2(argv, message, tmp_path, capsys):
    from sgquant.cli import main
    base = ["search", "--dataset", "Cora", "--model", "gcn", "--profile", "quick",
            "--workers", "0", "--no-progress", "--results", str(tmp_path)]
    assert main(base + argv) == 2
    assert message in capsys.readouterr().err


def test_cli_unknown_choice_exits_2(capsys):
    from sgquant.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["search", "--dataset", "Cora", "--model", "gcn", "--method", "grid"])
    assert exc.value.code == 2
    assert "invalid choice: 'grid'" in capsys.readouterr().err


# ------------------------------------------------- CLI: files and failures
SEARCH = ["search", "--dataset", "Cora", "--model", "gcn", "--method", "random",
          "--budget", "2", "--profile", "quick", "--workers", "0", "--no-progress",
          "--confirm-top", "0"]


@pytest.mark.parametrize("case", ["output is a folder", "results is a file",
                                  "results not writable", "output not ours",
                                  "output name too long", "search folder not writable"])
def test_cli_checks_files_before_any_work_and_exits_2(case, tmp_path, capsys, monkeypatch):
    from sgquant import measure
    from sgquant.cli import main
    called = []
    monkeypatch.setattr(measure, "_prepare_cached", lambda *a: called.append(a))
    results, output = tmp_path / "cache", tmp_path / "out.json"
    if case == "output is a folder":
        output.mkdir()
        expected = f"--output {output} is a folder: give a file name"
    elif case == "results is a file":
        results.write_text("x")
        expected = f"results folder {results} is a file, not a folder"
    elif case == "results not writable":
        results = unwritable_folder(tmp_path)
        expected = f"results folder {results} is not writable"
    elif case == "output name too long":  # the file system takes 255 bytes a name
        output = tmp_path / ("o" * 300 + ".json")
        expected = "its file name has 305 bytes, more than the 255 the file system allows"
    elif case == "search folder not writable":  # where the default result file goes
        (results / "search").parent.mkdir()
        (results / "search").symlink_to(unwritable_folder(tmp_path))
        output, expected = None, f"cannot write the search result in {results / 'search'}"
    else:
        output.write_text("my notes\n")
        expected = f"--output {output} exists and was not written by sgquant"
    code = main(SEARCH + ["--results", str(results)] + (["--output", str(output)] if output
                                                          else []))
    err = capsys.readouterr().err
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not called  # checked before the FP32 model was even looked for
    assert case != "output not ours" or output.read_text() == "my notes\n"


def test_cli_default_names_differ_by_every_setting_that_changes_the_result(tmp_path, capsys):
    from sgquant.cli import main

    def run(**changes: str) -> None:
        options = {"--budget": "2", "--tolerance": "0.5", "--confirm-top": "0", **changes}
        argv = SEARCH[:SEARCH.index("--budget")] + ["--profile", "quick", "--workers", "0",
                                                    "--no-progress", "--results", str(tmp_path)]
        for flag, value in options.items():
            argv += [flag, *value.split()]
        assert main(argv) == 0

    for changes in ({}, {"--tolerance": "1.0"}, {"--budget": "3"}, {"--bits": "2 4 8"}, {},
                    {"--confirm-top": "1"}):
        run(**changes)
    written = sorted(p.name for p in (tmp_path / "search").iterdir())
    assert len(written) == 5, written  # the repeated default run rewrote its own file
    assert any("-b3-" in n for n in written) and any("-tol1-" in n for n in written)
    assert all(n.startswith("Cora-gcn-random-seed0-quick-b") for n in written)


def test_cli_default_name_of_a_graph_file_is_plain_short_and_under_the_results(tmp_path,
                                                                              capsys):
    """A graph file's result went next to the graph (its absolute path joined the
    results folder), and a long file name failed after the search: now its stem,
    made plain and cut, names a file in RESULTS/search."""
    import os
    import numpy as np
    from data_helpers import amazon_arrays
    from sgquant.cli import main
    data, results = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    graph = data / ("my graph (v2) " + "g" * 200 + ".npz")
    np.savez(graph, **amazon_arrays(40))
    argv = [a if a != "Cora" else str(graph) for a in SEARCH]
    assert main(argv + ["--results", str(results)]) == 0
    assert os.listdir(data) == [graph.name]  # nothing written beside the graph
    (written,) = (results / "search").iterdir()
    assert len(written.name) <= 120 and written.name.startswith("my_graph__v2__ggg")
    assert set(written.name) <= set("abcdefghijklmnopqrstuvwxyz0123456789._+-")
    assert written.name.endswith(".json") and "-gcn-random-seed0-quick-b2-" in written.name
    assert json.loads(written.read_text())["dataset"] == str(graph)
    assert f"wrote {written}" in capsys.readouterr().out


def test_cli_search_that_cannot_write_a_record_stops_with_the_cause_and_exit_1(tmp_path,
                                                                               capsys):
    """A folder standing where the first measurement's record goes (as a read-only
    ``measure/`` folder would, but also for root): one line, exit 1, no result file."""
    from sgquant.cli import main
    from sgquant.cache import ResultCache
    from sgquant.measure import measurement_key, prepare
    from sgquant.seeds import search_finetune_seed
    setup = prepare("Cora", "gcn", 0, "quick", str(tmp_path))
    space = SearchSpace.from_layout(setup.layout)
    first = Sampler(space, 0).draw(1)[0]
    blocked = ResultCache(tmp_path).path("measure", measurement_key(
        setup, first, None, search_finetune_seed(0)))  # the search's candidate stream
    blocked.mkdir(parents=True)
    out = tmp_path / "o.json"
    # --fidelity full: the record's key is the plain one blocked above
    code = main(SEARCH + ["--results", str(tmp_path), "--output", str(out), "--fidelity",
                          "full"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and not out.exists()
    assert err[-1].startswith("sgquant search: error: cannot write the results cache under")
    assert "Is a directory" in err[-1]
