"""``sgquant run``: executing one chapter, its output file, Ctrl-C, and bad input.

The runs that start a kernel use the quick profile and the cheapest chapters
(a few seconds each); the bad-input tests check that nothing was executed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sgquant import cli
from sgquant import chapter_run as X

REPO = Path(__file__).resolve().parents[1]


def _run(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["run", *args, "--no-progress"])
    return code, capsys.readouterr().err.strip()


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


# ------------------------------------------------- the README's offline example
def test_readme_example_runs_offline_with_unavailable_dataset(tmp_path, capsys):
    """03 on PubMed (incomplete offline): the chapter runs and lists PubMed as
    "not run: data unavailable" (it crashed with KeyError: ['chosen_json'])."""
    from sgquant.data import available_datasets
    if "PubMed" in available_datasets():
        pytest.skip("PubMed's files are complete here")
    out = tmp_path / "overall.ipynb"
    code = cli.main(["run", str(REPO / "notebooks" / "03_overall.ipynb"), "-p", "dataset",
                     "PubMed", "-p", "model", "gcn", "-p", "profile", "quick", "-o", str(out),
                     "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = out.read_text()
    assert "not run: data unavailable" in text and '"output_type": "error"' not in text


@pytest.mark.parametrize("chapter", ["04", "05", "06"])
def test_single_dataset_chapters_refuse_unavailable_data(tmp_path, capsys, chapter):
    from sgquant.chapters.common import dataset_available
    if dataset_available("PubMed"):
        pytest.skip("PubMed's files are complete here")
    code, err = _run(capsys, chapter, "-p", "dataset", "PubMed", "--out-dir", str(tmp_path))
    _one_line_error(code, err, "PubMed")
    assert not any(tmp_path.iterdir())  # refused before executing


# ------------------------------------------------------------ output notebook
def test_default_output_name_is_bounded_and_distinct():
    many = {"seeds": list(range(120)), "profile": "quick"}
    path = X.default_output("notebooks/02_setup.ipynb", many, "runs")
    assert len(path.name) <= 120 and path.name.startswith("02_setup-seeds=0,1,2,3")
    other = X.default_output("notebooks/02_setup.ipynb", {**many, "profile": "default"}, "runs")
    assert other != path  # the readable part is cut, the hash is not
    assert X.default_output("notebooks/02_setup.ipynb", dict(many), "runs") == path
    assert X.default_output("notebooks/02_setup.ipynb", {}, "runs").name == "02_setup.ipynb"
    assert "/" not in X.default_output("x.ipynb", {"dataset": "a/b c.npz"}, "r").name


def test_run_with_120_seeds_writes_its_default_output(tmp_path, capsys):
    """``-p seeds [0, ..., 119]`` failed with ENAMETOOLONG from the default name."""
    seeds = "[" + ", ".join(map(str, range(120))) + "]"
    code = cli.main(["run", "02", "-p", "seeds", seeds, "-p", "profile", "quick",
                     "--out-dir", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    written = list(tmp_path.glob("02_setup-*.ipynb"))
    assert len(written) == 1 and str(written[0]) in out


def test_run_refuses_bad_outputs_before_executing(tmp_path, capsys):
    folder = tmp_path / "existing"
    folder.mkdir()
    code, err = _run(capsys, "02", "-o", str(folder))
    _one_line_error(code, err, str(folder), "folder")
    assert not any(folder.iterdir())
    mine = tmp_path / "mine.ipynb"
    mine.write_text("my notes")
    code, err = _run(capsys, "02", "-o", str(mine))
    _one_line_error(code, err, str(mine), "not a notebook executed by sgquant")
    assert mine.read_text() == "my notes"
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = _run(capsys, "02", "-o", str(blocker / "out.ipynb"))
    _one_line_error(code, err, str(blocker), "is a file")
    template = REPO / "notebooks" / "02_setup.ipynb"
    code, err = _run(capsys, str(template), "-o", str(template))
    _one_line_error(code, err, "template")


def test_run_refuses_an_unwritable_output_folder(tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user can write into read-only folders (root)")
        code, err = _run(capsys, "02", "-o", str(folder / "out.ipynb"))
        _one_line_error(code, err, str(folder))
    finally:
        folder.chmod(0o755)


def test_check_output_refuses_an_unwritable_place():
    """Also as root: nothing can be created under /proc."""
    if not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    with pytest.raises(ValueError, match="/proc"):
        X.check_output("/proc/sgquant-test.ipynb", REPO / "notebooks" / "02_setup.ipynb")


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("value", ["0", "-5"])
def test_cell_timeout_must_be_positive(tmp_path, capsys, value):
    code, err = _run(capsys, "02", "--cell-timeout", value, "--out-dir", str(tmp_path))
    _one_line_error(code, err, "--cell-timeout", value)
    assert not any(tmp_path.iterdir())
    assert cli.main(["book", "--cell-timeout", value, "--out", str(tmp_path / "b")]) == 2
    assert "--cell-timeout" in capsys.readouterr().err and not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="cell_timeout"):
        X.execute_chapter(REPO / "notebooks" / "02_setup.ipynb", tmp_path / "x.ipynb",
                          cell_timeout=int(value))


def test_deeply_nested_values_name_the_parameter(tmp_path, capsys):
    nested = "[" * 10_000 + "]" * 10_000
    code, err = _run(capsys, "01", "-p", "seeds", nested, "--out-dir", str(tmp_path))
    _one_line_error(code, err, "seeds")
    assert len(err) < 300  # the value is shortened, not printed whole
    code, err = _run(capsys, "06", "-p", "bits", "1+" * 10_000 + "1", "--out-dir", str(tmp_path))
    _one_line_error(code, err, "bits", "nested too deeply")
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="chunk_sizes"):
        X.parse_value("-" * 100_000 + "1", "chunk_sizes")
    assert X.parse_value("[[1, 2], [3]]", "x") == [[1, 2], [3]]
    assert X.parse_value("'[quoted]'", "x") == "[quoted]"


def test_run_checks_search_seed(tmp_path, capsys):
    code, err = _run(capsys, "03", "-p", "search_seed", "x", "--out-dir", str(tmp_path))
    _one_line_error(code, err, "search_seed")


# ------------------------------------------------------------------- Ctrl-C
def _slow_notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("seconds = 120")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# slow"), params,
                nbformat.v4.new_code_cell("print('before')"),
                nbformat.v4.new_code_cell("import time\ntime.sleep(seconds)"),
                nbformat.v4.new_code_cell("print('after')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))


def _status(path: Path, index: int) -> str:
    try:
        cell = json.loads(path.read_text())["cells"][index]
    except (OSError, ValueError, IndexError):
        return ""
    return cell.get("metadata", {}).get("papermill", {}).get("status", "")


def test_ctrl_c_marks_the_notebook_interrupted(tmp_path):
    """SIGINT to the process group (what Ctrl-C does) while a cell sleeps: one line,
    exit 130, and the notebook says which cell was interrupted and which never ran
    (it printed ZMQ/DeadKernel tracebacks and marked every cell completed)."""
    template, out = tmp_path / "slow.ipynb", tmp_path / "out" / "slow-run.ipynb"
    _slow_notebook(template)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sgquant.cli", "run", str(template), "-o", str(out),
         "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while _status(out, 3) != "running":
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and str(out) in lines[0], stderr
    assert "Traceback" not in stderr and "ZMQ" not in stderr
    nb = json.loads(out.read_text())
    assert nb["metadata"]["papermill"]["status"] == "interrupted"
    assert nb["metadata"]["papermill"]["exception"] is True
    by_source = {"".join(c["source"]): c["metadata"].get("papermill", {}).get("status")
                 for c in nb["cells"]}
    assert by_source["print('before')"] == "completed"
    assert by_source["import time\ntime.sleep(seconds)"] == "interrupted"
    assert by_source["print('after')"] == "not executed"


def test_mark_interrupted_without_a_started_cell(tmp_path):
    import nbformat

    path = tmp_path / "nb.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1")]
    nb.cells[0].metadata["papermill"] = {"status": "completed", "start_time": None}
    nb.metadata["papermill"] = {}
    nbformat.write(nb, str(path))
    assert X.mark_interrupted(path) is None
    again = json.loads(path.read_text())
    assert again["cells"][0]["metadata"]["papermill"]["status"] == "not executed"
    assert again["metadata"]["papermill"]["status"] == "interrupted"
    assert X.mark_interrupted(tmp_path / "missing.ipynb") is None


# ------------------------------------------------ parameter types, before a cell
@pytest.mark.parametrize("name, value, expected", [
    ("profile", '["quick"]', "parameter profile of 05_autobit.ipynb must be a non-empty "
                             "string, got ['quick'] (list); its default is \"default\""),
    ("dataset", "3", "dataset of 05_autobit.ipynb must be a non-empty string or a non-empty "
                     "list of strings, got 3 (int)"),
    ("dataset", "[]", "got [] (list)"),  # an empty selection
    ("model", "''", "model of 05_autobit.ipynb must be a non-empty string"),
    ("seeds", "abc", "seeds of 05_autobit.ipynb must be None or an integer or a non-empty "
                     "list of integers, got 'abc' (str)"),
    ("tolerance", "high", "tolerance of 05_autobit.ipynb must be a number, got 'high'"),
    ("budget", "2.5", "budget of 05_autobit.ipynb must be None or an integer, got 2.5 (float)"),
    ("device", "{'x': 1}", "device of 05_autobit.ipynb must be None or a non-empty string"),
])
def test_every_parameter_is_type_checked_before_any_cell(tmp_path, capsys, monkeypatch,
                                                         name, value, expected):
    """``-p profile '["quick"]'`` ended in ``TypeError: unhashable type: 'list'``."""
    ran = []
    monkeypatch.setattr(X, "execute_chapter", lambda *a, **k: ran.append(a) or 0.0)
    code, err = _run(capsys, "05", "-p", name, value, "--out-dir", str(tmp_path))
    _one_line_error(code, err, expected)
    assert not ran and not any(tmp_path.iterdir())


def test_every_chapter_parameter_has_a_type_its_default_has():
    from sgquant.parameters import PARAMETER_TYPES, check_parameter_types
    for template in X.chapters(REPO):
        declared = X.notebook_parameters(template)
        assert set(declared) <= set(PARAMETER_TYPES), template.name
        check_parameter_types(template, declared)
    other = {"ablation": "yes", "bits": 4, "chunk_sizes": [1, 2.0], "peak_bits": "4",
             "variants": "sgquant", "assignment": [1], "search_seed": None}
    for name, value in other.items():
        template = next(t for t in X.chapters(REPO) if name in X.notebook_parameters(t))
        with pytest.raises(ValueError, match=f"parameter {name} of {template.name} must be"):
            check_parameter_types(template, {name: value})


# ------------------------------------- the scheduler and results, before a cell
@pytest.mark.parametrize("where", ["parameter", "option", "variable"])
def test_run_reaches_the_scheduler_before_the_first_cell(where, tmp_path, capsys,
                                                         monkeypatch):
    """A scheduler given as a notebook parameter or in $SGQUANT_SCHEDULER was first
    reached by a chapter's cell (cell 4 of 05)."""
    from file_helpers import free_port
    ran = []
    monkeypatch.setattr(X, "execute_chapter", lambda *a, **k: ran.append(a) or 0.0)
    monkeypatch.setenv("SGQUANT_SCHEDULER_TIMEOUT", "2")  # nothing listens: no need to wait 10 s
    address = f"tcp://127.0.0.1:{free_port()}"
    given = {"parameter": ["-p", "scheduler", address], "option": ["--scheduler", address],
             "variable": []}[where]
    if where == "variable":
        monkeypatch.setenv("SGQUANT_SCHEDULER", address)
    code, err = _run(capsys, "01", *given, "--out-dir", str(tmp_path / "runs"))
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"no Dask scheduler answered at {address}" in err and not ran


@pytest.mark.parametrize("case", ["a file", "not writable"])
def test_run_and_book_check_the_results_folder_before_the_first_cell(case, tmp_path, capsys,
                                                                     monkeypatch):
    from file_helpers import unwritable_folder
    from sgquant import book as B
    ran = []
    monkeypatch.setattr(X, "execute_chapter", lambda *a, **k: ran.append(a) or 0.0)
    monkeypatch.setattr(B, "execute_chapter", lambda *a, **k: ran.append(a) or 0.0)
    if case == "a file":
        results = tmp_path / "results"
        results.write_text("x")
        expected = f"results folder {results} is a file, not a folder"
    else:
        results = unwritable_folder(tmp_path)
        expected = f"results folder {results} is not writable"
    monkeypatch.setenv("SGQUANT_RESULTS", str(results))
    code, err = _run(capsys, "01", "--out-dir", str(tmp_path / "runs"))
    _one_line_error(code, err, expected, "give a writable folder in $SGQUANT_RESULTS")
    code = cli.main(["book", "--only", "01", "--out", str(tmp_path / "b"), "--no-build",
                     "--no-progress"])
    _one_line_error(code, capsys.readouterr().err.strip(), expected)
    assert not ran


@pytest.mark.parametrize("variable", ["cache", None])
def test_the_kernel_uses_the_results_folder_checked(tmp_path, monkeypatch, variable):
    """Seen from where the command runs (``./results`` at the repository root for ``make
    book``, as for ``sgquant search``), never from the kernel's folder; made absolute."""
    if variable is None:
        monkeypatch.delenv("SGQUANT_RESULTS", raising=False)
    else:
        monkeypatch.setenv("SGQUANT_RESULTS", variable)
    monkeypatch.delenv("SGQUANT_SCHEDULER", raising=False)
    monkeypatch.chdir(tmp_path)
    folder = X.preflight(tmp_path / "book" / "chapters")
    assert folder == tmp_path / (variable or "results") and folder.is_dir()
    assert os.environ["SGQUANT_RESULTS"] == str(folder.resolve())
    assert not (tmp_path / "book" / "chapters" / (variable or "results")).exists()
