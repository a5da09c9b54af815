"""The benchmark scripts refuse bad arguments before any work: one line on stderr naming
the argument, exit status 2, no traceback, nothing of the work printed (its header is
the first thing each prints). Data problems found when a dataset is loaded (raw files
missing offline, NaN features in a graph file) are refused the same way, before the
work. One cheap run per script shows the checks let good arguments through.

Each script runs as ``python benchmarks/<script>.py ARGS`` would: a subprocess per script
executes it with ``runpy`` as ``__main__`` once per case (so torch is imported once per
script, not once per case), recording exit status, stdout and stderr of each case
(an uncaught exception is recorded with its traceback, as Python prints it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data_helpers import ring_graph_file

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "datasets"

DRIVER = r"""
import contextlib, io, json, os, runpy, sys, traceback
script, cases, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # as `python script` does
results = []
for argv in cases:
    sys.argv = [script, *argv]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            runpy.run_path(script, run_name="__main__")
            rc = 0
        except SystemExit as exc:  # as the interpreter turns SystemExit into a status
            rc = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
            if not isinstance(exc.code, (int, type(None))):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            rc = 1
    results.append({"argv": argv, "rc": rc, "stdout": stdout.getvalue(),
                    "stderr": stderr.getvalue()})
with open(out, "w") as fh:
    json.dump(results, fh)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def run_cases(script: str, cases: list[list[str]], tmp_path: Path) -> list[dict]:
    """``benchmarks/<script>`` run with each argument list of ``cases``, in one process."""
    out = tmp_path / f"{script}.json"
    proc = subprocess.run([sys.executable, "-c", DRIVER, f"benchmarks/{script}",
                           json.dumps(cases), str(out)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-3000:]
    return json.loads(out.read_text())


def refusal_problems(result: dict, needles: tuple[str, ...], status: int = 2) -> list[str]:
    """What is wrong with ``result`` as a refusal: status, one line naming ``needles``,
    no traceback, no output of the work."""
    err = result["stderr"].strip()
    problems = []
    if result["rc"] != status:
        problems.append(f"exit status {result['rc']}, expected {status}")
    if "Traceback" in err or "\n" in err:
        problems.append("stderr is not one line")
    problems += [f"stderr does not name {n!r}" for n in needles if n not in err]
    if result["stdout"].strip():
        problems.append(f"the work started: {result['stdout'][:200]!r}")
    return [f"{' '.join(result['argv'])}: {p} | stderr: {err[-500:]}" for p in problems]


def check_refusals(script: str, refusals: list[tuple[list[str], tuple[str, ...]]],
                   tmp_path: Path, extra: list[list[str]] = ()) -> list[dict]:
    """Run ``refusals`` (arguments, what the one line must name) and ``extra`` cases of
    ``script``; assert every refusal; return the ``extra`` cases' results."""
    results = run_cases(script, [argv for argv, _ in refusals] + list(extra), tmp_path)
    problems = [p for (_, needles), r in zip(refusals, results)
                for p in refusal_problems(r, needles)]
    assert not problems, "\n".join(problems)
    return results[len(refusals):]


@pytest.fixture
def nan_graph(tmp_path: Path) -> str:
    """A small ``.pt`` graph file whose features hold one NaN."""
    x = torch.rand(10, 4)
    x[3, 1] = float("nan")
    path = tmp_path / "nan_features.pt"
    torch.save({"x": x, "edge_index": torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]),
                "y": torch.arange(10) % 2}, path)
    return str(path)


def data_refusals(option: str, nan_graph: str, before: tuple[str, ...] = ()
                  ) -> list[tuple[list[str], tuple[str, ...]]]:
    """An unknown dataset, a graph file with NaN features and (when the mirror lacks
    its ``ind.pubmed.allx``, as offline) PubMed, each given to ``option``."""
    cases = [([*before, option, "Foo"], (option, "Foo")),
             ([*before, option, nan_graph], (option, "non-finite features"))]
    if MIRROR.is_dir() and not (MIRROR / "PubMed" / "raw" / "ind.pubmed.allx").exists():
        cases.append(([*before, option, "PubMed"], (option, "PubMed", "ind.pubmed.allx")))
    return cases


def test_coding_refuses_bad_arguments_before_work(tmp_path, nan_graph):
    refusals = [(["--quick", "--repeats", "0"], ("--repeats",)),  # ran 7 repeats
                (["--quick", "--repeats", "-3"], ("--repeats",)),  # after 20 s of work
                (["--quick", "--profile", "garbage"], ("--profile", "garbage")),
                (["--repeats", "x"], ("--repeats",)),
                *data_refusals("--datasets", nan_graph, before=("--quick",))]
    (usage,) = check_refusals("coding.py", refusals, tmp_path, extra=[["--help"]])
    assert usage["rc"] == 0 and "--datasets" in usage["stdout"], usage


def test_refusal_from_the_command_line():
    proc = subprocess.run([sys.executable, "benchmarks/dask_workers.py", "--workers", "0"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and not proc.stdout
    assert proc.stderr == ("dask_workers.py: error: --workers entry must be an integer >= 1, "
                           "got 0\n")


def test_dask_workers_refuses_bad_arguments_before_work(tmp_path, nan_graph):
    refusals = [(["--budget", "0"], ("--budget",)),
                (["--budget", "2"], ("--budget", ">= 3")),  # failed in the first search
                (["--workers", "0"], ("--workers",)),  # ran a 1-worker cluster as "0 workers"
                (["--workers", "2", "-1"], ("--workers",)),
                (["--model", "foo"], ("--model", "foo")),
                (["--profile", "garbage"], ("--profile",)),
                *data_refusals("--dataset", nan_graph)]
    (usage,) = check_refusals("dask_workers.py", refusals, tmp_path, extra=[["--help"]])
    assert usage["rc"] == 0 and "--workers" in usage["stdout"], usage


def test_gpu_check_refuses_bad_arguments_with_or_without_a_gpu(tmp_path, nan_graph):
    refusals = [(["--repeats", "0"], ("--repeats",)),
                (["--fp32-epochs", "0"], ("--fp32-epochs",)),
                (["--cpu-threads", "0"], ("--cpu-threads",)),  # passed the old check
                (["--cpu-threads", "-1"], ("--cpu-threads",)),
                *data_refusals("--dataset", nan_graph)]
    gpu = torch.cuda.is_available()
    extra = [["--help"]] + ([] if gpu else [[]])
    usage, *plain = check_refusals("gpu_check.py", refusals, tmp_path, extra=extra)
    assert usage["rc"] == 0 and "--cpu-threads" in usage["stdout"], usage
    if not gpu:  # good arguments, no GPU: says so in one line, status 1, no work
        assert not refusal_problems(plain[0], ("no GPU",), status=1), plain[0]


def test_scaling_refuses_bad_arguments_before_work(tmp_path, nan_graph):
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": true}')
    refusals = [(["--profile", "garbage"], ("--profile",)),
                (["--nodes", "abc"], ("--nodes", "abc")),
                (["--nodes", "0"], ("--nodes",)),
                (["--nodes", "100,2.5"], ("--nodes",)),
                (["--max-nodes", "5"], ("--max-nodes",)),
                (["--mean-degree", "-5"], ("--mean-degree",)),
                (["--max-edges", "0"], ("--max-edges",)),
                (["--features", "0"], ("--features",)),
                (["--classes", "0"], ("--classes",)),
                (["--bits", "0"], ("--bits",)),
                (["--chunk-size", "0"], ("--chunk-size",)),
                (["--edge-chunk-size", "0"], ("--edge-chunk-size",)),
                (["--modes", "fp32,foo"], ("--modes", "foo")),
                (["--modes", ","], ("--modes",)),
                (["--threads", "0"], ("--threads",)),
                (["--timeout", "0"], ("--timeout",)),
                (["--memory-limit-gb", "0"], ("--memory-limit-gb",)),
                (["--seed", "-1"], ("--seed",)),
                (["--batch-size", "0"], ("--batch-size",)),
                (["--dataset", "Cora", "--num-neighbors", "25,0"], ("--num-neighbors",)),
                (["--sampled"], ("--sampled", "--dataset")),
                (["--out", str(foreign)], ("--out", str(foreign))),
                (["--out", str(tmp_path)], ("--out",)),
                *data_refusals("--dataset", nan_graph)]
    out = tmp_path / "records.json"
    (smoke,) = check_refusals("scaling.py", refusals, tmp_path, extra=[[
        "--nodes", "200", "--max-edges", "1000", "--features", "8", "--classes", "3",
        "--modes", "packed", "--profile", "quick", "--timeout", "120", "--out", str(out)]])
    assert smoke["rc"] == 0 and "failed" not in smoke["stdout"], smoke
    assert foreign.read_text() == '{"mine": true}'
    assert [r["mode"] for r in json.loads(out.read_text())["records"]] == ["packed"]


def test_search_latency_refuses_bad_arguments_before_work(tmp_path, nan_graph):
    refusals = [(["--model", "foo"], ("--model", "foo")),
                (["--n-sample", "0"], ("--n-sample",)),
                (["--n-mea", "0"], ("--n-mea",)),
                (["--measured", "40", "0"], ("--measured",)),  # ran a 0-point fit
                (["--ensemble", "0"], ("--ensemble",)),
                (["--repeats", "0"], ("--repeats",)),  # ended in StatisticsError
                (["--repeats", "-2"], ("--repeats",)),
                *data_refusals("--datasets", nan_graph)]
    (smoke,) = check_refusals("search_latency.py", refusals, tmp_path, extra=[[
        "--datasets", "Cora", "--n-sample", "64", "--n-mea", "4", "--measured", "40",
        "--ensemble", "5", "--repeats", "1", "--baseline", "no-such-revision"]])
    assert smoke["rc"] == 0 and "cost-model iteration:" in smoke["stdout"], smoke


def test_book_cost_counts_a_tiny_run_and_refuses_bad_arguments(tmp_path):
    """A quick-profile run on a 40-node graph (one FP32 model, two fine-tunes, one asked
    for twice) counted from its ledger; bad arguments refused; an empty ledger is one
    line, exit 1."""
    from sgquant.assignment import BitAssignment
    from sgquant.runner import Runner, SerialExecutor
    from sgquant.settings import RunSettings

    graph = ring_graph_file(tmp_path / "ring.pt")
    settings = RunSettings.resolve("quick", results=tmp_path / "results", device="cpu")
    runner = Runner(SerialExecutor(), str(settings.results), settings)
    (fp32,) = runner.run([runner.train_job(graph, "gcn", 0)])
    jobs = [runner.finetune_job(graph, "gcn", 0, BitAssignment.uniform(b, 2, 3))
            for b in (4, 8)]
    records = runner.run([jobs[0].for_purpose("candidate"), jobs[1].for_purpose("candidate"),
                          jobs[0].for_purpose("final")])
    results = str(settings.results)
    refusals = [(["--profile", "garbage", "--results", results], ("--profile", "garbage")),
                (["--results", results], ("--profile",)),
                (["--profile", "quick", "--bogus"], ("--bogus",))]
    counted, empty = check_refusals("book_cost.py", refusals, tmp_path, extra=[
        ["--profile", "quick", "--results", results],
        ["--profile", "default", "--results", results]])
    epochs = fp32["epochs_run"] + 2 * settings.profile.finetune_epochs
    minutes = (fp32["seconds"] + records[0]["seconds"] + records[1]["seconds"]) / 60
    last = counted["stdout"].strip().splitlines()[-1]
    assert counted["rc"] == 0 and last == (f"book cost: {epochs} epochs, {minutes:.1f} "
                                           "CPU-minutes (profile quick)"), counted
    assert "candidate" in counted["stdout"] and "fp32" in counted["stdout"]
    assert empty["rc"] == 1 and not empty["stdout"] and "default" in empty["stderr"] \
        and len(empty["stderr"].strip().splitlines()) == 1, empty


def test_epoch_ratio_refuses_bad_arguments_and_flags_ratios(tmp_path, nan_graph):
    graph = ring_graph_file(tmp_path / "ring.pt", n=30, features=5, classes=2)
    refusals = [(["--epochs", "0"], ("--epochs",)),
                (["--repeats", "x"], ("--repeats",)),
                (["--profile", "garbage"], ("--profile", "garbage")),
                (["--models", "mlp"], ("--models", "mlp")),
                *data_refusals("--dataset", nan_graph)]
    (ran,) = check_refusals("epoch_ratio.py", refusals, tmp_path, extra=[
        ["--dataset", graph, "--profile", "quick", "--models", "gcn",
         "--epochs", "1", "--repeats", "1"]])
    lines = ran["stdout"].strip().splitlines()
    assert ran["rc"] == 0 and lines[1].startswith("gcn: FP32 epoch") and "sgquant+" in lines[1]
    assert "1.5x an FP32 epoch" in lines[-1], ran


def test_fp32_schedule_refuses_bad_arguments_before_work(tmp_path, nan_graph):
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": true}')
    out = str(tmp_path / "study.json")
    refusals = [(["--out", out, "--models", "foo"], ("--models", "foo")),
                (["--out", out, "--seeds", "-1"], ("--seeds",)),
                (["--out", out, "--seeds", "x"], ("--seeds",)),
                (["--out", out, "--schedules", "nope"], ("--schedules", "nope")),
                (["--out", out, "--profile", "garbage"], ("--profile", "garbage")),
                (["--out", str(foreign)], ("--out", str(foreign))),
                (["--out", str(tmp_path)], ("--out",)),
                ([], ("--out",)),
                *data_refusals("--dataset", nan_graph, before=("--out", out))]
    g = torch.Generator().manual_seed(0)
    graph = tmp_path / "graph.pt"
    torch.save({"x": torch.rand(40, 4, generator=g),
                "edge_index": torch.randint(0, 40, (2, 120), generator=g),
                "y": torch.arange(40) % 2}, graph)
    smoke = ["--dataset", str(graph), "--models", "gcn", "--seeds", "0", "--profile", "quick",
             "--schedules", "x5-cos100", "--out", out]
    first, again, report = check_refusals("fp32_schedule.py", refusals, tmp_path,
                                          extra=[smoke, smoke, [*smoke, "--report",
                                                                "--schedules", "x2-cos300"]])
    assert report["rc"] == 0 and "done " not in report["stdout"], report  # trains nothing
    assert "gcn   x5-cos100" not in report["stdout"] and "gcn   today" in report["stdout"]
    assert first["rc"] == 0 and first["stdout"].count("done ") == 2, first  # today, x5-cos100
    assert again["rc"] == 0 and "done " not in again["stdout"], again  # resumed: no training
    printed = (first["stdout"] + again["stdout"]).replace(str(tmp_path), "")
    assert "test" not in printed.lower()  # validation only
    runs = json.loads(Path(out).read_text())["runs"]
    assert set(runs) == {"gcn/today/0", "gcn/x5-cos100/0"}
    assert runs["gcn/x5-cos100/0"]["epochs_run"] <= 100 and foreign.read_text() == '{"mine": true}'


def test_search_fidelity_refuses_bad_arguments_before_work(tmp_path):
    refusals = [(["--epoch-share", "0"], ("--epoch-share",)),
                (["--epoch-share", "x"], ("--epoch-share",)),
                (["--arms", "half"], ("--arms", "half")),
                (["--seeds", "-1"], ("--seeds",)),
                (["--datasets", "Nowhere"], ("--datasets", "Nowhere")),
                (["--profile", "garbage"], ("--profile", "garbage"))]
    check_refusals("search_fidelity.py", refusals, tmp_path)
