"""The book: chapter templates, ``sgquant run`` validation, and a whole quick build.

``test_quick_book`` executes every chapter with papermill in the ``quick`` profile
into a temporary folder (results cache temporary too, see conftest.py) and builds the
HTML with Jupyter Book; it is the CI check that ``make book`` works.
"""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from sgquant import book as B
from sgquant import cli

REPO = Path(__file__).resolve().parents[1]
#: What each chapter's page must show: a table and/or a figure.
EXPECTED = {
    "01_memory_breakdown": ("<table", "<img"),
    "02_setup": ("<table",),
    "03_overall": ("<table", "<img", "not run:"),
    "04_granularity": ("<table", "<img"),
    "05_autobit": ("<table", "<img"),
    "06_rematching": ("<table", "<img"),
    "07_below_one_bit": ("<table", "<img"),
    "08_peers": ("<table", "<img"),
}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


# ----------------------------------------------------------------- templates
def test_chapter_templates_are_clean_and_parameterized():
    names = [p.stem for p in B.chapters(REPO)]
    assert names == list(EXPECTED)
    for path in B.chapters(REPO):
        cells = _cells(path)
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in cells if c["cell_type"] == "code"), f"{path.name} has outputs"
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path.name
        params = B.notebook_parameters(path)
        assert {"dataset", "model", "profile", "seeds"} <= set(params), path.name
        assert params["profile"] == "default"
        first = "".join(cells[0]["source"])
        assert cells[0]["cell_type"] == "markdown" and "**Question.**" in first, path.name
        # ends with a generated reading, no hand-typed numbers
        assert "".join(cells[-2]["source"]).strip() == "## Reading", path.name
        assert "".join(cells[-1]["source"]).strip() == "chapter.reading()", path.name
        # notebooks only call the library: no model, training or quantizer code
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert not re.search(r"\bimport torch\b|\bdef \w+\(|\bclass \w+", code), path.name


def test_notebooks_are_thin_callers_of_their_chapter_module():
    """Each notebook makes one chapter object of its own module, then only calls
    its methods: labels, renames and captions live in the module."""
    from sgquant.chapters import CHAPTERS

    for path in B.chapters(REPO):
        code = ["".join(c["source"]) for c in _cells(path) if c["cell_type"] == "code"
                and "parameters" not in c["metadata"].get("tags", [])]
        setup, *calls = code
        module = CHAPTERS[path.stem]
        assert f"chapter = C.{module}.Chapter(" in setup, path.name
        chapter = getattr(importlib.import_module(f"sgquant.chapters.{module}"), "Chapter")
        fields = chapter.__dataclass_fields__
        for name, default in B.notebook_parameters(path).items():
            assert f"{name}={name}" in setup, (path.name, name)  # reaches the chapter
            same = default == fields[name].default or (  # the chapter's own default agrees
                isinstance(default, list) and tuple(default) == fields[name].default)
            assert same, (path.name, name, default, fields[name].default)
        assert all(re.fullmatch(r"chapter\.\w+\(\)", c.strip()) for c in calls), path.name
        for call in calls:
            assert callable(getattr(chapter, call.strip()[len("chapter."):-2])), call


def test_select_chapter():
    assert B.select_chapter("3", REPO).stem == "03_overall"
    assert B.select_chapter("overall", REPO).stem == "03_overall"
    assert B.select_chapter("notebooks/05_autobit.ipynb", REPO).stem == "05_autobit"
    with pytest.raises(ValueError, match="01_memory_breakdown"):
        B.select_chapter("99", REPO)


def test_parse_value():
    assert B.parse_value("3") == 3 and B.parse_value("0.5") == 0.5
    assert B.parse_value("None") is None and B.parse_value("null") is None
    assert B.parse_value("true") is True and B.parse_value("[1, 2]") == [1, 2]
    assert B.parse_value("CiteSeer") == "CiteSeer" and B.parse_value("gat") == "gat"


def test_kernel_runs_this_interpreter():
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec(B.kernel_name()).argv
    assert argv[0] in ("python", "python3") or \
        Path(argv[0]).resolve() == Path(sys.executable).resolve()


def test_external_references(tmp_path):
    (tmp_path / "a.html").write_text(
        '<script src="https://cdn.example.org/x.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/f.css">'
        '<a href="https://arxiv.org/abs/2007.05100">paper</a><img src="_images/x.png">')
    (tmp_path / "b.html").write_text('<script src="_static/mathjax/tex-svg-full.js"></script>')
    refs = B.external_references(tmp_path)
    assert list(refs) == ["a.html"] and len(refs["a.html"]) == 2


# ------------------------------------------------------------- sgquant run
@pytest.mark.parametrize("args, message", [
    (["-p", "dataset", "Nope"], "Nope"),
    (["-p", "model", "mlp"], "mlp"),
    (["-p", "model", "all"], "one model"),
    (["-p", "dataset", "Cora,CiteSeer"], "one dataset"),
    (["-p", "profile", "fast"], "fast"),
    (["-p", "colour", "red"], "colour"),
    (["-p", "seeds", "0"], "seeds"),
    (["-p", "bits", "[1, 33]"], "33"),
    (["-p", "workers", "-2"], "workers"),
])
def test_run_rejects_bad_parameters(tmp_path, capsys, args, message):
    out = tmp_path / "runs"
    code = cli.main(["run", str(REPO / "notebooks" / "04_granularity.ipynb"), "--out-dir",
                     str(out), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not out.exists()  # nothing was executed


def test_run_rejects_unavailable_dataset_and_missing_notebook(tmp_path, capsys):
    from sgquant.data import available_datasets
    if "Reddit" in available_datasets():
        pytest.skip("Reddit is available here")
    code = cli.main(["run", "05", "-p", "dataset", "Reddit", "--out-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "Reddit" in err and "unavailable" in err
    code = cli.main(["run", "notebooks/nope.ipynb"])
    assert code == 2 and "nope.ipynb" in capsys.readouterr().err


def test_book_rejects_bad_options(tmp_path, capsys):
    assert cli.main(["book", "--only", "42", "--out", str(tmp_path / "b")]) == 2
    assert "42" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not a profile
        cli.main(["book", "--profile", "huge"])


@pytest.mark.parametrize("only", ["", " "])
def test_book_refuses_an_empty_selection(only, tmp_path, capsys, monkeypatch):
    """``--only ''`` built the whole book (hours at the default profile)."""
    ran = []
    monkeypatch.setattr(B, "execute_chapter", lambda *a, **k: ran.append(a) or 0.0)
    code = cli.main(["book", "--only", only, "--out", str(tmp_path / "b"), "--no-build",
                     "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"--only {only!r} selects no chapter" in err and not ran


def test_book_reaches_the_scheduler_of_the_environment_before_the_first_cell(
        tmp_path, capsys, monkeypatch):
    from file_helpers import free_port
    ran = []
    monkeypatch.setattr(B, "execute_chapter", lambda *a, **k: ran.append(a) or 0.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("SGQUANT_SCHEDULER", address)
    monkeypatch.setenv("SGQUANT_SCHEDULER_TIMEOUT", "2")  # nothing listens: no need to wait 10 s
    code = cli.main(["book", "--only", "01", "--out", str(tmp_path / "b"), "--no-build",
                     "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"no Dask scheduler answered at {address}" in err and not ran


def test_book_checks_every_chapters_parameters_before_the_first_runs(tmp_path, monkeypatch):
    """A chapter's bad parameter or missing data was found after the chapters before it."""
    ran = []
    monkeypatch.setattr(B, "execute_chapter", lambda *a, **k: ran.append(a) or 0.0)
    real = B.validate_parameters

    def validate(template, parameters):
        if template.name.startswith("05"):
            raise ValueError("chapter 5's data is missing")
        return real(template, parameters)
    monkeypatch.setattr(B, "validate_parameters", validate)
    with pytest.raises(ValueError, match="chapter 5's data is missing"):
        B.build_book("quick", out=tmp_path / "b", build=False, progress=False)
    assert not ran


def test_partial_book_in_checkout_needs_other_chapters(tmp_path):
    import shutil
    B.stage_sources(REPO, tmp_path)
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    with pytest.raises(ValueError, match="never executed"):
        B.build_book("quick", only="02", root=tmp_path, progress=False)
    assert not (tmp_path / "book" / "chapters").exists()  # refused before running anything


def test_book_out_never_overwrites_a_folder_it_did_not_write(tmp_path, capsys):
    """``--out`` into a folder holding the user's own ``_config.yml`` and
    ``book/intro.md`` overwrote them; now it is refused before anything runs."""
    mine = tmp_path / "mine"
    (mine / "book").mkdir(parents=True)
    (mine / "_config.yml").write_text("title: my own book\n")
    (mine / "book" / "intro.md").write_text("# my intro\n")
    code = cli.main(["book", "--profile", "quick", "--only", "01", "--out", str(mine),
                     "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert str(mine) in err and B.BOOK_MARKER in err
    assert (mine / "_config.yml").read_text() == "title: my own book\n"
    assert (mine / "book" / "intro.md").read_text() == "# my intro\n"
    assert sorted(p.name for p in mine.iterdir()) == ["_config.yml", "book"]
    # a file is not a folder; an earlier build (marked) and an empty folder are fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        B.check_book_folder(tmp_path / "file")
    staged = tmp_path / "staged"
    B.stage_sources(REPO, staged)
    assert (staged / B.BOOK_MARKER).is_file() and (staged / "_config.yml").is_file()
    pages = sorted(p.name for p in (REPO / "book").glob("*.md"))
    assert pages and sorted(p.name for p in (staged / "book").glob("*.md")) == pages
    B.stage_sources(REPO, staged)  # a rerun into its own earlier build
    (tmp_path / "empty").mkdir()
    assert B.check_book_folder(tmp_path / "empty") == tmp_path / "empty"


# ------------------------------------------------------------- whole book
@pytest.fixture(scope="module")
def quick_book(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    result = B.build_book("quick", out=out, progress=False)
    return out, result


def test_quick_book(quick_book):
    out, result = quick_book
    html = out / "_build" / "html"
    assert list(result.chapters) == list(EXPECTED)
    assert (html / "index.html").is_file()
    for name, needles in EXPECTED.items():
        page = html / "book" / "chapters" / f"{name}.html"
        assert page.is_file(), name
        text = page.read_text()
        for needle in needles:
            assert needle in text, f"{name}: no {needle}"
        # every chapter ends with its generated reading
        assert "Traceback" not in text, name
        assert 'id="reading"' in text, name
        reading = text[text.index('id="reading"'):]
        assert re.search(r"\d", re.sub(r"<[^>]+>", "", reading)), f"{name}: empty reading"
    from sgquant.data import available_datasets
    if "PubMed" not in available_datasets():
        overall = (html / "book" / "chapters" / "03_overall.html").read_text()
        assert "not run: data unavailable" in overall
    assert (out / B.BOOK_MARKER).is_file()
    # executed chapters are kept beside the HTML; the templates stay clean
    assert all((out / "book" / "chapters" / f"{n}.ipynb").is_file() for n in EXPECTED)
    assert not any(c.get("outputs") for p in B.chapters(REPO) for c in _cells(p)
                   if c["cell_type"] == "code")


def test_quick_book_is_offline(quick_book):
    out, _ = quick_book
    html = out / "_build" / "html"
    assert B.external_references(html) == {}
    assert (html / "_static" / "mathjax" / "tex-svg-full.js").is_file()
    repro = (html / "book" / "reproducibility.html").read_text()
    assert "mathjax/tex-svg-full.js" in repro and "cdn.jsdelivr" not in repro
    assert "quick" in repro  # the build's profile, versions and timings are listed
